"""MAC counts of the graph stage against torch.utils.flop_counter on the generated code."""
from __future__ import annotations

import pytest
import torch

from routec.graph import build_graph, static_depth
from routec.parse import load_spec
from helpers import compile_bundled, counted_macs, randomise


def always(way_from_end: int):
    def policy(j: int, scores: torch.Tensor, rows: torch.Tensor, h: object) -> torch.Tensor:
        return torch.full_like(rows, scores.shape[1] - 1 - way_from_end)
    return policy


def test_paper_chain_full_path_matches_flop_counter() -> None:
    g, net = compile_bundled("paper_chain")
    net.eval()
    x = torch.rand(1, *g.input_shape)
    measured = counted_macs(lambda: net.route(x, policy=always(0)))
    deepest = g.path_macs()[-1]
    assert abs(measured - deepest) <= 0.01 * deepest
    # docs/design.md: the chain's deepest path is about 2.0e7 MACs
    assert 1.9e7 < deepest < 2.2e7


@pytest.mark.parametrize("n", range(1, 9))
def test_static_baselines_match_flop_counter(n: int) -> None:
    g, net = compile_bundled("paper_chain", static=n)
    net.eval()
    assert len(g.leaves) == 1 and not g.junctions
    columns = [node.id for node in g.nodes if node.kind == "column"]
    assert columns == [f"c{i}" for i in range(1, n + 1)]
    x = torch.rand(2, *g.input_shape)
    measured = counted_macs(lambda: net.route(x)) / 2
    (path,) = g.path_macs()
    assert abs(measured - path) <= 0.01 * path
    # the dense pass of a static chain is the same computation
    assert abs(counted_macs(lambda: net(x)) / 2 - path) <= 0.01 * path


def test_every_path_of_the_tree_matches_flop_counter() -> None:
    g, net = compile_bundled("paper_tree")
    randomise(net, seed=3)
    net.eval()
    macs = g.path_macs()
    # Drive one example down each leaf's path with a policy that reads the path.
    for k, leaf in enumerate(g.leaves):
        path = g.path(leaf)
        ways = {g.junctions.index(p): path[i + 1] for i, p in enumerate(path[:-1])
                if g.nodes[p].kind == "junction"}
        child_way = {j: g.nodes[c].way for j, c in ways.items()}

        def policy(j, scores, rows, h, child_way=child_way):
            return torch.full_like(rows, child_way[j])

        x = torch.rand(1, *g.input_shape)
        out = None

        def run():
            nonlocal out
            out = net.route(x, policy=policy)

        measured = counted_macs(run)
        assert int(out.leaf[0]) == k
        assert abs(measured - macs[k]) <= 0.01 * macs[k]
        assert int(out.macs[0]) == macs[k]


@pytest.mark.parametrize("name", ["paper_chain", "paper_tree", "tiny"])
def test_parameter_counts_match_the_built_module(name: str) -> None:
    g, net = compile_bundled(name)
    for node in g.nodes:
        if node.kind == "stem":
            continue
        module = getattr(net, node.id)
        assert sum(p.numel() for p in module.parameters()) == node.params, node.id


def test_dynamic_kcpt_adds_one_router_input() -> None:
    spec = load_spec("paper_chain")
    plain = build_graph(spec)
    dyn = build_graph(spec, dynamic_kcpt=True)
    for a, b in zip(plain.nodes, dyn.nodes):
        if a.kind == "junction":
            assert b.head.in_features == a.head.in_features + 1
            assert b.macs - a.macs == a.head.hidden[0]
        else:
            assert a.macs == b.macs


def test_static_depth_of_the_tree_is_eight() -> None:
    assert static_depth(load_spec("paper_tree")) == 8
    assert static_depth(load_spec("paper_chain")) == 8
