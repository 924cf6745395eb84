"""A short description of the machine a run trains on, logged so results can say where
they were measured."""
from __future__ import annotations

import os
import platform
import shutil
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile (inductor) would build CPU kernels with, or None."""
    for cc in ("c++", "g++", "clang++"):
        if shutil.which(cc):
            return cc
    return None


def describe(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
