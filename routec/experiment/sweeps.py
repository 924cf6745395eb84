"""Sweeps: the cross product of a few settings' values, each point one named run.

A sweep is fixed settings plus ordered axes (a setting and its values). Every point of
the product is a run whose name joins its axis values in axis order (``actor-k4e-9-s1``),
so the name says what differs between a sweep's runs and nothing else; an axis of one
value is named too, so adding values to it later keeps the runs already trained. The
paper's suites are sweeps with names (``routec.experiment.suites``), and ``routec sweep``
runs any other on the same engine.

A sweep file (``routec sweep --axes FILE``) is TOML::

    name = "tiny-kcpt"                # optional; default: the file's stem
    [fixed]                           # settings every run shares (RunConfig fields)
    spec = "tiny"
    data = "synthetic"
    [axes]                            # in this order in every run's name
    strategy = ["actor", "critic"]
    k_cpt = [0, 1e-9, 4e-9]
    seed = [0, 1]
"""
from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routec.errors import RunError

Settings = dict[str, Any]


def k_name(k: float) -> str:
    """A MAC-priced k_cpt as a run name: 4e-9 → ``k4e-9``."""
    return f"k{k * 1e9:g}e-9"


def value_name(key: str, value: Any, settings: Settings) -> str:
    """The part of a run's name that says ``key = value`` (``settings``: the run's others,
    since a k_cpt reads per MAC or per millisecond by the run's cost)."""
    if key == "k_cpt":
        if value == "dynamic":
            return "dynamic"
        if settings.get("cost") == "latency":
            return f"k{value:g}ms"
        return k_name(value)
    if key == "static_columns":
        return f"n{value}"
    if key == "seed":
        return f"s{value}"
    flag = key.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"no-{flag}"
    if isinstance(value, (int, float)):
        return f"{flag}{value:g}"
    if key == "spec":
        return Path(str(value)).stem
    text = re.sub(r"[^A-Za-z0-9.+=-]+", "_", str(value)).strip("_")
    if not text:
        raise RunError(f"sweep axis {key}: {value!r} cannot name a run")
    return text


@dataclass(frozen=True)
class Sweep:
    """Fixed settings and ordered axes; :meth:`runs` is the named cross product."""

    fixed: tuple[tuple[str, Any], ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    @classmethod
    def of(cls, fixed: Settings | None = None, **axes: Iterable[Any]) -> Sweep:
        return cls(tuple((fixed or {}).items()),
                   tuple((k, tuple(v)) for k, v in axes.items()))

    def runs(self) -> dict[str, Settings]:
        """Run name → settings, axes varying slowest first (the first axis's first value
        heads the list, as a suite's runs are listed)."""
        if not self.axes:
            raise RunError("a sweep needs at least one axis (a setting and its values)")
        fixed = dict(self.fixed)
        for key, values in self.axes:
            if not values:
                raise RunError(f"sweep axis {key} has no values")
            if key in fixed:
                raise RunError(f"{key} is both a fixed setting and an axis of the sweep")
        runs: dict[str, Settings] = {}
        keys = [k for k, _ in self.axes]
        for point in itertools.product(*(v for _, v in self.axes)):
            settings = {**fixed, **dict(zip(keys, point))}
            name = "-".join(value_name(k, v, settings) for k, v in zip(keys, point))
            if name in runs:
                raise RunError(f"two runs of the sweep would both be named {name}",
                               hint="give each axis distinct values")
            runs[name] = settings
        return runs


def _field_types() -> dict[str, Any]:
    from routec.train.config import RunConfig

    return {name: f.annotation for name, f in RunConfig.model_fields.items()}


# What a sweep may not set: the budget and the device come from the command line (the
# same sweep runs at a CPU budget here and at full length elsewhere), and the data
# folders are the machine's.
NOT_SWEPT = frozenset({"iterations", "device", "data_root", "cache_dir"})


def setting_value(key: str, value: Any) -> Any:
    """``value`` as RunConfig's field ``key`` holds it (``"4e-9"`` → 4e-9); one-line errors
    for an unknown setting or a value it cannot take."""
    from pydantic import TypeAdapter, ValidationError

    types = _field_types()
    if key not in types or key in NOT_SWEPT:
        near = difflib.get_close_matches(key, [t for t in types if t not in NOT_SWEPT], n=1)
        if key in NOT_SWEPT:
            raise RunError(f"{key} is not a sweep setting: it comes from the command line",
                           hint=f"use --{key.replace('_', '-')}")
        raise RunError(f"unknown run setting '{key}'",
                       hint=f"did you mean {near[0]}?" if near else
                       "settings are RunConfig's fields (routec train --help)")
    if isinstance(value, str):
        value = _literal(value)
    try:
        return TypeAdapter(types[key]).validate_python(value)
    except ValidationError as err:
        why = err.errors()[0]["msg"] if err.errors() else str(err)
        raise RunError(f"{key} = {value!r}: {why}") from None


def _literal(text: str) -> Any:
    """A command-line value as TOML would read it: a number, true/false, else the text."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def axis_values(key: str, text: str) -> tuple[Any, ...]:
    """``--k-cpt 0,1e-9,4e-9`` → the values of axis ``key``."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise RunError(f"sweep axis {key}: no values in {text!r}",
                       hint="give them comma-separated, e.g. 0,1e-9,4e-9")
    return tuple(setting_value(key, p) for p in parts)


def checked_sweep(fixed: Settings, axes: list[tuple[str, Iterable[Any]]]) -> Sweep:
    """A sweep whose every setting and value RunConfig can take."""
    return Sweep(tuple((k, setting_value(k, v)) for k, v in fixed.items()),
                 tuple((k, tuple(setting_value(k, v) for v in values)) for k, values in axes))


def read_sweep_file(path: str | Path) -> tuple[str, Settings, list[tuple[str, list[Any]]]]:
    """(name, fixed settings, axes in file order) of a sweep file."""
    from routec.train.config import load_config_file

    p = Path(path)
    data = load_config_file(p)
    unknown = sorted(set(data) - {"name", "fixed", "axes"})
    if unknown:
        raise RunError(f"{p}: unknown key(s) {', '.join(unknown)}",
                       hint="a sweep file holds name, a [fixed] table and an [axes] table")
    fixed, axes = data.get("fixed", {}), data.get("axes", {})
    if not isinstance(fixed, dict) or not isinstance(axes, dict):
        raise RunError(f"{p}: [fixed] and [axes] must be tables")
    bad = [k for k, v in axes.items() if not isinstance(v, list)]
    if bad:
        raise RunError(f"{p}: axis {bad[0]} must be a list of values",
                       hint=f"{bad[0]} = [value, ...], or put it under [fixed]")
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not name:
        raise RunError(f"{p}: name must be a non-empty string")
    return name, fixed, list(axes.items())
