"""``onnx``: each segment exported to ONNX with a dynamic batch axis and run by ONNX
Runtime, with routing done on numpy arrays between sessions; needs the onnx and
onnxruntime packages (``pip install 'routec[onnx]'``)."""
from __future__ import annotations

from typing import Any

from routec.engine.registry import BENCH, PROFILE, Engine, EngineError

NAME = "onnx"


def require() -> tuple[Any, Any]:
    """The onnx and onnxruntime modules, or the engine's one-line error naming the
    package to install."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as err:
        raise EngineError(f"engine '{NAME}' needs the onnx and onnxruntime packages "
                          f"({err.name} is missing)",
                          hint="pip install 'routec[onnx]' (or: pip install onnx onnxruntime)"
                          ) from None
    return onnx, onnxruntime


def _requires() -> None:
    require()


def _build(net: Any, **options: Any) -> Any:
    from routec.engine.engines import OnnxEngine

    return OnnxEngine(net, **options)


ENGINE = Engine(
    name=NAME, summary="one ONNX Runtime session per segment (needs onnx, onnxruntime)",
    builder=_build, requires=_requires, supports=frozenset({BENCH, PROFILE}),
    order=3, speed=2)
