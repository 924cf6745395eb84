"""The codegen stage: generate readable PyTorch modules from validated routing graphs.

Names are imported on first use: ``emit_module`` needs no torch, ``build_class`` and
``load_source`` (which execute the generated code) do, and ``routec --help`` needs
neither.
"""
from __future__ import annotations

from routec.lazy import lazy_exports

_EXPORTS = {"class_name": "routec.codegen.emit", "emit_module": "routec.codegen.emit",
            "build_class": "routec.codegen.load", "load_source": "routec.codegen.load"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
