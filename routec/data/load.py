"""``load_dataset``: find the files, use the cache, build what is missing.

The cache entry of a dataset holds images, origins, source indices and *source*
labels; dataset labels are applied on load (:func:`~routec.data.derive.relabel`),
so datasets that use the same images (CIFAR-2, CIFAR-5, CIFAR-10) share one entry.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from routec.data import cache, folders, sources
from routec.data.derive import materialise, relabel, select
from routec.data.download import fetch
from routec.data.folders import one_line
from routec.data.log import note
from routec.data.named import NAMED, SYNTHETIC, SYNTHETIC_SHAPE, NamedSpec, check_name, datasets_of_shape
from routec.data.readers import DataNotFound
from routec.data.root import resolve_cache_dir, resolve_data_root
from routec.data.sources import SourceFiles
from routec.data.splits import SPLIT_NAMES, VAL_DIVISOR, DatasetInfo, DatasetSplits, Split
from routec.data.synthetic import synthetic
from routec.errors import DataError


def locate_sources(spec: NamedSpec, root: Path, download: bool = False) -> dict[str, SourceFiles]:
    """The files of every source ``spec`` needs, fetching them first when allowed."""
    found: dict[str, SourceFiles] = {}
    for source in spec.sources:
        try:
            found[source] = sources.locate(source, root)
        except DataNotFound as err:
            if not download:
                raise DataNotFound(
                    err.message, hint="point --data-root or ROUTEC_DATA at the data folder, or add --download"
                ) from err
            fetch(source, root)
            found[source] = sources.locate(source, root)
    return found


def describe_sources(files: Mapping[str, SourceFiles]) -> str:
    """Which files a dataset came from, and a caveat when CIFAR-10 is not the canonical release."""
    text = "; ".join(f.describe() for f in files.values())
    if any(f.source == "cifar10" and f.layout in ("folders", "tar") for f in files.values()):
        text += (" (CIFAR-10 re-encoded as image files, e.g. JPEG: accuracies can differ slightly"
                 " from results on the canonical batches)")
    return text


class DatasetMeta(BaseModel):
    """What a dataset is, known without decoding it: for checks before any slow step."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str  # "named", "synthetic" or "folder"
    shape: tuple[int, int, int]
    classes: tuple[str, ...]


FOLDER_ONLY = ("resize", "val_fraction", "test_fraction")


def _named_options(name: str, shape: tuple[int, ...] | None, resize: bool, val_fraction: float | None,
                   test_fraction: float | None, pixels: str | None) -> None:
    """Options that only image folders take, and the shape check, for a named dataset."""
    given = [flag for flag, on in (("--resize", resize), ("--val-fraction", val_fraction is not None),
                                   ("--test-fraction", test_fraction is not None)) if on]
    if pixels not in (None, "linear") and not has_unit_pixels(name):
        given.append(f"--pixels {pixels}")
    if given:
        raise DataError(f"{', '.join(given)} applies to image folders (and --pixels unit to the "
                        f"CIFAR sets); '{name}' has fixed splits and linear-light pixels "
                        "(docs/data.md)")
    have = NAMED[name].shape if name in NAMED else SYNTHETIC_SHAPE
    if shape is not None and tuple(shape) != have:
        want = "×".join(map(str, shape))
        others = [n for n in datasets_of_shape(tuple(shape)) if n != name]
        hint = (f"datasets of {want} images: {', '.join(others)}" if others
                else "or train on a folder of your own images of that size (docs/data.md)")
        raise one_line(DataError, f"the network takes {want} images, but dataset '{name}' has "
                        f"{'×'.join(map(str, have))}", hint=hint)


