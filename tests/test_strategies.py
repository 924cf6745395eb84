"""Strategy losses against brute-force enumeration of every root-to-leaf path."""
from __future__ import annotations

import networkx as nx
import pytest
import torch
import torch.nn.functional as F

from routec.codegen import build_class
from routec.graph import RoutingGraph, build_graph
from routec.parse import load_spec
from routec.train.actor import actor_loss
from routec.train.costs import node_params
from routec.train.critic import critic_loss, utilities
from routec.train.sampled import sampled_critic_loss
from routec.train.talr import apply_talr, talr_scales
from routec.train.tree import Tree
from helpers import calibrate, images, randomise

EPS = 1e-3  # a large floor so that flooring visibly matters in these checks


def setup(name: str = "tiny", dynamic: bool = False, seed: int = 0):
    g = build_graph(load_spec(name), dynamic_kcpt=dynamic)
    net = build_class(g)().double()
    randomise(net, seed=seed)
    x = images(24, g.input_shape, seed=seed).double()
    k = torch.linspace(0, 64e-9, 24, dtype=torch.float64) if dynamic else 3e-9
    calibrate(net, x, k if dynamic else None)
    net.train()
    y = torch.randint(0, g.classes, (24,), generator=torch.Generator().manual_seed(seed))
    return g, net, x, y, k


def floors(g: RoutingGraph, j: int) -> torch.Tensor:
    """ε·(leaves under the branch)/(leaves in tree), counted with networkx."""
    t = g.graph
    total = sum(1 for v in t.nodes if t.out_degree(v) == 0)
    kids = sorted(t.successors(j), key=lambda c: t.edges[j, c]["way"])
    under = [sum(1 for v in nx.descendants(t, c) | {c} if t.out_degree(v) == 0) for c in kids]
    return torch.tensor([EPS * u / total for u in under], dtype=torch.float64)


def brute_actor(g, net, out, y, k, tau, k_dec, k_l2):
    return sum(brute_actor_terms(g, net, out, y, k, tau, k_dec, k_l2).values()).mean()


def brute_actor_terms(g, net, out, y, k, tau, k_dec, k_l2):
    """The actor's cost per example, term by term (error, computation, decisiveness, l2),
    summed over every path weighted by its probability."""
    n = y.shape[0]
    k = torch.as_tensor(k, dtype=torch.float64).expand(n)
    pol = {}
    for jpos, j in enumerate(g.junctions):
        fl = floors(g, j)
        pol[j] = fl + (1 - fl.sum()) * torch.softmax(out.scores[jpos] / tau, dim=1)
    l2 = {i: sum((w ** 2).sum() for w in getattr(net, g.nodes[i].id).parameters() if w.ndim > 1)
          for i in range(1, len(g.nodes))}
    terms = {t: torch.zeros(n, dtype=torch.float64)
             for t in ("error", "computation", "decisiveness", "l2")}
    for kpos, leaf in enumerate(g.leaves):
        path = g.path(leaf)
        prob = torch.ones(n, dtype=torch.float64)
        for a, b in zip(path, path[1:]):
            if g.nodes[a].kind == "junction":
                prob = prob * pol[a][:, g.graph.edges[a, b]["way"]]
        ce = F.cross_entropy(out.leaf_logits[kpos], y, reduction="none")
        mod = k_l2 * sum(l2[i] for i in path if i in l2)
        dec = k_dec * sum((out.scores[g.junctions.index(i)] ** 2).sum(dim=1)
                          for i in path if g.nodes[i].kind == "junction")
        terms["error"] = terms["error"] + prob * ce
        terms["computation"] = terms["computation"] + prob * k * sum(g.nodes[i].macs
                                                                     for i in path)
        terms["decisiveness"] = terms["decisiveness"] + prob.detach() * dec
        terms["l2"] = terms["l2"] + prob.detach() * mod
    return terms


