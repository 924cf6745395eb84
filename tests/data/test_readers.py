"""Readers on small files written here: the happy path and every way a file can be wrong."""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from routec.data import readers
from routec.data.readers import DataNotFound
from routec.errors import DataError

IdxBytes = Callable[[np.ndarray, int], bytes]


# --------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, idx_bytes: IdxBytes, gz: bool) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    img_path, lbl_path = tmp_path / f"img-idx3-ubyte{suffix}", tmp_path / f"lbl-idx1-ubyte{suffix}"
    for path, arr, magic in ((img_path, images, 2051), (lbl_path, labels, 2049)):
        data = idx_bytes(arr, magic)
        path.write_bytes(gzip.compress(data) if gz else data)
    x, y = readers.read_idx_pair(img_path, lbl_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels.astype(np.int64))
    assert y.dtype == np.int64


def test_idx_bad_magic_names_file_and_numbers(tmp_path: Path, idx_bytes: IdxBytes) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros(5, np.uint8), 2049))  # a labels file where images belong
    with pytest.raises(DataError) as err:
        readers.read_idx(path, 2051)
    assert str(path) in err.value.message
    assert "expected IDX magic 2051, found 2049" in err.value.message


def test_idx_truncated_payload(tmp_path: Path, idx_bytes: IdxBytes) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), np.uint8), 2051)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match="truncated") as err:
        readers.read_idx(path, 2051)
    assert str(path) in err.value.message


def test_idx_truncated_gzip_stream(tmp_path: Path, idx_bytes: IdxBytes) -> None:
    blob = gzip.compress(idx_bytes(np.arange(4000) % 251, 2049))
    path = tmp_path / "x.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="not a valid gzip file"):
        readers.read_idx(path, 2049)


def test_idx_header_too_short(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="expected IDX magic 2051"):
        readers.read_idx(path, 2051)


def test_idx_count_mismatch(tmp_path: Path, idx_bytes: IdxBytes) -> None:
    img, lbl = tmp_path / "i", tmp_path / "l"
    img.write_bytes(idx_bytes(np.zeros((6, 28, 28), np.uint8), 2051))
    lbl.write_bytes(idx_bytes(np.zeros(5, np.uint8), 2049))
    with pytest.raises(DataError, match="count mismatch") as err:
        readers.read_idx_pair(img, lbl)
    assert "5 labels" in err.value.message and "6 images" in err.value.message


def test_idx_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound):
        readers.read_idx(tmp_path / "nope.gz", 2051)


# ------------------------------------------------------- CIFAR python batches


def _write_batch(path: Path, data: np.ndarray, labels: list[int], protocol: int = 2) -> None:
    with path.open("wb") as handle:
        pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels}, handle, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batch_round_trip(tmp_path: Path, protocol: int) -> None:
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, size=(6, 3072), dtype=np.uint8)
    labels = [3, 1, 4, 1, 5, 9]
    _write_batch(tmp_path / "b", data, labels, protocol)
    x, y = readers.read_cifar_batch(tmp_path / "b")
    assert x.shape == (6, 3, 32, 32)
    # The canonical layout: 1024 red, then 1024 green, then 1024 blue values, row-major.
    assert x[2, 1, 5, 7] == data[2, 1024 + 5 * 32 + 7]
    np.testing.assert_array_equal(y, labels)


def test_cifar_batch_count_mismatch(tmp_path: Path) -> None:
    _write_batch(tmp_path / "b", np.zeros((4, 3072), np.uint8), [0, 1, 2])
    with pytest.raises(DataError, match="4 images but 3 labels"):
        readers.read_cifar_batch(tmp_path / "b")


def test_cifar_batch_wrong_shape(tmp_path: Path) -> None:
    _write_batch(tmp_path / "b", np.zeros((4, 1000), np.uint8), [0, 1, 2, 3])
    with pytest.raises(DataError, match="N×3072"):
        readers.read_cifar_batch(tmp_path / "b")


def test_cifar_batch_garbage_and_truncation(tmp_path: Path) -> None:
    (tmp_path / "garbage").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="not a readable CIFAR python batch"):
        readers.read_cifar_batch(tmp_path / "garbage")
    _write_batch(tmp_path / "full", np.zeros((4, 3072), np.uint8), [0, 1, 2, 3])
    blob = (tmp_path / "full").read_bytes()
    (tmp_path / "cut").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="cut"):
        readers.read_cifar_batch(tmp_path / "cut")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo should-not-run",))


def test_cifar_batch_refuses_code(tmp_path: Path) -> None:
    with (tmp_path / "evil").open("wb") as handle:
        pickle.dump({b"data": _Evil(), b"labels": []}, handle)
    with pytest.raises(DataError, match="refusing to load"):
        readers.read_cifar_batch(tmp_path / "evil")


def test_cifar_batches_dir(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(3)
    parts = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3).tolist()
        _write_batch(folder / name, data, labels)
        parts.append((data, labels))
    out = readers.read_cifar_batches_dir(folder)
    np.testing.assert_array_equal(out["train"][0].reshape(15, 3072), np.concatenate([p[0] for p in parts[:5]]))
    np.testing.assert_array_equal(out["train"][1], sum((p[1] for p in parts[:5]), []))
    np.testing.assert_array_equal(out["test"][1], parts[5][1])
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        readers.read_cifar_batches_dir(folder)


