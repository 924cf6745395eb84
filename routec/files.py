"""Files that survive a kill and read like any other file the user makes.

Every output routec writes (generated modules, checkpoints, pictures) goes to a
temporary file in the same folder, is flushed to disk and then renamed over the
target, so a reader sees the old complete file or the new complete one. The
temporary file is created private (mode 0600); before the rename it gets the
mode a plain ``open()`` would give, 0666 less the process umask (0644 usually).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from routec.errors import RoutecError


def default_mode() -> int:
    """0666 less the umask: what ``open(path, 'w')`` would create."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None], *,
                 make_parents: bool = False) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place.

    A missing folder is an error (a mistyped ``-o`` should not create directories)
    unless ``make_parents``, as for a run directory's checkpoint."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise RoutecError(f"{path}: is a folder; name a file to write")
    if path.exists() and not path.is_file():  # /dev/null, a FIFO, a socket: renaming over
        raise RoutecError(f"{path}: not a regular file; routec writes only files it can "
                          "replace whole")  # it would replace the device itself
    try:
        if make_parents:
            folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise RoutecError(f"{path}: cannot write ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise RoutecError(f"{path}: cannot write ({err.strerror})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