@pytest.mark.parametrize("name,dynamic", [("tiny", False), ("tiny", True), ("paper_chain", False)])
def test_actor_loss_and_gradients_match_brute_force(name: str, dynamic: bool) -> None:
    g, net, x, y, k = setup(name, dynamic)
    out = net(x, k_cpt=k if dynamic else None)
    params = [p for p in net.parameters()]
    ours = actor_loss(net, out, y, k, tau=0.7, k_dec=0.01, k_l2=1e-4, epsilon=EPS).loss
    ref = brute_actor(g, net, out, y, k, tau=0.7, k_dec=0.01, k_l2=1e-4)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g_ours = torch.autograd.grad(ours, params, retain_graph=True, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g_ours, g_ref):
        if a is None or b is None:
            assert a is None and b is None or (a if a is not None else b).abs().max() == 0
            continue
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    # the routers do get gradient through the reach probabilities
    router = getattr(net, g.nodes[g.junctions[0]].id)
    idx = next(i for i, p in enumerate(params) if p is router.mlp[-1].weight)
    assert g_ours[idx].abs().max() > 0


@pytest.mark.parametrize("dynamic", [False, True])
def test_actor_loss_parts_match_brute_force(dynamic: bool) -> None:
    """The terms the training log draws (error, computation, decisiveness, l2) are each
    the brute-force term, and add up to the loss."""
    g, net, x, y, k = setup("tiny", dynamic)
    out = net(x, k_cpt=k if dynamic else None)
    res = actor_loss(net, out, y, k, tau=0.7, k_dec=0.01, k_l2=1e-4, epsilon=EPS)
    ref = brute_actor_terms(g, net, out, y, k, tau=0.7, k_dec=0.01, k_l2=1e-4)
    assert list(res.parts) == list(ref)
    for name, term in ref.items():
        torch.testing.assert_close(res.parts[name], term.mean().detach(), rtol=1e-10,
                                   atol=1e-12)
        assert not res.parts[name].requires_grad
    torch.testing.assert_close(sum(res.parts.values()), res.loss.detach(), rtol=1e-12, atol=0)


def brute_utilities(g, scores, leaf_cost, k, optimistic):
    """V(node) by walking paths: argmax decisions (pragmatic) or the best leaf (optimistic)."""
    n = leaf_cost.shape[0]
    t = g.graph
    out = torch.zeros(n, len(g.nodes), dtype=torch.float64)
    for c in range(1, len(g.nodes)):
        leaves = [l for l in g.leaves if l == c or l in nx.descendants(t, c)]
        costs = []
        for leaf in leaves:
            path = nx.shortest_path(t, c, leaf)
            costs.append(leaf_cost[:, g.leaves.index(leaf)] + k * sum(g.nodes[i].macs
                                                                       for i in path))
        costs = torch.stack(costs, dim=1)
        if optimistic:
            out[:, c] = costs.min(dim=1).values
            continue
        for i in range(n):  # follow argmax decisions from c
            v = c
            while g.nodes[v].kind != "exit":
                kids = sorted(t.successors(v), key=lambda w: t.edges[v, w]["way"])
                if g.nodes[v].kind == "junction":
                    v = kids[int(scores[g.junctions.index(v)][i].argmax())]
                else:
                    v = kids[0]
            out[i, c] = costs[i, leaves.index(v)]
    return out


@pytest.mark.parametrize("utility", ["pragmatic", "optimistic"])
def test_critic_targets_match_brute_force(utility: str) -> None:
    g, net, x, y, k = setup("paper_tree", dynamic=False, seed=2)
    with torch.no_grad():
        out = net(x)
    ce = F.cross_entropy(out.leaf_logits.permute(1, 2, 0), y[:, None].expand(-1, len(g.leaves)),
                         reduction="none")
    kk = torch.full((y.shape[0],), k, dtype=torch.float64)
    v = utilities(Tree.of(net), out.scores, ce, kk, utility)
    ref = brute_utilities(g, out.scores, ce, k, utility == "optimistic")
    torch.testing.assert_close(v[:, 1:], ref[:, 1:], rtol=1e-10, atol=1e-12)


