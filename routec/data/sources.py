"""Finding the MNIST and CIFAR-10 files under a data root and decoding them once.

The decoded uint8 arrays ("raw" sources) are cached; every named dataset is
derived from them. Canonical sizes are checked so that a partial download or a
wrong archive is reported instead of silently training on less data.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routec.data import cache, readers
from routec.data.log import note
from routec.data.readers import CIFAR10_CLASSES, IMAGE_SUFFIXES, DataNotFound
from routec.errors import DataError

SOURCES: tuple[str, ...] = ("mnist", "cifar10")
SOURCE_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CANONICAL_COUNTS = {"mnist": {"train": 60000, "test": 10000}, "cifar10": {"train": 50000, "test": 10000}}
CIFAR_PY = "cifar-10-batches-py"
CIFAR_FOLDERS = "cifar-10-jpeg"
ARRAY_NAMES = ("train_x", "train_y", "test_x", "test_y")
_LAYOUT_TEXT = {
    "idx": "IDX files",
    "python": "canonical python batches",
    "folders": "class folders of images",
    "tar": "class folders of images in a .tar.gz",
}


@dataclass(frozen=True)
class SourceFiles:
    """The files one source was (or will be) read from."""

    source: str  # "mnist" or "cifar10"
    layout: str  # "idx", "python", "folders" or "tar"
    location: Path  # the folder or archive to name in messages
    files: tuple[Path, ...]  # every file whose change must rebuild the cache

    def describe(self) -> str:
        return f"{SOURCE_TITLES[self.source]} from {self.location} ({_LAYOUT_TEXT[self.layout]})"

    def fingerprint(self) -> list[tuple[str, int, int]]:
        return cache.fingerprint(self.files)


@dataclass(frozen=True)
class RawSource:
    """Decoded uint8 images and int64 labels of one source's official train/test files."""

    files: SourceFiles
    classes: tuple[str, ...]
    arrays: dict[str, np.ndarray]  # train_x, train_y, test_x, test_y (or a subset)
    cache_path: Path
    cache_hit: bool

    def images(self, split: str) -> np.ndarray:
        return self.arrays[f"{split}_x"]

    def labels(self, split: str) -> np.ndarray:
        return self.arrays[f"{split}_y"]


def locate_mnist(root: Path) -> SourceFiles:
    """``<root>/MNIST/raw/*-ubyte`` or ``*-ubyte.gz`` (uncompressed preferred)."""
    raw = root / "MNIST" / "raw"
    found: list[Path] = []
    missing: list[str] = []
    for names in MNIST_FILES.values():
        for name in names:
            for candidate in (raw / name, raw / f"{name}.gz"):
                if candidate.is_file():
                    found.append(candidate)
                    break
            else:
                missing.append(f"MNIST/raw/{name}[.gz]")
    if missing:
        raise DataNotFound(f"no MNIST found under {root}: looked for {', '.join(missing)}")
    return SourceFiles("mnist", "idx", raw, tuple(found))


def locate_cifar10(root: Path) -> SourceFiles:
    """``cifar-10-batches-py/``, else ``cifar-10-jpeg/``, else ``cifar-10-jpeg.tar.gz``."""
    py_dir = root / CIFAR_PY
    if py_dir.is_dir():
        return SourceFiles("cifar10", "python", py_dir, tuple(sorted(p for p in py_dir.iterdir() if p.is_file())))
    folder = root / CIFAR_FOLDERS
    if folder.is_dir():
        files = tuple(sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES))
        return SourceFiles("cifar10", "folders", folder, files)
    archive = root / f"{CIFAR_FOLDERS}.tar.gz"
    if archive.is_file():
        return SourceFiles("cifar10", "tar", archive, (archive,))
    raise DataNotFound(
        f"no CIFAR-10 found under {root}: looked for {CIFAR_PY}/ and {CIFAR_FOLDERS}[.tar.gz]"
    )


def locate(source: str, root: Path) -> SourceFiles:
    if source == "mnist":
        return locate_mnist(root)
    if source == "cifar10":
        return locate_cifar10(root)
    raise DataError(f"unknown data source '{source}'")


def decode(files: SourceFiles) -> dict[str, np.ndarray]:
    """Read every file of a source into uint8 arrays (the slow step the cache avoids)."""
    if files.layout == "idx":
        by_name = {p.name.removesuffix(".gz"): p for p in files.files}
        out: dict[str, np.ndarray] = {}
        for split, (img_name, lbl_name) in MNIST_FILES.items():
            x, y = readers.read_idx_pair(by_name[img_name], by_name[lbl_name])
            if x.shape[1:] != (28, 28):
                raise DataError(f"{by_name[img_name]}: expected 28×28 MNIST images, found {x.shape[1:]}")
            out[f"{split}_x"], out[f"{split}_y"] = x, y
        return out
    if files.layout == "python":
        parts = readers.read_cifar_batches_dir(files.location)
    else:
        parts, _ = readers.read_class_folders(files.location, CIFAR10_CLASSES, (32, 32), "CIFAR-10 images")
    return {
        "train_x": parts["train"][0], "train_y": parts["train"][1],
        "test_x": parts["test"][0], "test_y": parts["test"][1],
    }


def load_raw(
    files: SourceFiles,
    cache_dir: Path,
    check_counts: bool = True,
    labels_only: bool = False,
) -> RawSource:
    """The decoded arrays of ``files``, from the cache when it is current."""
    key = cache.cache_key(f"raw-{files.source}", {"layout": files.layout, "files": files.fingerprint()})
    path = cache.entry_path(cache_dir, f"raw-{files.source}", key)

    def build() -> dict[str, np.ndarray]:
        note(f"decoding {files.describe()}; first use, caching in {path}")
        return decode(files)

    only: Sequence[str] | None = ("train_y", "test_y") if labels_only else None
    result = cache.cached(cache_dir, f"raw-{files.source}", key, build, only)
    classes = MNIST_CLASSES if files.source == "mnist" else CIFAR10_CLASSES
    raw = RawSource(files, classes, result.arrays, result.path, result.hit)
    if check_counts:
        _check_counts(raw)
    return raw


def _check_counts(raw: RawSource) -> None:
    want = CANONICAL_COUNTS[raw.files.source]
    got = {s: len(raw.labels(s)) for s in want}
    if got != want:
        title = SOURCE_TITLES[raw.files.source]
        raise DataError(
            f"{raw.files.location}: expected {want['train']} train and {want['test']} test {title} images, "
            f"found {got['train']} and {got['test']}"
        )
    n_classes = len(raw.classes)
    for split in want:
        labels = raw.labels(split)
        if labels.min() < 0 or labels.max() >= n_classes:
            raise DataError(f"{raw.files.location}: {split} labels must lie in 0..{n_classes - 1}")
