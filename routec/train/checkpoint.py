"""Checkpoints that survive a kill: written to a temp file, fsynced, then renamed.

A reader therefore sees either the previous complete checkpoint or the new
complete one, never half of one. Each carries the spec's hash and the config,
so a resume against a changed spec or setting is refused instead of mixed.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from routec.errors import RunError

FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several kinds for damaged files
        raise RunError(f"{path}: unreadable checkpoint ({type(err).__name__}: {err})",
                       hint="delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{path}: not a routec checkpoint (format {FORMAT})")
    return state