def test_critic_loss_regresses_scores_onto_negative_utilities() -> None:
    g, net, x, y, k = setup("tiny", seed=3)
    out = net(x)
    k_ure, n = 1e-3, y.shape[0]
    res = critic_loss(net, out, y, k, tau=0.1, k_ure=k_ure, k_l2=0.0, epsilon=EPS)
    # rebuild the same loss by hand from brute-force targets and path probabilities
    ce = F.cross_entropy(out.leaf_logits.permute(1, 2, 0), y[:, None].expand(-1, len(g.leaves)),
                         reduction="none")
    v = brute_utilities(g, out.scores, ce.detach(), k, optimistic=False)
    total = torch.zeros(n, dtype=torch.float64)
    for kpos, leaf in enumerate(g.leaves):
        total = total + res.reach[:, leaf] * ce[:, kpos]
    for jpos, j in enumerate(g.junctions):
        kids = sorted(g.graph.successors(j), key=lambda c: g.graph.edges[j, c]["way"])
        total = total + k_ure * res.reach[:, j] * ((out.scores[jpos] + v[:, kids]) ** 2).sum(1)
    torch.testing.assert_close(res.loss, total.mean(), rtol=1e-10, atol=1e-12)
    # the log's parts: the reach-weighted error and the regression term (no L2 here)
    error = sum(res.reach[:, leaf] * ce[:, kpos] for kpos, leaf in enumerate(g.leaves))
    torch.testing.assert_close(res.parts["error"], error.mean().detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.parts["regression"], (total - error).mean().detach(),
                               rtol=1e-8, atol=1e-12)
    assert float(res.parts["l2"]) == 0.0


def test_talr_scales_each_node_by_sqrt_n_over_norm_p() -> None:
    g, net, x, y, k = setup("tiny", seed=4)
    out = net(x)
    res = actor_loss(net, out, y, k, tau=1.0, epsilon=EPS)
    res.loss.backward()
    params = node_params(net)
    before = [[p.grad.clone() for p in ps] for ps in params]
    apply_talr(params, talr_scales(res.reach))
    n = y.shape[0]
    for i, (ps, grads) in enumerate(zip(params, before)):
        # reach of node i: the product of floored policy probabilities along its path
        expected = n ** 0.5 / float(torch.linalg.norm(res.reach[:, i]))
        for p, gbefore in zip(ps, grads):
            torch.testing.assert_close(p.grad, gbefore * expected)
    # nodes every example reaches are not scaled; deeper ones are scaled up
    assert talr_scales(res.reach)[1] == pytest.approx(1.0)
    assert talr_scales(res.reach)[g.leaves[-1]] > 1.0


def test_talr_leaves_gradients_of_unreached_nodes_finite() -> None:
    """Sampled paths can leave a node with no traffic: its scale must not be √n/0."""
    g, net, x, y, k = setup("tiny", seed=4)
    res = sampled_critic_loss(net, x[:2], y[:2], k, tau=1.0, generator=torch.Generator())
    res.loss.backward()
    unreached = (res.reach.sum(0) == 0).nonzero().flatten().tolist()
    assert unreached, "two examples cannot reach every leaf of tiny"
    params = node_params(net)
    apply_talr(params, talr_scales(res.reach))
    for i in unreached:
        for p in params[i]:
            assert p.grad is None or torch.isfinite(p.grad).all()
    reached = [i for i in range(res.reach.shape[1]) if i not in unreached]
    expected = 2 ** 0.5 / torch.linalg.vector_norm(res.reach[:, reached].double(), dim=0)
    torch.testing.assert_close(talr_scales(res.reach)[reached], expected)
