"""The one routing loop (routec.deploy.router) gives the same routing on numpy arrays
(the torch-free runner) and on torch tensors (the segment engines).

Segments here are synthetic and exact (integer-valued floats): each example carries
its id through the pyramid, junction scores come from a fixed random table of ways per
(junction, example), and an exit's logits record the example's id, the exit's segment
and its k_cpt. So the test checks the loop, not float rounding: both implementations
must agree bit for bit, every example must land at the exit a direct walk of the
tree with the same table gives, and its logits must be written to its own row.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from helpers import compile_bundled
from routec.deploy.router import NumpyOps, route_segments
from routec.tree import RoutingTree
from routec.engine.array_ops import TorchOps
from routec.parse import bundled_specs

C = 10


@functools.cache
def _setup(name: str, merge: bool):
    _, net = compile_bundled(name)
    topo = RoutingTree.of(net)
    segs = topo.segments(merge=merge)
    # odd segments read only level 0: the loop must not gather level 1 for them
    needs = {s.index: ({0} if s.index % 2 else None) for s in segs}
    return topo, segs, needs


def _walk(segs, table: np.ndarray, i: int) -> int:
    """The segment where example i exits, following the table: independent of the loop."""
    s = 0
    while segs[s].end != "exit":
        seg = segs[s]
        s = seg.next[0] if seg.end == "column" else seg.next[table[seg.junction, i]]
    return s


def _numpy_step(segs, table):
    def step(s, h, k):
        seg = segs[s]
        if seg.transforms:
            h0 = h[0].copy()
            h0[:, 1:] += s + 1
            h = (h0, h0 * 2)
        ids = h[0][:, 0, 0, 0].astype(np.int64)
        if seg.end == "junction":
            ways = len(seg.next)
            return h, np.eye(ways, dtype=np.float32)[table[seg.junction, ids]]
        if seg.end == "exit":
            y = np.zeros((len(ids), C), dtype=np.float32)
            y[:, 0] = ids
            y[:, 1] = s
            y[:, 2] = 0 if k is None else k
            y[:, 3] = h[0][:, 1:].sum(axis=(1, 2, 3))
            return h, y
        return h, None
    return step


def _torch_step(segs, table):
    t = torch.from_numpy(table)

    def step(s, h, k):
        seg = segs[s]
        if seg.transforms:
            h0 = h[0].clone()
            h0[:, 1:] += s + 1
            h = (h0, h0 * 2)
        ids = h[0][:, 0, 0, 0].long()
        if seg.end == "junction":
            ways = len(seg.next)
            return h, torch.eye(ways)[t[seg.junction, ids]]
        if seg.end == "exit":
            y = torch.zeros(len(ids), C)
            y[:, 0] = ids.float()
            y[:, 1] = s
            y[:, 2] = 0 if k is None else k
            y[:, 3] = h[0][:, 1:].sum(dim=(1, 2, 3))
            return h, y
        return h, None
    return step


@pytest.mark.parametrize("name", sorted(bundled_specs()))
@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("n", [0, 1, 2, 37, 256])
@pytest.mark.parametrize("forced", [False, True])
def test_numpy_and_torch_route_alike(name: str, merge: bool, n: int, forced: bool) -> None:
    topo, segs, needs = _setup(name, merge)
    rng = np.random.default_rng(n + 7 * merge)
    ways = max(topo.ways)
    table = rng.integers(0, ways, size=(len(topo.junctions), max(n, 1)))
    table = table % np.array(topo.ways)[:, None]  # a valid way at every junction
    x = rng.integers(0, 9, size=(n, 3, 4, 4)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    k = rng.integers(1, 50, size=n).astype(np.float32)
    # forced: a policy reads the ways from the rows (inverted table), ignoring the scores
    flip = (table + 1) % np.array(topo.ways)[:, None]
    np_decide = (lambda j, y, rows, h: flip[j, rows]) if forced else None
    t_decide = (lambda j, y, rows, h: torch.from_numpy(flip[j, rows.numpy()])) if forced \
        else None

    logits_np = np.zeros((n, C), dtype=np.float32)
    leaf_np = np.full((n,), -1, dtype=np.int64)
    route_segments(segs, _numpy_step(segs, table), NumpyOps(), x, k, logits_np, leaf_np,
                   np_decide, needs)

    logits_t = torch.zeros(n, C)
    leaf_t = torch.full((n,), -1, dtype=torch.long)
    route_segments(segs, _torch_step(segs, table), TorchOps(), torch.from_numpy(x),
                   torch.from_numpy(k), logits_t, leaf_t, t_decide, needs)

    assert np.array_equal(leaf_np, leaf_t.numpy())
    assert np.array_equal(logits_np, logits_t.numpy())
    used = flip if forced else table
    exits = [_walk(segs, used, i) for i in range(n)]
    assert leaf_np.tolist() == [segs[s].leaf for s in exits]
    assert logits_np[:, 0].tolist() == list(range(n))  # each row's logits in its own row
    assert logits_np[:, 1].tolist() == exits
    assert np.array_equal(logits_np[:, 2], k)
    if n >= 37 and len(topo.leaves) > 1:
        assert len(set(leaf_np.tolist())) > 1  # the table really splits the batch


def test_one_host_read_per_junction_reached() -> None:
    """The loop reads the host only through ``counts`` (or ``item`` for one row): once
    per junction segment that rows reach, however many ways it splits into."""
    topo, segs, needs = _setup("paper_tree" if "paper_tree" in bundled_specs() else "tiny",
                               True)
    n = 64
    rng = np.random.default_rng(1)
    table = rng.integers(0, 8, size=(len(topo.junctions), n)) % np.array(topo.ways)[:, None]
    x = rng.integers(0, 9, size=(n, 3, 4, 4)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    reads: list[str] = []

    class Counting(TorchOps):
        def counts(self, choice, ways):
            reads.append("counts")
            return super().counts(choice, ways)

        def item(self, a):
            reads.append("item")
            return super().item(a)

    leaf = torch.full((n,), -1, dtype=torch.long)
    route_segments(segs, _torch_step(segs, table), Counting(), torch.from_numpy(x), None,
                   torch.zeros(n, C), leaf, None, needs)
    reached = set()
    for i in range(n):  # junction segments on each example's path
        s = 0
        while segs[s].end != "exit":
            seg = segs[s]
            if seg.end == "junction":
                reached.add(s)
            s = seg.next[0] if seg.end == "column" else seg.next[table[seg.junction, i]]
    assert len(reads) == len(reached) > 1
