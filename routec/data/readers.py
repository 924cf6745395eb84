"""Readers for the on-disk formats: MNIST IDX, CIFAR-10 python batches, class folders.

Each reader returns plain uint8 numpy arrays (images N×H×W or N×3×H×W, labels
int64) and turns every way a file can be missing, truncated or inconsistent into a
:class:`~routec.errors.DataError` that names the file and what was expected.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from routec.data.log import console
from routec.errors import DataError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
SPLITS: tuple[str, str] = ("train", "test")


class DataNotFound(DataError):
    """The files are simply absent (listed as unavailable, not reported as corrupt)."""


# ---------------------------------------------------------------- MNIST IDX


def read_maybe_gzip(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise DataNotFound(f"{path}: file not found") from err
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from err
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a valid gzip file ({err})") from err


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 2051 images, 2049 labels) as a uint8 array."""
    data = read_maybe_gzip(path)
    if len(data) < 4:
        raise DataError(f"{path}: expected IDX magic {magic}, found only {len(data)} bytes")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: expected IDX magic {magic}, found {found}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header (expected {header} bytes, found {len(data)})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = prod(dims)
    payload = len(data) - header
    if payload != expected:
        what = "truncated" if payload < expected else "trailing data"
        raise DataError(
            f"{path}: expected {expected} data bytes for shape {'x'.join(map(str, dims))}, "
            f"found {payload} ({what})"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×H×W uint8) and labels (N int64) from matching IDX files."""
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels but {images_path} has {len(images)} images "
            "(labels/images count mismatch)"
        )
    return images, labels


# ------------------------------------------------------ CIFAR python batches


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and builtins only: a batch file must not run code."""

    def find_class(self, module: str, name: str) -> object:
        allowed = {
            ("numpy", "ndarray"), ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
            ("_codecs", "encode"),
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if module == "numpy":
            return getattr(np, name)
        import importlib

        short = module.split(".")[-1]
        try:  # numpy >= 2 moved the internals to numpy._core
            found = importlib.import_module(f"numpy._core.{short}")
        except ImportError:
            found = importlib.import_module(f"numpy.core.{short}")
        return getattr(found, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: images N×3×32×32 uint8 and labels N int64."""
    try:
        with path.open("rb") as handle:
            obj = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError as err:
        raise DataNotFound(f"{path}: file not found") from err
    except Exception as err:  # any unpickling failure means a corrupt file
        raise DataError(f"{path}: not a readable CIFAR python batch ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict with 'data' and 'labels', found {type(obj).__name__}")
    data = obj.get(b"data", obj.get("data"))
    labels = obj.get(b"labels", obj.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path}: expected keys 'data' and 'labels', found {sorted(map(str, obj))}")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: expected uint8 data of shape N×3072, found {data.dtype} {data.shape}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels (count mismatch)")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32).copy(), labels


def read_cifar_batches_dir(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``cifar-10-batches-py/``: data_batch_1..5 as train, test_batch as test."""
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    missing = [n for ns in names.values() for n in ns if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder}: expected data_batch_1..5 and test_batch, missing {', '.join(missing)}")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, files in names.items():
        parts = [read_cifar_batch(folder / n) for n in files]
        out[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return out


# ---------------------------------------------------------- class folders


@dataclass(frozen=True)
class _Member:
    """One image file of a class-folder tree, before decoding."""

    split: str
    cls: str
    name: str
    where: str  # printable location, for error messages
    load: Callable[[], bytes]


def _const(payload: bytes) -> Callable[[], bytes]:
    """A loader for bytes already in memory (tar members are read in archive order)."""
    return lambda: payload


def _sort_key(name: str) -> tuple[int, int, str]:
    """Numeric file names (0000.jpg) in numeric order, any others after, by name."""
    stem = PurePosixPath(name).stem
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def _scan_dir(folder: Path) -> list[_Member]:
    members: list[_Member] = []
    for split in SPLITS:
        split_dir = folder / split
        if not split_dir.is_dir():
            continue
        for class_dir in split_dir.iterdir():
            if not class_dir.is_dir():
                continue
            for file in class_dir.iterdir():
                if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                    members.append(_Member(split, class_dir.name, file.name, str(file), file.read_bytes))
    return members


def _scan_tar(archive: Path) -> list[_Member]:
    members: list[_Member] = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for info in tar:
                parts = PurePosixPath(info.name).parts
                if not info.isfile() or len(parts) < 3 or parts[-3] not in SPLITS:
                    continue
                if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                handle = tar.extractfile(info)
                payload = handle.read() if handle is not None else b""
                members.append(_Member(parts[-3], parts[-2], parts[-1], f"{archive}:{info.name}", _const(payload)))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise DataNotFound(f"{archive}: file not found") from err
        raise DataError(f"{archive}: not a readable .tar.gz of class folders ({err})") from err
    return members


def _check_classes(source: Path, members: Iterable[_Member], classes: Sequence[str] | None) -> list[str]:
    found: dict[str, set[str]] = {s: set() for s in SPLITS}
    for m in members:
        found[m.split].add(m.cls)
    expect = "train/ and test/ folders holding one folder of images per class"
    for split in SPLITS:
        if not found[split]:
            raise DataError(f"{source}: expected {expect}; found no images under {split}/")
    wanted = list(classes) if classes is not None else sorted(found["train"] | found["test"])
    for split in SPLITS:
        missing = [c for c in wanted if c not in found[split]]
        extra = sorted(found[split] - set(wanted))
        if missing or extra:
            detail = "; ".join(
                t for t in (f"missing {', '.join(missing)}" if missing else "",
                            f"unexpected {', '.join(extra)}" if extra else "") if t
            )
            raise DataError(f"{source}: {split}/ expected class folders {', '.join(wanted)}; {detail}")
    return wanted


# A header may claim any size: a 60000×60000 PNG is a few hundred bytes, and decoding
# it would allocate 10 GB. No training image comes near this many pixels (8192×8192),
# so a larger header is a corrupt file or a decompression bomb, refused before decoding.
MAX_IMAGE_PIXELS = 1 << 26


def check_image_size(where: object, width: int, height: int) -> None:
    """Refuse (DataError naming ``where``) an image whose header claims too many pixels."""
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"{where}: its header claims a {width}×{height} image; routec decodes "
                        f"at most {MAX_IMAGE_PIXELS:,} pixels (a corrupt file or a "
                        "decompression bomb?)")


def _decode(member: _Member, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(member.load())) as img:
            check_image_size(member.where, *img.size)
            arr = np.asarray(img.convert("RGB"))
    except Image.DecompressionBombError as err:
        raise DataError(f"{member.where}: refused before decoding ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{member.where}: not a readable image ({err})") from err
    if arr.shape[:2] != size:
        raise DataError(f"{member.where}: expected a {size[0]}×{size[1]} image, found {arr.shape[0]}×{arr.shape[1]}")
    return arr


def read_class_folders(
    source: Path,
    classes: Sequence[str] | None = None,
    size: tuple[int, int] = (32, 32),
    label: str = "images",
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """A ``{train,test}/<class>/*.jpg|png`` tree, as a folder or a ``.tar.gz`` of one.

    Class labels follow ``classes`` (alphabetical when None); files within a class
    are in numeric order of their names. Returns per split (images N×3×H×W uint8,
    labels N int64) and the class list.
    """
    if source.is_dir():
        members = _scan_dir(source)
    elif source.is_file():
        members = _scan_tar(source)
    else:
        raise DataNotFound(f"{source}: not found")
    wanted = _check_classes(source, members, classes)
    index = {c: i for i, c in enumerate(wanted)}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    con = console()
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=con, transient=True, disable=not con.is_terminal,
    )
    with progress:
        for split in SPLITS:
            chosen = sorted(
                (m for m in members if m.split == split),
                key=lambda m: (index[m.cls], *_sort_key(m.name)),
            )
            images = np.empty((len(chosen), 3, *size), dtype=np.uint8)
            labels = np.fromiter((index[m.cls] for m in chosen), dtype=np.int64, count=len(chosen))
            task = progress.add_task(f"decoding {label} ({split})", total=len(chosen))
            for i, member in enumerate(chosen):
                images[i] = _decode(member, size).transpose(2, 0, 1)
                if i % 500 == 499:
                    progress.update(task, completed=i + 1)
            progress.update(task, completed=len(chosen))
            out[split] = (images, labels)
    return out, wanted
