"""Routed inference on numpy arrays: the junction logic between compiled segments.

``SegmentRunner`` is given one callable per segment, ``call(levels, k) ->
(levels_out, head_out)``, and routes a batch through them: each junction's scores
pick a way per example (argmax, or a policy), its rows are split with one index
gather per way, and each exit writes its logits into the batch-sized output; the
loop is :func:`routec.deploy.router.route_segments`, shared with the torch engines.
MACs are looked up from the leaf each example reached (the sum over its path),
not added up node by node. A single example, or a batch whose rows all take one
way, goes on without any gather.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from routec.deploy.router import NumpyOps, route_segments
from routec.tree import RoutingTree, Segment

Levels = tuple[np.ndarray, ...]
SegmentCall = Callable[[Levels, "np.ndarray | None"], tuple[Levels, "np.ndarray | None"]]
# policy(junction_index, scores, rows, levels) -> chosen way per row
ArrayPolicy = Callable[[int, np.ndarray, np.ndarray, Levels], np.ndarray]
_OPS = NumpyOps()


class SegmentRunner:
    def __init__(self, topology: RoutingTree, segments: Sequence[Segment],
                 calls: Sequence[SegmentCall],
                 needs: dict[int, set[int] | None] | None = None) -> None:
        self.topology = topology
        self.segments = list(segments)
        self.calls = list(calls)
        # levels of its input pyramid each segment (and what it passes it on to) reads:
        # a junction gathers only those for each way
        self.needs = needs or {}
        self.leaf_macs = np.asarray(topology.leaf_macs, dtype=np.float64)
        self.profile: dict[int, float] | None = None  # seconds per segment, when set

    def kcpt(self, k_cpt: Any, n: int) -> np.ndarray | None:
        from routec.errors import RunError

        t = self.topology
        if not t.dynamic_kcpt:
            if k_cpt is not None:
                raise RunError(f"network '{t.name}' was compiled without a k_cpt input")
            return None
        if k_cpt is None:
            raise RunError(f"network '{t.name}' reads k_cpt: pass k_cpt=...")
        k = np.asarray(k_cpt, dtype=np.float32)
        if k.ndim == 0:
            k = np.full((n,), float(k), dtype=np.float32)
        if k.shape != (n,):
            raise RunError(f"k_cpt must be a number or an array of shape ({n},), "
                           f"got {tuple(k.shape)}")
        if not np.isfinite(k).all():
            raise RunError("k_cpt must be finite")
        return k

    def route(self, x: np.ndarray, k_cpt: Any = None, policy: ArrayPolicy | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logits N×C, leaf index N, MACs per example N) for a preprocessed batch."""
        from routec.errors import RunError

        t = self.topology
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(t.input_shape):
            raise RunError(f"network '{t.name}' takes N×{'×'.join(map(str, t.input_shape))} "
                           f"input, got {'×'.join(map(str, x.shape))}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        k = self.kcpt(k_cpt, n)
        logits = np.zeros((n, t.classes), dtype=np.float32)
        leaf = np.full((n,), -1, dtype=np.int64)
        if n == 0:
            return logits, leaf, np.zeros((0,), dtype=np.float64)
        segs, calls = self.segments, self.calls

        def step(s: int, h: Levels, kk: np.ndarray | None) -> tuple[Levels, np.ndarray | None]:
            h2, y = calls[s](h, kk)
            return (h2 if segs[s].transforms else h), y

        route_segments(segs, step, _OPS, x, k, logits, leaf, policy, self.needs, self.profile)
        return logits, leaf, self.leaf_macs[leaf]
