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

Routing (junction splits, exit scatters, MACs from the leaf reached) is one loop,
:func:`routec.deploy.router.route_segments`, shared by the segment engines (torch
tensors, :mod:`routec.engine.array_ops`) and the ONNX engine and torch-free runner
(numpy arrays); a missing requirement is an error that names the engine and
what to install (the engine's declaration checks it before it is built).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor, nn

from routec.deploy.router import route_segments
from routec.tree import RoutingTree, Segment
from routec.engine import modules as M
from routec.engine import registry
from routec.engine.array_ops import OPS
from routec.engine.registry import EngineError
from routec.runtime.routing import Policy, RoutedNetwork, RoutedOutput, argmax_policy
from routec.train.precision import PRECISIONS, autocast

ENGINES = registry.names()
__all__ = ["ENGINES", "EngineError", "InferenceEngine", "EagerEngine", "SegmentEngine",
           "FusedEngine", "CompiledEngine", "OnnxEngine", "optimize_for_inference",
           "available_engines"]


class InferenceEngine:
    """Common face of every engine; attribute look-ups fall through to the network, so
    code written for a network (``evaluate``, ``ConfidencePolicy``) accepts an engine."""

    name = ""  # the registered name, set by Engine.build
    precision = "fp32"  # set by optimize_for_inference: the forward's autocast

    def __init__(self, net: RoutedNetwork) -> None:
        self.net = net
        self.topology = RoutingTree.of(net)

    def _autocast(self, x: Tensor) -> AbstractContextManager[object]:
        """Autocast at the engine's precision on ``x``'s device (no cast cache: a CUDA
        graph captured under it must not hold casts made outside it)."""
        return autocast(self.precision, x.device, cache=False)

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
            with torch.inference_mode(), self._autocast(x):
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
        with torch.inference_mode(), self._autocast(x):
            k = net._kcpt(k_cpt, x)
            return self._route(self._prepare(x), k, policy)

    def _route(self, x: Tensor, k: Tensor | None, policy: Policy) -> RoutedOutput:
        n = x.shape[0]
        logits = x.new_zeros(n, self.topology.classes)
        leaf = torch.full((n,), -1, dtype=torch.long, device=x.device)
        segs, calls = self.segments, self.calls

        def step(s: int, h: tuple[Any, ...], kk: Tensor | None
                 ) -> tuple[tuple[Any, ...], Tensor | None]:
            seg = segs[s]
            outs = calls[s](*h, kk) if seg.end == "junction" and kk is not None else calls[s](*h)
            if seg.emits_levels:
                h = self._levels(s, seg, outs)
            return h, (outs[-1] if seg.head >= 0 else None)

        wait = torch.cuda.synchronize if x.is_cuda and self.profile is not None else None
        route_segments(segs, step, OPS, x, k, logits, leaf,
                       None if policy is argmax_policy else policy, self.needs, self.profile,
                       wait)
        return RoutedOutput(logits, leaf, self._leaf_macs(x.device)[leaf])

    def _leaf_macs(self, device: torch.device) -> Tensor:
        """Path MACs per leaf on ``device``, so looking up an example's MACs by its leaf
        never leaves the device."""
        if self.leaf_macs.device != device:
            self.leaf_macs = self.leaf_macs.to(device)
        return self.leaf_macs

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
        # a network on a GPU runs its sessions on ONNX Runtime's CUDA provider, where
        # installed (onnxruntime-gpu); routing stays on host arrays between sessions
        on_gpu = any(p.is_cuda for p in net.parameters())
        self.cuda = on_gpu and onnx_export.cuda_provider()
        calls = []
        for seg in self.segments:
            n_in = M.segment_inputs(self.topology, seg, arity)
            blob, inputs, outputs = onnx_export.export_segment(net, self.topology, seg, n_in,
                                                               keep.get(seg.index))
            calls.append(onnx_export.session_call(blob, seg, inputs, outputs, threads,
                                                  self.cuda))
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
        return RoutedOutput(torch.from_numpy(logits).to(x.device, x.dtype),
                            torch.from_numpy(leaf).to(x.device),
                            torch.from_numpy(macs).to(x.device))


def _torch_policy(policy: Policy) -> Callable[..., Any]:
    def call(j: int, scores: Any, rows: Any, levels: Sequence[Any]) -> Any:
        choice = policy(j, torch.from_numpy(scores), torch.from_numpy(rows),
                        tuple(None if a is None else torch.from_numpy(a) for a in levels))
        return choice.numpy()
    return call


def optimize_for_inference(net: RoutedNetwork, engine: str | None = None,
                           precision: str = "fp32", **options: Any) -> InferenceEngine:
    """An inference engine for ``net``: ``engine`` names one of
    :func:`routec.engine.registry.names` (default: :func:`routec.engine.registry.default`).

    Every engine but the reference one (``net.route`` itself) copies what it needs when
    it is built: later changes to ``net``'s weights are not seen. ``net``'s
    training/eval mode is left as it was. ``precision`` (fp32, bf16 or fp16) runs the
    forward under autocast on the input's device; the ONNX engine runs fp32 only.
    """
    if isinstance(net, InferenceEngine):
        net = net.net
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision '{precision}'",
                          hint="one of " + ", ".join(PRECISIONS))
    entry = registry.get(registry.default() if engine is None else engine)
    if precision != "fp32" and registry.AUTOCAST not in entry.supports:
        raise EngineError(f"engine '{entry.name}' runs fp32 only, not {precision}",
                          hint="use --precision fp32, or one of "
                               + registry.listing(registry.supporting(registry.AUTOCAST),
                                                  last="or"))
    built: InferenceEngine = entry.build(net, **options)
    built.precision = precision
    return built



def available_engines() -> list[str]:
    """Engines whose requirements are present here (nothing is built)."""
    return registry.available()
