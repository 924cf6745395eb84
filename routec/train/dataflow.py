"""Measured dataflow: where routed inference sends the examples of a split.

The numbers behind the paper's Figs. 6 and 7, as plain data: how many examples
cross every edge of the tree, the fraction classified at every exit, and each
exit's accuracy, origin mix (MNIST vs CIFAR) and class mix. Drawings read these;
tests check them without looking at a picture.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from routec.errors import RunError
from routec.runtime.routing import Pyramid, RoutedNetwork

# k_cpt that validation during dynamic-k_cpt training uses; the default here too
DEFAULT_DYNAMIC_KCPT = 4e-9


@dataclass
class Dataflow:
    """Routed-inference traffic of one network over one set of examples.

    ``node_count[i]``: examples that reached node i (so the edge parent(i) → i
    carries ``node_count[i]``); ``exit_*`` lists are in leaf order.
    """

    network: str
    examples: int
    nodes: list[str]
    kinds: list[str]
    parent: list[int]
    way: list[int]
    leaves: list[int]
    node_count: list[int]
    exit_count: list[int]
    exit_correct: list[int]
    exit_origin: list[list[int]]  # exit × origin (0 MNIST-like, 1 CIFAR-like)
    exit_class: list[list[int]]  # exit × true class
    mean_macs: float
    classes: list[str] = field(default_factory=list)
    k_cpt: float | None = None
    split: str = ""
    data: str = ""
    source: str = ""  # the run directory or checkpoint, when measured from one

    @property
    def exit_fraction(self) -> list[float]:
        return [c / self.examples for c in self.exit_count]

    @property
    def exit_accuracy(self) -> list[float | None]:
        return [k / c if c else None for k, c in zip(self.exit_correct, self.exit_count)]

    @property
    def accuracy(self) -> float:
        return sum(self.exit_correct) / self.examples

    @property
    def exit_cifar_share(self) -> list[float | None]:
        """Share of origin-1 (CIFAR-like) examples among those classified at each exit."""
        return [o[1] / sum(o) if sum(o) else None for o in self.exit_origin]

    def exit_dominant_class(self) -> list[tuple[int, float] | None]:
        """(class, share) of the commonest true class at each exit."""
        out: list[tuple[int, float] | None] = []
        for row in self.exit_class:
            total = sum(row)
            if not total:
                out.append(None)
                continue
            best = max(range(len(row)), key=lambda c: row[c])
            out.append((best, row[best] / total))
        return out

    def edges(self) -> list[tuple[int, int, int]]:
        """(parent, child, examples) for every edge of the tree."""
        return [(p, i, self.node_count[i]) for i, p in enumerate(self.parent) if p >= 0]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(exit_fraction=self.exit_fraction, exit_accuracy=self.exit_accuracy,
                 accuracy=self.accuracy, exit_cifar_share=self.exit_cifar_share)
        return d

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=1) + "\n", encoding="utf-8")


class _CountingPolicy:
    """Argmax routing that also tallies, per junction, how many rows took each way.

    The tallies are the edge counts out of junctions, taken where the decision is
    made rather than inferred afterwards from the exits the examples reached.
    """

    def __init__(self, net: RoutedNetwork) -> None:
        self.counts = [torch.zeros(w, dtype=torch.long) for w in net.WAYS]

    def __call__(self, j: int, scores: Tensor, rows: Tensor, features: Pyramid) -> Tensor:
        choice = scores.argmax(dim=1)
        self.counts[j] += torch.bincount(choice.cpu(), minlength=len(self.counts[j]))
        return choice


def _node_counts(net: RoutedNetwork, n: int, junction_counts: list[Tensor]) -> list[int]:
    """Examples reaching each node: all at the root, junction tallies below junctions."""
    jpos = {node: j for j, node in enumerate(net.JUNCTIONS)}
    count = [0] * len(net.NODES)
    for i, p in enumerate(net.PARENT):  # nodes are in DFS order: parents come first
        if p < 0:
            count[i] = n
        elif net.KINDS[p] == "junction":
            count[i] = int(junction_counts[jpos[p]][net.WAY[i]])
        else:
            count[i] = count[p]
    return count


@torch.no_grad()
def measure(net: RoutedNetwork, images: Tensor, labels: Tensor, origin: Tensor | None = None,
            *, k_cpt: float | None = None, batch: int = 500) -> Dataflow:
    """Route every example with the inference policy (argmax) and count the traffic."""
    if len(images) == 0:
        raise RunError("no examples to measure dataflow on")
    was_training = net.training
    net.eval()
    leaves = list(net.LEAVES)
    n_leaves, n_classes = len(leaves), net.CLASSES
    policy = _CountingPolicy(net)
    exit_count = torch.zeros(n_leaves, dtype=torch.long)
    exit_correct = torch.zeros(n_leaves, dtype=torch.long)
    exit_origin = torch.zeros(n_leaves, 2, dtype=torch.long)
    exit_class = torch.zeros(n_leaves, n_classes, dtype=torch.long)
    macs = 0.0
    origin = torch.zeros(len(images), dtype=torch.long) if origin is None else origin.long()
    try:
        for start in range(0, len(images), batch):
            x, y = images[start:start + batch], labels[start:start + batch]
            o = origin[start:start + batch].clamp(0, 1)
            out = net.route(x, k_cpt=k_cpt, policy=policy)
            leaf = out.leaf.cpu()
            hit = out.logits.argmax(dim=1).cpu() == y
            exit_count += torch.bincount(leaf, minlength=n_leaves)
            exit_correct += torch.bincount(leaf[hit], minlength=n_leaves)
            exit_origin.index_put_((leaf, o), torch.ones_like(leaf), accumulate=True)
            exit_class.index_put_((leaf, y), torch.ones_like(leaf), accumulate=True)
            macs += float(out.macs.sum())
    finally:
        net.train(was_training)
    n = len(images)
    return Dataflow(
        network=net.NAME, examples=n, nodes=list(net.NODES), kinds=list(net.KINDS),
        parent=list(net.PARENT), way=list(net.WAY), leaves=leaves,
        node_count=_node_counts(net, n, policy.counts), exit_count=exit_count.tolist(),
        exit_correct=exit_correct.tolist(), exit_origin=exit_origin.tolist(),
        exit_class=exit_class.tolist(), mean_macs=macs / n, k_cpt=k_cpt,
    )


def resolve_kcpt(dynamic: bool, k_cpt: float | None) -> float | None:
    """The k_cpt to route with: required-or-defaulted for dynamic runs, refused otherwise."""
    if dynamic:
        return DEFAULT_DYNAMIC_KCPT if k_cpt is None else k_cpt
    if k_cpt is not None:
        raise RunError("this network was trained with a fixed k_cpt and does not read one",
                       hint="--k-cpt applies to runs trained with --k-cpt dynamic")
    return None
