"""Decoded arrays on disk, so that only the first load of a dataset is slow.

One ``.pt`` file per entry (``torch.save`` of the arrays plus a JSON record),
memory-mapped on load so that a second load costs little more than a checksum
pass. The key hashes the source files (path, size, mtime) and
:data:`PREPROCESS_VERSION`, so editing either rebuilds the entry. The record
repeats the key and every array's shape, dtype and CRC-32; a truncated or corrupt
file fails one of these checks and is rebuilt with a message rather than trusted.
Writes go to a temporary file renamed into place, so a crash never leaves a
half-written entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from routec.data.log import note

# Bump whenever decoding or preprocessing changes what ends up in a cache file.
PREPROCESS_VERSION = 1
_SUFFIX = ".pt"
_KEY_CHARS = 20


@dataclass(frozen=True)
class CacheResult:
    """What a cache lookup produced and whether it came from disk."""

    arrays: dict[str, np.ndarray]
    path: Path
    hit: bool


def fingerprint(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(absolute path, size, mtime in ns) of every file: cheap and changes with any edit."""
    out: list[tuple[str, int, int]] = []
    for p in sorted(Path(p).resolve() for p in paths):
        st = p.stat()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return out


def cache_key(kind: str, parts: Mapping[str, object]) -> str:
    """A hex digest of ``kind``, ``parts`` and the current preprocessing version."""
    payload = {"kind": kind, "version": PREPROCESS_VERSION, "parts": parts}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_path(cache_dir: Path, stem: str, key: str) -> Path:
    return cache_dir / f"{stem}-{key[:_KEY_CHARS]}{_SUFFIX}"


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)


def load(path: Path, key: str, only: Sequence[str] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path`` (or just ``only``), or None when absent or unusable.

    The arrays are copy-on-write memory maps of the file: pages are read on first
    touch, and writing to them never changes the file.
    """
    try:
        if not path.is_file():
            return None
    except OSError:  # a cache folder whose name is too long, say: no entry; save() says why
        return None
    try:
        stored = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        meta = json.loads(stored["meta"])
        if meta.get("key") != key:
            raise ValueError("stored key does not match")
        names = list(meta["arrays"]) if only is None else list(only)
        arrays: dict[str, np.ndarray] = {}
        for name in names:
            want = meta["arrays"][name]
            arr = stored["arrays"][name].numpy()
            if list(arr.shape) != want["shape"] or arr.dtype.str != want["dtype"]:
                raise ValueError(
                    f"array {name} is {arr.dtype.str} {list(arr.shape)}, expected {want['dtype']} {want['shape']}"
                )
            if _crc(arr) != want["crc32"]:
                raise ValueError(f"array {name} fails its CRC-32 check")
            arrays[name] = arr
    except Exception as err:  # truncated zip, bad checksum, missing entry: all mean rebuild
        note(f"cache file {path} is corrupt ({type(err).__name__}: {str(err)[:160]}); rebuilding it")
        _unlink(path)
        return None
    return arrays


def save(path: Path, key: str, arrays: Mapping[str, np.ndarray]) -> bool:
    """Write atomically and drop older entries of the same stem; False if it could not."""
    contiguous = {n: np.require(a, requirements=("C", "W")) for n, a in arrays.items()}
    meta = {
        "key": key,
        "version": PREPROCESS_VERSION,
        "arrays": {
            n: {"shape": list(a.shape), "dtype": a.dtype.str, "crc32": _crc(a)} for n, a in contiguous.items()
        },
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"meta": json.dumps(meta), "arrays": {n: torch.from_numpy(a) for n, a in contiguous.items()}}
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        _unlink(tmp)
        note(f"could not write cache file {path} ({err}); continuing without it")
        return False
    _prune(path)
    return True


def cached(
    cache_dir: Path,
    stem: str,
    key: str,
    build: Callable[[], Mapping[str, np.ndarray]],
    only: Sequence[str] | None = None,
) -> CacheResult:
    """Load the entry for ``key`` or build, store and return it."""
    path = entry_path(cache_dir, stem, key)
    arrays = load(path, key, only)
    if arrays is not None:
        return CacheResult(arrays, path, True)
    built = dict(build())
    save(path, key, built)
    if only is not None:
        built = {n: built[n] for n in only}
    return CacheResult(built, path, False)


def _prune(path: Path) -> None:
    """Stale entries of the same stem (an older key) only waste disk."""
    stem = path.name[: -(len(_SUFFIX) + _KEY_CHARS + 1)]
    pattern = re.compile(re.escape(stem) + f"-[0-9a-f]{{{_KEY_CHARS}}}" + re.escape(_SUFFIX))
    for other in path.parent.iterdir():
        if other != path and pattern.fullmatch(other.name):
            _unlink(other)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
