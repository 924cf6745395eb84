"""One routing tree: the graph builds it, the generated class carries it, training, the
engines and the exported manifest read the same one, and every helper derived from it
agrees with a brute-force computation on the spec's networkx graph."""
from __future__ import annotations

import networkx as nx
import pytest

from routec.codegen import emit_module
from routec.engine import registry
from routec.parse import bundled_specs
from routec.train.tree import EPSILON, Tree
from routec.tree import RoutingTree
from helpers import compile_bundled

SPECS = sorted(bundled_specs())


@pytest.fixture(scope="module", params=SPECS)
def compiled(request: pytest.FixtureRequest):
    return compile_bundled(request.param)


def test_the_class_carries_the_graphs_tree(compiled) -> None:
    g, net = compiled
    assert type(net).TREE == g.tree
    t = net.TREE
    # the class constants are the tree's own fields, not a second copy to keep in step
    assert (net.NODES, net.KINDS, net.PARENT, net.WAY, net.MACS) == \
        (t.nodes, t.kinds, t.parent, t.way, t.macs)
    assert (net.LEAVES, net.JUNCTIONS, net.WAYS) == (t.leaves, t.junctions, t.ways)
    assert (net.NAME, net.CLASSES, net.INPUT_SHAPE, net.DYNAMIC_KCPT) == \
        (t.name, t.classes, t.input_shape, t.dynamic_kcpt)
    assert [n.id for n in g.nodes] == list(t.nodes)


def test_the_generated_source_writes_the_tree_once(compiled) -> None:
    g, _ = compiled
    src = emit_module(g)
    assert src.count("TREE = RoutingTree(") == 1
    for table in ("NODES", "KINDS", "PARENT", "WAY", "MACS", "LEAVES", "JUNCTIONS", "WAYS"):
        assert f"    {table} = " not in src, table


def test_every_stage_reads_the_same_tree(compiled) -> None:
    g, net = compiled
    t = net.TREE
    assert Tree.of(net).routing is t and Tree.of(type(net)).routing is t
    assert RoutingTree.of(net) is t and RoutingTree.of(t) is t
    engine = registry.get("fused").build(net, merge=True)
    assert RoutingTree.of(engine) is t
    # what an export writes into its manifest comes back as the same tree
    assert RoutingTree.from_dict(t.as_dict()) == t


def test_paths_and_costs_against_the_spec_graph(compiled) -> None:
    g, net = compiled
    t = net.TREE
    for i in range(t.size):
        path = nx.shortest_path(g.graph, 0, i)
        assert t.path(i) == path
        assert t.cumulative_macs[i] == sum(g.nodes[k].macs for k in path)
        assert t.leaves_under[i] == sum(1 for leaf in t.leaves if i in nx.shortest_path(g.graph, 0, leaf))
    assert list(t.leaf_macs) == [sum(g.nodes[k].macs for k in nx.shortest_path(g.graph, 0, leaf))
                                 for leaf in t.leaves]
    assert Tree.of(net).path_macs().tolist() == list(t.leaf_macs)


def test_anchors_and_ways_against_brute_force(compiled) -> None:
    g, net = compiled
    t = net.TREE
    table = t.way_to_leaf()
    for i in range(t.size):
        # the anchor: the last stem or column on the path to i (i itself included)
        assert t.anchor(i) == [k for k in nx.shortest_path(g.graph, 0, i)
                               if g.nodes[k].kind in ("stem", "column")][-1]
    for k, leaf in enumerate(t.leaves):
        path = nx.shortest_path(g.graph, 0, leaf)
        for jj, j in enumerate(t.junctions):
            want = g.nodes[path[path.index(j) + 1]].way if j in path else -1
            assert table[jj][k] == want
    for j in t.junctions:
        kids = sorted(g.graph.successors(j), key=lambda c: g.nodes[c].way)
        assert t.children[j] == tuple(kids)
        floors = t.floors(j, EPSILON)
        assert floors == pytest.approx([EPSILON * t.leaves_under[c] / len(t.leaves) for c in kids])
        assert Tree.of(net).floors(j).tolist() == pytest.approx(floors)


def test_segments_cover_every_node_once(compiled) -> None:
    _, net = compiled
    t = net.TREE
    for merge in (True, False):
        segs = t.segments(merge=merge)
        covered = sorted(i for s in segs for i in s.nodes)
        assert covered == list(range(t.size))
        exits = {s.leaf for s in segs if s.end == "exit"}
        assert exits == set(range(len(t.leaves)))


def test_reach_and_decisiveness_against_products_along_each_path(compiled) -> None:
    """reach() lays junction blocks side by side and gathers; the reference multiplies
    the branch probabilities along every node's networkx path, one node at a time."""
    import torch

    from routec.train.tree import decisiveness, inference_leaf, reach

    g, net = compiled
    tree = Tree.of(net)
    gen = torch.Generator().manual_seed(len(tree.junctions))
    n = 5
    policy = [torch.softmax(torch.randn(n, w, generator=gen, dtype=torch.float64), dim=1)
              for w in tree.ways]
    number = {j: k for k, j in enumerate(tree.junctions)}
    got = reach(tree, policy, n)
    for node in range(tree.size):
        expect = torch.ones(n, dtype=torch.float64)
        path = nx.shortest_path(g.graph, 0, node)
        for parent, child in zip(path, path[1:]):
            if g.nodes[parent].kind == "junction":
                expect = expect * policy[number[parent]][:, g.nodes[child].way]
        assert torch.allclose(got[:, node], expect, rtol=1e-12), node
    weight = torch.rand(n, tree.size, generator=gen, dtype=torch.float64)
    scores = tuple(torch.randn(n, w, generator=gen, dtype=torch.float64) for w in tree.ways)
    expect = sum((weight[:, j] * (s ** 2).sum(dim=1) for j, s in zip(tree.junctions, scores)),
                 torch.zeros(n, dtype=torch.float64))
    assert torch.allclose(decisiveness(tree, weight, scores), expect, rtol=1e-12)
    # argmax routing: the leaf whose every junction on the path chose its way
    leaf = inference_leaf(tree, scores, n)
    for i in range(n):
        node = 0
        while g.nodes[node].kind != "exit":
            kids = sorted(g.graph.successors(node), key=lambda c: g.nodes[c].way)
            node = kids[int(scores[number[node]][i].argmax())] if node in number else kids[0]
        assert tree.leaves[int(leaf[i])] == node
