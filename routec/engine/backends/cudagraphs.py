"""``cudagraphs``: the fused segments on rows padded to a few bucket sizes (powers of
two up to the batch), each (segment, bucket) a CUDA graph captured once and replayed;
needs a CUDA device."""
from __future__ import annotations

from typing import Any

from routec.engine.registry import AUTOCAST, BENCH, Engine, EngineError

NAME = "cudagraphs"


def _requires() -> None:
    import torch

    if not torch.cuda.is_available():
        raise EngineError(f"engine '{NAME}' needs a CUDA device and torch sees none here",
                          hint="run on a machine with a GPU and a CUDA build of torch, "
                               "or choose another --engine")


def _build(net: Any, **options: Any) -> Any:
    from routec.engine.graphs import BucketEngine

    return BucketEngine(net, **options)


ENGINE = Engine(
    name=NAME, summary="fused segments padded to bucket sizes, one CUDA graph per "
                       "(segment, bucket) (needs a CUDA device)",
    builder=_build, requires=_requires, supports=frozenset({BENCH, AUTOCAST}), order=4, speed=4)
