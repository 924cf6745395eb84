"""Inference engines for routed networks: fused, compiled and ONNX Runtime, and the
benchmarks and export built on them (``routec bench``, ``routec export``)."""
from routec.engine.engines import (ENGINES, EngineError, InferenceEngine, available_engines,
                                   optimize_for_inference)

__all__ = ["ENGINES", "EngineError", "InferenceEngine", "available_engines",
           "optimize_for_inference"]
