"""Training-time augmentation of the paper: random shifts and CIFAR-only flips.

Each image is shifted by independent integers in [−4, 4] on both axes (for other
image sizes the range scales with the image: :func:`shift_range`); pixels
uncovered by the shift take the image's mean colour (per channel, linear light, of
the unshifted image), so no black border hints at the shift. CIFAR-origin images
are mirrored left-right with p = 0.5; digits never are (a mirrored digit is not the
same digit). Small images (the paper's 32×32) are done with one gather over the
batch, no per-image Python loop; large ones (from 64×64) with a copy of the
overlapping block per image, which moves each pixel once instead of indexing it
(several times faster at 224×224) and gives the same values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from routec.data.splits import CIFAR_ORIGIN

MAX_SHIFT = 4
FLIP_P = 0.5
# The paper's ±4 pixels on 32×32 images, as a fraction of the image's side.
SHIFT_FRACTION = MAX_SHIFT / 32

Shift = int | tuple[int, int]


def shift_range(fraction: float, height: int, width: int) -> tuple[int, int]:
    """Largest shift (rows, columns) for ``fraction`` of the image's side, rounded half up."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"shift must be a fraction of the image size in [0, 1), got {fraction}")
    return (math.floor(fraction * height + 0.5), math.floor(fraction * width + 0.5))


def _pair(max_shift: Shift) -> tuple[int, int]:
    return (max_shift, max_shift) if isinstance(max_shift, int) else (int(max_shift[0]), int(max_shift[1]))


@dataclass(frozen=True)
class AugmentParams:
    """Per image: content moves ``dy`` rows down and ``dx`` columns right, after an optional flip."""

    dy: torch.Tensor  # int64 (B,)
    dx: torch.Tensor  # int64 (B,)
    flip: torch.Tensor  # bool (B,)


def draw_params(
    origin: torch.Tensor, generator: torch.Generator, max_shift: Shift = MAX_SHIFT, flip_p: float = FLIP_P
) -> AugmentParams:
    """Random shifts for every image, flips only where ``origin`` is CIFAR.

    ``max_shift`` is one bound for both axes or (rows, columns). The same numbers
    are drawn whatever the bounds and ``flip_p``, so the stream stays aligned.
    """
    b = len(origin)
    my, mx = _pair(max_shift)
    dy = torch.randint(-my, my + 1, (b,), generator=generator)
    dx = torch.randint(-mx, mx + 1, (b,), generator=generator)
    flip = (torch.rand(b, generator=generator) < flip_p) & (origin.cpu() == CIFAR_ORIGIN)
    return AugmentParams(dy, dx, flip)


# From this many pixels per image on, a block copy per image beats one gather.
COPY_FROM_PIXELS = 64 * 64


def apply(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """``images`` (B×C×H×W) flipped, then shifted with mean-colour fill."""
    b, c, h, w = images.shape
    if h * w >= COPY_FROM_PIXELS:
        return apply_by_copy(images, params)
    return apply_by_gather(images, params)


def apply_by_copy(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """:func:`apply` for large images: fill with the mean, then copy the block that stays in view."""
    b, c, h, w = images.shape
    out = images.mean(dim=(2, 3), keepdim=True).expand(b, c, h, w).contiguous()
    for i, (dy, dx, flip) in enumerate(zip(params.dy.tolist(), params.dx.tolist(), params.flip.tolist(),
                                            strict=True)):
        src = images[i].flip(2) if flip else images[i]
        if abs(dy) >= h or abs(dx) >= w:
            continue
        out[i, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            src[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def apply_by_gather(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """:func:`apply` as one gather over the whole batch (fastest for small images)."""
    b, c, h, w = images.shape
    device = images.device
    dy, dx, flip = params.dy.to(device), params.dx.to(device), params.flip.to(device)
    rows = torch.arange(h, device=device).unsqueeze(0) - dy.unsqueeze(1)  # B×H source rows
    cols = torch.arange(w, device=device).unsqueeze(0) - dx.unsqueeze(1)  # B×W source cols (flipped frame)
    valid = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)  # B×H×W
    cols = torch.where(flip.unsqueeze(1), w - 1 - cols, cols)
    index = rows.clamp(0, h - 1).unsqueeze(2) * w + cols.clamp(0, w - 1).unsqueeze(1)  # B×H×W
    flat = images.reshape(b, c, h * w)
    moved = flat.gather(2, index.reshape(b, 1, h * w).expand(b, c, h * w)).reshape(b, c, h, w)
    mean = images.mean(dim=(2, 3), keepdim=True)
    return torch.where(valid.unsqueeze(1), moved, mean)


def augment(
    images: torch.Tensor,
    origin: torch.Tensor,
    generator: torch.Generator,
    max_shift: Shift = MAX_SHIFT,
    flip_p: float = FLIP_P,
) -> torch.Tensor:
    """Draw parameters from ``generator`` and apply them: one call per training batch."""
    return apply(images, draw_params(origin, generator, max_shift, flip_p))


class Augmenter:
    """Holds its own generator so a training run's augmentation is reproducible from one seed."""

    def __init__(self, seed: int = 0, max_shift: Shift = MAX_SHIFT, flip_p: float = FLIP_P) -> None:
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)
        self.max_shift = max_shift
        self.flip_p = flip_p

    def __call__(self, images: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
        return augment(images, origin, self.generator, self.max_shift, self.flip_p)

    def state(self) -> torch.Tensor:
        """Generator state, for checkpoints."""
        return self.generator.get_state()

    def restore(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)

    @classmethod
    def for_images(
        cls, seed: int, height: int, width: int, shift: float = SHIFT_FRACTION, flip: bool = True
    ) -> Augmenter:
        """Shifts up to ``shift`` of the image's side; flips (origin-1 images only) when ``flip``."""
        return cls(seed, shift_range(shift, height, width), FLIP_P if flip else 0.0)
