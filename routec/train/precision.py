"""``--precision fp32|bf16|fp16``: autocast on the device, and fp16's gradient scaler.

One owner for what each precision means, used by training (the forward of a step runs
under autocast; fp16 scales its loss) and by the inference engines (``routec eval``,
``routec bench``). A precision the device's autocast does not support is a one-line
error before anything runs, not torch's warning and a silent fp32 run.
"""
from __future__ import annotations

import dataclasses
import warnings
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

import torch

from routec.errors import RunError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision this device's autocast does not run (one line)."""
    if precision not in PRECISIONS:
        raise RunError(f"unknown precision '{precision}'", hint="one of " + ", ".join(PRECISIONS))
    if precision == "fp32":
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ctx = torch.autocast(device.type, dtype=DTYPES[precision])
            enabled = ctx._enabled
        except RuntimeError:
            enabled = False
    if not enabled or caught:
        raise RunError(f"--precision {precision}: torch's autocast does not support "
                       f"{precision} on {device.type} here", hint="use --precision fp32"
                       + ("" if precision == "bf16" else " or bf16"))


def autocast(precision: str, device: torch.device | str, *, cache: bool = True
             ) -> AbstractContextManager[object]:
    """The forward pass's context at ``precision``: autocast to bf16/fp16 on the
    device's type, or nothing for fp32. ``cache=False`` for CUDA-graph capture (a
    weight cast cached outside the graph would be replayed stale)."""
    if precision == "fp32":
        return nullcontext()
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=DTYPES[precision], cache_enabled=cache)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16's loss scaler (gradients below fp16's range would vanish); None otherwise:
    bf16 has fp32's range and needs none."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def in_fp32(out: Any) -> Any:
    """A dense output with its logits and scores back in fp32 (the losses' precision)."""
    if not dataclasses.is_dataclass(out):
        return out
    changes = {}
    for f in dataclasses.fields(out):
        v = getattr(out, f.name)
        if isinstance(v, torch.Tensor) and v.dtype in (torch.bfloat16, torch.float16):
            changes[f.name] = v.float()
        elif isinstance(v, tuple) and v and all(isinstance(a, torch.Tensor) for a in v):
            changes[f.name] = tuple(a.float() if a.dtype in (torch.bfloat16, torch.float16)
                                    else a for a in v)
    return dataclasses.replace(out, **changes) if changes else out
