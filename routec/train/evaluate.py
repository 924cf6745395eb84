"""Evaluating a network with routed inference: accuracy and MACs as actually spent.

Policies: ``argmax`` (the paper's inference routing) and ``confidence``: exit at
the first classifier whose top softmax probability reaches a threshold, the
BranchyNet/MSDNet rule, run with the same real conditional execution. The MACs
of a classifier that is consulted but not taken are charged too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from routec.errors import RunError
from routec.runtime.routing import Policy, Pyramid, RoutedNetwork, argmax_policy
from routec.train.tree import Tree


@dataclass
class EvalResult:
    examples: int
    accuracy: float
    mean_macs: float
    exit_fraction: list[float]
    exit_accuracy: list[float | None]
    class_exit_counts: list[list[int]] = field(default_factory=list)  # class × exit
    exit_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "examples": self.examples, "accuracy": self.accuracy, "mean_macs": self.mean_macs,
            "exit_fraction": self.exit_fraction, "exit_accuracy": self.exit_accuracy,
            "class_exit_counts": self.class_exit_counts, "exit_names": self.exit_names,
        }


class ConfidencePolicy:
    """Take a junction's exit branch when that exit's top softmax probability ≥ threshold;
    otherwise continue along the router's best non-exit branch."""

    def __init__(self, net: RoutedNetwork, threshold: float) -> None:
        self.net = net
        self.threshold = threshold
        self.extra_macs: Tensor | None = None
        self.exit_way: list[int | None] = []
        self.exit_node: list[int | None] = []
        tree = Tree.of(net)
        for j in tree.junctions:
            exits = [c for c in tree.children[j] if tree.kinds[c] == "exit"]
            self.exit_node.append(exits[0] if exits else None)
            self.exit_way.append(net.WAY[exits[0]] if exits else None)

    def start(self, n: int, device: torch.device | str = "cpu") -> None:
        self.extra_macs = torch.zeros(n, dtype=torch.float64, device=device)

    def __call__(self, j: int, scores: Tensor, rows: Tensor, features: Pyramid) -> Tensor:
        node = self.exit_node[j]
        masked = scores.clone()
        if node is None:
            return masked.argmax(dim=1)
        way = self.exit_way[j]
        masked[:, way] = float("-inf")
        choice = masked.argmax(dim=1)
        logits = getattr(self.net, self.net.NODES[node])(features)
        confident = torch.softmax(logits, dim=1).max(dim=1).values >= self.threshold
        choice[confident] = way
        assert self.extra_macs is not None
        # consulted but not taken: its MACs were spent all the same
        # (every row adds its share, 0 where it was taken: no read of the device)
        self.extra_macs.index_add_(0, rows, (~confident).to(torch.float64)
                                   * float(self.net.MACS[node]))
        return choice


EVAL_BATCH = 500
# Input values per evaluation batch at most: 500 images of 3×32×32 fit, 224×224 ones go
# 55 at a time, so an evaluation's memory follows the batch, not the split.
EVAL_BATCH_VALUES = 2**23


def eval_batch(images: Tensor) -> int:
    """Images per evaluation batch: EVAL_BATCH, fewer for large images."""
    per_image = 1
    for v in tuple(images.shape)[1:]:
        per_image *= int(v)
    return max(1, min(EVAL_BATCH, EVAL_BATCH_VALUES // max(1, per_image)))


@torch.no_grad()
def evaluate(net: RoutedNetwork, images: Tensor, labels: Tensor, *, k_cpt: float | None = None,
             policy: str | Policy = "argmax", threshold: float = 0.9, batch: int | None = None
             ) -> EvalResult:
    """Routed evaluation; ``policy`` is "argmax", "confidence" (with ``threshold``), or
    any callable that ``net.route`` accepts (MACs are then those ``route`` counts).

    ``images`` is read one batch at a time (``images[a:b]``), so a split kept on disk
    (:class:`~routec.data.stored.StoredImages`) is never held whole; ``batch``
    defaults to :func:`eval_batch`."""
    if batch is None:
        batch = eval_batch(images)
    if isinstance(policy, str) and policy not in ("argmax", "confidence"):
        raise RunError(f"unknown policy '{policy}'", hint="argmax, confidence, or a callable")
    was_training = net.training
    net.eval()
    n_leaves, classes = len(net.LEAVES), net.CLASSES
    # batches go to the network's device and the tallies stay there: one read at the end
    device = next(iter(net.parameters()), torch.empty(0)).device
    counts = torch.zeros(n_leaves, dtype=torch.long, device=device)
    correct = torch.zeros(n_leaves, dtype=torch.long, device=device)
    per_class = torch.zeros(classes, n_leaves, dtype=torch.long, device=device)
    macs = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, len(images), batch):
        x = images[start:start + batch].to(device, non_blocking=True)
        y = labels[start:start + batch].to(device, non_blocking=True)
        if policy == "confidence":
            pol = ConfidencePolicy(net, threshold)
            pol.start(len(x), device)
            out = net.route(x, k_cpt=k_cpt, policy=pol)
            assert pol.extra_macs is not None
            macs += (out.macs.to(device) + pol.extra_macs.to(device)).sum()
        else:
            out = net.route(x, k_cpt=k_cpt,
                            policy=argmax_policy if policy == "argmax" else policy)
            macs += out.macs.to(device).sum()
        leaf = out.leaf.to(device)  # an engine of sessions answers on the host
        hit = out.logits.to(device).argmax(dim=1) == y
        counts += torch.bincount(leaf, minlength=n_leaves)
        correct += torch.bincount(leaf[hit], minlength=n_leaves)
        per_class.index_put_((y, leaf), torch.ones_like(y), accumulate=True)
    net.train(was_training)
    n = len(images)
    return EvalResult(
        examples=n,
        accuracy=float(correct.sum()) / n,
        mean_macs=float(macs) / n,
        exit_fraction=(counts.double() / n).tolist(),
        exit_accuracy=[float(c) / float(k) if k else None for c, k in zip(correct, counts)],
        class_exit_counts=per_class.tolist(),
        exit_names=[net.NODES[i] for i in net.LEAVES],
    )
