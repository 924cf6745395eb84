"""Turn a ``--device`` string into a torch device, or a one-line error saying why not.

Checked before any data is decoded or weights allocated, so a typo or a CPU-only
torch build costs the user a second, not a traceback after a minute of decoding.
"""
from __future__ import annotations

import torch

from routec.errors import RunError


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise RunError(f"unknown device '{name}': use cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        if device.index not in (None, 0):  # torch takes cpu:99 and runs on the CPU anyway
            raise RunError(f"--device {name}: there is one CPU device; use --device cpu")
        return device
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise RunError(f"--device {name}: no CUDA device is available (this torch, "
                           f"{torch.__version__}, was built without CUDA); use --device cpu, or install "
                           "a CUDA build of torch")
        if not torch.cuda.is_available():
            raise RunError(f"--device {name}: no CUDA device is available (torch has CUDA "
                           "but sees no GPU on this machine); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RunError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) here")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise RunError(f"--device {name}: Apple's MPS backend is not available here; "
                           "use --device cpu")
        return device
    raise RunError(f"--device {name}: routec trains on cpu, cuda or mps, not {device.type}")
