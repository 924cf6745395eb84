"""From decoded source arrays to a named dataset's splits.

Train and validation come from the source's training file, split by
:func:`~routec.data.splits.holdout_mask`; test is the source's official test file.
Selection needs labels only, so class counts can be had without building images.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from routec.data.named import NamedSpec
from routec.data.preprocess import colour_pairs, gamma_decode, mnist_to_32, recolour
from routec.data.seeds import generator
from routec.data.sources import RawSource
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN, SPLIT_NAMES, holdout_mask
from routec.errors import DataError


@dataclass(frozen=True)
class Selection:
    """Which examples of one source file go into one split, and their labels there."""

    source: str
    file_split: str  # "train" or "test": the source file the examples come from
    index: np.ndarray
    source_labels: np.ndarray  # class in the source (digit, CIFAR-10 class)
    labels: np.ndarray  # class in the dataset


def select(spec: NamedSpec, labels: Mapping[str, Mapping[str, np.ndarray]], seed: int) -> dict[str, list[Selection]]:
    """Per split, the examples of every member, from the sources' label arrays alone."""
    out: dict[str, list[Selection]] = {s: [] for s in SPLIT_NAMES}
    for member in spec.members:
        lut = member.lookup()
        train_y, test_y = labels[member.source]["train"], labels[member.source]["test"]
        held = holdout_mask(train_y, seed, member.source)
        kept = lut[train_y] >= 0
        picks = {
            "train": ("train", np.flatnonzero(kept & ~held)),
            "val": ("train", np.flatnonzero(kept & held)),
            "test": ("test", np.flatnonzero(lut[test_y] >= 0)),
        }
        for split, (file_split, index) in picks.items():
            src_labels = labels[member.source][file_split][index]
            out[split].append(Selection(member.source, file_split, index, src_labels, lut[src_labels]))
    return out


def _images(sel: Selection, raw: RawSource, seed: int, native: bool = False) -> torch.Tensor:
    """Linear-light float32 N×3×32×32 for the selected examples (N×1×28×28 v/255 for native MNIST)."""
    x = torch.from_numpy(np.ascontiguousarray(raw.images(sel.file_split)[sel.index]))
    if native:
        if sel.source != "mnist":
            raise DataError(f"no native form of {sel.source}")
        return x.to(torch.float32).div_(255.0).unsqueeze(1)
    if sel.source == "mnist":
        # Colours are drawn for the whole file so an image keeps its colours in every dataset.
        c0, c1 = colour_pairs(len(raw.labels(sel.file_split)), generator(seed, "recolour", "mnist", sel.file_split))
        idx = torch.from_numpy(sel.index)
        return recolour(mnist_to_32(x), c0[idx], c1[idx])
    return gamma_decode(x)


def materialise(spec: NamedSpec, raws: Mapping[str, RawSource], seed: int) -> dict[str, np.ndarray]:
    """Every split's images, source labels, origins and source indices, ready for the cache.

    Dataset labels are not stored: they follow from source labels and the spec
    (:func:`relabel`), so that CIFAR-2, CIFAR-5 and CIFAR-10 share one entry.
    """
    labels = {s: {f: raws[s].labels(f) for f in ("train", "test")} for s in spec.sources}
    arrays: dict[str, np.ndarray] = {}
    for split, selections in select(spec, labels, seed).items():
        total = sum(len(s.index) for s in selections)
        images = np.empty((total, *spec.shape), dtype=np.float32)
        start = 0
        for sel in selections:
            images[start : start + len(sel.index)] = _images(sel, raws[sel.source], seed, spec.native).numpy()
            start += len(sel.index)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_source_labels"] = np.concatenate([s.source_labels for s in selections]).astype(np.int64)
        arrays[f"{split}_source_index"] = np.concatenate([s.index for s in selections]).astype(np.int64)
        arrays[f"{split}_origin"] = np.concatenate(
            [np.full(len(s.index), MNIST_ORIGIN if s.source == "mnist" else CIFAR_ORIGIN, np.uint8) for s in selections]
        )
    return arrays


def relabel(spec: NamedSpec, source_labels: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Dataset labels from source labels, member by member (each source appears once)."""
    labels = np.full(len(source_labels), -1, dtype=np.int64)
    for member in spec.members:
        rows = origin == member.origin
        labels[rows] = member.lookup()[source_labels[rows]]
    if (labels < 0).any():
        raise DataError(f"cached '{spec.name}' holds classes the dataset does not use; delete the cache")
    return labels
