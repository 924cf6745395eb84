"""Critic training on sampled paths: the memory-saving mode.

d̂ is drawn from the training policy at every junction and only the sampled path
runs (the generated ``route`` with a sampling policy: gather/scatter), so
activations are kept for one path per example instead of the whole tree. The
target of the taken branch is the realised cost of the sampled continuation,
c_err(leaf) + k_cpt·(cost from that branch to the leaf: MACs, or measured time with
--cost latency): an unbiased estimate of
its utility under the training policy. The untaken branches get no target, and
optimistic utilities (a minimum over branches never run) are not available.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from routec.errors import RunError
from routec.runtime.routing import Pyramid, RoutedNetwork
from routec.train.costs import (StepResult, detached, kcpt_column, node_l2, node_weights,
                                path_cost)
from routec.train.tree import EPSILON, Tree, junction_policy


class _Sampler:
    """A routing policy that samples from the floored softmax and records its choices."""

    def __init__(self, tree: Tree, tau: float, epsilon: float, gen: torch.Generator) -> None:
        self.tree, self.tau, self.epsilon, self.gen = tree, tau, epsilon, gen
        self.records: list[tuple[int, Tensor, Tensor, Tensor]] = []

    def __call__(self, j: int, scores: Tensor, rows: Tensor, features: Pyramid) -> Tensor:
        pol = junction_policy(self.tree, self.tree.junctions[j], scores.detach(), self.tau,
                              self.epsilon)
        choice = torch.multinomial(pol.float().cpu(), 1, generator=self.gen).squeeze(1)
        choice = choice.to(scores.device)
        self.records.append((j, rows, scores, choice))
        return choice


def sampled_critic_loss(net: RoutedNetwork, x: Tensor, y: Tensor, k_cpt: float | Tensor,
                        tau: float, *, utility: str = "pragmatic",
                        error: str = "crossentropy", k_ure: float = 1e-3, k_l2: float = 1e-4,
                        epsilon: float = EPSILON, generator: torch.Generator,
                        k_cpt_input: Tensor | None = None,
                        node_cost: Tensor | None = None) -> StepResult:
    if utility != "pragmatic":
        raise RunError("sampled critic training estimates utilities from the path it runs; "
                       "optimistic utilities need every branch",
                       hint="use --critic-mode closed with --utility optimistic")
    tree = Tree.of(net)
    n = y.shape[0]
    sampler = _Sampler(tree, tau, epsilon, generator)
    out = net.route(x, k_cpt=k_cpt_input, policy=sampler)
    like = out.logits
    k = kcpt_column(k_cpt, n, like)
    ce = F.cross_entropy(out.logits, y, reduction="none")
    err = ce.detach() if error == "crossentropy" else (out.logits.argmax(1) != y).to(like.dtype)
    if node_cost is None:
        cum = tree.cumulative_macs()
        total_macs = out.macs.to(like.dtype)
    else:  # the cost of the path each example took, from the cost vector
        cum, leaf_total = path_cost(tree, node_cost)
        total_macs = leaf_total.to(like.device)[out.leaf].to(like.dtype)
    loss, regression = ce.sum(), like.new_zeros(())
    visited = torch.zeros(n, tree.size, dtype=like.dtype, device=like.device)
    for j, rows, scores, choice in sampler.records:
        node = tree.junctions[j]
        rest = total_macs[rows] - float(cum[node])  # MACs of the taken branch, to its leaf
        target = -(err[rows] + k[rows] * rest)
        taken = scores.gather(1, choice[:, None]).squeeze(1)
        term = k_ure * ((taken - target.detach()) ** 2).sum()
        loss, regression = loss + term, regression + term.detach()
    leaf_nodes = torch.tensor(tree.leaves, device=like.device)[out.leaf]
    node = leaf_nodes.clone()  # walk up from each example's leaf, marking its path
    while True:
        visited[torch.arange(n), node] = 1
        parent = torch.tensor(tree.parent, device=like.device)[node]
        if bool((parent < 0).all()):
            break
        node = torch.where(parent < 0, node, parent)
    mod = k_l2 * (visited.mean(dim=0) * node_l2(node_weights(net), like)).sum()
    return StepResult(loss / n + mod, visited, out.leaf, out.logits.detach(),
                      parts=detached(error=ce.sum() / n, regression=regression / n, l2=mod))
