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

from routec.data import cache, sources
from routec.data.derive import materialise, relabel, select
from routec.data.download import fetch
from routec.data.log import note
from routec.data.named import NAMED, SYNTHETIC, NamedSpec, check_name
from routec.data.readers import DataNotFound
from routec.data.root import resolve_cache_dir, resolve_data_root
from routec.data.sources import SourceFiles
from routec.data.splits import SPLIT_NAMES, VAL_DIVISOR, DatasetInfo, DatasetSplits, Split
from routec.data.synthetic import synthetic


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


def load_dataset(
    name: str,
    root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    *,
    download: bool = False,
    fallback_to_synthetic: bool = False,
) -> DatasetSplits:
    """A named dataset with train/val/test splits, from the cache when current.

    ``seed`` fixes the validation hold-out and the MNIST colours. With
    ``fallback_to_synthetic`` a missing dataset is replaced by the synthetic one,
    and a message says so.
    """
    check_name(name)
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
    tags = "+".join(m.tag for m in spec.members)
    key = cache.cache_key(
        "images",
        {"members": tags, "seed": seed, "val_divisor": VAL_DIVISOR,
         "sources": {s: f.fingerprint() for s, f in files.items()}},
    )

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
    )
    return DatasetSplits(info, parts["train"], parts["val"], parts["test"], result.path, result.hit)


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
    check_name(name)
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
