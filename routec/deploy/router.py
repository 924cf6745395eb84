"""The one segment-routing loop, written once over a small array interface.

Routed inference between compiled segments is the same whatever holds the arrays:
run a segment on the rows that reached it, and at a junction pick a way per row,
split the rows (and the pyramid and k_cpt they carry) by way, and at an exit write
the logits and leaf of those rows into the batch-sized outputs. :func:`route_segments`
is that loop; an :class:`ArrayOps` supplies the dozen array operations it needs.
:class:`NumpyOps` (here, torch-free, for the deployment runner) and
``routec.engine.array_ops.TorchOps`` (for the fused, compiled, CUDA-graph and ONNX
engines) are the two implementations, so the engines and the runner cannot drift.

The loop reads the host at most once per junction: the per-way counts, which fix the
sizes of the parts (one row: its way). Way positions come from one stable sort of the
choices split by those counts, so on a GPU decisions, gathers and scatters stay on
the device.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from routec.tree import Segment

# call(segment_index, levels, k) -> (levels handed on, head output or None); levels a
# segment does not emit are None placeholders
SegmentStep = Callable[[int, tuple[Any, ...], Any], tuple[tuple[Any, ...], Any]]
# policy(junction_index, scores, rows, levels) -> chosen way per row
Decide = Callable[[int, Any, Any, tuple[Any, ...]], Any]


class ArrayOps(Protocol):
    """The array operations the routing loop needs (numpy arrays or torch tensors)."""

    def arange(self, n: int, like: Any) -> Any: ...
    def argmax(self, scores: Any) -> Any: ...
    def item(self, a: Any) -> int: ...
    def counts(self, choice: Any, ways: int) -> list[int]: ...
    def positions(self, choice: Any, counts: list[int]) -> Sequence[Any]: ...
    def take(self, a: Any, pos: Any) -> Any: ...
    def put(self, out: Any, rows: Any | None, values: Any) -> None: ...
    def fill(self, out: Any, rows: Any | None, value: int) -> None: ...


class NumpyOps:
    """:class:`ArrayOps` on numpy arrays."""

    def arange(self, n: int, like: Any) -> np.ndarray:
        return np.arange(n)

    def argmax(self, scores: np.ndarray) -> np.ndarray:
        return scores.argmax(axis=1)

    def item(self, a: Any) -> int:
        return int(np.asarray(a).reshape(-1)[0])

    def counts(self, choice: np.ndarray, ways: int) -> list[int]:
        return np.bincount(np.asarray(choice), minlength=ways).tolist()

    def positions(self, choice: np.ndarray, counts: list[int]) -> Sequence[np.ndarray]:
        order = np.argsort(np.asarray(choice), kind="stable")
        return np.split(order, np.cumsum(counts)[:-1])

    def take(self, a: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return a[pos]

    def put(self, out: np.ndarray, rows: np.ndarray | None, values: np.ndarray) -> None:
        if rows is None:
            out[:] = values
        else:
            out[rows] = values

    def fill(self, out: np.ndarray, rows: np.ndarray | None, value: int) -> None:
        if rows is None:
            out[:] = value
        else:
            out[rows] = value


def route_segments(segments: Sequence[Segment], step: SegmentStep, ops: ArrayOps,
                   x: Any, k: Any, logits: Any, leaf: Any, decide: Decide | None = None,
                   needs: dict[int, set[int] | None] | None = None,
                   profile: dict[int, float] | None = None,
                   wait: Callable[[], object] | None = None) -> None:
    """Route the batch ``x`` (with per-row ``k``, or None) through ``segments``,
    writing each row's logits and leaf index into ``logits`` and ``leaf``.

    ``decide`` is the junction policy (None: argmax of the scores); ``needs`` the
    levels of its input each segment reads (a junction gathers only those);
    ``profile``, when given, collects seconds per segment, each timed after ``wait()``
    (a device's synchronisation, so a segment's time is its work, not its launch).
    """
    n = x.shape[0]
    if n == 0:
        return
    if n == 1 and profile is None:
        _route_one(segments, step, ops, x, k, logits, leaf, decide)
        return
    needs = needs or {}
    stack: list[tuple[int, Any, tuple[Any, ...], Any]] = [
        (0, ops.arange(n, x), (x,), k)]
    while stack:
        s, rows, h, kk = stack.pop()
        seg = segments[s]
        if profile is None:
            h, y = step(s, h, kk)
        else:
            if wait is not None:
                wait()
            t0 = time.perf_counter()
            h, y = step(s, h, kk)
            if wait is not None:
                wait()
            profile[s] = profile.get(s, 0.0) + time.perf_counter() - t0
        m = rows.shape[0]
        if seg.end == "exit":
            whole = None if m == n else rows  # every row of the batch: no scatter
            ops.put(logits, whole, y)
            ops.fill(leaf, whole, seg.leaf)
        elif seg.end == "column":
            stack.append((seg.next[0], rows, h, kk))
        else:
            choice = ops.argmax(y) if decide is None else decide(seg.junction, y, rows, h)
            if m == 1:  # one row: its way is the one host read
                stack.append((seg.next[ops.item(choice)], rows, h, kk))
                continue
            counts = ops.counts(choice, len(seg.next))
            if max(counts) == m:  # every row takes one way: hand everything on as it is
                stack.append((seg.next[counts.index(m)], rows, h, kk))
                continue
            parts = []
            for w, pos in enumerate(ops.positions(choice, counts)):
                if not counts[w]:
                    continue
                need = needs.get(seg.next[w])
                parts.append((seg.next[w], ops.take(rows, pos),
                              tuple(None if a is None or (need is not None and i not in need)
                                    else ops.take(a, pos) for i, a in enumerate(h)),
                              None if kk is None else ops.take(kk, pos)))
            stack.extend(reversed(parts))


def _route_one(segments: Sequence[Segment], step: SegmentStep, ops: ArrayOps, x: Any, k: Any,
               logits: Any, leaf: Any, decide: Decide | None) -> None:
    """One example: follow its path, no stack, no splitting (batch-1 latency)."""
    h: tuple[Any, ...] = (x,)
    rows = None if decide is None else ops.arange(1, x)
    s = 0
    while True:
        seg = segments[s]
        h, y = step(s, h, k)
        if seg.end == "exit":
            ops.put(logits, None, y)
            ops.fill(leaf, None, seg.leaf)
            return
        if seg.end == "column":
            s = seg.next[0]
        else:
            choice = ops.argmax(y) if decide is None else decide(seg.junction, y, rows, h)
            s = seg.next[ops.item(choice)]
