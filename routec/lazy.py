"""Names a package exports but imports only on first use (PEP 562).

``import routec`` and ``routec --help`` stay light: torch is imported by the
first name that needs it, not by the package.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``exports[name]`` on first
    use: ``"module"`` (same name there) or ``"module:attr"`` (the name differs), and
    keeps the value on the package so later look-ups are plain attributes."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = exports[name].partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
