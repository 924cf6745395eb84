"""Routed inference against the dense pass, checked by brute-force path enumeration."""
from __future__ import annotations

import itertools

import pytest
import torch

from routec.errors import RunError
from routec.graph import RoutingGraph
from helpers import calibrate, compile_bundled, images, randomise


def enumerate_paths(g: RoutingGraph) -> list[tuple[int, dict[int, int]]]:
    """Every root-to-leaf path as (leaf index, {junction index: way taken})."""
    out = []
    for k, leaf in enumerate(g.leaves):
        path = g.path(leaf)
        need = {g.junctions.index(p): g.nodes[c].way
                for p, c in itertools.pairwise(path) if g.nodes[p].kind == "junction"}
        out.append((k, need))
    return out


def brute_force(g: RoutingGraph, scores: tuple[torch.Tensor, ...], leaf_logits: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the one path whose every junction agrees with argmax of the dense scores."""
    n = leaf_logits.shape[1]
    decisions = [s.argmax(dim=1) for s in scores]
    leaf = torch.full((n,), -1)
    for k, need in enumerate_paths(g):
        match = torch.ones(n, dtype=torch.bool)
        for j, way in need.items():
            match &= decisions[j] == way
        assert not (match & (leaf >= 0)).any(), "an example matched two paths"
        leaf[match] = k
    assert (leaf >= 0).all(), "an example matched no path"
    return leaf, leaf_logits[leaf, torch.arange(n)]


CASES = [("paper_chain", False), ("paper_tree", False), ("tiny", False), ("paper_chain", True),
         ("tiny", True)]


@pytest.mark.parametrize("name,dynamic", CASES)
def test_routed_equals_dense_at_the_argmax_path(name: str, dynamic: bool) -> None:
    g, net = compile_bundled(name, dynamic=dynamic)
    randomise(net, seed=1)
    gen = torch.Generator().manual_seed(2)
    x = images(96, g.input_shape, seed=2)
    k = (torch.randint(0, 8, (96,), generator=gen).float() * 1e-9) if dynamic else None
    calibrate(net, x, k)
    with torch.no_grad():
        dense = net(x, k_cpt=k)
        routed = net.route(x, k_cpt=k)
    leaf, logits = brute_force(g, dense.scores, dense.leaf_logits)
    assert torch.equal(routed.leaf, leaf)
    torch.testing.assert_close(routed.logits, logits, rtol=1e-5, atol=1e-5)
    macs = torch.tensor(g.path_macs(), dtype=torch.float64)
    torch.testing.assert_close(routed.macs, macs[leaf])
    # the test is only meaningful if the random routers actually spread examples out
    assert leaf.unique().numel() >= min(3, len(g.leaves))


def test_columns_compute_only_on_the_rows_routed_to_them() -> None:
    g, net = compile_bundled("paper_tree")
    randomise(net, seed=5)
    x = images(128, g.input_shape, seed=0)
    calibrate(net, x)
    seen: dict[str, int] = {}
    hooks = [getattr(net, n.id).register_forward_hook(
        lambda m, inp, out, name=n.id: seen.__setitem__(name, out[0].shape[0]))
        for n in g.nodes if n.kind == "column"]
    with torch.no_grad():
        routed = net.route(x)
    for h in hooks:
        h.remove()
    # examples whose path passes through each column, counted from the leaves reached
    expected: dict[str, int] = {}
    for k, leaf in enumerate(g.leaves):
        reached = int((routed.leaf == k).sum())
        for i in g.path(leaf):
            if g.nodes[i].kind == "column" and reached:
                expected[g.nodes[i].id] = expected.get(g.nodes[i].id, 0) + reached
    assert seen == expected
    assert len(seen) < sum(n.kind == "column" for n in g.nodes)  # some columns were skipped


def test_dense_outputs_have_the_documented_shapes() -> None:
    g, net = compile_bundled("paper_tree")
    x = torch.rand(5, *g.input_shape)
    out = net(x)
    assert out.leaf_logits.shape == (len(g.leaves), 5, g.classes)
    assert [s.shape for s in out.scores] == [(5, g.nodes[j].ways) for j in g.junctions]
    assert out.node_macs.tolist() == [float(n.macs) for n in g.nodes]


def test_kcpt_input_is_checked() -> None:
    _, plain = compile_bundled("tiny")
    _, dyn = compile_bundled("tiny", dynamic=True)
    x = torch.rand(3, 3, 32, 32)
    with pytest.raises(RunError, match="without a k_cpt input"):
        plain(x, k_cpt=1e-9)
    with pytest.raises(RunError, match="reads k_cpt"):
        dyn.route(x)
    with pytest.raises(RunError, match="shape"):
        dyn(x, k_cpt=torch.zeros(4))
    with pytest.raises(RunError, match="takes"):
        plain(torch.rand(3, 3, 16, 16))


def test_kcpt_changes_dynamic_routing() -> None:
    g, net = compile_bundled("tiny", dynamic=True)
    randomise(net, seed=0)
    with torch.no_grad():  # make the routers read k_cpt strongly
        for j in g.junctions:
            first = getattr(net, g.nodes[j].id).mlp[0]
            first.weight[:, -1] = torch.linspace(-3, 3, first.weight.shape[0])
    x = images(64, g.input_shape, seed=1)
    calibrate(net, x, torch.zeros(64))
    with torch.no_grad():
        a = net.route(x, k_cpt=0.0).leaf
        b = net.route(x, k_cpt=64e-9).leaf
    assert not torch.equal(a, b)
