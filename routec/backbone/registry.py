"""Models supplied at run time: named in a spec, found by name, built by a factory.

A spec only names a model (``model backbone``); the user says what it is, either in
Python with ``routec.register_model("backbone", factory)`` or on the command line
with ``--model backbone=MODULE:CALLABLE`` (the ``uvicorn main:app`` convention;
MODULE is imported with the working directory on the path) and keyword arguments
as JSON, ``--model-kwargs backbone='{"num_classes": 10}'``. A run records both, so
later commands rebuild the same model without anything retyped.

Weights are read as data only: a state_dict from ``torch.load(weights_only=True)``
or a safetensors file. Keys the model lacks or does not find are an error naming
them, never a silent partial load.
"""
from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from routec.errors import RoutecError

Factory = Callable[..., nn.Module]
_REGISTRY: dict[str, Factory] = {}


class ModelError(RoutecError):
    """A model that cannot be found, built or loaded as the user described it."""


def register_model(name: str, factory: Factory) -> Factory:
    """Make ``name`` (as a spec's ``model NAME`` says) build with ``factory(**kwargs)``."""
    if not name.isidentifier():
        raise ModelError(f"model name {name!r} must be an identifier, as in a spec")
    if not callable(factory):
        raise ModelError(f"register_model({name!r}, ...): the factory is not callable")
    _REGISTRY[name] = factory
    return factory


# name -> (MODULE:CALLABLE or None for a registered factory, kwargs): where a saved run's
# models come from, noted when its settings are read, built only if a graph needs them
_SOURCES: dict[str, tuple[str | None, dict[str, Any]]] = {}


def note_source(name: str, target: str | None, kwargs: dict[str, Any] | None = None) -> None:
    """Remember how to build model ``name``; nothing is imported or run until it is needed."""
    _SOURCES[name] = (target, dict(kwargs or {}))


def noted_source(name: str) -> tuple[str | None, dict[str, Any]] | None:
    return _SOURCES.get(name)


def registered_models() -> list[str]:
    return sorted(_REGISTRY)


def load_callable(target: str) -> Factory:
    """``MODULE:CALLABLE`` (CALLABLE may be dotted, ``pkg.mod:Class.build``) imported."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ModelError(f"--model expects MODULE:CALLABLE, as in 'mymodels:resnet20', "
                         f"got {target!r}")
    cwd = str(Path.cwd())
    if cwd not in sys.path:  # as uvicorn does: the user's own modules are importable
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - an import runs the user's code
        raise ModelError(f"cannot import {module_name!r} for --model {target} "
                         f"({type(err).__name__}: {_first_line(err)})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"module {module_name!r} has no {attr!r} (--model {target})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"{target} is not callable; name a function or class that builds "
                         "the model")
    return obj


def parse_model_flags(models: list[str] | None, kwargs: list[str] | None
                      ) -> dict[str, dict[str, Any]]:
    """``--model NAME=MODULE:CALLABLE`` and ``--model-kwargs NAME=JSON`` as
    ``{NAME: {"target": ..., "kwargs": {...}}}``, each checked for form only."""
    out: dict[str, dict[str, Any]] = {}
    for item in models or []:
        name, sep, target = item.partition("=")
        if not sep or not name.isidentifier():
            raise ModelError(f"--model expects NAME=MODULE:CALLABLE, got {item!r}")
        out[name] = {"target": target, "kwargs": {}}
    for item in kwargs or []:
        name, sep, text = item.partition("=")
        if not sep or name not in out:
            raise ModelError(f"--model-kwargs {item!r}: expected NAME=JSON for a NAME given "
                             f"with --model ({', '.join(out) or 'none given'})")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelError(f"--model-kwargs {name}: not JSON ({err.msg} at column "
                             f"{err.colno})") from None
        if not isinstance(value, dict):
            raise ModelError(f"--model-kwargs {name}: expected a JSON object of keyword "
                             f"arguments, got {type(value).__name__}")
        out[name]["kwargs"] = value
    return out


def build_model(name: str, target: str | None = None,
                kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The model ``name``: from ``target`` (MODULE:CALLABLE) if given, else registered."""
    if target is not None:
        factory, label = load_callable(target), target
    elif name in _REGISTRY:
        factory, label = _REGISTRY[name], f"the factory registered as {name!r}"
    else:
        raise ModelError(f"no model named {name!r}: pass --model {name}=MODULE:CALLABLE, or "
                         f"call routec.register_model({name!r}, factory) first")
    try:
        model = factory(**(kwargs or {}))
    except Exception as err:  # noqa: BLE001 - the user's constructor
        raise ModelError(f"building model {name!r} with {label}(**{kwargs or {}}) failed "
                         f"({type(err).__name__}: {_first_line(err)})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{label} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a safetensors file or a ``torch.save``d dict, as data only.

    A checkpoint that wraps the weights (``{"state_dict": ...}`` or ``{"model": ...}``,
    as Lightning and many training scripts save) is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no weights file there")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ModelError(f"{path}: reading safetensors needs the safetensors package "
                             "(pip install safetensors)") from None
        try:
            return load_file(str(path))
        except Exception as err:  # noqa: BLE001 - a damaged or foreign file
            raise ModelError(f"{path}: unreadable safetensors file ({_first_line(err)})") \
                from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - includes refusals of code-carrying pickles
        raise ModelError(f"{path}: not a weights file routec can read as data "
                         f"({type(err).__name__}: {_first_line(err)})",
                         hint="save the model's state_dict (torch.save(model.state_dict(), "
                              "path)) or a safetensors file") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ModelError(f"{path}: expected a state_dict (names to tensors)")
    return state


def load_weights(model: nn.Module, path: Path, *, name: str = "model") -> None:
    """Load ``path`` into ``model`` strictly; a mismatch names the keys and shapes."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected {_some(unexpected)}")
    if shapes:
        problems.append(f"shape of {_some(shapes)}")
    if problems:
        raise ModelError(f"{path} does not fit model {name!r}: " + "; ".join(problems))
    model.load_state_dict(state)


def _some(items: list[str], n: int = 4) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
