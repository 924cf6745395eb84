"""Your own images: class folders laid out as torchvision's ImageFolder.

Two layouts are read:

- one tree, ``PATH/<class>/*.png``: validation and test are a seeded hold-out of
  every class (stratified, fractions configurable);
- a split tree, ``PATH/{train,val,test}/<class>/...``: the user's own split; a
  missing ``val/`` or ``test/`` is held out from ``train/`` the same way.

Classes are the folder names in sorted order (as ImageFolder numbers them).
Grayscale images stay one channel; a folder with any colour image is read as
RGB. Everything that can be known without decoding (classes, image sizes and
modes from the file headers, split sizes) is checked first, so a wrong folder or
a spec of the wrong shape fails at once with the file named. The decoded images go
into the cache as integers (:mod:`routec.data.folder_cache`), keyed by the file list,
sizes and modification times, and are read back a batch at a time
(:mod:`routec.data.stored`).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from routec.data.readers import DataNotFound, check_image_size
from routec.data.stored import GAMMA
from routec.data.stored import PIXELS as PIXEL_CONVENTIONS
from routec.errors import DataError

FOLDER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_DIRS: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1
# Modes PIL opens grayscale files in; "P"/"PA" count as grayscale when the palette is grey.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SUFFIX_TEXT = ", ".join(FOLDER_SUFFIXES)


def one_line(kind: type[DataError], message: str, hint: str | None = None) -> DataError:
    """An error whose advice follows on the same line (errors are one line)."""
    return kind(f"{message}; {hint}" if hint else message)


_LAYOUT_HINT = "lay images out as DIR/<class>/*.png (one folder per class) or DIR/{train,val,test}/<class>/*.png"


@dataclass(frozen=True)
class ImageFile:
    """One image of the tree, before decoding."""

    path: Path
    rel: str  # path relative to the tree's root, with "/" separators
    label: int
    split: str | None  # the split folder it lies in (split layout), None for one tree


@dataclass(frozen=True)
class FolderTree:
    """The classes and image files found under a folder; nothing decoded yet."""

    root: Path  # resolved
    layout: str  # "tree" (one tree) or "split" (train/ and maybe val/, test/)
    classes: tuple[str, ...]
    files: tuple[ImageFile, ...]
    given_splits: tuple[str, ...]  # split folders present in a split layout

    def list_digest(self) -> str:
        """A hash of the file names per class: the splits are drawn from these (and the seed)."""
        names = [(f.rel, f.label, f.split) for f in self.files]
        return hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]

    def fingerprint(self) -> list[tuple[str, int, int]]:
        """(relative path, size, mtime in ns) of every image: any edit, addition or removal changes it."""
        out = []
        for f in self.files:
            try:
                st = f.path.stat()
            except OSError as err:
                raise DataError(f"{f.path}: cannot read ({err.strerror or err})") from err
            out.append((f.rel, st.st_size, st.st_mtime_ns))
        return out


@dataclass(frozen=True)
class Header:
    """What a file's header says, read without decoding the pixels."""

    height: int
    width: int
    colour: bool
    deep: bool = False  # more than 8 bits per value (16-bit or float grayscale)


def is_folder_name(name: str) -> bool:
    """True when ``name`` is an existing folder (named datasets win over a folder of the same name)."""
    try:
        return Path(name).expanduser().is_dir()
    except OSError:
        return False


def looks_like_path(name: str) -> bool:
    """Names with a path separator or a leading dot or tilde are meant as folders."""
    return "/" in name or "\\" in name or name.startswith((".", "~"))


# ---------------------------------------------------------------- scanning


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    """Image files anywhere under ``folder`` (hidden files and folders skipped), sorted by path."""
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in FOLDER_SUFFIXES and p.is_file():
            found.append(p)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _loose_images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()
                  if _visible(p) and p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)


def _class_dirs(folder: Path, what: str) -> dict[str, Path]:
    """The class folders directly under ``folder``; images lying beside them are an error."""
    loose = _loose_images(folder)
    if loose:
        more = f" and {len(loose) - 1} more" if len(loose) > 1 else ""
        raise one_line(DataError, f"{folder}: images must lie in one folder per class, found {loose[0]}{more} "
                        f"directly in {what}", hint=_LAYOUT_HINT)
    return {d.name: d for d in sorted(folder.iterdir()) if _visible(d) and d.is_dir()}


def scan_folder(path: str | Path) -> FolderTree:
    """The classes and files of a class-folder tree (one tree or train/val/test)."""
    given = Path(path).expanduser()
    if not given.is_dir():
        raise one_line(DataNotFound, f"{given}: no such folder", hint=_LAYOUT_HINT)
    root = given.resolve()
    subdirs = {d.name for d in root.iterdir() if _visible(d) and d.is_dir()}
    if "train" in subdirs and subdirs <= set(SPLIT_DIRS):
        layout, present = "split", tuple(s for s in SPLIT_DIRS if s in subdirs)
        _class_dirs(root, "the dataset folder")  # images beside train/ would be left out
        per_split = {s: _class_dirs(root / s, f"{s}/") for s in present}
        classes = tuple(per_split["train"])
        for split in present[1:]:
            extra = [c for c in per_split[split] if c not in per_split["train"]]
            if extra:
                raise one_line(DataError, f"{root / split / extra[0]}: class '{extra[0]}' has no folder in {root / 'train'}",
                                hint=f"the classes are the folders of train/: {', '.join(classes)}")
    else:
        layout, present = "tree", ()
        per_split = {"": _class_dirs(root, "the dataset folder")}
        classes = tuple(per_split[""])
    where = root / "train" if layout == "split" else root
    if not classes:
        raise one_line(DataError, f"{where}: no class folders found", hint=_LAYOUT_HINT)
    if len(classes) < 2:
        raise one_line(DataError, f"{where}: found one class folder ({classes[0]}); a classifier needs at least two",
                        hint=_LAYOUT_HINT)
    index = {c: i for i, c in enumerate(classes)}
    files: list[ImageFile] = []
    for split, dirs in per_split.items():
        for cls, folder in dirs.items():
            images = _image_files(folder)
            if not images:
                raise DataError(f"{folder}: no images ({_SUFFIX_TEXT}) in class folder '{cls}'")
            for p in images:
                files.append(ImageFile(p, p.relative_to(root).as_posix(), index[cls], split or None))
    return FolderTree(root, layout, classes, tuple(files), present)


# ------------------------------------------------------------ file headers

_HEADERS: dict[str, list[Header]] = {}


def _is_colour(img: object) -> bool:
    mode = img.mode  # type: ignore[attr-defined]
    if mode in _GRAY_MODES:
        return False
    if mode in ("P", "PA"):
        palette = img.getpalette() or []  # type: ignore[attr-defined]
        rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
        return bool((rgb != rgb[:, :1]).any())
    return True


def read_header(path: Path) -> Header:
    """Size and colour of an image from its header (PIL opens lazily: no pixels are decoded)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                width, height = img.size
                check_image_size(path, width, height)
                return Header(height, width, _is_colour(img), img.mode.startswith("I") or img.mode == "F")
    except Image.DecompressionBombError as err:  # PIL refuses the largest headers itself
        raise DataError(f"{path}: refused before decoding ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from err


def headers(tree: FolderTree, fingerprint: list[tuple[str, int, int]]) -> list[Header]:
    """Every file's header, remembered per fingerprint for the rest of the process."""
    memo = hashlib.sha256(json.dumps([str(tree.root), fingerprint]).encode()).hexdigest()
    if memo not in _HEADERS:
        _HEADERS[memo] = [read_header(f.path) for f in tree.files]
    return _HEADERS[memo]


