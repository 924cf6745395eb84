"""The routing tree as the strategies index it: its node MACs as a tensor, and reach
probabilities under a policy.

Strategies work on whole batches at once: per-node quantities are N×nodes
tensors filled in node order (parents come before children), so one pass down
the tree gives every reach probability and one pass up gives every utility. The
structure (parents, ways, children, leaves under each node) is the network's
:class:`routec.tree.RoutingTree`; :class:`Tree` only adds tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from routec.runtime.routing import RoutedNetwork
from routec.tree import RoutingTree

EPSILON = 1e-6  # docs/design.md: no branch probability below ε·(leaves under it)/(leaves in tree)


@dataclass(frozen=True)
class Tree:
    routing: RoutingTree
    macs: Tensor  # (nodes,) float64

    @classmethod
    def of(cls, net: RoutedNetwork | type[RoutedNetwork] | RoutingTree) -> "Tree":
        """The tree of a generated network, of an inference engine's network, or of a
        routing tree (made once per tree)."""
        return _tree_of(RoutingTree.of(net))

    @property
    def parent(self) -> tuple[int, ...]:
        return self.routing.parent

    @property
    def way(self) -> tuple[int, ...]:
        return self.routing.way

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.routing.kinds

    @property
    def leaves(self) -> tuple[int, ...]:
        return self.routing.leaves

    @property
    def junctions(self) -> tuple[int, ...]:
        return self.routing.junctions

    @property
    def ways(self) -> tuple[int, ...]:
        return self.routing.ways

    @property
    def children(self) -> tuple[tuple[int, ...], ...]:
        return self.routing.children

    @property
    def leaves_under(self) -> tuple[int, ...]:
        return self.routing.leaves_under

    @property
    def size(self) -> int:
        return self.routing.size

    def floors(self, junction: int, epsilon: float = EPSILON) -> Tensor:
        """Per-way probability floors at ``junction`` (a node index)."""
        return torch.tensor(self.routing.floors(junction, epsilon), dtype=torch.float64)

    def cumulative_macs(self) -> Tensor:
        """MACs from the root down to and including each node (parents precede children)."""
        return torch.tensor(self.routing.cumulative_macs, dtype=torch.float64)

    def path_macs(self) -> Tensor:
        """MACs of every root-to-leaf path, in leaf order."""
        return torch.tensor(self.routing.leaf_macs, dtype=torch.float64)


@lru_cache(maxsize=None)
def _tree_of(routing: RoutingTree) -> Tree:
    return Tree(routing, torch.tensor(routing.macs, dtype=torch.float64))


def training_policy(tree: Tree, scores: tuple[Tensor, ...], tau: float,
                    epsilon: float = EPSILON) -> list[Tensor]:
    """softmax(s/τ) per junction, mixed with its floors so every way keeps ≥ its floor."""
    out = []
    for j, s in zip(tree.junctions, scores):
        floor = tree.floors(j, epsilon).to(s)
        out.append(floor + (1 - floor.sum()) * torch.softmax(s / tau, dim=1))
    return out


def reach(tree: Tree, policy: list[Tensor], n: int) -> Tensor:
    """p(ℓ) for every node: the product of branch probabilities on its path (N×nodes)."""
    ref = policy[0] if policy else torch.zeros(())
    cols: list[Tensor] = []
    junction_of = {j: k for k, j in enumerate(tree.junctions)}
    ones = torch.ones(n, dtype=ref.dtype, device=ref.device)
    for i in range(tree.size):
        p = tree.parent[i]
        if p < 0:
            cols.append(ones)
        elif tree.kinds[p] == "junction":
            cols.append(cols[p] * policy[junction_of[p]][:, tree.way[i]])
        else:
            cols.append(cols[p])
    return torch.stack(cols, dim=1)


def inference_policy(scores: tuple[Tensor, ...]) -> list[Tensor]:
    """Argmax routing as one-hot branch probabilities."""
    return [torch.nn.functional.one_hot(s.argmax(dim=1), s.shape[1]).to(s.dtype)
            for s in scores]


def inference_leaf(tree: Tree, scores: tuple[Tensor, ...], n: int) -> Tensor:
    """The leaf (index into ``tree.leaves``) each example reaches under argmax routing."""
    on_path = reach(tree, inference_policy(scores), n)
    return on_path[:, list(tree.leaves)].argmax(dim=1)