def dataset_meta(
    name: str,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    *,
    shape: tuple[int, ...] | None = None,
    resize: bool = False,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    pixels: str | None = None,
) -> DatasetMeta:
    """Shape and classes of a dataset without decoding it; with ``shape``, checks it fits.

    For a folder this scans the tree and reads the file headers (and plans the
    splits), so every mismatch is reported before the slow decoding starts.
    """
    kind = check_name(name)
    if kind == "folder":
        prep = folders.prepare_folder(name, resolve_cache_dir(cache_dir), seed, shape=shape, resize=resize,
                                      val_fraction=val_fraction, test_fraction=test_fraction, pixels=pixels)
        return DatasetMeta(name=str(prep.tree.root), kind=kind, shape=prep.shape, classes=prep.tree.classes)
    _named_options(name, shape, resize, val_fraction, test_fraction, pixels)
    if kind == "synthetic":
        from routec.data.synthetic import CLASSES

        return DatasetMeta(name=name, kind=kind, shape=SYNTHETIC_SHAPE, classes=CLASSES)
    spec = NAMED[name]
    return DatasetMeta(name=name, kind=kind, shape=spec.shape, classes=spec.classes)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    *,
    download: bool = False,
    fallback_to_synthetic: bool = False,
    shape: tuple[int, ...] | None = None,
    resize: bool = False,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    pixels: str | None = None,
    normalize: bool = False,
) -> DatasetSplits:
    """A named dataset or a folder of class folders, with train/val/test splits, from the cache when current.

    ``seed`` fixes the validation hold-out and the MNIST colours. With
    ``fallback_to_synthetic`` a missing named dataset is replaced by the synthetic
    one, and a message says so. ``shape`` (the network's input, C×H×W) is checked
    before anything is decoded. Folders only: ``resize`` scales every image to
    ``shape``; ``val_fraction``/``test_fraction`` set the hold-out (default 0.1
    each); ``pixels`` is "linear" (linear light, the default) or "unit" (v/255).
    ``normalize`` standardises every channel with the training split's mean and
    standard deviation (any dataset; the numbers are in ``info.normalization``).
    """
    kind = check_name(name)
    if kind == "folder":
        data = folders.load_folder(name, resolve_cache_dir(cache_dir), seed, shape=shape, resize=resize,
                                   val_fraction=val_fraction, test_fraction=test_fraction, pixels=pixels)
        assert isinstance(data, DatasetSplits)
    else:
        _named_options(name, shape, resize, val_fraction, test_fraction, pixels)
        data = _load_named(name, root, cache_dir, seed, download, fallback_to_synthetic)
        if pixels == "unit" and data.info.name == name:  # (not a synthetic stand-in)
            data = unit_pixels(data)
    return normalized(data) if normalize else data


def has_unit_pixels(name: str) -> bool:
    """Whether named dataset ``name`` can be given as v/255 (its images are 8-bit sRGB
    files: the CIFAR sets), as models trained elsewhere usually expect."""
    return name in NAMED and not NAMED[name].native and \
        {m.source for m in NAMED[name].members} == {"cifar10"}


def unit_pixels(data: DatasetSplits) -> DatasetSplits:
    """The CIFAR images as v/255 instead of linear light, exactly: every stored value is
    (v/255)^2.2 of an 8-bit v, found again in the 256-entry table it came from."""
    from routec.data.preprocess import gamma_decode

    table = gamma_decode(torch.arange(256, dtype=torch.uint8)).contiguous()

    def convert(split: Split) -> Split:
        v = torch.searchsorted(table, split.images.contiguous()).clamp_(max=255)
        if not torch.equal(table[v], split.images):
            raise DataError(f"'{data.info.name}' holds pixels that are not 8-bit sRGB values; "
                            "delete its cache")
        return Split(v.to(torch.float32).div_(255.0), split.labels, split.origin,
                     split.source_index)

    return DatasetSplits(data.info.model_copy(update={"pixels": "unit"}),
                         *(convert(getattr(data, s)) for s in SPLIT_NAMES),
                         cache_path=data.cache_path, cache_hit=data.cache_hit)


def _load_named(name: str, root: str | Path | None, cache_dir: str | Path | None, seed: int, download: bool,
                fallback_to_synthetic: bool) -> DatasetSplits:
    if name == SYNTHETIC:
        return synthetic(seed=seed)
    spec = NAMED[name]
    root_path, cache_path = resolve_data_root(root), resolve_cache_dir(cache_dir)
    try:
        files = locate_sources(spec, root_path, download)
    except DataNotFound as err:
        if not fallback_to_synthetic:
            raise
        note(f"{err.message}\nusing the built-in synthetic dataset instead of '{name}'")
        return synthetic(seed=seed)
    tags = spec.cache_tag
    parts_of_key: dict[str, object] = {
        "members": tags, "seed": seed, "val_divisor": VAL_DIVISOR,
        "sources": {s: f.fingerprint() for s, f in files.items()}}
    if spec.native:  # the paper's forms keep the keys they always had
        parts_of_key["shape"] = list(spec.shape)
    key = cache.cache_key("images", parts_of_key)

    def build() -> dict[str, np.ndarray]:
        raws = {s: sources.load_raw(f, cache_path) for s, f in files.items()}
        note(f"building dataset '{name}' (seed {seed}) from the decoded sources")
        return materialise(spec, raws, seed)

    result = cache.cached(cache_path, f"{tags}-seed{seed}", key, build)
    a = result.arrays
    parts = {
        s: Split(
            torch.from_numpy(a[f"{s}_images"]),
            torch.from_numpy(relabel(spec, a[f"{s}_source_labels"], a[f"{s}_origin"])),
            torch.from_numpy(a[f"{s}_origin"]),
            torch.from_numpy(a[f"{s}_source_index"]),
        )
        for s in SPLIT_NAMES
    }
    info = DatasetInfo(
        name=name,
        classes=spec.classes,
        sizes={s: len(p) for s, p in parts.items()},
        seed=seed,
        source=describe_sources(files),
        description=spec.description,
        shape=spec.shape,
        flip=spec.flip,
    )
    return DatasetSplits(info, parts["train"], parts["val"], parts["test"], result.path, result.hit)


