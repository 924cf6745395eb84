"""Actor learning (paper §4.1): minimise the expected cost over the training policy.

Closed form: instead of sampling d̂, every node's contribution is weighted by its
reach probability p(ℓ), so the loss is exactly E[c_inf] and its gradient reaches
the routers through p. Regularisers (c_mod, decisiveness) use detached p, as the
paper does "unless stated otherwise"; ``regularise_dhat`` lets their gradient reach
the routers too (its §5.2 ablation: regularising d̂ discourages deep paths).
"""
from __future__ import annotations

import torch
from torch import Tensor

from routec.runtime.routing import DenseOutput, RoutedNetwork
from routec.train.costs import (StepResult, compute_cost, detached, kcpt_column, leaf_errors,
                                node_l2, node_weights)
from routec.train.tree import (EPSILON, Tree, decisiveness, inference_leaf, leaf_index, reach,
                               training_policy)


def actor_loss(net: RoutedNetwork, out: DenseOutput, y: Tensor, k_cpt: float | Tensor,
               tau: float, k_dec: float = 0.01, k_l2: float = 1e-4,
               epsilon: float = EPSILON, regularise_dhat: bool = False,
               node_cost: Tensor | None = None) -> StepResult:
    """``node_cost``: what each node costs (routec.train.costs.node_costs); None: MACs."""
    tree = Tree.of(net)
    n = y.shape[0]
    like = out.leaf_logits
    policy = training_policy(tree, out.scores, tau, epsilon)
    p = reach(tree, policy, n).to(like.dtype)
    k = kcpt_column(k_cpt, n, like)
    err = (p.index_select(1, leaf_index(tree, p)) * leaf_errors(out, y)).sum(dim=1)
    cpt = k * (p * compute_cost(tree, like, node_cost)).sum(dim=1)
    sg = p.detach()
    w = p if regularise_dhat else sg  # the routing weights of c_mod: held constant or not
    mod = k_l2 * (w.mean(dim=0) * node_l2(node_weights(net), like)).sum()
    dec = decisiveness(tree, w, out.scores)
    loss = (err + cpt + k_dec * dec).mean() + mod
    leaf = inference_leaf(tree, out.scores, n)
    return StepResult(loss, sg, leaf, out.leaf_logits[leaf, torch.arange(n)],
                      parts=detached(error=err.mean(), computation=cpt.mean(),
                                     decisiveness=(k_dec * dec).mean(), l2=mod))
