"""Throughput-adjusted learning rates (paper §4.5).

A node's gradient is a p-weighted sum over examples, so rarely-reached nodes
would learn slowly. Scaling each node's gradient (its router's included: a
junction has the reach of the column before it) by 1/sqrt(mean_i p_i(ℓ)²) =
√n/‖p(ℓ)‖ makes the update variance independent of the traffic it receives.
"""
from __future__ import annotations

import torch
from torch import Tensor


def talr_scales(reach: Tensor) -> Tensor:
    """√n/‖p(ℓ)‖ for every node, from N×nodes reach probabilities.

    A node no example reached (possible when paths are sampled) has no traffic to
    adjust for; its scale is 1, not √n/0, whose product with a zero gradient is NaN.
    """
    norm = torch.linalg.vector_norm(reach.double(), dim=0)
    return torch.where(norm > 0, reach.shape[0] ** 0.5 / norm.clamp_min(1e-300),
                       torch.ones_like(norm))


def apply_talr(params_per_node: list[list[Tensor]], scales: Tensor) -> None:
    """Multiply each node's parameter gradients by its scale, in place (one foreach
    op: a per-tensor loop cost more than the heads of a small network)."""
    grads, factors = [], []
    for params, scale in zip(params_per_node, scales.tolist()):
        for p in params:
            if p.grad is not None:
                grads.append(p.grad)
                factors.append(scale)
    if grads:
        torch._foreach_mul_(grads, factors)
