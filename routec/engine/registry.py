"""The inference engines routec knows: one module per engine in
:mod:`routec.engine.backends`, each declaring one :class:`Engine` as ``ENGINE``.

The list of engines is derived from those modules (adding an engine is adding a
file); every command-line choice, default and "fastest available" search asks this
module, so an engine's name is spelled once, in its own module. Declarations import
nothing heavy: ``routec --help`` lists the engines without importing torch, and an
engine's implementation is imported when it is built.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from routec.errors import RoutecError

#: what an engine can be used for besides routing (``Engine.supports``)
PROFILE = "profile"  # times one node per segment: routec profile, bench's node table
BENCH = "bench"  # timed by routec bench and the reports when no engine is named
AUTOCAST = "autocast"  # runs at --precision bf16/fp16 (torch.autocast around the forward)


class EngineError(RoutecError):
    """An engine that cannot run here (missing package or compiler)."""


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Engine:
    """One inference engine.

    ``builder(net, **options)`` returns the engine's object (its ``route`` returns a
    :class:`~routec.runtime.routing.RoutedOutput` like ``net.route``); ``requires()``
    raises an :class:`EngineError` of one line naming what to install when the engine
    cannot run here; ``order`` places it in every list; ``speed`` is its expected
    speed without timing (higher is faster), used where the fastest engine available
    is chosen; ``reference`` marks the engine that is ``net.route`` itself.
    """

    name: str
    summary: str
    builder: Callable[..., Any]
    requires: Callable[[], None] = _nothing
    supports: frozenset[str] = field(default_factory=frozenset)
    order: int = 0
    speed: int = 0
    reference: bool = False

    def check(self) -> None:
        """Raise the engine's one-line error when a requirement is missing here."""
        self.requires()

    @property
    def available(self) -> bool:
        try:
            self.check()
        except EngineError:
            return False
        return True

    @property
    def needs_nothing(self) -> bool:
        return self.requires is _nothing

    def build(self, net: Any, **options: Any) -> Any:
        """The engine for ``net``, after checking its requirements."""
        self.check()
        engine = self.builder(net, **options)
        engine.name = self.name
        return engine


@cache
def engines() -> tuple[Engine, ...]:
    """Every engine, in list order: one per module of :mod:`routec.engine.backends`."""
    from routec.engine import backends

    found = []
    for mod in pkgutil.iter_modules(backends.__path__):
        if mod.name.startswith("_"):
            continue
        entry = importlib.import_module(f"{backends.__name__}.{mod.name}").ENGINE
        if entry.name != mod.name:  # the file is the name: one place to look
            raise RuntimeError(f"routec.engine.backends.{mod.name} declares engine "
                               f"{entry.name!r}")
        found.append(entry)
    return tuple(sorted(found, key=lambda e: (e.order, e.name)))


def names() -> tuple[str, ...]:
    return tuple(e.name for e in engines())


def get(name: str) -> Engine:
    """The engine called ``name``; an unknown name is a one-line error listing them."""
    for e in engines():
        if e.name == name:
            return e
    raise RoutecError(f"unknown engine '{name}'", hint="one of: " + ", ".join(names()))


def available() -> list[str]:
    """Engines whose requirements are present here (nothing is built)."""
    return [e.name for e in engines() if e.available]


def supporting(feature: str) -> list[str]:
    """Engines that support ``feature`` (:data:`PROFILE` or :data:`BENCH`)."""
    return [e.name for e in engines() if feature in e.supports]


def timed_by_default() -> list[str]:
    """The engines a timing comparison builds when none is named: those supporting
    :data:`BENCH` whose requirements are present."""
    return [n for n in supporting(BENCH) if get(n).available]


def reference() -> str:
    """The engine that is ``net.route`` itself."""
    return next(e.name for e in engines() if e.reference)


def default() -> str:
    """The fastest engine that needs nothing installed: what runs when none is named."""
    return max((e for e in engines() if e.needs_nothing), key=lambda e: e.speed).name


def profile_default() -> str:
    """The fastest engine that needs nothing installed and times single nodes."""
    return max((e for e in engines() if e.needs_nothing and PROFILE in e.supports),
               key=lambda e: e.speed).name


def listing(names_: Iterable[str] | None = None, last: str = "and") -> str:
    """``a, b and c`` of the given names (default: every engine)."""
    items = list(names() if names_ is None else names_)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def parse_names(text: str | None) -> list[str] | None:
    """A comma-separated list of engine names (None for empty text); an unknown name is
    a one-line error listing the known ones."""
    if not text:
        return None
    picked = [e.strip() for e in text.split(",") if e.strip()]
    bad = [e for e in picked if e not in names()]
    if bad:
        raise RoutecError(f"unknown engine(s): {', '.join(bad)}",
                          hint="choose from " + ", ".join(names()))
    return picked


def summaries(chosen: Sequence[str] | None = None) -> str:
    """``name: summary; ...`` of the given engines (default: all), for help texts."""
    return "; ".join(f"{e.name}: {e.summary}" for e in engines()
                     if chosen is None or e.name in chosen)
