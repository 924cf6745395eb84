"""Command-line flags that name a model the spec routes, shared by every command.

``--model NAME=MODULE:CALLABLE`` (repeatable), ``--model-kwargs NAME=JSON`` and, where
weights matter, ``--weights [NAME=]FILE``; they become a run's ``models`` setting.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_model_flags(p: argparse.ArgumentParser, *, weights: bool = True) -> None:
    """--model/--model-kwargs (and --weights): a model the spec routes by name."""
    p.add_argument("--model", action="append", metavar="NAME=MODULE:CALLABLE",
                   help="the model a spec's `model NAME` routes: a function or class that "
                        "builds it, importable from the working directory (repeatable)")
    p.add_argument("--model-kwargs", action="append", metavar="NAME=JSON",
                   help="keyword arguments of --model NAME, as a JSON object")
    if weights:
        p.add_argument("--weights", action="append", metavar="[NAME=]FILE",
                       help="trained parameters of --model NAME: a state_dict "
                            "(torch.save) or .safetensors file")


def model_sources(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The ``models`` setting from --model, --model-kwargs and --weights."""
    if not any(getattr(args, f, None) for f in ("model", "model_kwargs", "weights")):
        return {}  # (and torch stays unimported for commands that do not need it)
    import hashlib

    from routec.backbone.registry import ModelError, parse_model_flags

    sources = parse_model_flags(getattr(args, "model", None), getattr(args, "model_kwargs", None))
    for item in getattr(args, "weights", None) or []:
        name, sep, path = item.partition("=")
        if not sep:
            if len(sources) != 1:
                raise ModelError("--weights FILE needs NAME=FILE when there is not exactly "
                                 "one --model")
            name, path = next(iter(sources)), item
        if name not in sources:
            raise ModelError(f"--weights {item}: no --model {name}=MODULE:CALLABLE given")
        file = Path(path).expanduser()
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError as err:
            raise ModelError(f"{file}: cannot read the weights ({err.strerror or err})") \
                from None
        sources[name].update(weights=str(file.resolve()), weights_sha256=digest)
    return sources


def supply_from_flags(args: argparse.Namespace) -> None:
    """Supply the models named by --model (for commands that build a spec's graph)."""
    sources = model_sources(args)
    if sources:
        from routec.backbone.supplied import supply_sources

        supply_sources(sources, weights=False)
