"""Raw images to network inputs, as training prepared them; refusals for anything else.

A network sees its dataset's pixels after routec's preprocessing: float32 N×C×H×W in
[0, 1] (linear light, or v/255, by the dataset's ``pixels``), then standardised per
channel with the training split's mean and standard deviation when the run was
normalised. The manifest records that convention (``input``); :class:`InputConvention`
applies it, so raw images give the predictions ``routec eval`` gives. Input it cannot
interpret exactly (another dtype or layout, NaN, values outside [0, 1], 8-bit images
of a dataset that has no 8-bit form) is refused with one line, never guessed at.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from routec.deploy.manifest import need
from routec.errors import RoutecError

PIXELS = ("linear", "unit")
UINT8_DECODES = ("srgb", "unit")
RANGE_SLACK = 1e-6  # float pixels may exceed [0, 1] by rounding in resizing, no more


class InputError(RoutecError):
    """Images, labels or options the deploy runner cannot use as given."""


def _numbers(v: Any, n: int, where: Path, what: str, positive: bool = False) -> np.ndarray:
    """``v`` as n finite float64 numbers (a manifest list), or a ManifestError."""
    ok = (isinstance(v, list) and len(v) == n and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
        and (x > 0 or not positive) for x in v))
    need(ok, where, f"{what} must be {n} finite{' positive' if positive else ''} numbers")
    return np.asarray(v, dtype=np.float64)


@dataclass(frozen=True)
class InputConvention:
    """What the network's input is, from the manifest's ``input`` record."""

    shape: tuple[int, int, int]
    pixels: str | None          # "linear", "unit"; None when exported without its dataset
    bounded: bool               # float pixels must lie in [0, 1]
    mean: np.ndarray | None     # float32 1×C×1×1, or None: not normalised
    std: np.ndarray | None
    uint8: str | None           # how 8-bit values decode ("srgb", "unit"); None: no 8-bit form
    table: np.ndarray | None    # float32[256]: the decoded value of each 8-bit value

    @classmethod
    def from_manifest(cls, rec: Any, shape: tuple[int, int, int], k_cpt: bool, where: Path
                      ) -> "InputConvention":
        """Checked: layout, dtype and shape as the network's, every number finite."""
        need(isinstance(rec, dict), where, "'input' must be an object")
        need(rec.get("name") == "x" and rec.get("layout") == "NCHW" and rec.get("dtype") == "float32",
             where, "'input' must describe x as NCHW float32")
        need(rec.get("shape") == list(shape), where,
             f"input.shape {rec.get('shape')} differs from the network's {list(shape)}")
        need(rec.get("k_cpt") is k_cpt, where, f"input.k_cpt must be {str(k_cpt).lower()}")
        pixels = rec.get("pixels")
        need(pixels is None or pixels in PIXELS, where, f"input.pixels {pixels!r} is not one of "
                                                        f"{', '.join(PIXELS)} or null")
        rng = rec.get("range")
        need(rng is None or rng == [0.0, 1.0], where, "input.range must be [0.0, 1.0] or null")
        mean = std = None
        norm = rec.get("normalization")
        if norm is not None:
            need(isinstance(norm, dict), where, "input.normalization must be an object or null")
            c = shape[0]
            mean = _numbers(norm.get("mean"), c, where, "input.normalization.mean")
            std = _numbers(norm.get("std"), c, where, "input.normalization.std", positive=True)
            mean, std = (a.astype(np.float32).reshape(1, c, 1, 1) for a in (mean, std))
        decode = table = None
        u8 = rec.get("uint8")
        if u8 is not None:
            need(isinstance(u8, dict) and u8.get("decode") in UINT8_DECODES, where,
                 f"input.uint8.decode must be one of {', '.join(UINT8_DECODES)}")
            table = _numbers(u8.get("table"), 256, where, "input.uint8.table").astype(np.float32)
            need(bool((table >= 0).all() and (table <= 1).all()), where,
                 "input.uint8.table values must lie in [0, 1]")
            decode = u8["decode"]
        return cls(shape, pixels, rng is not None, mean, std, decode, table)

    def describe(self) -> str:
        """The raw input this network takes, in words (for messages and --help)."""
        c, h, w = self.shape
        text = f"float32 N×{c}×{h}×{w}"
        if self.bounded:
            text += f" in [0, 1] ({self.pixels or 'pixel'} values, before normalisation)"
        if self.uint8:
            text += f", or uint8 N×{c}×{h}×{w} / N×{h}×{w}×{c} (8-bit values, decoded {self.uint8})"
        return text

    def check(self, images: Any) -> None:
        """Refuse, with one line, images this convention cannot interpret exactly."""
        if not isinstance(images, np.ndarray):
            raise InputError(f"images must be a numpy array, not {type(images).__name__}")
        if images.dtype == np.uint8:
            self._uint8_layout(images)
        elif images.dtype == np.float32:
            self._check_float(images)
        else:
            raise InputError(f"images are {images.dtype}; this network takes {self.describe()}")

    def to_network(self, images: np.ndarray, checked: bool = False) -> np.ndarray:
        """The network's input for raw ``images``, exactly as training prepared its own
        (``checked``: :meth:`check` has passed on these images already)."""
        if not checked:
            self.check(images)
        if images.dtype == np.uint8:
            assert self.table is not None
            x = self.table[images if self._uint8_layout(images) == "NCHW"
                           else images.transpose(0, 3, 1, 2)]
        else:
            x = images
        if self.mean is not None:
            assert self.std is not None
            x = (x - self.mean) / self.std
        return np.ascontiguousarray(x, dtype=np.float32)

    def _layout_error(self, images: np.ndarray) -> InputError:
        got = "×".join(map(str, images.shape)) or "a scalar"
        return InputError(f"images are {images.dtype} {got}; this network takes {self.describe()}")

    def _check_float(self, images: np.ndarray) -> np.ndarray:
        """Float pixels: NCHW, finite, in [0, 1] when the convention bounds them."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.shape:
            raise self._layout_error(images)
        bad = ~np.isfinite(images)
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(len(images), -1).any(axis=1))[0])
            raise InputError(f"images hold {int(bad.sum())} NaN or infinite values "
                             f"(the first in image {first})")
        if self.bounded and len(images):
            lo, hi = float(images.min()), float(images.max())
            if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
                raise InputError(f"float images range over [{lo:.4g}, {hi:.4g}]; this network takes "
                                 f"raw pixels in [0, 1] and normalises them itself")
        return images

    def _uint8_layout(self, images: np.ndarray) -> str:
        """"NCHW" or "NHWC" for 8-bit images this network's dataset can decode."""
        if self.table is None:
            raise InputError(f"images are uint8, but this network's dataset has no 8-bit form; "
                             f"it takes {self.describe()}")
        c, h, w = self.shape
        if images.ndim == 4 and tuple(images.shape[1:]) == (c, h, w):
            return "NCHW"
        if images.ndim == 4 and tuple(images.shape[1:]) == (h, w, c):
            return "NHWC"
        raise self._layout_error(images)


def load_array(path: str, what: str) -> np.ndarray:
    """A .npy file's one array, without unpickling anything (object arrays are refused)."""
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file ({what})") from None
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"{path}: not a readable .npy array of {what} ({reason})") from None
    if not isinstance(a, np.ndarray):
        a.close()
        raise InputError(f"{path}: an .npz archive, not a single .npy array of {what}")
    return a


def check_labels(labels: np.ndarray, n: int, classes: int, path: str) -> np.ndarray:
    """Labels usable for accuracy: one integer class index per image."""
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise InputError(f"{path}: labels must be a 1-D integer array, got {labels.dtype} "
                         f"{'×'.join(map(str, labels.shape)) or 'scalar'}")
    if len(labels) != n:
        raise InputError(f"{path}: {len(labels)} labels for {n} images")
    out = (labels < 0) | (labels >= classes)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InputError(f"{path}: label {int(labels[i])} (example {i}) is not a class index "
                         f"in [0, {classes})")
    return labels.astype(np.int64)
