"""``fused``: each segment (the columns between two junctions, with the junction's router
or the exit's classifier) traced with torch.fx, batch-norm folded into the conv/linear
before it, channels-last weights, inference mode."""
from __future__ import annotations

from typing import Any

from routec.engine.registry import AUTOCAST, BENCH, PROFILE, Engine


def _build(net: Any, **options: Any) -> Any:
    from routec.engine.engines import FusedEngine

    return FusedEngine(net, **options)


ENGINE = Engine(
    name="fused", summary="the eager network's layers traced per segment, batch-norm folded",
    builder=_build, supports=frozenset({BENCH, PROFILE, AUTOCAST}), order=1, speed=1)
