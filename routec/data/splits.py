"""The objects a loaded dataset is made of, and the validation hold-out rule.

Pydantic describes the dataset at the boundary (name, classes, sizes, where it
came from); the examples themselves are plain tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from routec.data.seeds import generator

if TYPE_CHECKING:
    from routec.data.stored import StoredImages

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
MNIST_ORIGIN = 0
CIFAR_ORIGIN = 1
# One in VAL_DIVISOR training examples of every class (rounded down) is held out.
VAL_DIVISOR = 10


class DatasetInfo(BaseModel):
    """What a dataset is: printed by the CLI, stored with results."""

    model_config = ConfigDict(frozen=True)

    name: str
    classes: tuple[str, ...]
    sizes: dict[str, int]
    seed: int
    source: str  # human-readable: which files (or generator) the examples came from
    description: str = ""
    shape: tuple[int, int, int] = (3, 32, 32)  # C×H×W of every image
    pixels: str = "linear"  # "linear": linear light; "unit": stored values v/255 (or v/65535)
    shift: float = 0.125  # augmentation: largest shift as a fraction of the image's side
    flip: bool = True  # augmentation: mirror origin-1 images left-right with p = 0.5
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) per channel
    files_digest: str | None = None  # image folders: hash of the file list the splits were drawn from


@dataclass(frozen=True)
class Split:
    """N examples: images N×C×H×W float32 (linear light), labels N int64, origin N uint8.

    ``images`` is a tensor (the named datasets, in memory) or, for image folders,
    :class:`~routec.data.stored.StoredImages`: the same indexing (``x[i]``,
    ``x[a:b]``, ``x[idx]``, ``x.index_select(0, idx)``, ``len``, ``shape``) gives
    float32 tensors read from the cache per batch. Code that reads a split takes
    batches of it, never the whole ``images`` at once.

    ``source_index`` (N int64, optional) is each example's position in the file it
    came from (the MNIST or CIFAR-10 train or test file, or the sorted file list of
    an image folder), to trace an example back.
    """

    images: torch.Tensor | StoredImages
    labels: torch.Tensor
    origin: torch.Tensor
    source_index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.images)
        sizes = [len(self.labels), len(self.origin)]
        if self.source_index is not None:
            sizes.append(len(self.source_index))
        if any(k != n for k in sizes):
            raise ValueError(f"split has {n} images but labels/origin/source_index of lengths {sizes}")

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


@dataclass(frozen=True)
class DatasetSplits:
    """A named dataset: train, validation (held out from train) and official test split."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    cache_path: Path | None = None
    cache_hit: bool = False

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    @property
    def num_classes(self) -> int:
        return len(self.info.classes)

    def split(self, name: str) -> Split:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split '{name}', expected one of {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


def holdout_mask(labels: np.ndarray, seed: int, tag: str) -> np.ndarray:
    """True for the validation examples: a seeded 1/VAL_DIVISOR of every class.

    Stratified per class so that validation class counts are fixed numbers, and
    decided per *source* (tag) so that every dataset built on the same source holds
    out the same images.
    """
    mask = np.zeros(len(labels), dtype=bool)
    gen = generator(seed, "holdout", tag)
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        perm = torch.randperm(len(idx), generator=gen).numpy()
        mask[idx[perm[: len(idx) // VAL_DIVISOR]]] = True
    return mask


def sample_indices(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``k`` of ``n`` examples drawn without replacement, seeded: splits are
    stored in order (hybrid: every MNIST digit, then every CIFAR image), so the first
    ``k`` examples of a split would be one kind of image only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:min(k, n)]
