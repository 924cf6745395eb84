"""Progress messages for the data stage.

Everything goes to stderr so that stdout stays clean for tables and paths; the
console is created lazily so that redirected or captured stderr is honoured.
"""
from __future__ import annotations

from rich.console import Console


def console() -> Console:
    """A stderr console bound to whatever ``sys.stderr`` is right now."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """Tell the user what the data stage is doing (which files, cache rebuilds)."""
    console().print(message, markup=False)
