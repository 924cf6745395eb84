"""Critic learning (paper §4.2-4.3): routers regress the cost of each branch.

Scores are negative predicted costs. The target for branch i of junction j is
−V(child i), detached, where V is computed bottom-up:
  pragmatic:  V(ℓ) = c_err(ℓ) + k_cpt·ops(ℓ) + V(child chosen by argmax s)   (current policy)
  optimistic: V(ℓ) = c_err(ℓ) + k_cpt·ops(ℓ) + min_i V(child i)              (best policy)
c_err inside V is cross-entropy or, as a variant (paper §5.1), 0/1 classification error.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from routec.runtime.routing import DenseOutput, RoutedNetwork
from routec.train.costs import (StepResult, compute_cost, detached, kcpt_column, leaf_errors,
                                leaf_mistakes, node_l2, node_weights)
from routec.train.tree import EPSILON, Tree, inference_leaf, leaf_index, reach, training_policy

Utility = Literal["pragmatic", "optimistic"]
CriticError = Literal["crossentropy", "classification"]


def utilities(tree: Tree, scores: tuple[Tensor, ...], leaf_cost: Tensor, k: Tensor,
              utility: Utility, node_cost: Tensor | None = None) -> Tensor:
    """V for every node (N×nodes), from leaf errors (N×leaves) and per-example k_cpt;
    ``node_cost`` prices the nodes (None: MACs)."""
    n = leaf_cost.shape[0]
    macs = compute_cost(tree, leaf_cost, node_cost)
    leaf_pos = {leaf: i for i, leaf in enumerate(tree.leaves)}
    junction_pos = {j: i for i, j in enumerate(tree.junctions)}
    v: list[Tensor | None] = [None] * tree.size
    for i in reversed(range(tree.size)):
        own = k * macs[i]
        kind = tree.kinds[i]
        if kind == "exit":
            v[i] = own + leaf_cost[:, leaf_pos[i]]
            continue
        kids = torch.stack([v[c] for c in tree.children[i]], dim=1)  # type: ignore[misc]
        if kind == "junction":
            if utility == "optimistic":
                down = kids.min(dim=1).values
            else:
                choice = scores[junction_pos[i]].argmax(dim=1)
                down = kids.gather(1, choice[:, None]).squeeze(1)
        else:
            down = kids[:, 0]
        v[i] = own + down
    return torch.stack(v, dim=1)  # type: ignore[arg-type]


def critic_loss(net: RoutedNetwork, out: DenseOutput, y: Tensor, k_cpt: float | Tensor,
                tau: float, utility: Utility = "pragmatic",
                error: CriticError = "crossentropy", k_ure: float = 1e-3,
                k_l2: float = 1e-4, epsilon: float = EPSILON,
                node_cost: Tensor | None = None) -> StepResult:
    tree = Tree.of(net)
    n = y.shape[0]
    like = out.leaf_logits
    policy = training_policy(tree, out.scores, tau, epsilon)
    p = reach(tree, policy, n).to(like.dtype).detach()
    k = kcpt_column(k_cpt, n, like)
    ce = leaf_errors(out, y)
    target_err = ce.detach() if error == "crossentropy" else leaf_mistakes(out, y)
    v = utilities(tree, tuple(s.detach() for s in out.scores), target_err, k, utility,
                  node_cost).detach()
    err = (p.index_select(1, leaf_index(tree, p)) * ce).sum(dim=1)
    loss, regression = err, like.new_zeros(n)
    for j, s in zip(tree.junctions, out.scores):
        target = -v[:, list(tree.children[j])]
        term = k_ure * p[:, j] * ((s - target) ** 2).sum(dim=1)
        loss, regression = loss + term, regression + term.detach()
    mod = k_l2 * (p.mean(dim=0) * node_l2(node_weights(net), like)).sum()
    leaf = inference_leaf(tree, out.scores, n)
    return StepResult(loss.mean() + mod, p, leaf,
                      out.leaf_logits[leaf, torch.arange(n)],
                      parts=detached(error=err.mean(), regression=regression.mean(), l2=mod))
