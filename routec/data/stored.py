"""Images kept as their decoded integers and given out as float32 one batch at a time.

An image folder's cache holds every image as it was decoded (uint8, or uint16 for
16-bit sources), C×H×W, in a ``.npy`` file: a quarter of the float32 size, and read
from disk row by row, so memory is bounded by the batch, not by the folder.
:class:`StoredImages` answers the indexing a float32 ``N×C×H×W`` tensor answers
(``len``, ``shape``, ``x[i]``, ``x[a:b]``, ``x[idx]``, ``x.index_select(0, idx)``)
with float32 tensors: the stored values looked up in a per-channel table of
``levels`` entries that holds the pixel convention (``(v/255)^2.2`` or ``v/255``)
and, once set, the normalisation, computed with the same float32 operations as the
whole-split conversion, so the values are bit for bit the same.

Rows are read with ``os.preadv`` into the batch's buffer rather than through a
memory map: pages of a map stay in the process's resident set once touched, so an
epoch over a map would show the whole file as resident memory.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from routec.errors import DataError

if TYPE_CHECKING:
    import torch

GAMMA = 2.2
PIXELS: tuple[str, str] = ("linear", "unit")


def level_table(dtype: np.dtype, pixels: str) -> np.ndarray:
    """float32 value of every stored integer: v/max, gamma-decoded for "linear".

    The same numpy operations as decoding a whole image to float32 (divide by 255
    or 65535 in float32, then ``np.power(·, 2.2)`` in float32), so a table lookup
    gives exactly the values a float32 decode gives.
    """
    top = float(np.iinfo(dtype).max)
    unit = np.arange(int(top) + 1, dtype=np.float32) / top
    if pixels == "linear":
        return np.power(unit, GAMMA, dtype=np.float32)
    if pixels == "unit":
        return unit
    raise DataError(f"unknown pixel convention '{pixels}'; use {' or '.join(PIXELS)}")


class NpyRows:
    """Rows of a C-ordered ``.npy`` file, read on demand with ``preadv``.

    The header is parsed with numpy's own reader (no pickled objects are ever
    loaded); the file size must equal header plus data, so a truncated file is
    refused at once. The descriptor is opened per process, so the object can be
    pickled (to a worker) and forked.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            major, minor = np.lib.format.read_magic(f)
            if (major, minor) == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            self.offset = f.tell()
        if fortran or dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)) or len(shape) != 4:
            raise ValueError(f"{self.path} holds {dtype} {shape}{' (Fortran order)' if fortran else ''}, "
                             "expected C-ordered N×C×H×W uint8 or uint16")
        self.shape: tuple[int, int, int, int] = tuple(int(v) for v in shape)  # type: ignore[assignment]
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        want = self.offset + self.shape[0] * self.row_bytes
        size = self.path.stat().st_size
        if size != want:
            raise ValueError(f"{self.path} is {size:,} bytes, its header says {want:,}")
        self._fd: int | None = None
        self._pid = -1

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fd"], state["_pid"] = None, -1
        return state

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)  # None too when __init__ failed before opening
        if fd is not None and self._pid == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def read(self, index: np.ndarray) -> np.ndarray:
        """The rows ``index`` (int64, any order, repeats allowed) as one new array."""
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        if len(index) == 0:
            return out
        fd = self._descriptor()
        flat = out.reshape(len(index), -1).view(np.uint8)
        order = np.argsort(index, kind="stable")
        # contiguous runs of sorted rows become one read each; the buffers go straight
        # into their places in ``out``
        srt = index[order]
        breaks = np.flatnonzero(np.diff(srt) != 1) + 1
        for run in np.split(np.arange(len(srt)), breaks):  # a run holds no repeats (diff 0 breaks it)
            self._read_into(fd, [memoryview(flat[int(k)]) for k in order[run]], int(srt[run[0]]))
        return out

    def _read_into(self, fd: int, views: list[memoryview], row: int) -> None:
        offset = self.offset + row * self.row_bytes
        want = len(views) * self.row_bytes
        got = 0
        for start in range(0, len(views), 512):  # IOV_MAX is 1024 on Linux
            part = views[start:start + 512]
            n = os.preadv(fd, part, offset + got)
            if n != len(part) * self.row_bytes:
                raise DataError(f"{self.path}: short read at row {row} (file changed while in use?); "
                                "delete it to rebuild the cache entry")
            got += n
        assert got == want


class SelectedRows:
    """Rows ``index`` of other rows, read through: a sample of a split that stays on disk."""

    def __init__(self, rows: NpyRows | SelectedRows, index: np.ndarray) -> None:
        self.rows, self.index = rows, np.asarray(index, dtype=np.int64)
        self.shape = (len(self.index), *rows.shape[1:])
        self.dtype = rows.dtype

    def read(self, index: np.ndarray) -> np.ndarray:
        return self.rows.read(self.index[index])


