"""Datasets for routec: MNIST, CIFAR-10 and the paper's hybrid set, in linear light.

``load_dataset(name)`` gives train/val/test splits of float32 N×3×32×32 images,
int64 labels and a per-example origin (0 = MNIST, 1 = CIFAR); ``batches`` and
``Augmenter`` turn a split into augmented training minibatches. Decoded files are
cached so that only the first load is slow.
"""
from __future__ import annotations

from routec.data.augmentation import Augmenter, AugmentParams, augment
from routec.data.batches import Batch, batches
from routec.data.cache import PREPROCESS_VERSION
from routec.data.load import DatasetSummary, dataset_summary, load_dataset
from routec.data.named import NAMED, available_datasets
from routec.data.preprocess import gamma_encode
from routec.data.readers import CIFAR10_CLASSES, DataNotFound
from routec.data.root import resolve_cache_dir, resolve_data_root
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN, VAL_DIVISOR, DatasetInfo, DatasetSplits, Split
from routec.data.synthetic import synthetic

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR_ORIGIN",
    "MNIST_ORIGIN",
    "NAMED",
    "PREPROCESS_VERSION",
    "VAL_DIVISOR",
    "AugmentParams",
    "Augmenter",
    "Batch",
    "DataNotFound",
    "DatasetInfo",
    "DatasetSplits",
    "DatasetSummary",
    "Split",
    "augment",
    "available_datasets",
    "batches",
    "dataset_summary",
    "gamma_encode",
    "load_dataset",
    "resolve_cache_dir",
    "resolve_data_root",
    "synthetic",
]
