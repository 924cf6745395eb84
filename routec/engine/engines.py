"""Inference engines for a built or trained routed network.

``optimize_for_inference(net, engine=...)`` returns an object whose ``route(x,
k_cpt=None, policy=...)`` returns a :class:`RoutedOutput` like ``net.route``. The
engines are declared one per module in :mod:`routec.engine.backends` (name, summary,
requirements, what they support) and listed by :mod:`routec.engine.registry`; this
module holds their implementations:

* :class:`EagerEngine`: ``net.route`` itself, the generated module in eager PyTorch;
* :class:`FusedEngine`: each segment (the columns between two junctions, with the
  junction's router or the exit's classifier) traced with torch.fx, batch-norm folded
  into the conv/linear before it, channels-last weights, inference mode;
* :class:`CompiledEngine`: the fused segments compiled by torch.compile (inductor) for
  dynamic batch sizes; needs a C++ compiler;
* :class:`OnnxEngine`: each segment exported to ONNX with a dynamic batch axis and run
  by ONNX Runtime, with routing done on numpy arrays between sessions.

Routing (junction splits, exit scatters, MACs from the leaf reached) is shared by
the segment engines; a missing requirement is an error that names the engine and
what to install (the engine's declaration checks it before it is built).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from routec.deploy.topology import Segment, Topology
from routec.engine import modules as M
from routec.engine import registry
from routec.engine.registry import EngineError
from routec.runtime.routing import Policy, RoutedNetwork, RoutedOutput, argmax_policy

ENGINES = registry.names()
__all__ = ["ENGINES", "EngineError", "InferenceEngine", "EagerEngine", "SegmentEngine",
           "FusedEngine", "CompiledEngine", "OnnxEngine", "optimize_for_inference",
           "available_engines"]


class InferenceEngine:
    """Common face of every engine; attribute look-ups fall through to the network, so
    code written for a network (``evaluate``, ``ConfidencePolicy``) accepts an engine."""

    name = ""  # the registered name, set by Engine.build

    def __init__(self, net: RoutedNetwork) -> None:
        self.net = net
        self.topology = Topology.of(net)

    def route(self, x: Tensor, k_cpt: float | Tensor | None = None,
              policy: Policy = argmax_policy) -> RoutedOutput:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name == "net":
            raise AttributeError(name)
        return getattr(self.net, name)

    # evaluate() toggles modes; an engine is inference-only
    training = False

    def eval(self) -> "InferenceEngine":
        return self

    def train(self, mode: bool = True) -> "InferenceEngine":
        return self

    def describe(self) -> str:
        return self.name


class EagerEngine(InferenceEngine):
    def route(self, x: Tensor, k_cpt: float | Tensor | None = None,
              policy: Policy = argmax_policy) -> RoutedOutput:
        net = self.net
        was = net.training
        if was:  # inference statistics, whatever mode the caller left the network in
            net.eval()
        try:
            with torch.inference_mode():
                return net.route(x, k_cpt=k_cpt, policy=policy)
        finally:
            if was:
                net.train()


class SegmentEngine(InferenceEngine):
    """Routes between per-segment callables on torch tensors."""

    def __init__(self, net: RoutedNetwork, merge: bool = True) -> None:
        super().__init__(net)
        self.segments: list[Segment] = self.topology.segments(merge=merge)
        self.arity = M.pyramid_arity(net, self.topology)
        self.leaf_macs = torch.tensor(self.topology.leaf_macs, dtype=torch.float64)
        self.keep, self.needs = M.levels_kept(net, self.topology, self.segments,
                                              self.arity)
        # levels each segment's output pyramid has (levels it does not emit are None)
        self.width = {seg.index: self.arity[seg.transforms[-1]] for seg in self.segments
                      if seg.emits_levels}
        self.calls: list[Callable[..., tuple[Tensor, ...]]] = []
        self.profile: dict[int, float] | None = None
        self.folded = 0

    def segment_label(self, s: int) -> str:
        return "+".join(self.topology.nodes[i] for i in self.segments[s].nodes)

    def _prepare(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    def route(self, x: Tensor, k_cpt: float | Tensor | None = None,
              policy: Policy = argmax_policy) -> RoutedOutput:
        net = self.net
        net._check_input(x)
        with torch.inference_mode():
            k = net._kcpt(k_cpt, x)
            return self._route(self._prepare(x), k, policy)

    def _route(self, x: Tensor, k: Tensor | None, policy: Policy) -> RoutedOutput:
        n = x.shape[0]
        logits = x.new_zeros(n, self.topology.classes)
        leaf = torch.full((n,), -1, dtype=torch.long)
        if n == 0:
            return RoutedOutput(logits, leaf, torch.zeros(0, dtype=torch.float64))
        segs, calls, prof = self.segments, self.calls, self.profile
        argmax = policy is argmax_policy
        if n == 1 and prof is None:
            return self._route_one(x, k, policy, argmax)
        stack: list[tuple[int, Tensor, tuple[Tensor, ...], Tensor | None]] = [
            (0, torch.arange(n), (x,), k)]
        while stack:
            s, rows, h, kk = stack.pop()
            seg = segs[s]
            args = (*h, kk) if seg.end == "junction" and kk is not None else h
            if prof is None:
                outs = calls[s](*args)
            else:
                t0 = time.perf_counter()
                outs = calls[s](*args)
                prof[s] = prof.get(s, 0.0) + time.perf_counter() - t0
            if seg.emits_levels:
                h = self._levels(s, seg, outs)
            if seg.end == "exit":
                y = outs[-1]
                if rows.shape[0] == n:
                    logits = y.to(logits.dtype)
                    leaf.fill_(seg.leaf)
                else:
                    logits.index_copy_(0, rows, y.to(logits.dtype))
                    leaf.index_fill_(0, rows, seg.leaf)
            elif seg.end == "column":
                stack.append((seg.next[0], rows, h, kk))
            else:
                scores = outs[-1]
                choice = scores.argmax(dim=1) if argmax else policy(seg.junction, scores, rows, h)
                m = rows.shape[0]
                if m == 1:
                    stack.append((seg.next[int(choice)], rows, h, kk))
                    continue
                counts = torch.bincount(choice, minlength=len(seg.next)).tolist()
                parts = []
                for w, c in enumerate(counts):
                    if c == m:
                        parts.append((seg.next[w], rows, h, kk))
                    elif c:
                        pos = (choice == w).nonzero().squeeze(1)
                        need = self.needs.get(seg.next[w])
                        parts.append((seg.next[w], rows.index_select(0, pos),
                                      tuple(None if a is None or (need is not None
                                                                  and i not in need)
                                            else _take(a, pos) for i, a in enumerate(h)),
                                      None if kk is None else kk.index_select(0, pos)))
                stack.extend(reversed(parts))
        return RoutedOutput(logits.contiguous(), leaf, self.leaf_macs[leaf])


    def _route_one(self, x: Tensor, k: Tensor | None, policy: Policy, argmax: bool
                   ) -> RoutedOutput:
        """One image: follow its path, no splitting at all."""
        segs, calls = self.segments, self.calls
        rows = torch.zeros(1, dtype=torch.long)
        h: tuple[Any, ...] = (x,)
        s = 0
        while True:
            seg = segs[s]
            outs = calls[s](*h, k) if seg.end == "junction" and k is not None else calls[s](*h)
            if seg.emits_levels:
                h = self._levels(s, seg, outs)
            if seg.end == "exit":
                logits = outs[-1].to(x.dtype)
                return RoutedOutput(logits.contiguous(), torch.full((1,), seg.leaf),
                                    self.leaf_macs[seg.leaf:seg.leaf + 1].clone())
            if seg.end == "column":
                s = seg.next[0]
            elif argmax:
                s = seg.next[int(outs[-1].argmax())]
            else:
                s = seg.next[int(policy(seg.junction, outs[-1], rows, h))]

    def _levels(self, s: int, seg: Segment, outs: Sequence[Any]) -> tuple[Any, ...]:
        """The pyramid a segment hands on, with its dropped levels as None placeholders
        (it emits only the levels later segments read)."""
        emitted = outs[:-1] if seg.head >= 0 else outs
        keep = self.keep[s]
        if keep is None:
            return tuple(emitted)
        full: list[Any] = [None] * self.width[s]
        for i, a in zip(keep, emitted):
            full[i] = a
        return tuple(full)


def _take(a: Tensor, pos: Tensor) -> Tensor:
    """Rows ``pos`` of ``a``, keeping a channels-last tensor channels-last (index_select
    would return it contiguous, and several times slower)."""
    if a.ndim == 4 and a.is_contiguous(memory_format=torch.channels_last):
        return a.permute(0, 2, 3, 1).index_select(0, pos).permute(0, 3, 1, 2)
    return a.index_select(0, pos)


class FusedEngine(SegmentEngine):
    def __init__(self, net: RoutedNetwork, merge: bool = True) -> None:
        super().__init__(net, merge)
        self.modules: list[nn.Module] = []
        for seg in self.segments:
            n_in = M.segment_inputs(self.topology, seg, self.arity)
            mod, folded = M.fused_segment(net, self.topology, seg, n_in,
                                          self.keep.get(seg.index))
            self.modules.append(mod)
            self.folded += folded
        self.calls = list(self.modules)


class CompiledEngine(FusedEngine):
    """Fused segments compiled by torch.compile with dynamic batch sizes.

    A batch of one is its own specialisation (torch.compile treats sizes 0 and 1 as
    constants): it compiles once on first use, like any other shape bucket; empty
    batches never reach a segment.
    """

    def __init__(self, net: RoutedNetwork, merge: bool = True) -> None:
        super().__init__(net, merge)
        import torch._dynamo

        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        self.calls = [torch.compile(m, dynamic=True) for m in self.modules]


class OnnxEngine(InferenceEngine):
    """Each segment an ONNX Runtime session; routing on numpy arrays in between."""

    def __init__(self, net: RoutedNetwork, merge: bool = True, threads: int | None = None
                 ) -> None:
        super().__init__(net)
        from routec.deploy.runner import SegmentRunner
        from routec.engine import onnx_export

        self.segments = self.topology.segments(merge=merge)
        arity = M.pyramid_arity(net, self.topology)
        threads = torch.get_num_threads() if threads is None else threads
        keep, needs = M.levels_kept(net, self.topology, self.segments, arity)
        calls = []
        for seg in self.segments:
            n_in = M.segment_inputs(self.topology, seg, arity)
            blob, inputs, outputs = onnx_export.export_segment(net, self.topology, seg, n_in,
                                                               keep.get(seg.index))
            calls.append(onnx_export.session_call(blob, seg, inputs, outputs, threads))
        self.runner = SegmentRunner(self.topology, self.segments, calls, needs)

    @property
    def profile(self) -> dict[int, float] | None:
        return self.runner.profile

    @profile.setter
    def profile(self, value: dict[int, float] | None) -> None:
        self.runner.profile = value

    def segment_label(self, s: int) -> str:
        return "+".join(self.topology.nodes[i] for i in self.segments[s].nodes)

    def route(self, x: Tensor, k_cpt: float | Tensor | None = None,
              policy: Policy = argmax_policy) -> RoutedOutput:
        self.net._check_input(x)
        with torch.inference_mode():
            k = self.net._kcpt(k_cpt, x)
            if policy is argmax_policy:
                arr_policy = None
            elif hasattr(policy, "as_array_policy"):  # a policy that also works on arrays
                arr_policy = policy.as_array_policy()
            else:
                arr_policy = _torch_policy(policy)
            logits, leaf, macs = self.runner.route(
                x.detach().cpu().contiguous().numpy(),
                None if k is None else k.cpu().numpy(), arr_policy)
        return RoutedOutput(torch.from_numpy(logits).to(x.dtype), torch.from_numpy(leaf),
                            torch.from_numpy(macs))


def _torch_policy(policy: Policy) -> Callable[..., Any]:
    def call(j: int, scores: Any, rows: Any, levels: Sequence[Any]) -> Any:
        choice = policy(j, torch.from_numpy(scores), torch.from_numpy(rows),
                        tuple(None if a is None else torch.from_numpy(a) for a in levels))
        return choice.numpy()
    return call


def optimize_for_inference(net: RoutedNetwork, engine: str | None = None, **options: Any
                           ) -> InferenceEngine:
    """An inference engine for ``net``: ``engine`` names one of
    :func:`routec.engine.registry.names` (default: :func:`routec.engine.registry.default`).

    Every engine but the reference one (``net.route`` itself) copies what it needs when
    it is built: later changes to ``net``'s weights are not seen. ``net``'s
    training/eval mode is left as it was.
    """
    if isinstance(net, InferenceEngine):
        net = net.net
    entry = registry.get(registry.default() if engine is None else engine)
    built: InferenceEngine = entry.build(net, **options)
    return built


def available_engines() -> list[str]:
    """Engines whose requirements are present here (nothing is built)."""
    return registry.available()