_CHUNK = 4096


def normalized(data: DatasetSplits) -> DatasetSplits:
    """Every split standardised per channel with the training split's mean and standard deviation.

    A channel that is constant in training keeps a divisor of 1. Images kept as
    stored integers (image folders) get the statistics from the counts of their
    values and are standardised per batch, in the same float32 operations.
    """
    from routec.data.stored import StoredImages

    x = data.train.images
    if isinstance(x, StoredImages):
        mean, std = x.channel_stats()
    else:
        mean, std = _tensor_stats(x)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    c = len(mean)
    m, s = mean.to(torch.float32).view(1, c, 1, 1), std.to(torch.float32).view(1, c, 1, 1)

    def apply(split: Split) -> Split:
        if isinstance(split.images, StoredImages):
            images = split.images.normalized(tuple(m.view(-1).tolist()), tuple(s.view(-1).tolist()))
            return Split(images, split.labels, split.origin, split.source_index)
        return Split((split.images - m) / s, split.labels, split.origin, split.source_index)

    info = data.info.model_copy(update={"normalization": (tuple(mean.tolist()), tuple(std.tolist()))})
    return DatasetSplits(info, apply(data.train), apply(data.val), apply(data.test), data.cache_path,
                         data.cache_hit)


def _tensor_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (float64) of N×C×H×W float images, in chunks."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(x), _CHUNK):
        chunk = x[start:start + _CHUNK].to(torch.float64)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = len(x) * x.shape[2] * x.shape[3]
    mean = total / count
    return mean, (squares / count - mean.square()).clamp_min(0.0).sqrt()


def split_table(data: DatasetSplits, max_rows: int = 40) -> str:
    """Per-class counts of every split as a small text table (totals only beyond ``max_rows`` classes)."""
    counts = {s: data.split(s).class_counts(data.num_classes) for s in SPLIT_NAMES}
    width = max([len("class"), len("total")] + [len(c) for c in data.classes[:max_rows]])
    cols = [max(len(s), len(f"{sum(counts[s]):,}")) for s in SPLIT_NAMES]
    lines = ["  " + "class".ljust(width) + "".join(f"  {s:>{w}}" for s, w in zip(SPLIT_NAMES, cols, strict=True))]
    if data.num_classes <= max_rows:
        for i, name in enumerate(data.classes):
            lines.append("  " + name.ljust(width) + "".join(
                f"  {counts[s][i]:>{w},}" for s, w in zip(SPLIT_NAMES, cols, strict=True)))
    lines.append("  " + "total".ljust(width) + "".join(
        f"  {sum(counts[s]):>{w},}" for s, w in zip(SPLIT_NAMES, cols, strict=True)))
    return "\n".join(lines)


class DatasetSummary(BaseModel):
    """Classes and per-split class counts, computed from labels only."""

    model_config = ConfigDict(frozen=True)

    name: str
    classes: tuple[str, ...]
    counts: dict[str, list[int]]
    source: str


def dataset_summary(
    name: str, root: str | Path | None = None, cache_dir: str | Path | None = None, seed: int = 0
) -> DatasetSummary:
    """Class counts of every split without building the float images (for ``data list``)."""
    kind = check_name(name)
    if kind == "folder":
        prep = folders.prepare_folder(name, resolve_cache_dir(cache_dir), seed)
        labels = np.array([f.label for f in prep.tree.files], dtype=np.int64)
        counts = {s: np.bincount(labels[prep.assignment[s]], minlength=len(prep.tree.classes)).tolist()
                  for s in SPLIT_NAMES}
        return DatasetSummary(name=str(prep.tree.root), classes=prep.tree.classes, counts=counts,
                              source=prep.describe())
    if name == SYNTHETIC:
        data = synthetic(seed=seed)
        counts = {s: data.split(s).class_counts(data.num_classes) for s in SPLIT_NAMES}
        return DatasetSummary(name=name, classes=data.classes, counts=counts, source=data.info.source)
    spec = NAMED[name]
    files = locate_sources(spec, resolve_data_root(root))
    cache_path = resolve_cache_dir(cache_dir)
    raws = {s: sources.load_raw(files[s], cache_path, labels_only=True) for s in spec.sources}
    labels = {s: {f: raw.labels(f) for f in ("train", "test")} for s, raw in raws.items()}
    chosen = select(spec, labels, seed)
    counts = {
        split: np.bincount(np.concatenate([s.labels for s in sels]), minlength=len(spec.classes)).tolist()
        for split, sels in chosen.items()
    }
    return DatasetSummary(name=name, classes=spec.classes, counts=counts, source=describe_sources(files))
