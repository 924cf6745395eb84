"""Routed inference on numpy arrays: the junction logic between compiled segments.

``SegmentRunner`` is given one callable per segment, ``call(levels, k) ->
(levels_out, head_out)``, and routes a batch through them: each junction's scores
pick a way per example (argmax, or a policy), its rows are split with one index
gather per way, and each exit writes its logits into the batch-sized output.
MACs are looked up from the leaf each example reached (the sum over its path),
not added up node by node. A single example, or a batch whose rows all take one
way, goes on without any gather.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from routec.deploy.topology import Segment, Topology

Levels = tuple[np.ndarray, ...]
SegmentCall = Callable[[Levels, "np.ndarray | None"], tuple[Levels, "np.ndarray | None"]]
# policy(junction_index, scores, rows, levels) -> chosen way per row
ArrayPolicy = Callable[[int, np.ndarray, np.ndarray, Levels], np.ndarray]


class SegmentRunner:
    def __init__(self, topology: Topology, segments: Sequence[Segment],
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
        segs, calls, prof = self.segments, self.calls, self.profile
        if n == 1 and prof is None:
            return self._route_one(x, k, policy, logits, leaf)
        stack: list[tuple[int, np.ndarray, Levels, np.ndarray | None]] = [
            (0, np.arange(n), (x,), k)]
        while stack:
            s, rows, h, kk = stack.pop()
            seg = segs[s]
            if prof is None:
                h2, y = calls[s](h, kk)
            else:
                import time

                t0 = time.perf_counter()
                h2, y = calls[s](h, kk)
                prof[s] = prof.get(s, 0.0) + time.perf_counter() - t0
            if seg.transforms:
                h = h2
            if seg.end == "exit":
                assert y is not None
                if rows.shape[0] == n:
                    logits[:] = y
                    leaf[:] = seg.leaf
                else:
                    logits[rows] = y
                    leaf[rows] = seg.leaf
            elif seg.end == "column":
                stack.append((seg.next[0], rows, h, kk))
            else:
                assert y is not None
                choice = (y.argmax(axis=1) if policy is None
                          else np.asarray(policy(seg.junction, y, rows, h)))
                m = rows.shape[0]
                if m == 1:
                    stack.append((seg.next[int(choice[0])], rows, h, kk))
                    continue
                counts = np.bincount(choice, minlength=len(seg.next))
                parts = []
                for w in range(len(seg.next)):
                    c = counts[w]
                    if c == m:
                        parts.append((seg.next[w], rows, h, kk))
                    elif c:
                        pos = np.flatnonzero(choice == w)
                        need = self.needs.get(seg.next[w])
                        parts.append((seg.next[w], rows[pos],
                                      tuple(None if a is None or (need is not None
                                                                  and i not in need)
                                            else a[pos] for i, a in enumerate(h)),
                                      None if kk is None else kk[pos]))
                stack.extend(reversed(parts))
        return logits, leaf, self.leaf_macs[leaf]

    def _route_one(self, x: np.ndarray, k: np.ndarray | None, policy: ArrayPolicy | None,
                   logits: np.ndarray, leaf: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image: follow its path, no splitting at all."""
        segs, calls = self.segments, self.calls
        rows = np.zeros(1, dtype=np.int64)
        h: Levels = (x,)
        s = 0
        while True:
            seg = segs[s]
            h2, y = calls[s](h, k)
            if seg.transforms:
                h = h2
            if seg.end == "exit":
                logits[:] = y
                leaf[0] = seg.leaf
                return logits, leaf, self.leaf_macs[leaf]
            if seg.end == "column":
                s = seg.next[0]
            elif policy is None:
                s = seg.next[int(y[0].argmax())]
            else:
                s = seg.next[int(np.asarray(policy(seg.junction, y, rows, h))[0])]
