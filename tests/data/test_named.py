"""The named datasets on the real files: counts, pixels, splits, seeding, cache use.

Skipped when no real MNIST/CIFAR-10 is found (see conftest). Every dataset is
loaded through one per-run cache, so CIFAR-10 is decoded once per run.
"""
from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from routec.data import dataset_summary, load_dataset, sources
from routec.data.readers import CIFAR10_CLASSES
from routec.errors import DataError
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN, VAL_DIVISOR, DatasetSplits, Split

Loader = Callable[[str], DatasetSplits]


def _source_index(split: Split) -> torch.Tensor:
    assert split.source_index is not None
    return split.source_index

MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR_TRAIN = [5000] * 10
CIFAR_TEST = [1000] * 10
HYBRID_CIFAR = ["airplane", "automobile", "deer", "frog", "horse"]


def _full_counts(name: str) -> tuple[list[int], list[int], list[str]]:
    """Per dataset class, the known full-train and test counts of MNIST / CIFAR-10."""
    if name == "mnist":
        return MNIST_TRAIN, MNIST_TEST, [str(d) for d in range(10)]
    if name == "cifar10":
        return CIFAR_TRAIN, CIFAR_TEST, list(CIFAR10_CLASSES)
    if name == "hybrid":
        idx = [CIFAR10_CLASSES.index(c) for c in HYBRID_CIFAR]
        return (MNIST_TRAIN[:5] + [CIFAR_TRAIN[i] for i in idx], MNIST_TEST[:5] + [CIFAR_TEST[i] for i in idx],
                [str(d) for d in range(5)] + HYBRID_CIFAR)
    positives = {"cifar2": ["horse"], "cifar5": ["cat", "deer", "dog", "horse"]}[name]
    pos = [CIFAR10_CLASSES.index(c) for c in positives]
    rest = [i for i in range(10) if i not in pos]
    return ([CIFAR_TRAIN[i] for i in pos] + [sum(CIFAR_TRAIN[i] for i in rest)],
            [CIFAR_TEST[i] for i in pos] + [sum(CIFAR_TEST[i] for i in rest)], positives + ["other"])


