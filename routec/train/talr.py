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
    """√n/‖p(ℓ)‖ for every node, from N×nodes reach probabilities."""
    return reach.shape[0] ** 0.5 / torch.linalg.vector_norm(reach.double(), dim=0)


def apply_talr(params_per_node: list[list[Tensor]], scales: Tensor) -> None:
    """Multiply each node's parameter gradients by its scale, in place."""
    for params, scale in zip(params_per_node, scales.tolist()):
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
