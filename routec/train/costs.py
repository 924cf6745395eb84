"""Costs shared by the strategies: per-leaf errors, per-node weight norms, node costs.

c_cpt = k_cpt × the cost of the nodes evaluated. A node's cost is its MACs
(``--cost macs``, the paper's; k_cpt per MAC) or its measured time per example in
milliseconds from a cost table (``--cost latency``; k_cpt per millisecond):
:func:`node_costs` gives the vector the strategies multiply by k_cpt.
"""
from __future__ import annotations

import weakref

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from routec.runtime.routing import DenseOutput, RoutedNetwork
from routec.train.tree import Tree


@dataclass
class StepResult:
    """What one strategy step hands to the loop.

    loss: the scalar to minimise (batch mean);
    reach: N×nodes training-policy reach probabilities, detached (for TALR);
    leaf: the leaf each example reaches under argmax routing (for metrics);
    logits: N×C logits at that leaf;
    parts: the loss's terms (names from :data:`LOSS_PARTS`), detached, summing to it.
    """

    loss: Tensor
    reach: Tensor
    leaf: Tensor
    logits: Tensor
    leaf_logits: Tensor | None = None  # leaves×N×C of the dense pass, where there is one
    parts: dict[str, Tensor] = field(default_factory=dict)
    talr: Tensor | None = None  # the step's per-node TALR scales, where TALR applied


# The terms a strategy's loss is the sum of (each a batch mean), as the log names them:
# error (the exits' cross-entropy, weighted by reach), computation (k_cpt × cost),
# decisiveness (k_dec × squared router scores), regression (the critic's k_ure × squared
# error of its predicted utilities), l2 (k_L2 × weights²) and distill (--distill's KL).
LOSS_PARTS = ("error", "computation", "decisiveness", "regression", "l2", "distill")


def detached(**parts: Tensor) -> dict[str, Tensor]:
    """A step's loss terms for the log: detached scalars, in :data:`LOSS_PARTS` order."""
    unknown = set(parts) - set(LOSS_PARTS)
    if unknown:
        raise ValueError(f"unknown loss parts {sorted(unknown)}; add them to LOSS_PARTS")
    return {k: parts[k].detach() for k in LOSS_PARTS if k in parts}


def leaf_errors(out: DenseOutput, y: Tensor) -> Tensor:
    """Cross-entropy of every leaf's classifier on every example: N×leaves.

    The log-softmax runs over the class axis laid out first (leaves×C×N): PyTorch's CPU
    kernel over a short last axis (10 classes) took 60 µs for a 3×128×10 batch, longer
    than the rest of the actor's loss; over a leading axis it takes 5."""
    n_leaves, n, c = out.leaf_logits.shape
    logp = out.leaf_logits.transpose(1, 2).contiguous().log_softmax(dim=1)
    return -logp.gather(1, y.view(1, 1, n).expand(n_leaves, 1, n)).view(n_leaves, n).T


def leaf_mistakes(out: DenseOutput, y: Tensor) -> Tensor:
    """0/1 classification error of every leaf on every example: N×leaves."""
    return (out.leaf_logits.argmax(dim=2) != y[None]).T.to(out.leaf_logits.dtype)


def node_weights(net: RoutedNetwork) -> list[list[Tensor]]:
    """The weight tensors (convolutions and linear layers, not biases or batch-norm)
    of every node, in node order: what L2 regularisation applies to. Frozen weights (a
    supplied model's pieces under --freeze) are left out: they do not train, so their
    penalty would only add a constant to the loss, at the cost of summing them every step."""
    return [[p for p in ws if p.requires_grad] for ws in _weights_of(net)]


_WEIGHTS: "weakref.WeakKeyDictionary[RoutedNetwork, list[list[Tensor]]]" = weakref.WeakKeyDictionary()


def _weights_of(net: RoutedNetwork) -> list[list[Tensor]]:
    """Every node's weight tensors, found once per network: walking a supplied model's
    modules every step cost more than its heads' forward pass (the set of tensors is
    fixed when the class is built; which of them train is read each call)."""
    found = _WEIGHTS.get(net)
    if found is None:
        found = [[p for p in getattr(net, name).parameters() if p.ndim > 1] for name in net.NODES]
        _WEIGHTS[net] = found
    return found


def node_l2(weights: list[list[Tensor]], like: Tensor) -> Tensor:
    """Σ w² per node (differentiable): a (nodes,) tensor. The norms of all weight
    tensors come from one foreach op (its gradient is 0, not NaN, at a zero tensor:
    a router's last layer starts there), squared and added into their nodes by one
    index_add: a step's L2 term costs a few ops, not several per tensor."""
    flat = [w if w.dtype == like.dtype else w.to(like.dtype) for ws in weights for w in ws]
    out = like.new_zeros(len(weights))
    if not flat:
        return out
    squares = torch.stack(torch._foreach_norm(flat)) ** 2
    owner = torch.tensor([i for i, ws in enumerate(weights) for _ in ws], device=like.device)
    return out.index_add(0, owner, squares)


def node_params(net: RoutedNetwork) -> list[list[Tensor]]:
    """The trainable parameters of every node, in node order (TALR scales them
    together). Frozen ones (--freeze) never have a gradient: leaving them out spares
    TALR and clipping a walk over a whole backbone's tensors at every step."""
    return [[p for p in getattr(net, name).parameters() if p.requires_grad]
            for name in net.NODES]


def kcpt_column(k_cpt: float | Tensor, n: int, like: Tensor) -> Tensor:
    k = torch.as_tensor(k_cpt, dtype=like.dtype, device=like.device)
    return k.expand(n) if k.ndim == 0 else k


MS_PER_S = 1e3  # --cost latency: a node's cost is its milliseconds per example


def node_costs(seconds: list[float] | Tensor) -> Tensor:
    """The per-node cost vector of ``--cost latency``: milliseconds per example."""
    return torch.as_tensor(seconds, dtype=torch.float64) * MS_PER_S


def compute_cost(tree: Tree, like: Tensor, cost: Tensor | None = None) -> Tensor:
    """The cost of every node as a (nodes,) tensor of ``like``'s dtype: ``cost`` (from
    :func:`node_costs`) when given, else MACs."""
    if cost is None:  # made once per dtype and device
        return tree.constant(("macs",), like, lambda: tree.macs)
    if cost.shape != tree.macs.shape:
        raise ValueError(f"node cost vector has {tuple(cost.shape)} entries for "
                         f"{tree.size} nodes")
    return cost.to(like.dtype).to(like.device)


def path_cost(tree: Tree, cost: Tensor) -> tuple[Tensor, Tensor]:
    """(cumulative cost from the root to each node, inclusive; cost of the path to each
    leaf), as float64 tensors."""
    c = cost.to(torch.float64).cpu()
    cum = torch.zeros(tree.size, dtype=torch.float64)
    for i in range(tree.size):  # parents come before children
        p = tree.parent[i]
        cum[i] = c[i] + (cum[p] if p >= 0 else 0.0)
    return cum, cum[list(tree.leaves)]
