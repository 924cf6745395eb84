"""Loading the Lark grammar that ships with routec (``grammars/route.lark``)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark


def grammar_text() -> str:
    """The grammar as installed: ``routec/grammars/route.lark`` inside the package."""
    return resources.files("routec.grammars").joinpath("route.lark").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def parser() -> Lark:
    """An LALR parser: fast, and its errors know the exact parser state for hints."""
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
    )
