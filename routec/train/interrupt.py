"""Ctrl-C and SIGTERM end a run at an iteration boundary, after a checkpoint.

A signal only raises a flag; the training loop looks at it between iterations,
writes a checkpoint of the iteration just finished and stops. A checkpoint write
is therefore never cut in half by the signal, and no work since the last periodic
checkpoint is lost. A second signal while the first is being honoured stops at
once (the last complete checkpoint stays as it was).
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from routec.errors import RunError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(RunError):
    """Training stopped on a signal, with a checkpoint at ``iteration`` in ``out_dir``."""

    def __init__(self, signum: int, *, iteration: int, out_dir: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} at iteration {iteration}: checkpoint written to {out_dir}; "
                         f"continue with --resume --out {out_dir}")
        self.signum = signum
        self.iteration = iteration

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class StopOnSignal:
    """``with StopOnSignal() as stop:`` ... ``stop.requested`` is the first signal seen."""

    def __init__(self) -> None:
        self.requested: int = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # asked twice: stop now
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():  # only there can it listen
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