def image_shape(
    tree: FolderTree, fingerprint: list[tuple[str, int, int]],
    shape: Sequence[int] | None = None, resize: bool = False,
) -> tuple[int, int, int]:
    """C×H×W of the dataset, checking every header against ``shape`` (the network's input) when given.

    Channels: 1 when every image is grayscale, else 3. Without ``resize`` every
    image must already be H×W; the first one that is not is named.
    """
    heads = headers(tree, fingerprint)
    colour = next((f for f, h in zip(tree.files, heads, strict=True) if h.colour), None)
    channels = 3 if colour is not None else 1
    if shape is None:
        if resize:
            raise DataError("resizing needs a target size: the network's input shape")
        first, h0 = tree.files[0], heads[0]
        for f, h in zip(tree.files, heads, strict=True):
            if (h.height, h.width) != (h0.height, h0.width):
                raise one_line(DataError, f"{f.path}: {h.height}×{h.width} image, but {first.path} is {h0.height}×{h0.width}; "
                                "every image of a dataset must have one size",
                                hint="resize the files, or train with --resize to scale them to the spec's input")
        return (channels, h0.height, h0.width)
    c, height, width = (int(v) for v in shape)
    want = f"{c}×{height}×{width}"
    if c != channels:
        if channels == 1:
            raise one_line(DataError, f"{tree.root}: the images are grayscale (1 channel), but the network takes {want}",
                            hint=f"write input = 1x{height}x{width} in the spec")
        assert colour is not None
        raise one_line(DataError, f"{colour.path}: colour image, so {tree.root} is read as 3 channels, but the network "
                        f"takes {want}", hint=f"write input = 3x{height}x{width} in the spec, or convert "
                        "every image to grayscale")
    if c not in (1, 3):
        raise DataError(f"the network takes {want}; image folders give 1 (grayscale) or 3 (RGB) channels")
    if not resize:
        for f, h in zip(tree.files, heads, strict=True):
            if (h.height, h.width) != (height, width):
                raise one_line(DataError, f"{f.path}: {h.height}×{h.width} image, but the network takes {height}×{width}",
                                hint=f"pass --resize to scale every image to {height}×{width}, or change the "
                                "spec's input")
    return (c, height, width)


# ------------------------------------------------------------------ splits


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def check_fractions(tree: FolderTree, val_fraction: float | None, test_fraction: float | None) -> tuple[float, float]:
    """The hold-out fractions to use; explicit ones must be meaningful for this tree."""
    for split, value, flag in (("val", val_fraction, "--val-fraction"), ("test", test_fraction, "--test-fraction")):
        if value is None:
            continue
        if not 0.0 < value < 1.0:
            raise DataError(f"{flag} must lie between 0 and 1 (exclusive), got {value}")
        if split in tree.given_splits:
            raise one_line(DataError, f"{flag}: {tree.root} has its own {split}/ folder, so nothing is held out for it",
                            hint=f"drop {flag}, or remove {split}/ to hold out a fraction of train/")
    vf = DEFAULT_VAL_FRACTION if val_fraction is None else float(val_fraction)
    tf = DEFAULT_TEST_FRACTION if test_fraction is None else float(test_fraction)
    if vf + tf >= 1.0:
        raise DataError(f"validation and test fractions add up to {vf + tf:g}; they must leave images to train on")
    return vf, tf


def assign_splits(tree: FolderTree, seed: int, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """File indices of every split: a seeded, stratified hold-out for splits without a folder.

    Per class of the training pool, round(n·test_fraction) images go to test and
    round(n·val_fraction) to validation (halves round up), drawn with a generator
    seeded by ``seed`` and the class name, so adding images to one class leaves
    the others' hold-out as it was.
    """
    from routec.data.seeds import generator

    labels = np.array([f.label for f in tree.files], dtype=np.int64)
    in_split = np.array([f.split or "" for f in tree.files])
    out: dict[str, list[np.ndarray]] = {s: [] for s in SPLIT_DIRS}
    for split in tree.given_splits:
        if split != "train":
            out[split].append(np.flatnonzero(in_split == split))
    pool = np.flatnonzero(in_split == ("train" if tree.layout == "split" else ""))
    draw = {s: f for s, f in (("test", test_fraction), ("val", val_fraction)) if s not in tree.given_splits}
    where = f"{tree.root}/train" if tree.layout == "split" else str(tree.root)
    for cls, name in enumerate(tree.classes):
        members = pool[labels[pool] == cls]
        n = len(members)
        k_test = _round_half_up(n * draw["test"]) if "test" in draw else 0
        k_val = _round_half_up(n * draw["val"]) if "val" in draw else 0
        if n - k_test - k_val < 1:
            raise one_line(DataError, f"{where}/{name}: {n} image(s) are too few to hold out {k_test} for test and "
                            f"{k_val} for validation and keep one to train on", hint="add images to the class")
        import torch

        perm = torch.randperm(n, generator=generator(seed, "folder-holdout", name)).numpy()
        out["test"].append(members[perm[:k_test]])
        out["val"].append(members[perm[k_test:k_test + k_val]])
        out["train"].append(members[perm[k_test + k_val:]])
    result = {s: np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64) for s, parts in out.items()}
    for split in ("val", "test"):
        if len(result[split]) == 0:
            raise one_line(DataError, f"{tree.root}: the {split} split is empty", hint="add images, or raise "
                            f"--{split}-fraction")
    return result


