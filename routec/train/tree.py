"""The routing tree as the strategies index it: its node MACs as a tensor, and reach
probabilities under a policy.

Strategies work on whole batches at once: per-node quantities are N×nodes
tensors filled in node order (parents come before children), so one pass down
the tree gives every reach probability and one pass up gives every utility. The
structure (parents, ways, children, leaves under each node) is the network's
:class:`routec.tree.RoutingTree`; :class:`Tree` only adds tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from routec.runtime.routing import RoutedNetwork
from routec.tree import RoutingTree

EPSILON = 1e-6  # docs/design.md: no branch probability below ε·(leaves under it)/(leaves in tree)


@dataclass(frozen=True)
class Tree:
    routing: RoutingTree
    macs: Tensor  # (nodes,) float64
    # per node, where :func:`reach` finds its reach probability: (block, column), block
    # 0 a column of ones and block k + 1 junction k's ways; and that column's index in
    # the blocks laid side by side. Plain fields, not cached properties: torch.compile
    # cannot trace the lock a cached property takes, and a compiled step breaks there.
    reach_slots: tuple[tuple[int, int], ...]
    reach_columns: tuple[int, ...]
    # constants a training step indexes with, made once per dtype and device: a step
    # builds no tensor from Python lists (each costs more than the op that reads it)
    _constants: dict = field(default_factory=dict, compare=False, repr=False)

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

    def constant(self, key: tuple, like: Tensor, make: Callable[[], Tensor]) -> Tensor:
        """``make()`` moved to ``like``'s device (float tensors also to its dtype),
        made once per key, dtype and device."""
        k = (key, like.dtype, like.device)
        t = self._constants.get(k)
        if t is None:
            t = make()
            t = t.to(like.device, like.dtype) if t.is_floating_point() else t.to(like.device)
            self._constants[k] = t
        return t

    def floor_mix(self, junction: int, epsilon: float, like: Tensor) -> tuple[Tensor, Tensor]:
        """(floors, 1 − their sum) at ``junction`` in ``like``'s dtype and device: a
        training policy is floors + (1 − Σ floors) · softmax."""
        floor = self.constant(("floor", junction, epsilon), like,
                              lambda: self.floors(junction, epsilon))
        rest = self.constant(("floor-rest", junction, epsilon), like, lambda: 1 - floor.sum())
        return floor, rest

    def cumulative_macs(self) -> Tensor:
        """MACs from the root down to and including each node (parents precede children)."""
        return torch.tensor(self.routing.cumulative_macs, dtype=torch.float64)

    def path_macs(self) -> Tensor:
        """MACs of every root-to-leaf path, in leaf order."""
        return torch.tensor(self.routing.leaf_macs, dtype=torch.float64)


_TREES: dict[RoutingTree, Tree] = {}


def _tree_of(routing: RoutingTree) -> Tree:
    """One Tree per routing tree (a plain dict, not functools.lru_cache: torch.compile
    traces through an lru_cache wrapper, and a compiled step would rebuild the tree,
    constants and all, instead of reading the one made here)."""
    tree = _TREES.get(routing)
    if tree is None:
        slots = _reach_slots(routing)
        tree = _TREES[routing] = Tree(routing, torch.tensor(routing.macs, dtype=torch.float64),
                                      slots, _reach_columns(routing, slots))
    return tree


def _reach_slots(tree: RoutingTree) -> tuple[tuple[int, int], ...]:
    """A node hanging on a junction's way w reads that junction's column w; any other
    node reads its parent's slot (under no junction: the ones)."""
    number = {j: k for k, j in enumerate(tree.junctions)}
    slots: list[tuple[int, int]] = []
    for i in range(tree.size):
        p = tree.parent[i]
        if p < 0:
            slots.append((0, 0))
        elif tree.kinds[p] == "junction":
            slots.append((number[p] + 1, tree.way[i]))
        else:
            slots.append(slots[p])
    return tuple(slots)


def _reach_columns(tree: RoutingTree, slots: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    first = [0, 1]
    for ways in tree.ways:
        first.append(first[-1] + ways)
    return tuple(first[block] + col for block, col in slots)


def training_policy(tree: Tree, scores: tuple[Tensor, ...], tau: float | Tensor,
                    epsilon: float = EPSILON) -> list[Tensor]:
    """softmax(s/τ) per junction, mixed with its floors so every way keeps ≥ its floor."""
    return [junction_policy(tree, j, s, tau, epsilon) for j, s in zip(tree.junctions, scores)]


def junction_policy(tree: Tree, junction: int, s: Tensor, tau: float | Tensor,
                    epsilon: float = EPSILON) -> Tensor:
    """softmax(s/τ) at one junction (a node index), mixed with its floors; τ a number or
    a 0-d tensor (a compiled step's, which changes without recompiling)."""
    floor, rest = tree.floor_mix(junction, epsilon, s)
    scaled = s / tau if isinstance(tau, Tensor) or tau != 1 else s
    return floor + rest * torch.softmax(scaled, dim=1)


def reach(tree: Tree, policy: list[Tensor], n: int) -> Tensor:
    """p(ℓ) for every node: the product of branch probabilities on its path (N×nodes).

    Only a junction's ways multiply: each junction's block is its own reach times its
    policy, and every node then reads its column of [ones | blocks] (one gather), so
    a step costs two ops per junction, not one per node."""
    ref = policy[0] if policy else torch.zeros(())
    blocks = [torch.ones(n, 1, dtype=ref.dtype, device=ref.device)]
    for j, pol in zip(tree.junctions, policy):
        block, col = tree.reach_slots[j]  # the junction's own reach
        blocks.append(pol if block == 0 else blocks[block][:, col:col + 1] * pol)
    index = tree.constant(("reach-columns",), ref, lambda: torch.tensor(tree.reach_columns))
    return torch.cat(blocks, dim=1).index_select(1, index)


def decisiveness(tree: Tree, weight: Tensor, scores: tuple[Tensor, ...]) -> Tensor:
    """Σ_j weight(j) · ‖s_j‖² per example (the paper's decisiveness cost), ``weight``
    N×nodes: every junction's scores side by side, each way weighted by its junction's
    column, summed in one pass."""
    if not scores:
        return weight.new_zeros(weight.shape[0])
    s = torch.cat(scores, dim=1)
    cols = tree.constant(("junction-of-way",), s, lambda: torch.tensor(
        [j for j, ways in zip(tree.junctions, tree.ways) for _ in range(ways)]))
    return (weight.index_select(1, cols) * s * s).sum(dim=1)


def inference_policy(scores: tuple[Tensor, ...]) -> list[Tensor]:
    """Argmax routing as one-hot branch probabilities."""
    return [torch.nn.functional.one_hot(s.argmax(dim=1), s.shape[1]).to(s.dtype)
            for s in scores]


def inference_leaf(tree: Tree, scores: tuple[Tensor, ...], n: int) -> Tensor:
    """The leaf (index into ``tree.leaves``) each example reaches under argmax routing."""
    on_path = reach(tree, inference_policy(scores), n)
    return on_path.index_select(1, leaf_index(tree, on_path)).argmax(dim=1)


def leaf_index(tree: Tree, like: Tensor) -> Tensor:
    """The leaves' node indices as a tensor on ``like``'s device (for index_select)."""
    return tree.constant(("leaves",), like, lambda: torch.tensor(tree.leaves))
