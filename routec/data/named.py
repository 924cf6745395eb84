"""The named datasets of the paper: which source classes make up each, under which labels.

Each named dataset is a list of *members*: a source (MNIST or CIFAR-10) and a map
from source class to dataset label; classes not in the map are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from routec.data.readers import CIFAR10_CLASSES
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN
from routec.errors import DataError

SYNTHETIC = "synthetic"
SYNTHETIC_SHAPE = (3, 32, 32)
_C = {name: i for i, name in enumerate(CIFAR10_CLASSES)}


@dataclass(frozen=True)
class Member:
    """The part of a dataset taken from one source: ``mapping`` = (source class, label) pairs."""

    source: str
    mapping: tuple[tuple[int, int], ...]

    def lookup(self) -> np.ndarray:
        """Source class → dataset label, −1 for dropped classes."""
        lut = np.full(10, -1, dtype=np.int64)
        for src, dst in self.mapping:
            lut[src] = dst
        return lut

    @property
    def origin(self) -> int:
        return MNIST_ORIGIN if self.source == "mnist" else CIFAR_ORIGIN

    @property
    def tag(self) -> str:
        """Source and kept classes: datasets with equal tags share their cached images."""
        kept = sorted(src for src, _ in self.mapping)
        return f"{self.source}-{'all' if kept == list(range(10)) else ''.join(map(str, kept))}"


@dataclass(frozen=True)
class NamedSpec:
    """A named dataset. ``native``: images as the source stores them (MNIST 1×28×28, v/255)
    instead of the paper's 3×32×32 linear-light form."""

    name: str
    classes: tuple[str, ...]
    members: tuple[Member, ...]
    description: str
    shape: tuple[int, int, int] = (3, 32, 32)
    native: bool = False
    flip: bool = True  # augmentation mirrors origin-1 (CIFAR) images; digits never are

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.source for m in self.members))

    @property
    def cache_tag(self) -> str:
        """Datasets with equal tags share one cache entry of images."""
        tags = "+".join(m.tag for m in self.members)
        return f"{tags}-{'x'.join(map(str, self.shape))}" if self.native else tags


def _one_vs_other(positives: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    other = len(positives)
    return tuple((i, positives.index(c) if c in positives else other) for i, c in enumerate(CIFAR10_CLASSES))


_HYBRID_CIFAR = ("airplane", "automobile", "deer", "frog", "horse")
NAMED: dict[str, NamedSpec] = {
    spec.name: spec
    for spec in (
        NamedSpec(
            "hybrid",
            ("0", "1", "2", "3", "4", *_HYBRID_CIFAR),
            (
                Member("mnist", tuple((d, d) for d in range(5))),
                Member("cifar10", tuple((_C[c], 5 + i) for i, c in enumerate(_HYBRID_CIFAR))),
            ),
            "recoloured MNIST digits 0-4 and five CIFAR-10 classes (labels 5-9, CIFAR-10 order)",
        ),
        NamedSpec("cifar2", ("horse", "other"), (Member("cifar10", _one_vs_other(("horse",))),),
                  "CIFAR-10 as horse vs other"),
        NamedSpec("cifar5", ("cat", "deer", "dog", "horse", "other"),
                  (Member("cifar10", _one_vs_other(("cat", "deer", "dog", "horse"))),),
                  "CIFAR-10 as cat, deer, dog, horse vs other"),
        NamedSpec("cifar10", CIFAR10_CLASSES, (Member("cifar10", tuple((i, i) for i in range(10))),),
                  "CIFAR-10 as is"),
        NamedSpec("mnist", tuple(str(d) for d in range(10)), (Member("mnist", tuple((d, d) for d in range(10))),),
                  "recoloured MNIST, all ten digits"),
        NamedSpec("mnist28", tuple(str(d) for d in range(10)), (Member("mnist", tuple((d, d) for d in range(10))),),
                  "MNIST as distributed: grayscale 1×28×28, v/255", shape=(1, 28, 28), native=True, flip=False),
    )
}


def available_datasets() -> tuple[str, ...]:
    """Every name :func:`load_dataset` accepts."""
    return (*NAMED, SYNTHETIC)


def check_name(name: str) -> str:
    """'named', 'synthetic' or 'folder' (an existing folder of class folders); else an error."""
    from routec.data.folders import is_folder_name, looks_like_path, one_line

    if name == SYNTHETIC:
        return "synthetic"
    if name in NAMED:
        return "named"
    if is_folder_name(name):
        return "folder"
    if looks_like_path(name):
        raise one_line(DataError, f"{name}: no such folder",
                        hint="--data takes a dataset name or a folder of class folders (DIR/<class>/*.png)")
    raise one_line(DataError, f"unknown dataset '{name}'; known datasets: {', '.join(available_datasets())}",
                    hint="or a folder of your own images, DIR/<class>/*.png")


def datasets_of_shape(shape: tuple[int, ...]) -> list[str]:
    """Named datasets whose images are ``shape`` (for hints)."""
    found = [n for n, spec in NAMED.items() if spec.shape == tuple(shape)]
    return found + ([SYNTHETIC] if tuple(shape) == SYNTHETIC_SHAPE else [])
