"""``eager``: ``net.route`` itself, the generated module in eager PyTorch."""
from __future__ import annotations

from typing import Any

from routec.engine.registry import AUTOCAST, BENCH, Engine


def _build(net: Any, **options: Any) -> Any:
    from routec.engine.engines import EagerEngine

    return EagerEngine(net, **options)


ENGINE = Engine(
    name="eager", summary="net.route itself, the generated module in eager PyTorch",
    builder=_build, supports=frozenset({BENCH, AUTOCAST}), order=0, speed=0, reference=True)
