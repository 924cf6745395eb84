"""The parsed form of a ``.route`` file: pydantic models that keep source positions.

These are the boundary between the parser and everything after it. They record
what the user *wrote* (template calls, references, junctions) with the position
of each piece, so later stages can point at the exact spot of a semantic fault.
Meaning (shapes, MACs, instantiation) is worked out in :mod:`routec.graph`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from routec.errors import SourcePos, SpecError


class Node(BaseModel):
    """Anything that came from the source text: it knows where."""

    model_config = ConfigDict(frozen=True)

    line: int
    column: int


class Number(Node):
    kind: Literal["number"] = "number"
    value: int | float


class Name(Node):
    """A bare identifier used as a value: a template parameter or a flag word."""

    kind: Literal["name"] = "name"
    value: str


class String(Node):
    """A quoted name: a cut point or submodule of a supplied model (``"blocks.5"``)."""

    kind: Literal["string"] = "string"
    value: str


class ListValue(Node):
    kind: Literal["list"] = "list"
    items: tuple["Value", ...]


class LayersValue(Node):
    """A chain of layers given as an argument: ``residual(conv(16) -> bn)``."""

    kind: Literal["layers"] = "layers"
    calls: tuple["Call", ...]


Value = Annotated[Union[Number, String, Name, ListValue, LayersValue],
                  Field(discriminator="kind")]


class Argument(Node):
    """One argument of a call: positional when ``keyword`` is None."""

    keyword: str | None
    value: Value


class Call(Node):
    """``name(arg, key = value)``: a stem, router, exit head or layer."""

    name: str
    args: tuple[Argument, ...] = ()


class ColumnTemplate(Node):
    """``column name(params) = layer -> layer ...``; every use makes fresh weights."""

    name: str
    params: tuple[str, ...] = ()
    layers: tuple[Call, ...]


class Reference(Node):
    """A use of a column template or a route macro inside a route."""

    kind: Literal["reference"] = "reference"
    name: str
    args: tuple[Argument, ...] = ()


class Leaf(Node):
    """``exit`` (default classifier) or ``exit(head)``."""

    kind: Literal["leaf"] = "leaf"
    head: str = "default"


class Junction(Node):
    """``either { a | b | ... }``: an n-way junction with a routing head."""

    kind: Literal["junction"] = "junction"
    router: str = "default"
    branches: tuple["Chain", ...]


Step = Annotated[Union[Reference, Leaf, Junction], Field(discriminator="kind")]


class Chain(Node):
    steps: tuple[Step, ...]


class Macro(Node):
    """``def name = chain``: a subtree written once and instantiated at each use."""

    name: str
    chain: Chain


class Option(Node):
    name: str
    value: Value | tuple[int, ...]


class NetworkSpec(BaseModel):
    """A whole ``.route`` file, with its text kept for error messages."""

    model_config = ConfigDict(frozen=True)

    name: str
    line: int
    column: int
    file: str
    source: str
    input_shape: tuple[int, int, int]
    classes: int | None
    stem: Call | None
    routers: dict[str, Call]
    exits: dict[str, Call]
    columns: dict[str, ColumnTemplate]
    macros: dict[str, Macro]
    route: Chain
    # ``model NAME(leaves = [...])``: models supplied at run time, by name
    models: dict[str, Call] = {}

    def error(
        self, message: str, at: Node | None, hint: str | None = None, kind: str = "spec"
    ) -> SpecError:
        """A :class:`SpecError` pointing at ``at`` in this spec's source."""
        pos = SourcePos(self.file, at.line, at.column) if at is not None else None
        return SpecError(message, pos, self.source, hint=hint, kind=kind)


ListValue.model_rebuild()
LayersValue.model_rebuild()
Junction.model_rebuild()
