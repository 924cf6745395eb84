"""A small generated dataset, so tests and first runs need no downloads.

Ten classes. Classes 0–4 are *easy*: a bright half (top/bottom/left/right) or a
large central blob (every pattern is drawn in the brighter colour of a random pair), visible even at 4×4; they carry origin 0 (like digits, never
flipped). Classes 5–9 are *hard*: small low-contrast shapes (disc, ring, square,
cross, frame) at random places under heavier noise; they carry origin 1 (like
CIFAR, flipped in augmentation, and every shape is mirror-symmetric). A routed
network should learn to exit early on the first kind and go deeper on the second.
"""
from __future__ import annotations

import torch

from routec.data.preprocess import IMAGE_SIZE, colour_pairs, recolour
from routec.data.seeds import generator
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN, DatasetInfo, DatasetSplits, Split

CLASSES: tuple[str, ...] = (
    "top", "bottom", "left", "right", "blob", "disc", "ring", "square", "cross", "frame",
)
EASY_CLASSES = 5
SIZES = {"train": 4000, "val": 500, "test": 1000}
_EASY_NOISE = 0.03
_HARD_NOISE = 0.12


def _coverage(labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """N×1×32×32 pattern in [0, 1] for each label; vectorised per class."""
    n = len(labels)
    axis = torch.arange(IMAGE_SIZE, dtype=torch.float32) + 0.5
    yy = axis.view(1, -1, 1)
    xx = axis.view(1, 1, -1)
    out = torch.zeros((n, IMAGE_SIZE, IMAGE_SIZE))
    # Draw every parameter for every image so the stream does not depend on class mix.
    edge = 12.0 + 8.0 * torch.rand((n, 1, 1), generator=gen)
    cy = 8.0 + 16.0 * torch.rand((n, 1, 1), generator=gen)
    cx = 8.0 + 16.0 * torch.rand((n, 1, 1), generator=gen)
    size = 3.0 + 3.0 * torch.rand((n, 1, 1), generator=gen)
    dy, dx = (yy - cy).abs(), (xx - cx).abs()
    cheb, radius = torch.maximum(dy, dx), torch.sqrt(dy**2 + dx**2)
    blob_y = 16.0 + 4.0 * (torch.rand((n, 1, 1), generator=gen) - 0.5)
    blob_x = 16.0 + 4.0 * (torch.rand((n, 1, 1), generator=gen) - 0.5)
    blob = torch.exp(-((yy - blob_y) ** 2 + (xx - blob_x) ** 2) / (2 * (size + 3.0) ** 2))
    patterns = [
        torch.sigmoid((edge - yy) / 1.5).expand(n, -1, IMAGE_SIZE),  # top
        torch.sigmoid((yy - edge) / 1.5).expand(n, -1, IMAGE_SIZE),  # bottom
        torch.sigmoid((edge - xx) / 1.5).expand(n, IMAGE_SIZE, -1),  # left
        torch.sigmoid((xx - edge) / 1.5).expand(n, IMAGE_SIZE, -1),  # right
        blob,
        (radius <= size).float(),  # disc
        ((radius - size).abs() <= 0.8).float(),  # ring
        (cheb <= size).float(),  # square
        (((dy <= 1.0) & (dx <= size)) | ((dx <= 1.0) & (dy <= size))).float(),  # cross
        ((cheb - size).abs() <= 0.6).float(),  # frame
    ]
    for cls, pattern in enumerate(patterns):
        sel = labels == cls
        out[sel] = pattern[sel]
    return out.unsqueeze(1)


def _split(n: int, seed: int, split: str) -> Split:
    gen = generator(seed, "synthetic", split)
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=gen)]
    easy = labels < EASY_CLASSES
    c0, c1 = colour_pairs(n, gen)
    # The pattern is drawn in the brighter colour of each pair. Were it either, "top"
    # in colours (a, b) would be pixel for pixel "bottom" in (b, a), and so on: the
    # half classes could not be told apart at all, let alone early.
    swap = (c1.sum(dim=1) < c0.sum(dim=1)).unsqueeze(1)
    c0, c1 = torch.where(swap, c1, c0), torch.where(swap, c0, c1)
    images = recolour(_coverage(labels, gen), c0, c1)
    sigma = torch.where(easy, _EASY_NOISE, _HARD_NOISE).view(n, 1, 1, 1)
    images = (images + sigma * torch.randn(images.shape, generator=gen)).clamp_(0.0, 1.0)
    origin = torch.where(easy, MNIST_ORIGIN, CIFAR_ORIGIN).to(torch.uint8)
    return Split(images.contiguous(), labels.to(torch.int64), origin, torch.arange(n))


def synthetic(
    seed: int = 0, n_train: int = SIZES["train"], n_val: int = SIZES["val"], n_test: int = SIZES["test"]
) -> DatasetSplits:
    """The built-in generated dataset; same seed, same pixels."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    parts = {name: _split(n, seed, name) for name, n in sizes.items()}
    info = DatasetInfo(
        name="synthetic",
        classes=CLASSES,
        sizes=sizes,
        seed=seed,
        source=f"built-in synthetic dataset (generated from seed {seed}; no files read)",
        description="coloured bright halves and blobs (easy, origin 0) and small shapes (hard, origin 1)",
    )
    return DatasetSplits(info, parts["train"], parts["val"], parts["test"])
