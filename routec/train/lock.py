"""One writer per run directory: an exclusive ``flock`` on ``RUN/.lock``.

Two trainers on one ``--out`` would overwrite each other's checkpoint and mix
their metrics, so whoever writes a run holds this lock for as long as it writes.
The kernel releases a ``flock`` when its holder dies, however it dies, so a lock
left by a dead process is never mistaken for a live one and never needs guessing
from a pid. The file itself stays (deleting it would let two processes lock two
different files of one name); it holds the holder's pid, host and start time, only
to say who holds it.

Locks are re-entrant within a process: ``routec experiment`` locks a run, then
trains it with the same ``train`` that ``routec train`` uses, which locks again.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Any

from routec.errors import RunError
from routec.train.run_files import LOCK

LOCK_NAME = LOCK

# run directory (resolved) -> [open file, depth]: the locks this process holds
_held: dict[Path, list[Any]] = {}


class RunBusy(RunError):
    """Another live process writes this run directory."""


def holder(run_dir: Path) -> str:
    """Who holds (or last held) the lock of ``run_dir``, as written in its lock file."""
    try:
        return (Path(run_dir) / LOCK_NAME).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "unknown"


class RunLock:
    """``with RunLock(run_dir):`` holds the run's lock or raises :class:`RunBusy`.

    ``RunLock(run_dir, wait=False).acquire()`` returns False instead of raising, for
    callers (a suite) that skip a busy run and go on."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.key = self.run_dir.resolve()

    def acquire(self) -> bool:
        if self.key in _held:
            _held[self.key][1] += 1
            return True
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            f = open(self.run_dir / LOCK_NAME, "a+", encoding="utf-8")
        except OSError as err:
            raise RunError(f"{self.run_dir}: cannot lock the run directory "
                           f"({err.strerror or err})") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            f.close()
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise RunError(f"{self.run_dir}: cannot lock the run directory "
                           f"({err.strerror or err})") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        _held[self.key] = [f, 1]
        return True

    def release(self) -> None:
        entry = _held.get(self.key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _held[self.key]
            entry[0].close()  # closing the descriptor releases the flock

    def __enter__(self) -> RunLock:
        if not self.acquire():
            raise RunBusy(f"{self.run_dir} is being written by another process "
                          f"({holder(self.run_dir)}); wait for it to finish, or choose "
                          "another --out")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete temporary files that killed writes left in ``run_dir`` (``.NAME.*.tmp``).

    Only safe while holding the run's lock: then no other writer can own them."""
    removed = []
    for tmp in Path(run_dir).glob(".*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed
