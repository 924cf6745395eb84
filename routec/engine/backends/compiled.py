"""``compiled``: the fused segments compiled by torch.compile (inductor) for dynamic batch
sizes; needs a C++ compiler. Timed on request only (compiling takes minutes on a small
CPU)."""
from __future__ import annotations

from typing import Any

from routec.engine import registry
from routec.engine.registry import AUTOCAST, Engine, EngineError

NAME = "compiled"


def _requires() -> None:
    from routec.train.machine import cxx_compiler

    if cxx_compiler() is None:
        others = [n for n in registry.names() if n != NAME and not registry.get(n).reference]
        raise EngineError(f"engine '{NAME}' needs a C++ compiler for torch.compile "
                          "(inductor) and none was found",
                          hint="install one, e.g. `apt-get install g++`, or use --engine "
                               + registry.listing(others, last="or"))


def _build(net: Any, **options: Any) -> Any:
    from routec.engine.engines import CompiledEngine

    return CompiledEngine(net, **options)


ENGINE = Engine(
    name=NAME, summary="fused segments compiled by torch.compile (needs a C++ compiler)",
    builder=_build, requires=_requires, supports=frozenset({AUTOCAST}), order=2, speed=3)
