"""Shared helpers for the tests: compile bundled specs, randomise networks, count MACs."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from routec.codegen import build_class
from routec.graph import RoutingGraph, build_graph, static_prefix
from routec.parse import load_spec
from routec.runtime.routing import RoutedNetwork


def compile_bundled(name: str, *, static: int | None = None, dynamic: bool = False
                    ) -> tuple[RoutingGraph, RoutedNetwork]:
    spec = load_spec(name)
    if static is not None:
        spec = static_prefix(spec, static)
    g = build_graph(spec, dynamic_kcpt=dynamic)
    return g, build_class(g)()


def randomise(net: torch.nn.Module, seed: int = 0, bias_scale: float = 0.01) -> None:
    """Random weights everywhere (routers included, whose last layers start at zero)
    and random batch-norm statistics, so eval-mode outputs exercise every path."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * bias_scale)


def calibrate(net: torch.nn.Module, x: torch.Tensor, k_cpt: torch.Tensor | None = None) -> None:
    """Set every batch-norm's running statistics from a dense pass over ``x``.

    With statistics from real activations, eval-mode features vary across examples
    on the scale of 1, so random routers send examples down many different paths.
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass sets the exact batch statistics
    net.train()
    with torch.no_grad():
        net(x, k_cpt=k_cpt)
    for m in bns:
        m.momentum = 0.1
    net.eval()


def images(n: int, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """Random images with per-image colour and contrast, so examples differ globally."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(n, *shape, generator=gen)
    tint = torch.rand(n, shape[0], 1, 1, generator=gen)
    contrast = torch.rand(n, 1, 1, 1, generator=gen) * 2
    return tint + contrast * (base - 0.5)


def assert_deployed_routes_as_torch(net: RoutedNetwork, deployed: object, x: torch.Tensor,
                                    k: torch.Tensor) -> None:
    """The torch-free runner reaches the same exits, logits and MACs as ``net.route``."""
    import numpy as np

    with torch.inference_mode():
        ref = net.route(x, k_cpt=k)
    logits, leaf, macs = deployed.route(x.numpy(), k.numpy())  # type: ignore[attr-defined]
    assert leaf.tolist() == ref.leaf.tolist()
    assert np.allclose(logits, ref.logits.numpy(), atol=2e-4)
    assert macs.tolist() == ref.macs.tolist()


def counted_macs(fn) -> int:
    """MACs as torch counts them: FLOPs / 2 (one multiply and one add per MAC)."""
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fn()
    return counter.get_total_flops() // 2
