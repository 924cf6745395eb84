"""The cache entry of an image folder: integer images on disk, written and read in chunks.

An entry is two kinds of file beside each other in the cache directory:

- ``STEM-KEY.pt`` (written last, by :mod:`routec.data.cache`, CRC-checked): labels,
  origins and source indices of every split, and the per-channel counts of every
  stored value in the training split (the normalisation statistics come from them
  without a pass over the images);
- ``STEM-KEY.{train,val,test}.npy``: the images of each split, N×C×H×W uint8 (uint16
  for 16-bit sources), in split order.

The images are written chunk by chunk while decoding, so building an entry holds a
chunk, not the folder. The ``.npy`` files are too large to checksum on every load;
each is checked against the record (shape, dtype) and its own size, and is written to
a temporary name and renamed, so an interrupted build leaves no entry.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from routec.data import cache
from routec.data.stored import NpyRows, level_histogram

# 1: float32 splits inside the .pt; 2: integer images in .npy files, converted per batch.
FOLDER_FORMAT = 2
SPLITS: tuple[str, str, str] = ("train", "val", "test")
CHUNK_IMAGES = 64  # 9.6 MB of 3×224×224 uint8: a build holds about two chunks


def images_path(entry: Path, split: str) -> Path:
    return entry.with_name(f"{entry.name[:-len('.pt')]}.{split}.npy")


def writable_entry(entry: Path) -> Path:
    """``entry`` when its folder takes files; otherwise the same name in a temporary
    folder removed at exit. The cache only saves time: an unwritable one (a file in the
    way, a name too long, a read-only disk) costs this command a decode, not the command.
    Images still stream from files, so memory stays bounded by the batch."""
    probe = entry.with_name(f".{images_path(entry, 'train').name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb"):
            pass
        probe.unlink()
        return entry
    except OSError as err:
        from routec.data.log import note

        scratch = Path(tempfile.mkdtemp(prefix="routec-images-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        note(f"could not write cache file {entry} ({err.strerror or err}); continuing without it: "
             f"this command decodes the images into {scratch}, removed when it ends")
        return scratch / entry.name


def write_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: Iterable[np.ndarray],
              on_chunk: Callable[[np.ndarray], None] | None = None) -> None:
    """A ``.npy`` of ``shape`` from ``chunks`` (rows in order), atomically: no chunk is kept."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(int(v) for v in shape)}
    rows = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype=dtype)
                if chunk.shape[1:] != tuple(shape[1:]):
                    raise ValueError(f"chunk of shape {chunk.shape} for images of {shape}")
                f.write(chunk.data)
                rows += len(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
        if rows != shape[0]:
            raise ValueError(f"wrote {rows} rows of {shape[0]}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def decoded_chunks(items: list[object], decode: Callable[[object], np.ndarray], threads: int,
                   done: Callable[[int], None]) -> Iterable[np.ndarray]:
    """``decode`` of every item, CHUNK_IMAGES at a time, decoded by ``threads`` threads
    (PIL releases the interpreter lock while it decodes) in order."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(items), CHUNK_IMAGES):
            part = items[start:start + CHUNK_IMAGES]
            chunk = np.stack(list(pool.map(decode, part)))
            done(len(part))
            yield chunk


def decode_threads() -> int:
    """Threads for decoding: the cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def open_entry(entry: Path, key: str, shape: tuple[int, int, int]
               ) -> tuple[dict[str, np.ndarray], dict[str, NpyRows]] | None:
    """(the record's small arrays, each split's image rows) of a complete entry, else None."""
    small = cache.load(entry, key)
    if small is None:
        return None
    rows: dict[str, NpyRows] = {}
    try:
        for split in SPLITS:
            r = NpyRows(images_path(entry, split))
            want = (len(small[f"{split}_labels"]), *shape)
            bits = int(small["bits"][0])
            if r.shape != want or 8 * r.dtype.itemsize != bits:
                raise ValueError(f"{r.path} holds {r.dtype} {r.shape}, expected {bits}-bit values {want}")
            rows[split] = r
    except (OSError, ValueError) as err:
        from routec.data.log import note

        note(f"cache entry {entry} is incomplete ({str(err)[:160]}); rebuilding it")
        remove_entry(entry)
        return None
    return small, rows


def save_entry(entry: Path, key: str, small: Mapping[str, np.ndarray]) -> None:
    """Write the record last (the images are in place already) and drop stale entries' images."""
    cache.save(entry, key, small)
    prune_images(entry)


def remove_entry(entry: Path) -> None:
    for p in (entry, *(images_path(entry, s) for s in SPLITS)):
        try:
            p.unlink()
        except OSError:
            pass


def prune_images(entry: Path) -> None:
    """Image files of other keys of the same stem (older files or settings) only waste disk."""
    stem = entry.name[: -(len(".pt") + 21)]
    pattern = re.compile(re.escape(stem) + r"-[0-9a-f]{20}\.(train|val|test)\.npy")
    keep = {images_path(entry, s).name for s in SPLITS}
    for other in entry.parent.iterdir():
        if other.name not in keep and pattern.fullmatch(other.name):
            try:
                other.unlink()
            except OSError:
                pass