# ------------------------------------------------------------ class folders

CLASSES = ("zebra", "apple", "mango")  # deliberately not alphabetical


def _image(value: int, size: int = 32) -> np.ndarray:
    """A PNG-exact image whose pixels encode ``value``, so order can be checked."""
    arr = np.zeros((size, size, 3), np.uint8)
    arr[..., 0] = value
    arr[..., 1] = np.arange(size, dtype=np.uint8)[:, None]
    arr[..., 2] = 200
    return arr


def _make_tree(base: Path, fmt: str = "PNG") -> dict[tuple[str, str, int], np.ndarray]:
    """train/test × 3 classes × files named 0, 1, 2, 10 (numeric order ≠ string order)."""
    written = {}
    value = 0
    for split in ("train", "test"):
        for cls in CLASSES:
            d = base / split / cls
            d.mkdir(parents=True)
            for number in (10, 2, 0, 1):
                arr = _image(value)
                value += 7
                suffix = "png" if fmt == "PNG" else "jpg"
                Image.fromarray(arr).save(d / f"{number:04d}.{suffix}", format=fmt)
                written[(split, cls, number)] = arr
    return written


def _expected(written: dict[tuple[str, str, int], np.ndarray], split: str) -> np.ndarray:
    rows = [written[(split, c, n)] for c in CLASSES for n in (0, 1, 2, 10)]
    return np.stack(rows).transpose(0, 3, 1, 2)


def test_class_folders_dir_order_and_labels(tmp_path: Path) -> None:
    written = _make_tree(tmp_path / "toy")
    out, classes = readers.read_class_folders(tmp_path / "toy", CLASSES)
    assert classes == list(CLASSES)
    for split in ("train", "test"):
        np.testing.assert_array_equal(out[split][0], _expected(written, split))
        np.testing.assert_array_equal(out[split][1], np.repeat(np.arange(3), 4))


def test_class_folders_default_order_is_alphabetical(tmp_path: Path) -> None:
    _make_tree(tmp_path / "toy")
    _, classes = readers.read_class_folders(tmp_path / "toy")
    assert classes == sorted(CLASSES)


def test_class_folders_tar_matches_dir(tmp_path: Path) -> None:
    _make_tree(tmp_path / "toy", fmt="JPEG")
    archive = tmp_path / "toy.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "toy", arcname="toy")
    from_dir, _ = readers.read_class_folders(tmp_path / "toy", CLASSES)
    from_tar, _ = readers.read_class_folders(archive, CLASSES)
    for split in ("train", "test"):
        np.testing.assert_array_equal(from_dir[split][0], from_tar[split][0])
        np.testing.assert_array_equal(from_dir[split][1], from_tar[split][1])
    # JPEG is lossy, but the pixels must be close to what was written (decoded as RGB).
    jpeg = from_tar["train"][0][0].transpose(1, 2, 0).astype(int)
    assert np.abs(jpeg - _image(14).astype(int)).mean() < 8  # train/zebra/0000 got value 2*7


def test_class_folders_missing_class(tmp_path: Path) -> None:
    _make_tree(tmp_path / "toy")
    for f in (tmp_path / "toy" / "test" / "apple").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="test/ expected class folders zebra, apple, mango; missing apple"):
        readers.read_class_folders(tmp_path / "toy", CLASSES)


def test_class_folders_unexpected_class(tmp_path: Path) -> None:
    _make_tree(tmp_path / "toy")
    with pytest.raises(DataError, match="unexpected mango"):
        readers.read_class_folders(tmp_path / "toy", CLASSES[:2])


def test_class_folders_missing_split(tmp_path: Path) -> None:
    _make_tree(tmp_path / "toy")
    for f in (tmp_path / "toy" / "test").rglob("*.png"):
        f.unlink()
    with pytest.raises(DataError, match="no images under test/"):
        readers.read_class_folders(tmp_path / "toy", CLASSES)


def test_class_folders_wrong_size_and_corrupt_image(tmp_path: Path) -> None:
    _make_tree(tmp_path / "toy")
    bad = tmp_path / "toy" / "train" / "mango" / "0002.png"
    Image.fromarray(_image(1, size=28)).save(bad)
    with pytest.raises(DataError, match="expected a 32×32 image, found 28×28") as err:
        readers.read_class_folders(tmp_path / "toy", CLASSES)
    assert str(bad) in err.value.message
    bad.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="not a readable image"):
        readers.read_class_folders(tmp_path / "toy", CLASSES)


def test_class_folders_missing_and_broken_archive(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound):
        readers.read_class_folders(tmp_path / "absent", CLASSES)
    broken = tmp_path / "broken.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("toy/train/zebra/0000.png")
        payload = b"x" * 5000
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    broken.write_bytes(buf.getvalue()[:40])
    with pytest.raises(DataError, match="not a readable .tar.gz"):
        readers.read_class_folders(broken, CLASSES)
