"""Static baselines and the peers' multi-exit baseline.

static: plain cross-entropy + L2 on a network with one path (compile with
--static N); multi-exit: every exit trained jointly with the mean of the exits'
cross-entropies, as in SDN/MSDNet, for comparison with learned routing.
"""
from __future__ import annotations

import torch
from torch import Tensor

from routec.errors import RunError
from routec.runtime.routing import DenseOutput, RoutedNetwork
from routec.train.costs import StepResult, detached, leaf_errors, node_l2, node_weights
from routec.train.tree import Tree, inference_leaf, reach


def _l2(net: RoutedNetwork, like: Tensor) -> Tensor:
    return node_l2(node_weights(net), like).sum()


def static_loss(net: RoutedNetwork, out: DenseOutput, y: Tensor, k_l2: float = 1e-4
                ) -> StepResult:
    if len(net.LEAVES) != 1:
        raise RunError(f"the static strategy needs a network with one exit; "
                       f"'{net.NAME}' has {len(net.LEAVES)}",
                       hint="compile the baseline with --static N, or use --strategy multi-exit")
    n = y.shape[0]
    tree = Tree.of(net)
    err, l2 = leaf_errors(out, y)[:, 0].mean(), k_l2 * _l2(net, out.leaf_logits)
    p = reach(tree, [], n).to(out.leaf_logits.dtype)
    return StepResult(err + l2, p, torch.zeros(n, dtype=torch.long), out.leaf_logits[0],
                      parts=detached(error=err, l2=l2))


def multi_exit_loss(net: RoutedNetwork, out: DenseOutput, y: Tensor, k_l2: float = 1e-4
                    ) -> StepResult:
    n = y.shape[0]
    tree = Tree.of(net)
    err, l2 = leaf_errors(out, y).mean(dim=1).mean(), k_l2 * _l2(net, out.leaf_logits)
    p = torch.ones(n, tree.size, dtype=out.leaf_logits.dtype)  # every node sees every example
    leaf = inference_leaf(tree, out.scores, n)
    return StepResult(err + l2, p, leaf, out.leaf_logits[leaf, torch.arange(n)],
                      parts=detached(error=err, l2=l2))
