"""Pixel transforms from stored uint8 to the linear-light float32 the networks see.

Linear light makes "mean colour" and interpolation physically meaningful; CIFAR
is stored gamma-encoded so it is decoded with (v/255)^2.2, MNIST is already a
coverage map so v/255 is kept as is. Work is chunked to bound peak memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAMMA = 2.2
MIN_COLOUR_DISTANCE = 0.3
IMAGE_SIZE = 32
_CHUNK = 8192


def gamma_decode(raw: torch.Tensor) -> torch.Tensor:
    """uint8 gamma-encoded values → float32 linear light, (v/255)^2.2."""
    out = torch.empty(raw.shape, dtype=torch.float32)
    for start in range(0, len(raw), _CHUNK):
        stop = start + _CHUNK
        out[start:stop] = raw[start:stop].to(torch.float32).div_(255.0).pow_(GAMMA)
    return out


def gamma_encode(linear: torch.Tensor) -> torch.Tensor:
    """Linear light → display values in [0, 1], for pictures only."""
    return linear.clamp(0.0, 1.0).pow(1.0 / GAMMA)


def mnist_to_32(raw: torch.Tensor) -> torch.Tensor:
    """uint8 N×28×28 digits → float32 N×1×32×32 in [0, 1], bilinear (align_corners=False)."""
    out = torch.empty((len(raw), 1, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    for start in range(0, len(raw), _CHUNK):
        chunk = raw[start : start + _CHUNK].to(torch.float32).div_(255.0).unsqueeze(1)
        out[start : start + len(chunk)] = F.interpolate(
            chunk, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
        )
    return out


def colour_pairs(
    n: int, generator: torch.Generator, min_distance: float = MIN_COLOUR_DISTANCE
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pairs of RGB colours in [0,1]^3 at least ``min_distance`` apart (rejection sampling)."""
    c0 = torch.rand((n, 3), generator=generator)
    c1 = torch.rand((n, 3), generator=generator)
    bad = _too_close(c0, c1, min_distance)
    while bool(bad.any()):
        k = int(bad.sum())
        c0[bad] = torch.rand((k, 3), generator=generator)
        c1[bad] = torch.rand((k, 3), generator=generator)
        bad = _too_close(c0, c1, min_distance)
    return c0, c1


def _too_close(c0: torch.Tensor, c1: torch.Tensor, min_distance: float) -> torch.Tensor:
    return (c0.double() - c1.double()).norm(dim=1) < min_distance


def recolour(coverage: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
    """N×1×H×W coverage v → N×3×H×W pixels c0 + (c1 − c0)·v.

    ``torch.lerp`` is exact at both ends, so v = 0 gives c0 and v = 1 gives c1 bit for bit.
    """
    return torch.lerp(c0[:, :, None, None], c1[:, :, None, None], coverage)
