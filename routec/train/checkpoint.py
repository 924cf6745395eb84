"""Checkpoints that survive a kill, run no code when read, and know when they are damaged.

Written to a temp file, fsynced, then renamed: a reader sees either the previous
complete checkpoint or the new complete one, never half of one. Each carries the
spec's hash and the config, so a resume against a changed spec or setting is
refused instead of mixed.

Reading uses ``torch.load(weights_only=True)``: a checkpoint holds tensors and
plain data (dicts, lists, numbers, strings) only, and a file whose pickle names
anything else (a function to call, a class to build) is refused before any of it
runs, so sharing a run folder never means sharing a shell.

A zip that is intact can still hold the wrong bytes (a copy gone wrong, a disk
error in a tensor record), so every checkpoint carries a SHA-256 of its whole
contents, recomputed and compared on load.
"""
from __future__ import annotations

import hashlib
import json
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch

from routec.errors import RunError
from routec.files import atomic_write

FORMAT = 2  # 2: with "sha256"; 1 (before checksums) still loads, with a warning
CHECKSUM = "sha256"


class UnsafeCheckpoint(RunError):
    """A checkpoint whose pickle would construct or call something: refused unread."""


class DamagedCheckpoint(RunError):
    """A checkpoint whose contents do not hash to the checksum written with them."""


def content_digest(state: Any) -> str:
    """SHA-256 of a checkpoint's contents: keys, plain values and every tensor's bytes.

    The walk is canonical (dict keys sorted, tensors as dtype, shape and raw bytes), so
    the digest depends on what was saved, not on how the zip laid it out."""
    h = hashlib.sha256()
    _feed(h, state)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            _feed(h, key)
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}".encode())
        for item in value:
            _feed(h, item)
    else:  # str, int, float, bool, None: their JSON spelling is exact (floats round-trip)
        h.update(f"V{type(value).__name__}:{json.dumps(value)}".encode())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    body = {"format": FORMAT, **state}
    body[CHECKSUM] = content_digest(body)
    atomic_write(path, lambda f: torch.save(body, f), make_parents=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, or a one-line :class:`RunError` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(err))))
        what = f" (it names {', '.join(names)})" if names else ""
        raise UnsafeCheckpoint(
            f"{path}: refused: a checkpoint may hold only tensors and plain data, and this "
            f"one asks to build or call Python objects{what}; routec runs no code from "
            "checkpoints") from None
    except Exception as err:  # torch raises several kinds for damaged files
        first = str(err).splitlines()[0] if str(err) else ""
        raise RunError(f"{path}: unreadable checkpoint ({type(err).__name__}: {first}); it is "
                       "damaged or was not written by routec") from None
    if not isinstance(state, dict) or state.get("format") not in (1, FORMAT):
        raise RunError(f"{path}: not a routec checkpoint (format {FORMAT})")
    if state["format"] == 1:
        print(f"warning: {path} predates checkpoint checksums; its integrity is not verified "
              "(the next checkpoint written carries one)", file=sys.stderr)
        return state
    stored = state.pop(CHECKSUM, None)
    if stored is None or content_digest(state) != stored:
        raise DamagedCheckpoint(f"{path}: damaged checkpoint: its contents do not match the "
                                "checksum written with them")
    return state