# ---------------------------------------------------------------- decoding


def _unit_pixels(img: object, channels: int) -> np.ndarray:
    """H×W×C float32 in [0, 1]: 8-bit values /255, 16-bit grayscale /65535; alpha dropped."""
    mode = img.mode  # type: ignore[attr-defined]
    if mode.startswith("I"):
        gray = np.clip(np.asarray(img, dtype=np.float32) / 65535.0, 0.0, 1.0)
        arr = gray[:, :, None]
        return np.repeat(arr, 3, axis=2) if channels == 3 else arr
    if mode == "F":
        gray = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)[:, :, None]
        return np.repeat(gray, 3, axis=2) if channels == 3 else gray
    converted = img.convert("L" if channels == 1 else "RGB")  # type: ignore[attr-defined]
    arr = np.asarray(converted, dtype=np.float32) / 255.0
    return arr[:, :, None] if channels == 1 else arr


def _stored_pixels(img: object, channels: int, dtype: np.dtype) -> np.ndarray:
    """H×W×C integers as the file holds them: 8-bit values, or 16-bit ones (8-bit files
    in a 16-bit folder scaled by 257, so v/255 = 257v/65535); alpha dropped."""
    mode = img.mode  # type: ignore[attr-defined]
    if mode.startswith("I") or mode == "F":
        if dtype != np.uint16:
            raise DataError(f"{getattr(img, 'filename', 'image')}: {mode} image in a folder stored as 8-bit")
        gray = np.asarray(img)
        if mode == "F":  # float images: [0, 1], kept to 16 bits
            gray = np.rint(np.clip(gray.astype(np.float64), 0.0, 1.0) * 65535.0)
        arr = np.clip(gray, 0, 65535).astype(np.uint16)[:, :, None]
        return np.repeat(arr, 3, axis=2) if channels == 3 else arr
    converted = np.asarray(img.convert("L" if channels == 1 else "RGB"))  # type: ignore[attr-defined]
    arr = converted[:, :, None] if channels == 1 else converted
    return arr.astype(np.uint16) * 257 if dtype == np.uint16 else arr


