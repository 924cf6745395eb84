"""The routing tree as index tensors, and reach probabilities under a policy.

Strategies work on whole batches at once: per-node quantities are N×nodes
tensors filled in node order (parents come before children), so one pass down
the tree gives every reach probability and one pass up gives every utility.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from routec.runtime.routing import RoutedNetwork

EPSILON = 1e-6  # docs/design.md: no branch probability below ε·(leaves under it)/(leaves in tree)


@dataclass(frozen=True)
class Tree:
    parent: tuple[int, ...]
    way: tuple[int, ...]
    kinds: tuple[str, ...]
    macs: Tensor  # (nodes,) float64
    leaves: tuple[int, ...]
    junctions: tuple[int, ...]
    ways: tuple[int, ...]
    children: tuple[tuple[int, ...], ...]  # per node, ordered by way
    leaves_under: tuple[int, ...]  # per node

    @classmethod
    def of(cls, net: RoutedNetwork | type[RoutedNetwork]) -> "Tree":
        """The tree of a generated network, or of an inference engine's network
        (computed once per network class)."""
        if isinstance(net, type):
            return _tree_of(net)
        if not isinstance(net, RoutedNetwork) and isinstance(getattr(net, "net", None),
                                                              RoutedNetwork):
            net = net.net  # an inference engine (routec.engine) wrapping the network
        return _tree_of(type(net))

    @classmethod
    def build(cls, net: type[RoutedNetwork]) -> "Tree":
        n = len(net.NODES)
        children: list[list[int]] = [[] for _ in range(n)]
        for i, p in enumerate(net.PARENT):
            if p >= 0:
                children[p].append(i)
        for kids in children:
            kids.sort(key=lambda c: net.WAY[c])
        under = [0] * n
        for i in reversed(range(n)):
            under[i] = 1 if net.KINDS[i] == "exit" else sum(under[c] for c in children[i])
        return cls(tuple(net.PARENT), tuple(net.WAY), tuple(net.KINDS),
                   torch.tensor(net.MACS, dtype=torch.float64), tuple(net.LEAVES),
                   tuple(net.JUNCTIONS), tuple(net.WAYS), tuple(tuple(c) for c in children),
                   tuple(under))

    @property
    def size(self) -> int:
        return len(self.parent)

    def floors(self, junction: int, epsilon: float = EPSILON) -> Tensor:
        """Per-way probability floors at ``junction`` (a node index)."""
        total = self.leaves_under[0]
        return torch.tensor([epsilon * self.leaves_under[c] / total
                             for c in self.children[junction]], dtype=torch.float64)

    def cumulative_macs(self) -> Tensor:
        """MACs from the root down to and including each node (parents precede children)."""
        cum = self.macs.clone()
        for i in range(self.size):
            if self.parent[i] >= 0:
                cum[i] += cum[self.parent[i]]
        return cum

    def path_macs(self) -> Tensor:
        """MACs of every root-to-leaf path, in leaf order."""
        return self.cumulative_macs()[list(self.leaves)]


@lru_cache(maxsize=None)
def _tree_of(cls: type[RoutedNetwork]) -> Tree:
    return Tree.build(cls)


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
