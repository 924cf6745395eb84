"""Binding the arguments of a call (`conv(16, kernel = 3)`) to a typed signature.

Every call in a spec (stem, router, exit head, layer) goes through :func:`bind`,
so argument errors read the same everywhere and point at the argument at fault.
Template parameters (``column block(w) = conv(w)``) are substituted here too.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from routec import spec as S

Kind = Literal["count", "counts", "counts0", "size", "fraction", "number", "layers", "name",
               "names"]
# count, size: a whole number from 1 to LIMIT; counts: a non-empty list of them (counts0:
# possibly empty); fraction: a number p with 0 ≤ p < 1; number: any number; layers: a
# chain of layers (`conv(16) -> bn`), bound to its calls and resolved by routec.graph.build;
# name: a quoted name ("blocks.5"); names: a list of them (possibly empty).

LIMIT = 1 << 16  # per-dimension limit: channels, hidden units, kernel sizes


@dataclass(frozen=True)
class Param:
    """One formal parameter: its name, what it accepts, and its default if optional."""

    name: str
    kind: Kind
    default: Any = None
    required: bool = False


class BindError(Exception):
    """Raised with the node at fault; the caller turns it into a SpecError."""

    def __init__(self, message: str, at: S.Node, hint: str | None = None,
                 kind: str = "bad-argument") -> None:
        super().__init__(message)
        self.message = message
        self.at = at
        self.hint = hint
        self.kind = kind


def substitute(value: S.Value, env: Mapping[str, S.Value]) -> S.Value:
    """Replace template parameter names in ``value`` by the values bound to them."""
    if isinstance(value, S.Name):
        if value.value not in env:
            known = ", ".join(sorted(env)) or "none"
            raise BindError(f"unknown name '{value.value}'", value, kind="unknown-name",
                            hint=f"names in arguments must be template parameters ({known})")
        return env[value.value]
    if isinstance(value, S.LayersValue):  # its calls are bound (with env) one by one
        return value
    if isinstance(value, S.ListValue):
        return value.model_copy(update={"items": tuple(substitute(v, env) for v in value.items)})
    return value


def _check(value: S.Value, param: Param, call: str) -> Any:
    what = f"'{param.name}' of {call}"
    if param.kind == "layers":
        if not isinstance(value, S.LayersValue):
            raise BindError(f"{what} must be a chain of layers", value, kind="bad-argument",
                            hint=f"e.g. {call}(conv(16) -> bn -> relu -> conv(16) -> bn)")
        return value.calls
    if param.kind == "name":
        if not isinstance(value, S.String):
            raise BindError(f"{what} must be a quoted name", value, kind="bad-argument",
                            hint=f'e.g. {param.name} = "layer2"')
        return value.value
    if param.kind == "names":
        items = value.items if isinstance(value, S.ListValue) else None
        if items is None or not all(isinstance(v, S.String) for v in items):
            raise BindError(f"{what} must be a list of quoted names", value,
                            kind="bad-argument", hint=f'e.g. {param.name} = ["blocks.0"]')
        return tuple(v.value for v in items)  # type: ignore[union-attr]
    if isinstance(value, S.String):
        raise BindError(f"{what} takes numbers, not a quoted name", value,
                        kind="bad-argument", hint="quoted names are cut points of models")
    if param.kind in ("fraction", "number"):
        if not isinstance(value, S.Number):
            raise BindError(f"{what} must be a number", value, kind="bad-number",
                            hint=f"e.g. {param.name} = 0.5")
        if param.kind == "fraction" and not 0 <= value.value < 1:
            raise BindError(f"{what} must be at least 0 and less than 1, got {value.value}",
                            value, kind="bad-number", hint=f"e.g. {param.name} = 0.5")
        return float(value.value)
    if param.kind in ("count", "size"):
        low = 1
        if not (isinstance(value, S.Number) and isinstance(value.value, int)):
            raise BindError(f"{what} must be a whole number", value, kind="bad-number",
                            hint=f"e.g. {param.name} = 3")
        if not low <= value.value <= LIMIT:
            raise BindError(f"{what} must be between {low} and {LIMIT}, got {value.value}",
                            value, kind="bad-number", hint=f"e.g. {param.name} = 3")
        return value.value
    # lists of counts
    if not isinstance(value, S.ListValue):
        raise BindError(f"{what} must be a list like [16, 16]", value, kind="bad-argument",
                        hint=f"write {param.name} = [16, 16], even for one item: [16]")
    if param.kind == "counts" and not value.items:
        raise BindError(f"{what} must not be empty", value, kind="bad-argument",
                        hint=f"e.g. {param.name} = [16, 16]")
    out = []
    for item in value.items:
        if not (isinstance(item, S.Number) and isinstance(item.value, int)):
            raise BindError(f"items of {what} must be whole numbers", item, kind="bad-number",
                            hint=f"e.g. {param.name} = [16, 16]")
        if not 1 <= item.value <= LIMIT:
            raise BindError(f"items of {what} must be between 1 and {LIMIT}, got {item.value}",
                            item, kind="bad-number", hint=f"e.g. {param.name} = [16, 16]")
        out.append(item.value)
    return tuple(out)


def bind(call: S.Call, signature: tuple[Param, ...], env: Mapping[str, S.Value] = {}
         ) -> dict[str, Any]:
    """Match ``call``'s arguments to ``signature``; returns checked Python values."""
    names = [p.name for p in signature]
    given: dict[str, S.Argument] = {}
    positional = [a for a in call.args if a.keyword is None]
    if len(positional) > len(signature):
        extra = positional[len(signature)]
        raise BindError(
            f"{call.name} takes at most {len(signature)} argument"
            f"{'s' if len(signature) != 1 else ''}, got {len(positional)}",
            extra, kind="arity",
            hint=f"{call.name}({', '.join(names)})" if names else f"write just {call.name}",
        )
    for param, arg in zip(signature, positional):
        given[param.name] = arg
    for arg in call.args:
        if arg.keyword is None:
            continue
        if arg.keyword not in names:
            raise BindError(f"{call.name} has no argument '{arg.keyword}'", arg,
                            kind="bad-argument",
                            hint=f"its arguments are: {', '.join(names) or 'none'}")
        if arg.keyword in given:
            raise BindError(f"argument '{arg.keyword}' of {call.name} given twice", arg,
                            kind="duplicate", hint="a positional argument already gave it; "
                                                   f"{call.name}({', '.join(names)})")
        given[arg.keyword] = arg
    bound: dict[str, Any] = {}
    for param in signature:
        if param.name in given:
            value = given[param.name].value
            if (param.kind == "layers" and isinstance(value, S.Name)
                    and value.value not in env):  # one bare layer: residual(relu)
                value = S.LayersValue(line=value.line, column=value.column,
                                      calls=(S.Call(line=value.line, column=value.column,
                                                    name=value.value),))
            value = substitute(value, env)
            bound[param.name] = _check(value, param, call.name)
        elif param.required:
            raise BindError(f"{call.name} needs the argument '{param.name}'", call,
                            kind="arity", hint=f"{call.name}({', '.join(names)})")
        else:
            bound[param.name] = param.default
    return bound