def _open_image(f: ImageFile, read: object) -> np.ndarray:
    """``read(img)`` of file ``f``, with a file that cannot be decoded named in a one-line error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(f.path) as img:
                check_image_size(f.path, *img.size)
                return read(img)  # type: ignore[operator,no-any-return]
    except Image.DecompressionBombError as err:
        raise DataError(f"{f.path}: refused before decoding ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{f.path}: not a readable image ({err})") from err


def decode_image(f: ImageFile, shape: tuple[int, int, int], pixels: str, resize: bool) -> np.ndarray:
    """One image as float32 C×H×W in the chosen pixel convention, resized when allowed."""
    import torch
    import torch.nn.functional as F

    c, height, width = shape
    arr = _open_image(f, lambda img: _unit_pixels(img, c))
    if pixels == "linear":
        arr = np.power(arr, GAMMA, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if x.shape[1:] != (height, width):
        if not resize:
            raise one_line(DataError, f"{f.path}: {x.shape[1]}×{x.shape[2]} image, but the network takes {height}×{width}",
                            hint=f"pass --resize to scale every image to {height}×{width}")
        x = F.interpolate(x[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]
    return x.numpy()


def decode_stored(f: ImageFile, shape: tuple[int, int, int], pixels: str, resize: bool,
                  dtype: np.dtype) -> np.ndarray:
    """One image as the cache stores it: C×H×W integers (``dtype``: uint8 or uint16).

    An image of the right size keeps its decoded values exactly. One that must be
    resized is scaled as :func:`decode_image` does (in the pixel convention) and
    stored back as the nearest integer of the convention's inverse, so it reads
    back within half a step of the float result.
    """
    c, height, width = shape
    arr = _open_image(f, lambda img: _stored_pixels(img, c, dtype))
    if arr.shape[:2] == (height, width):
        return np.ascontiguousarray(arr.transpose(2, 0, 1))
    x = decode_image(f, shape, pixels, resize).astype(np.float64)
    if pixels == "linear":
        x = np.power(np.clip(x, 0.0, 1.0), 1.0 / GAMMA)
    top = float(np.iinfo(dtype).max)
    return np.rint(np.clip(x, 0.0, 1.0) * top).astype(dtype)


def stored_dtype(tree: FolderTree, fingerprint: list[tuple[str, int, int]]) -> np.dtype:
    """uint16 when any file holds more than 8 bits per value (16-bit or float grayscale), else uint8."""
    return np.dtype(np.uint16 if any(h.deep for h in headers(tree, fingerprint)) else np.uint8)


# ------------------------------------------------------------------- load


@dataclass(frozen=True)
class PreparedFolder:
    """A folder checked and planned: everything but the pixels."""

    tree: FolderTree
    shape: tuple[int, int, int]
    pixels: str
    resize: bool
    val_fraction: float
    test_fraction: float
    assignment: dict[str, np.ndarray]
    stem: str
    key: str

    def describe(self) -> str:
        c, h, w = self.shape
        kind = "grayscale" if c == 1 else "RGB"
        if self.tree.layout == "tree":
            how = (f"one tree; validation {self.val_fraction:g} and test {self.test_fraction:g} of every class "
                   "held out")
        else:
            drawn = [f"{label} {f:g}" for split, label, f in (("val", "validation", self.val_fraction),
                                                                 ("test", "test", self.test_fraction))
                     if split not in self.tree.given_splits]
            how = f"split folders {'/'.join(self.tree.given_splits)}"
            if drawn:
                how += f"; {' and '.join(drawn)} of every class held out from train/"
        size = f"{c}×{h}×{w} {kind}" + (", resized" if self.resize else "")
        return f"image folders under {self.tree.root} ({how}; {size}; pixels {self.pixels})"


def _check_pixels(pixels: str | None) -> str:
    value = "linear" if pixels is None else pixels
    if value not in PIXEL_CONVENTIONS:
        raise DataError(f"unknown pixel convention '{value}'; use {' or '.join(PIXEL_CONVENTIONS)}")
    return value


def prepare_folder(
    path: str | Path, cache_dir: Path, seed: int = 0, *, shape: Sequence[int] | None = None,
    resize: bool = False, val_fraction: float | None = None, test_fraction: float | None = None,
    pixels: str | None = None,
) -> PreparedFolder:
    """Scan, check headers and plan the splits; no pixel is decoded.

    When ``shape`` is given and a cache entry for exactly these files and settings
    exists, the headers are not read again: that entry was only written after they
    passed the same checks.
    """
    from routec.data import cache
    from routec.data.folder_cache import FOLDER_FORMAT

    pix = _check_pixels(pixels)
    tree = scan_folder(path)
    vf, tf = check_fractions(tree, val_fraction, test_fraction)
    fingerprint = tree.fingerprint()

    def key_for(sh: tuple[int, int, int]) -> tuple[str, str]:
        settings = {"root": str(tree.root), "shape": list(sh), "resize": resize, "pixels": pix,
                    "val": vf, "test": tf, "seed": seed}
        tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", tree.root.name)[:40] or "folder"
        key = cache.cache_key("folder", {**settings, "layout": tree.layout, "classes": list(tree.classes),
                                         "files": fingerprint, "format": FOLDER_FORMAT})
        return f"folder-{safe}-{tag}", key

    final: tuple[int, int, int] | None = None
    if shape is not None:
        want = tuple(int(v) for v in shape)
        assert len(want) == 3
        stem, key = key_for(want)  # type: ignore[arg-type]
        if cache.entry_path(cache_dir, stem, key).is_file():
            final = want  # type: ignore[assignment]
    if final is None:
        final = image_shape(tree, fingerprint, shape, resize)
    stem, key = key_for(final)
    assignment = assign_splits(tree, seed, vf, tf)
    return PreparedFolder(tree, final, pix, resize, vf, tf, assignment, stem, key)


def build_entry(prep: PreparedFolder, entry: Path, dtype: np.dtype) -> None:
    """Decode every image into the entry's files, a chunk at a time, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from routec.data import folder_cache
    from routec.data.log import console
    from routec.data.splits import CIFAR_ORIGIN
    from routec.data.stored import level_histogram

    con = console()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=con, transient=True, disable=not con.is_terminal)
    small: dict[str, np.ndarray] = {"bits": np.array([8 * np.dtype(dtype).itemsize], dtype=np.int64)}
    counts = np.zeros((prep.shape[0], int(np.iinfo(dtype).max) + 1), dtype=np.int64)

    def count(chunk: np.ndarray) -> None:
        counts[:] += level_histogram(iter([chunk]), prep.shape[0], dtype)

    with progress:
        task = progress.add_task(f"decoding {prep.tree.root.name}", total=len(prep.tree.files))
        for split in SPLIT_DIRS:
            index = prep.assignment[split].astype(np.int64)
            files = [prep.tree.files[j] for j in index.tolist()]
            chunks = folder_cache.decoded_chunks(
                files, lambda f: decode_stored(f, prep.shape, prep.pixels, prep.resize, dtype),  # type: ignore[arg-type]
                folder_cache.decode_threads(), lambda k: progress.advance(task, k))
            folder_cache.write_npy(folder_cache.images_path(entry, split), (len(index), *prep.shape), dtype, chunks,
                                   on_chunk=count if split == "train" else None)
            small[f"{split}_labels"] = np.array([f.label for f in files], dtype=np.int64)
            small[f"{split}_source_index"] = index
            # Origin 1: natural images, mirrored in augmentation unless flips are turned off.
            small[f"{split}_origin"] = np.full(len(index), CIFAR_ORIGIN, dtype=np.uint8)
    small["train_levels"] = counts
    folder_cache.save_entry(entry, prep.key, small)


