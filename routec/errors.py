"""One error type for everything a user can get wrong.

The CLI catches :class:`RoutecError` and prints its message; any other exception
is a bug in routec. Spec errors carry a source position so the message can show
``file:line:col``, the offending line and a caret, plus a one-line hint.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourcePos:
    """A 1-based position in a spec file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class RoutecError(Exception):
    """Base class of every error routec reports to a user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The whole user-facing message (one screen at most)."""
        text = f"error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.render()


class SpecError(RoutecError):
    """A syntax or semantic fault in a ``.route`` spec, pinned to a position."""

    def __init__(
        self,
        message: str,
        pos: SourcePos | None,
        source: str | None = None,
        hint: str | None = None,
        kind: str = "spec",
    ) -> None:
        super().__init__(message, hint)
        self.pos = pos
        self.source = source
        self.kind = kind

    @property
    def line(self) -> int | None:
        return self.pos.line if self.pos else None

    @property
    def column(self) -> int | None:
        return self.pos.column if self.pos else None

    def render(self) -> str:
        if self.pos is None:
            return super().render()
        text = f"{self.pos}: error: {self.message}"
        snippet = _caret_snippet(self.source, self.pos.line, self.pos.column)
        if snippet:
            text += "\n" + snippet
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class DataError(RoutecError):
    """Missing, corrupt or mismatched dataset files."""


class RunError(RoutecError):
    """A training or evaluation run that cannot go on (bad config, NaN loss, bad checkpoint)."""


class TrainingDiverged(RunError):
    """Training produced a non-finite loss or network state at ``iteration``.

    Unlike other run errors this is an outcome of the settings, not a fault to fix:
    training is deterministic, so resuming from the last good checkpoint (at
    ``last_good``, or None) diverges again, and an experiment records it as such.
    ``cause`` says what went non-finite, in a few words, for tables that have no room
    for the whole message.
    """

    def __init__(self, cause: str, *, iteration: int, last_good: int | None,
                 hint: str | None = None) -> None:
        good = f"iteration {last_good}" if last_good is not None else "none readable"
        super().__init__(f"{cause}; stopped, and the last good checkpoint ({good}) is left "
                         "as it was", hint)
        self.cause = cause
        self.iteration = iteration
        self.last_good = last_good


def _caret_snippet(source: str | None, line: int, column: int, width: int = 100) -> str:
    """The offending line (clipped to one screen width) and a caret under the column."""
    if source is None:
        return ""
    lines = source.split("\n")  # as Lark counts lines: str.splitlines() also breaks at \f etc.
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1].rstrip("\r").expandtabs(1)
    col = max(column - 1, 0)
    start = max(0, col - width + 20) if col >= width - 10 else 0
    shown = text[start : start + width]
    prefix = f"{line:>5} | "
    return f"{prefix}{shown}\n{' ' * (len(prefix) + col - start)}^"
