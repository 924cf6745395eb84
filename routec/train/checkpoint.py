"""Checkpoints that survive a kill: written to a temp file, fsynced, then renamed.

A reader therefore sees either the previous complete checkpoint or the new
complete one, never half of one. Each carries the spec's hash and the config,
so a resume against a changed spec or setting is refused instead of mixed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from routec.errors import RunError
from routec.files import atomic_write

FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f), make_parents=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several kinds for damaged files
        raise RunError(f"{path}: unreadable checkpoint ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''}); it is damaged or was "
                       "not written by routec") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{path}: not a routec checkpoint (format {FORMAT})")
    return state
