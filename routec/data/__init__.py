"""Datasets for routec: MNIST, CIFAR-10 and the paper's hybrid set, in linear light.

``load_dataset(name)`` gives train/val/test splits of float32 N×3×32×32 images,
int64 labels and a per-example origin (0 = MNIST, 1 = CIFAR); ``batches`` and
``Augmenter`` turn a split into augmented training minibatches. Decoded files are
cached so that only the first load is slow.

Names are imported on first use (``routec --help`` needs no torch).
"""
from __future__ import annotations

import sys
import types
from typing import Any

from routec.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Augmenter": "routec.data.augmentation",
    "AugmentParams": "routec.data.augmentation",
    "augment": "routec.data.augmentation",
    "Batch": "routec.data.batches",
    "batches": "routec.data.batches",
    "PREPROCESS_VERSION": "routec.data.cache",
    "DatasetSummary": "routec.data.load",
    "dataset_summary": "routec.data.load",
    "load_dataset": "routec.data.load",
    "NAMED": "routec.data.named",
    "available_datasets": "routec.data.named",
    "gamma_encode": "routec.data.preprocess",
    "CIFAR10_CLASSES": "routec.data.readers",
    "DataNotFound": "routec.data.readers",
    "resolve_cache_dir": "routec.data.root",
    "resolve_data_root": "routec.data.root",
    "CIFAR_ORIGIN": "routec.data.splits",
    "MNIST_ORIGIN": "routec.data.splits",
    "VAL_DIVISOR": "routec.data.splits",
    "DatasetInfo": "routec.data.splits",
    "DatasetSplits": "routec.data.splits",
    "Split": "routec.data.splits",
    "synthetic": "routec.data.synthetic",
    "DatasetMeta": "routec.data.load",
    "dataset_meta": "routec.data.load",
    "split_table": "routec.data.load",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)


class _Package(types.ModuleType):
    """Importing a submodule sets it as an attribute of the package, which would hide
    the function of the same name (``synthetic``, ``batches``); such submodules stay
    reachable through ``sys.modules`` and ``from routec.data.synthetic import ...``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
