"""Stage 3: generate readable PyTorch modules from validated routing graphs.

``emit_module`` needs no torch; ``build_class``/``load_source`` (which execute the
generated code) import it on first use, so ``routec compile`` starts fast.
"""
from __future__ import annotations

import importlib
from typing import Any

from routec.codegen.emit import class_name, emit_module

__all__ = ["class_name", "emit_module", "build_class", "load_source"]


def __getattr__(name: str) -> Any:
    if name in ("build_class", "load_source"):
        value = getattr(importlib.import_module("routec.codegen.load"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'routec.codegen' has no attribute {name!r}")
