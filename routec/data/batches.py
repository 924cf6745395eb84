"""Minibatches over a split: shuffled index chunks, optionally augmented.

Plain tensor indexing on in-memory data beats a DataLoader with workers at these
sizes (32×32 images) and keeps the order reproducible from one generator.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch

from routec.data.augmentation import Augmenter
from routec.data.splits import Split


class Batch(NamedTuple):
    images: torch.Tensor  # B×3×32×32 float32
    labels: torch.Tensor  # B int64
    origin: torch.Tensor  # B uint8
    indices: torch.Tensor  # B int64: positions in the split


def batches(
    split: Split,
    batch_size: int = 128,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    augmenter: Augmenter | None = None,
    drop_last: bool = False,
) -> Iterator[Batch]:
    """One epoch of batches; shuffled with ``generator`` (seed 0 if None) when ``shuffle``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(split)
    if shuffle:
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(0)
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        images = split.images.index_select(0, idx)
        origin = split.origin.index_select(0, idx)
        if augmenter is not None:
            images = augmenter(images, origin)
        yield Batch(images, split.labels.index_select(0, idx), origin, idx)