@dataclass(frozen=True, eq=False)
class StoredImages:
    """N×C×H×W images stored as integers, indexed like a float32 tensor.

    ``rows`` reads the stored integers (an :class:`NpyRows`, or any object with
    ``shape``, ``dtype`` and ``read(index)``); ``pixels`` names the convention;
    ``mean``/``std`` (per channel) standardise when set. Every access converts only
    the rows asked for.
    """

    rows: NpyRows | SelectedRows
    pixels: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    histogram: np.ndarray | None = None  # C×levels counts of every stored value, when known

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", self._build_table())

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_table"}  # rebuilt on arrival

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "_table", self._build_table())

    def _build_table(self) -> np.ndarray:
        """C×levels float32: the pixel value of each level, normalised per channel when asked."""
        import torch

        base = level_table(self.rows.dtype, self.pixels)
        c = self.rows.shape[1]
        if self.mean is None:
            return np.ascontiguousarray(np.broadcast_to(base, (c, len(base))))
        assert self.std is not None
        t = torch.from_numpy(base).view(1, 1, -1).expand(1, c, -1)  # the layout (x - m) / s uses
        m = torch.tensor(self.mean, dtype=torch.float32).view(1, c, 1)
        s = torch.tensor(self.std, dtype=torch.float32).view(1, c, 1)
        return ((t - m) / s)[0].contiguous().numpy()

    # ------------------------------------------------------------- tensor-like

    @property
    def shape(self) -> torch.Size:
        import torch

        return torch.Size(self.rows.shape)

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return torch.float32

    def __len__(self) -> int:
        return self.rows.shape[0]

    def __getitem__(self, key: object) -> torch.Tensor:
        import torch

        n = len(self)
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.ndim == 0
                                                  and not key.is_floating_point() and key.dtype != torch.bool):
            i = int(key)  # type: ignore[arg-type]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} images")
            return self.take(np.array([i % n], dtype=np.int64))[0]
        if isinstance(key, slice):
            return self.take(np.arange(n, dtype=np.int64)[key])
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        index = np.asarray(key)
        if index.dtype == np.bool_:
            if index.shape != (n,):
                raise IndexError(f"boolean mask of shape {index.shape} for {n} images")
            index = np.flatnonzero(index)
        if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"images are indexed by an int, a slice or a 1-d index, got {type(key).__name__}")
        index = index.astype(np.int64)
        if len(index) and (index.min() < -n or index.max() >= n):
            raise IndexError(f"index out of bounds for {n} images")
        return self.take(np.where(index < 0, index + n, index))

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        if dim != 0:
            raise ValueError("stored images are selected along dimension 0 only")
        return self[index]

    # ----------------------------------------------------------------- values

    def raw(self, index: np.ndarray) -> np.ndarray:
        """The stored integers of rows ``index``."""
        return self.rows.read(np.asarray(index, dtype=np.int64))

    def convert(self, raw: np.ndarray) -> torch.Tensor:
        """float32 images of stored integers ``raw`` (B×C×H×W), one table lookup per channel."""
        import torch

        table: np.ndarray = self._table  # type: ignore[attr-defined]
        out = np.empty(raw.shape, dtype=np.float32)
        for c in range(raw.shape[1]):
            out[:, c] = table[c][raw[:, c]]
        return torch.from_numpy(out)

    def take(self, index: np.ndarray) -> torch.Tensor:
        return self.convert(self.raw(index))

    def chunks(self, rows: int = 256) -> Iterator[np.ndarray]:
        """The stored integers in order, ``rows`` at a time (streaming passes)."""
        for start in range(0, len(self), rows):
            yield self.raw(np.arange(start, min(start + rows, len(self))))

    def level_counts(self) -> np.ndarray:
        """C×levels: how often each stored value occurs per channel (from the cache, or one pass)."""
        if self.histogram is not None:
            return self.histogram
        return level_histogram(self.chunks(), self.shape[1], self.rows.dtype)

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and standard deviation (float64) of the unnormalised pixels,
        from the counts of every level: no pass over the images when the cache has them."""
        import torch

        counts = torch.from_numpy(self.level_counts().astype(np.float64))
        values = torch.from_numpy(level_table(self.rows.dtype, self.pixels).astype(np.float64))
        total = counts.sum(dim=1)
        mean = (counts * values).sum(dim=1) / total
        squares = (counts * values.square()).sum(dim=1) / total
        return mean, (squares - mean.square()).clamp_min(0.0).sqrt()

    def select(self, index: object) -> StoredImages:
        """Rows ``index`` (as ``x[index]`` takes them) as stored images again: nothing is read."""
        n = len(self)
        chosen = np.arange(n, dtype=np.int64)[np.asarray(index.cpu() if hasattr(index, "cpu") else index)]
        return replace(self, rows=SelectedRows(self.rows, chosen), histogram=None)

    def normalized(self, mean: tuple[float, ...], std: tuple[float, ...]) -> StoredImages:
        """The same images standardised per channel: ``(x - mean) / std`` in float32."""
        if self.mean is not None:
            raise ValueError("these images are normalised already")
        return replace(self, mean=tuple(mean), std=tuple(std))


def level_histogram(chunks: Iterator[np.ndarray], channels: int, dtype: np.dtype) -> np.ndarray:
    """C×levels counts of every stored value over ``chunks`` of B×C×H×W integers.

    One image plane at a time: ``bincount`` widens its input to 64-bit integers, which
    for a whole chunk would be eight times the chunk.
    """
    levels = int(np.iinfo(dtype).max) + 1
    counts = np.zeros((channels, levels), dtype=np.int64)
    for chunk in chunks:
        for image in chunk:
            for c in range(channels):
                counts[c] += np.bincount(image[c].reshape(-1), minlength=levels)
    return counts


def select_rows(images: torch.Tensor | StoredImages, index: torch.Tensor) -> torch.Tensor | StoredImages:
    """``images[index]``, except that stored images stay stored (a sample of a split kept on
    disk is read a batch at a time, like the split)."""
    return images.select(index) if isinstance(images, StoredImages) else images[index]