def load_folder(
    path: str | Path, cache_dir: Path, seed: int = 0, *, shape: Sequence[int] | None = None,
    resize: bool = False, val_fraction: float | None = None, test_fraction: float | None = None,
    pixels: str | None = None,
) -> object:
    """A folder dataset as :class:`~routec.data.splits.DatasetSplits`, from the cache when current.

    The splits' images are :class:`~routec.data.stored.StoredImages`: read from the
    cache's files and converted to float32 per batch, so memory does not grow with
    the folder.
    """
    import torch

    from routec.data import cache, folder_cache
    from routec.data.augmentation import SHIFT_FRACTION
    from routec.data.log import note
    from routec.data.splits import DatasetInfo, DatasetSplits, Split
    from routec.data.stored import StoredImages

    prep = prepare_folder(path, cache_dir, seed, shape=shape, resize=resize, val_fraction=val_fraction,
                          test_fraction=test_fraction, pixels=pixels)
    entry = cache.entry_path(cache_dir, prep.stem, prep.key)
    opened = folder_cache.open_entry(entry, prep.key, prep.shape)
    hit = opened is not None
    if opened is None:
        dtype = stored_dtype(prep.tree, prep.tree.fingerprint())
        entry = folder_cache.writable_entry(entry)
        note(f"decoding {len(prep.tree.files)} images under {prep.tree.root}; first use, caching them "
             f"({np.dtype(dtype).name}) in {entry.parent}")
        build_entry(prep, entry, dtype)
        opened = folder_cache.open_entry(entry, prep.key, prep.shape)
        if opened is None:
            raise DataError(f"could not write the cache entry {entry}",
                            hint="check that the cache folder is writable and has space (--cache-dir DIR)")
    small, rows = opened
    parts = {
        s: Split(StoredImages(rows[s], prep.pixels, histogram=small["train_levels"] if s == "train" else None),
                 torch.from_numpy(small[f"{s}_labels"]), torch.from_numpy(small[f"{s}_origin"]),
                 torch.from_numpy(small[f"{s}_source_index"]))
        for s in SPLIT_DIRS
    }
    info = DatasetInfo(
        name=str(prep.tree.root), classes=prep.tree.classes, sizes={s: len(p) for s, p in parts.items()},
        seed=seed, source=prep.describe(), description=f"your own images: {len(prep.tree.classes)} class folders",
        shape=prep.shape, pixels=prep.pixels, shift=SHIFT_FRACTION, flip=True,
        files_digest=prep.tree.list_digest(),
    )
    return DatasetSplits(info, parts["train"], parts["val"], parts["test"], entry, hit)


def file_list(path: str | Path) -> list[Path]:
    """The image files of a folder dataset in ``source_index`` order."""
    return [f.path for f in scan_folder(path).files]