def _val_counts(name: str) -> list[int]:
    """1/VAL_DIVISOR of every *source* class, summed into the dataset's classes."""
    if name in ("cifar2", "cifar5"):
        train, _, _ = _full_counts(name)
        return [t // VAL_DIVISOR for t in train[:-1]] + [(CIFAR_TRAIN[0] // VAL_DIVISOR) * (10 - len(train) + 1)]
    train, _, _ = _full_counts(name)
    return [t // VAL_DIVISOR for t in train]


NAMES = ["hybrid", "cifar2", "cifar5", "cifar10", "mnist"]


@pytest.mark.parametrize("name", NAMES)
def test_class_counts_of_every_split(real_dataset: Loader, name: str) -> None:
    data = real_dataset(name)
    full_train, full_test, classes = _full_counts(name)
    k = len(classes)
    assert list(data.classes) == classes
    train, val, test = (data.split(s).class_counts(k) for s in ("train", "val", "test"))
    assert [a + b for a, b in zip(train, val, strict=True)] == full_train
    assert test == full_test
    assert val == _val_counts(name)
    assert data.info.sizes == {"train": sum(train), "val": sum(val), "test": sum(test)}


@pytest.mark.parametrize("name", NAMES)
def test_summary_agrees_with_loaded_data(real_root: Path, run_cache: Path, real_dataset: Loader, name: str) -> None:
    data = real_dataset(name)
    summary = dataset_summary(name, real_root, run_cache)
    for split in ("train", "val", "test"):
        assert summary.counts[split] == data.split(split).class_counts(data.num_classes)


@pytest.mark.parametrize("name", NAMES)
def test_tensors_and_origin(real_dataset: Loader, name: str) -> None:
    data = real_dataset(name)
    for split in ("train", "val", "test"):
        s = data.split(split)
        assert s.images.shape[1:] == (3, 32, 32) and s.images.dtype == torch.float32
        assert s.labels.dtype == torch.int64 and s.origin.dtype == torch.uint8
        assert float(s.images.min()) >= 0.0 and float(s.images.max()) <= 1.0
        if name == "hybrid":
            want = torch.where(s.labels < 5, MNIST_ORIGIN, CIFAR_ORIGIN)
        else:
            want = torch.full_like(s.labels, MNIST_ORIGIN if name == "mnist" else CIFAR_ORIGIN)
        assert torch.equal(s.origin.long(), want)


@pytest.mark.parametrize("name", ["hybrid", "cifar10", "mnist"])
def test_validation_is_held_out_from_train(real_dataset: Loader, name: str) -> None:
    data = real_dataset(name)
    for origin in (MNIST_ORIGIN, CIFAR_ORIGIN):
        tr = _source_index(data.train)[data.train.origin == origin]
        va = _source_index(data.val)[data.val.origin == origin]
        if len(tr) == 0:
            continue
        assert len(np.intersect1d(tr.numpy(), va.numpy())) == 0
        assert len(torch.unique(torch.cat([tr, va]))) == len(tr) + len(va)


def _independent_mnist(root: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST straight from the IDX bytes, without routec's reader."""
    raw = root / "MNIST" / "raw"

    def read(name: str) -> bytes:
        plain = raw / name
        return plain.read_bytes() if plain.exists() else gzip.decompress((raw / f"{name}.gz").read_bytes())

    images = np.frombuffer(read(f"{prefix}-images-idx3-ubyte"), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(read(f"{prefix}-labels-idx1-ubyte"), np.uint8, offset=8)
    return images, labels


def test_mnist_pixels_are_recoloured_resized_digits(real_root: Path, real_dataset: Loader) -> None:
    data = real_dataset("hybrid")
    images, labels = _independent_mnist(real_root, "train")
    split = data.train
    rows = torch.nonzero(split.origin == MNIST_ORIGIN).flatten()[:: 97][:300]
    src = _source_index(split)[rows].numpy()
    np.testing.assert_array_equal(split.labels[rows].numpy(), labels[src])
    v = torch.nn.functional.interpolate(
        torch.from_numpy(images[src] / 255.0).unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False
    )[:, 0].double()
    got = split.images[rows].double()
    for i in range(len(rows)):
        vi = v[i]
        # Solve pixel = c0 + (c1 − c0)·v for c0, c1 by least squares, per channel.
        design = torch.stack([1 - vi.flatten(), vi.flatten()], dim=1)
        sol = torch.linalg.lstsq(design, got[i].reshape(3, -1).T).solution  # 2×3
        c0, c1 = sol[0], sol[1]
        torch.testing.assert_close(design @ sol, got[i].reshape(3, -1).T, atol=1e-5, rtol=0)
        assert float((c1 - c0).norm()) >= 0.3 - 1e-5
        assert float(c0.min()) >= -1e-5 and float(c1.max()) <= 1 + 1e-5


def test_mnist28_is_the_idx_files_and_shares_mnists_holdout(real_root: Path, real_dataset: Loader) -> None:
    native, paper = real_dataset("mnist28"), real_dataset("mnist")
    assert native.info.shape == (1, 28, 28) and not native.info.flip
    for split, prefix in (("train", "train"), ("val", "train"), ("test", "t10k")):
        images, labels = _independent_mnist(real_root, prefix)
        part = native.split(split)
        src = _source_index(part).numpy()
        assert part.images.shape == (len(src), 1, 28, 28)
        np.testing.assert_array_equal(part.labels.numpy(), labels[src])
        rows = np.arange(0, len(src), 53)
        np.testing.assert_allclose(part.images[rows, 0].numpy(), images[src[rows]] / 255.0, atol=1e-7)
        assert torch.equal(_source_index(part), _source_index(paper.split(split)))


def test_cifar_pixels_are_gamma_decoded_files(real_root: Path, real_dataset: Loader) -> None:
    data = real_dataset("cifar10")
    files = sources.locate_cifar10(real_root)
    picks = [0, 1, 999, 1000, 5555, 9999]  # test split: 1000 per class in class order, then file order
    if files.layout != "tar":
        pytest.skip("independent check written for the .tar.gz layout")
    want: dict[int, np.ndarray] = {}
    names = {f"cifar-10-jpeg/test/{CIFAR10_CLASSES[i // 1000]}/{i % 1000:04d}.jpg": i for i in picks}
    with tarfile.open(files.location) as tar:
        for member in tar:
            if member.name in names:
                fh = tar.extractfile(member)
                assert fh is not None
                want[names[member.name]] = np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"))
    assert len(want) == len(picks)
    for i, rgb in want.items():
        expect = (rgb.transpose(2, 0, 1).astype(np.float64) / 255.0) ** 2.2
        np.testing.assert_allclose(data.test.images[i].numpy(), expect, atol=1e-6)
        assert int(data.test.labels[i]) == i // 1000


def test_hybrid_and_mnist_share_colours_and_holdout(real_dataset: Loader) -> None:
    hybrid, mnist = real_dataset("hybrid"), real_dataset("mnist")
    h = hybrid.val
    m_pos = {int(k): i for i, k in enumerate(_source_index(mnist.val))}
    rows = torch.nonzero(h.origin == MNIST_ORIGIN).flatten()[:200]
    for r in rows.tolist():
        j = m_pos[int(_source_index(h)[r])]  # same hold-out: the image is in mnist's val too
        assert torch.equal(h.images[r], mnist.val.images[j])


def test_second_load_uses_cache(real_root: Path, run_cache: Path, real_dataset: Loader,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = real_dataset("cifar5")

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached dataset must not be decoded again")

    monkeypatch.setattr(sources, "decode", no_decoding)
    monkeypatch.setattr(sources, "load_raw", no_decoding)
    again = load_dataset("cifar5", real_root, run_cache)
    assert again.cache_hit and again.cache_path == first.cache_path
    assert torch.equal(again.train.images[:50], first.train.images[:50])


def test_seed_changes_holdout_and_colours(real_root: Path, run_cache: Path, real_dataset: Loader) -> None:
    base = real_dataset("mnist")
    other = load_dataset("mnist", real_root, run_cache, seed=1)
    assert not torch.equal(_source_index(base.val).sort().values, _source_index(other.val).sort().values)
    assert base.test.images.shape == other.test.images.shape
    assert torch.equal(base.test.labels, other.test.labels)  # the test split never changes
    assert not torch.equal(base.test.images[:20], other.test.images[:20])  # but colours follow the seed
    assert load_dataset("mnist", real_root, run_cache, seed=1).cache_hit


def test_cifar_unit_pixels_are_the_files_over_255(real_root: Path, run_cache: Path,
                                                  real_dataset: Loader) -> None:
    """--pixels unit: the CIFAR files' 8-bit values / 255 exactly (what models trained
    elsewhere expect), the same images as the linear-light form, and nothing else."""
    from routec.data.load import load_dataset

    linear = real_dataset("cifar10")
    unit = load_dataset("cifar10", real_root, run_cache, seed=0, pixels="unit")
    assert unit.info.pixels == "unit" and linear.info.pixels != "unit"
    for split in ("train", "val", "test"):
        u, lin = unit.split(split).images, linear.split(split).images
        assert u.shape == lin.shape
        v = u * 255.0
        assert torch.equal(v, v.round()) and 0 <= float(v.min()) and float(v.max()) <= 255
        rows = slice(0, 2000)
        np.testing.assert_allclose(((v[rows].double() / 255.0) ** 2.2).numpy(),
                                   lin[rows].double().numpy(), atol=1e-6)
    with pytest.raises(DataError, match="applies to image folders"):
        load_dataset("hybrid", real_root, run_cache, seed=0, pixels="unit")
