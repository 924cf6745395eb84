"""How much memory a network needs, and whether this machine has it (no torch needed).

The estimate is made from the graph alone, before any tensor is allocated:

* weights: 4 bytes (float32) per parameter;
* training adds a gradient and an SGD momentum buffer per parameter (3× the weights);
* activations: every layer's output for every example of the batch (the dense
  training pass runs every node on every example, and autograd keeps the outputs
  for the backward pass), counted twice for their gradients during backward.

It is a lower bound of what PyTorch will allocate, not a promise: a spec refused
here could not have run, and one accepted may still be tight.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from routec.errors import RunError
from routec.graph.registry import LayerConfig, Pyramid, chain_shape

BYTES = 4  # float32
GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    params: int
    weight_bytes: int
    optimizer_bytes: int  # gradients and momentum (training only)
    activation_bytes: int  # at the given batch (training only)

    @property
    def total(self) -> int:
        return self.weight_bytes + self.optimizer_bytes + self.activation_bytes


def _elements(shape: Pyramid) -> int:
    return sum(c * h * w for c, h, w in shape)


def _layer_activations(layers: tuple[LayerConfig, ...], inp: Pyramid) -> int:
    """Elements per example of every layer output, nested chains (residual bodies) too."""
    shapes, _, _ = chain_shape(layers, inp)
    total = 0
    for layer, before, after in zip(layers, (inp, *shapes), shapes):
        total += _elements(after)
        for value in layer.args.values():
            if isinstance(value, tuple) and value and isinstance(value[0], LayerConfig):
                total += _layer_activations(value, (before[-1],))
    return total


def _per_example(g: Any) -> int:
    """Elements of the input and of every layer's output, for one example."""
    per_example = _elements((g.input_shape,))
    for n in g.nodes:
        if n.kind == "column":
            per_example += _layer_activations(n.layers, n.in_shape)
        elif n.head is not None:
            per_example += sum(n.head.hidden) * 3 + n.head.out_features
    return per_example


def estimate(g: Any, batch: int | None = None) -> MemoryEstimate:
    """Memory of ``g`` (a RoutingGraph): weights alone, or training at ``batch``."""
    params = g.total_params
    weights = params * BYTES
    if batch is None:
        return MemoryEstimate(params, weights, 0, 0)
    return MemoryEstimate(params, weights, 2 * weights, 2 * _per_example(g) * batch * BYTES)


def inference_estimate(g: Any, batch: int, images: int = 0) -> MemoryEstimate:
    """Memory of running ``g`` at ``batch`` (bench, profile, eval, export): the weights,
    every layer's output once (a dense pass keeps them for the routed children), and
    ``images`` input images held alongside."""
    params = g.total_params
    inputs = images * _elements((g.input_shape,)) * BYTES
    return MemoryEstimate(params, params * BYTES, 0,
                          _per_example(g) * batch * BYTES + inputs)


def available_memory(device: str = "cpu") -> tuple[int, str] | None:
    """(bytes available, what was measured) on ``device``; None when it cannot be told."""
    if device.startswith("cuda"):
        import torch

        try:
            index = torch.device(device).index
            free, _ = torch.cuda.mem_get_info(index if index is not None else 0)
        except Exception:  # no usable GPU: the device check reports that
            return None
        return int(free), f"free memory on {device}"
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages), "free memory"
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", GB), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1e3:.1f} kB"


def describe(g: Any, est: MemoryEstimate, batch: int | None) -> str:
    if batch is None:
        return (f"network '{g.name}' has {est.params:,} parameters: "
                f"{fmt_bytes(est.weight_bytes)} as float32")
    return (f"training network '{g.name}' at batch {batch} needs about "
            f"{fmt_bytes(est.total)} ({est.params:,} parameters: "
            f"{fmt_bytes(est.weight_bytes + est.optimizer_bytes)} with gradients and momentum; "
            f"activations {fmt_bytes(est.activation_bytes)})")


def check_fits(g: Any, batch: int, device: str = "cpu") -> MemoryEstimate:
    """Refuse (RunError, one line) to train ``g`` at ``batch`` where it cannot fit."""
    est = estimate(g, batch)
    have = available_memory(device)
    if have is not None and est.total > have[0]:
        raise RunError(f"{describe(g, est, batch)}, but this machine has "
                       f"{fmt_bytes(have[0])} {have[1]}; use fewer or narrower layers"
                       f"{' or a smaller --batch' if est.activation_bytes > have[0] / 2 else ''}")
    return est


def check_inference_fits(g: Any, batch: int, command: str, images: int = 0,
                         device: str = "cpu") -> MemoryEstimate:
    """Refuse (RunError, one line) to run ``g`` at ``batch`` where it cannot fit, before
    any of its tensors is allocated; ``command`` names what would have run it."""
    est = inference_estimate(g, batch, images)
    have = available_memory(device)
    if have is not None and est.total > have[0]:
        raise RunError(f"{command}: network '{g.name}' at batch {batch} needs about "
                       f"{fmt_bytes(est.total)} ({est.params:,} parameters: "
                       f"{fmt_bytes(est.weight_bytes)}; activations and images "
                       f"{fmt_bytes(est.activation_bytes)}), but this machine has "
                       f"{fmt_bytes(have[0])} {have[1]}; use fewer or narrower layers"
                       + (f" or a smaller --batch{' or --images' if images > batch else ''}"
                          if est.activation_bytes > have[0] / 2 else ""))
    return est


def compile_warning(g: Any) -> str | None:
    """A warning for ``routec compile`` when the weights alone exceed this machine's memory."""
    est = estimate(g)
    have = available_memory("cpu")
    if have is None or est.weight_bytes <= have[0]:
        return None
    return (f"warning: {describe(g, est, None)}, more than this machine's "
            f"{fmt_bytes(have[0])} {have[1]}; it compiles, but routec train would refuse it")
