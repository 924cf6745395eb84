"""Finding the source files under a root, and decoding them once into the cache."""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from routec.data import cache, readers, sources
from routec.data.readers import DataNotFound
from routec.errors import DataError

FakeMnist = Callable[..., dict[str, np.ndarray]]


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(module, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_locate_mnist_missing_names_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        sources.locate_mnist(tmp_path)
    assert f"no MNIST found under {tmp_path}" in err.value.message
    assert "MNIST/raw/train-images-idx3-ubyte[.gz]" in err.value.message


def test_locate_mnist_partial(tmp_path: Path, fake_mnist: FakeMnist) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFound, match=r"t10k-labels-idx1-ubyte\[\.gz\]$"):
        sources.locate_mnist(tmp_path)


def test_locate_cifar_missing(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        sources.locate_cifar10(tmp_path)
    assert err.value.message == (
        f"no CIFAR-10 found under {tmp_path}: looked for cifar-10-batches-py/ and cifar-10-jpeg[.tar.gz]"
    )


def test_locate_cifar_prefers_canonical_batches(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-jpeg.tar.gz").write_bytes(b"")
    assert sources.locate_cifar10(tmp_path).layout == "tar"
    (tmp_path / "cifar-10-jpeg" / "train").mkdir(parents=True)
    assert sources.locate_cifar10(tmp_path).layout == "folders"
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert sources.locate_cifar10(tmp_path).layout == "python"


@pytest.mark.parametrize("gz", [True, False])
def test_raw_mnist_decoded_once(
    tmp_path: Path, fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch, gz: bool
) -> None:
    written = fake_mnist(tmp_path / "root", gz=gz)
    calls = _count_calls(monkeypatch, readers, "read_idx_pair")
    files = sources.locate_mnist(tmp_path / "root")
    first = sources.load_raw(files, tmp_path / "cache", check_counts=False)
    assert not first.cache_hit and len(calls) == 2  # train and test pairs
    second = sources.load_raw(files, tmp_path / "cache", check_counts=False)
    assert second.cache_hit and len(calls) == 2  # nothing re-read
    for name, arr in written.items():
        np.testing.assert_array_equal(second.arrays[name], arr)


def test_raw_rebuilt_when_source_changes(
    tmp_path: Path, fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    fake_mnist(root)
    calls = _count_calls(monkeypatch, sources, "decode")
    sources.load_raw(sources.locate_mnist(root), tmp_path / "cache", check_counts=False)
    assert sources.load_raw(sources.locate_mnist(root), tmp_path / "cache", check_counts=False).cache_hit
    new = fake_mnist(root, seed=5)  # same sizes, new pixels
    stamp = (2_000_000_000, 2_000_000_000)
    for f in (root / "MNIST" / "raw").iterdir():
        os.utime(f, ns=stamp)  # even a different mtime alone would do; make it certain
    again = sources.load_raw(sources.locate_mnist(root), tmp_path / "cache", check_counts=False)
    assert not again.cache_hit and len(calls) == 2
    np.testing.assert_array_equal(again.arrays["train_x"], new["train_x"])
    assert len(list((tmp_path / "cache").glob("raw-mnist-*.pt"))) == 1  # the stale entry is gone


def test_raw_rebuilt_when_version_changes(
    tmp_path: Path, fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path / "root")
    files = sources.locate_mnist(tmp_path / "root")
    calls = _count_calls(monkeypatch, sources, "decode")
    sources.load_raw(files, tmp_path / "cache", check_counts=False)
    monkeypatch.setattr(cache, "PREPROCESS_VERSION", cache.PREPROCESS_VERSION + 1)
    assert not sources.load_raw(files, tmp_path / "cache", check_counts=False).cache_hit
    assert len(calls) == 2


def test_raw_corrupt_cache_rebuilt(
    tmp_path: Path, fake_mnist: FakeMnist, capsys: pytest.CaptureFixture[str]
) -> None:
    written = fake_mnist(tmp_path / "root")
    files = sources.locate_mnist(tmp_path / "root")
    first = sources.load_raw(files, tmp_path / "cache", check_counts=False)
    blob = first.cache_path.read_bytes()
    tmp = first.cache_path.with_name("partial")
    tmp.write_bytes(blob[: len(blob) - 200])
    os.replace(tmp, first.cache_path)
    capsys.readouterr()
    again = sources.load_raw(files, tmp_path / "cache", check_counts=False)
    err = capsys.readouterr().err
    assert not again.cache_hit
    assert "is corrupt" in err and "rebuilding" in err
    np.testing.assert_array_equal(again.arrays["test_x"], written["test_x"])


def test_raw_labels_only(tmp_path: Path, fake_mnist: FakeMnist) -> None:
    written = fake_mnist(tmp_path / "root")
    files = sources.locate_mnist(tmp_path / "root")
    raw = sources.load_raw(files, tmp_path / "cache", check_counts=False, labels_only=True)
    assert set(raw.arrays) == {"train_y", "test_y"}
    np.testing.assert_array_equal(raw.labels("train"), written["train_y"])


def test_canonical_counts_enforced(tmp_path: Path, fake_mnist: FakeMnist) -> None:
    fake_mnist(tmp_path / "root", n_train=30, n_test=10)
    with pytest.raises(DataError, match="expected 60000 train and 10000 test MNIST images, found 30 and 10"):
        sources.load_raw(sources.locate_mnist(tmp_path / "root"), tmp_path / "cache")


def test_mnist_wrong_image_size(tmp_path: Path, idx_bytes: Callable[[np.ndarray, int], bytes]) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 32, 32), np.uint8), 2051))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8), 2049))
    with pytest.raises(DataError, match="expected 28×28 MNIST images"):
        sources.load_raw(sources.locate_mnist(tmp_path), tmp_path / "cache", check_counts=False)


def test_raw_cifar_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(2, 3072), dtype=np.uint8)
        written[name] = data
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": data, b"labels": [1, 2]}, handle, protocol=2)
    raw = sources.load_raw(sources.locate_cifar10(tmp_path), tmp_path / "cache", check_counts=False)
    assert raw.images("train").shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(raw.images("test").reshape(2, 3072), written["test_batch"])
    assert raw.classes[7] == "horse"
    with pytest.raises(DataError, match="expected 50000 train and 10000 test CIFAR-10 images, found 10 and 2"):
        sources.load_raw(sources.locate_cifar10(tmp_path), tmp_path / "cache")
