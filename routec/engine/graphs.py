"""The bucketed engine: each segment runs on its rows padded up to a bucket size, and
on a GPU replays a CUDA graph captured once per (segment, bucket).

Routing is the shared loop (:func:`routec.deploy.router.route_segments`); only the
segment call changes. A call pads its inputs to the bucket (:mod:`routec.engine.buckets`),
runs or replays the segment, and hands on the first ``m`` rows of every output, so
padded rows never reach a junction's decision, a count or an exit's logits. The padding
needs no read of the device: ``m`` is the size of the rows the loop already knows.
With ``graphs=False`` (the CPU, and the tests) the same code runs the fused segments
eagerly on the padded rows.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
import torch
from torch import Tensor, nn

from routec.engine.buckets import bucket_for, bucket_sizes, pad_rows
from routec.engine.engines import FusedEngine
from routec.runtime.routing import RoutedNetwork


class BucketEngine(FusedEngine):
    """Fused segments on rows padded to buckets; CUDA graphs when ``graphs`` is on."""

    def __init__(self, net: RoutedNetwork, merge: bool = True, batch: int = 256,
                 buckets: Sequence[int] | None = None, graphs: bool | None = None) -> None:
        super().__init__(net, merge)
        self.buckets = bucket_sizes(batch, buckets)
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        self.graphs = device.type == "cuda" if graphs is None else graphs
        if self.graphs and device.type != "cuda":
            from routec.engine.registry import EngineError

            raise EngineError("CUDA graphs need the network on a CUDA device",
                              hint="move it with net.to('cuda'), or pass graphs=False")
        self.used: dict[tuple[int, int], int] = {}  # calls per (segment, bucket)
        self.captured: dict[tuple[int, int], _Captured] = {}
        self.calls = [self._call(s, m) for s, m in enumerate(self.modules)]

    def _call(self, s: int, mod: nn.Module) -> Callable[..., tuple[Tensor, ...]]:
        def call(*args: Tensor | None) -> tuple[Tensor, ...]:
            m = next(a for a in args if a is not None).shape[0]
            b = bucket_for(m, self.buckets)
            self.used[(s, b)] = self.used.get((s, b), 0) + 1
            padded = tuple(None if a is None else pad_rows(a, b) for a in args)
            if self.graphs:
                outs = self._replay(s, b, mod, args, padded)
            else:
                outs = mod(*padded)
            return tuple(o[:m] for o in outs)
        return call

    def _replay(self, s: int, b: int, mod: nn.Module, args: Sequence[Tensor | None],
                padded: Sequence[Tensor | None]) -> tuple[Tensor, ...]:
        cap = self.captured.get((s, b))
        if cap is None:
            cap = self.captured[(s, b)] = _Captured(mod, padded)
        return cap.replay(args)


class _Captured:
    """One segment's CUDA graph at one bucket: static inputs, replay, static outputs."""

    def __init__(self, mod: nn.Module, padded: Sequence[Tensor | None]) -> None:
        self.inputs = tuple(None if a is None else a.clone() for a in padded)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up: lazy initialisation out of the graph
            for _ in range(2):
                mod(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs: tuple[Tensor, ...] = tuple(mod(*self.inputs))

    def replay(self, args: Sequence[Tensor | None]) -> tuple[Tensor, ...]:
        """Copy the real rows in (the padded tail keeps stale rows, which no output
        keeps) and replay. Outputs are the graph's own buffers: each segment runs once
        per routed batch, so they are read before this graph replays again."""
        for dst, src in zip(self.inputs, args):
            if dst is not None and src is not None:
                dst[:src.shape[0]].copy_(src)
        self.graph.replay()
        return self.outputs

