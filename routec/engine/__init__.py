"""Inference engines for routed networks: fused, compiled and ONNX Runtime, and the
benchmarks and export built on them (``routec bench``, ``routec export``).

Names are imported on first use, so that ``routec.engine.cli`` loads without torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"ENGINES", "EngineError", "InferenceEngine", "available_engines",
          "optimize_for_inference"}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module("routec.engine.engines"), name)
    raise AttributeError(f"module 'routec.engine' has no attribute {name!r}")
