"""Inference engines for routed networks, and the benchmarks and export built on them
(``routec bench``, ``routec profile``, ``routec export``).

Each engine is declared in its own module of :mod:`routec.engine.backends` and listed
by :mod:`routec.engine.registry`; :mod:`routec.engine.engines` implements them.
Names are imported on first use, so that ``routec.engine.cli`` loads without torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"ENGINES": "routec.engine.engines", "EngineError": "routec.engine.registry",
          "InferenceEngine": "routec.engine.engines",
          "available_engines": "routec.engine.engines",
          "optimize_for_inference": "routec.engine.engines"}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'routec.engine' has no attribute {name!r}")
