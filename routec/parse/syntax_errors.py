"""Friendly messages for syntax errors.

Lark reports *where* parsing failed and which tokens it expected; this module
turns that into one sentence a user can act on. Typical mistakes are recognised
with ``UnexpectedInput.match_examples``: each example below fails in the same
parser state as the mistake it illustrates.
"""
from __future__ import annotations

from functools import lru_cache

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from routec.errors import SourcePos, SpecError

_NET = "network n (input = 3x32x32) {\n"


def _in_routes(*fragments: str) -> list[str]:
    """Each chain fragment as a route, a def, and inside one and two junctions.

    LALR parser states differ with junction depth, so a mistake needs one example
    per depth at which users make it; three levels cover the paper's trees.
    """
    out = []
    for f in fragments:
        out += [
            _NET + "route " + f,
            _NET + "def t = " + f,
            _NET + "route c0 -> either { exit | " + f,
            _NET + "route c0 -> either { exit | c0 -> either { exit | " + f,
            _NET + "route c0 -> either { c0 -> either { c0 -> either { exit | " + f,
        ]
    return out


_NETWORK_OPEN = ("the network is not closed", "add the closing '}' of the network block")
_JUNCTION_OPEN = ("a junction is not closed", "add the closing '}' of the junction")

# (message, hint) -> examples that fail in the same parser state.
MISTAKES: dict[tuple[str, str], list[str]] = {
    ("'exit' here starts an exit-head declaration, which needs a name and a kind",
     "declare a head as `exit wide = mlp(hidden = [16])`; inside a route, join steps with "
     "'->': c1 -> exit"): [
        _NET + "route c1 exit\n}",
        _NET + "route c1(16) exit\n}",
        _NET + "exit\n}",
        _NET + "exit = linear\n}",
        _NET + "column c = relu\nexit\n}",
    ],
    ("expected '->' before the next layer, or a new statement",
     "layers of a column are joined by arrows (conv(16) -> relu); every statement starts "
     "with stem, router, exit, column, def or route"): [
        _NET + "column c1 = conv(8)\nc1 -> exit",
        _NET + "column c1 = conv(8) relu",
        _NET + "column c1 = conv(8)\ncolumns c2 = relu",
        _NET + "column c1 = multiscale[8]\ncolumns c2 = relu",
        _NET + "column c1 = multiscale[8] relu",
        _NET + "column c1 = relu\ncolumns c2 = relu",
        _NET + "column c1 = bn -> relu relu",
        _NET + "column c1(w) = conv(w)\nc1 -> exit",
    ],
    ("expected '->' between two steps of a route",
     "steps of a chain are joined by arrows: c1 -> c2 -> exit"): _in_routes(
        "c1 c2", "c1 exit", "c1 -> c2 either { exit | exit }", "c1(16) c2", "exit c2",
    ),
    ("branches of a junction are separated by '|'",
     "write: either { exit | c2 -> exit }"): _in_routes(
        "c1 -> either { exit, c2 }", "c1 -> either { exit c2 }", "c1 -> either { exit ; c2 }",
        "c1 -> either { c2, exit }", "c1 -> either { c2 -> exit, exit }",
        "c1 -> either { c2 -> exit exit }", "c1 -> either { exit(e) c2 }",
    ),
    ("a junction needs its branches in braces",
     "write: either { exit | c2 -> exit }"): _in_routes(
        "c1 -> either exit", "c1 -> either ( exit | c2 )", "c1 -> either [ exit | c2 ]",
        "either exit",
    ),
    ("expected '=' after the name being defined",
     "declarations read: column c1 = multiscale[16, 16]"): [
        _NET + "column c1 multiscale[16]",
        _NET + "column c1(w) multiscale[w]",
        _NET + "router r mlp(hidden = [16])",
        _NET + "exit e linear",
        _NET + "def t c1 -> exit",
    ],
    ("expected a statement: stem, router, exit, column, def or route",
     "every line inside the network braces starts with one of these words"): [
        _NET + "columns c1 = multiscale[16]",
        _NET + "c1 -> exit",
        _NET + "16",
        _NET + "route c1 -> exit\n}\n}",
        _NET + "route c1 -> exit\n}\nroute",
    ],
    _NETWORK_OPEN: [
        _NET + "route c1 -> exit",
        _NET + "column c1 = multiscale[16]",
        _NET,
    ],
    _JUNCTION_OPEN: _in_routes(
        "c1 -> either { exit | c2 -> exit", "c1 -> either { exit | c2 -> exit\n}",
        "c1 -> either { exit",
    ),
    ("a route or def has nothing after '->'",
     "every arrow must lead somewhere: c1 -> exit"): _in_routes(
        "c1 ->", "c1 -> }", "c1 -> either { exit | c2 -> }", "c1 -> | exit", "c1 -> -> exit",
    ),
    ("an empty branch in a junction",
     "each branch needs at least one step: exit, or c2 -> exit"): _in_routes(
        "c1 -> either { exit | }", "c1 -> either { | exit }", "c1 -> either { }",
        "c1 -> either { exit || c2 }",
    ),
    ("the network header is malformed",
     "the header reads: network name (input = 3x32x32, classes = 10) {"): [
        "network n { }",
        "network (input = 3x32x32) { }",
        "network n (input 3x32x32) { }",
        "network n (input = 3x32x32 classes = 10) { }",
        "network n (input = 3x32x32, classes = 10 { }",
        "network n (input = 3x32x32) route",
        "n (input = 3x32x32) { }",
        "network n (input = ) { }",
    ],
    ("a list is not closed", "lists read: [16, 16, 16]"): [
        _NET + "column c = multiscale[16, 16",
        _NET + "column c = multiscale[16 16]",
        _NET + "column c = multiscale[16, 16 16]",
        _NET + "router default = mlp(hidden = [16, 16)",
        _NET + "router default = mlp(hidden = [16 16])",
        _NET + "column c = bn -> multiscale[16, 16",  # later layers: a deeper stack
        _NET + "column c = bn -> multiscale[16 16]",
    ],
    ("an argument list is not closed", "arguments read: conv(16, kernel = 3)"): [
        _NET + "column c = conv(16",
        _NET + "column c = conv(16 16)",
        _NET + "column c = conv(16, 16 16)",
        _NET + "stem to_pyramid(scales = 4",
        _NET + "stem to_pyramid(scales = 4 4)",
        _NET + "column c = bn -> conv(16",
        _NET + "column c = bn -> conv(16 16)",
        _NET + "column c = bn -> conv(16, 16 16)",
    ],
    ("expected a value (a number, a name or a list)",
     "e.g. conv(16), mlp(hidden = [16, 16]), pool(2)"): [
        _NET + "column c = conv(, 16)",
        _NET + "column c = conv(16, , 16)",
        _NET + "column c = conv(kernel = )",
        _NET + "column c = multiscale[, 16]",
        _NET + "column c = multiscale[16, , 16]",
        _NET + "stem to_pyramid(scales = )",
    ],
}

_TOKEN_NAMES = {
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['",
    "RSQB": "']'", "COMMA": "','", "EQUAL": "'='", "VBAR": "'|'", "__ANON_0": "'->'",
    "NAME": "a name", "NUMBER": "a number", "SHAPE": "a shape like 3x32x32",
    "$END": "end of file", "_NETWORK": "'network'", "_STEM": "'stem'", "_ROUTER": "'router'",
    "_EXIT": "'exit'", "_COLUMN": "'column'", "_DEF": "'def'", "_ROUTE": "'route'",
    "_EITHER": "'either'",
}


def _describe(names: set[str]) -> str:
    words = sorted(_TOKEN_NAMES.get(n, n.lower()) for n in names)
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def _at_end(err: UnexpectedInput) -> bool:
    return isinstance(err, UnexpectedEOF) or (
        isinstance(err, UnexpectedToken) and err.token.type == "$END")


def _open_braces(source: str) -> int:
    """How many '{' are still open at the end (the language has no strings)."""
    depth = 0
    for line in source.split("\n"):  # a comment ends at "\n" only
        code = line.split("#", 1)[0]
        depth += code.count("{") - code.count("}")
    return depth


@lru_cache(maxsize=None)
def _example_error(lark: Lark, text: str) -> UnexpectedInput | None:
    """How one example of MISTAKES fails. The examples never change, so each is
    parsed once per process, not once per error (that took ~30 ms an error)."""
    try:
        lark.parse(text)
    except UnexpectedInput as err:
        if isinstance(err, UnexpectedToken):
            err.accepts  # noqa: B018 - computed now, from the parser state at the error
        return err
    return None


def friendly(err: UnexpectedInput, lark: Lark, file: str, source: str) -> SpecError:
    """Turn a Lark error into a :class:`SpecError` at the offending token."""
    def parse(text: str) -> object:
        # Lark's match_examples skips examples whose parser state matches but whose
        # accepted tokens differ, yet its debug line for that case raises TypeError
        # (lark 1.3). Filtering those examples here gives the same result safely.
        other = _example_error(lark, text)
        if other is None:
            return None
        if (isinstance(err, UnexpectedToken) and isinstance(other, UnexpectedToken)
                and other.accepts != err.accepts):
            return None
        # An example that fails at the end of its text ("... is not closed") says
        # nothing about a stray token or character in the middle, and vice versa.
        if _at_end(other) != _at_end(err):
            return None
        raise other.with_traceback(None)

    label = None
    try:
        label = err.match_examples(parse, MISTAKES, use_accepts=True)
    except Exception:  # matching is a nicety: never let it hide the real error
        label = None
    if label in (_NETWORK_OPEN, _JUNCTION_OPEN):
        # After a junction's '}' the parser cannot tell which block lacks its '}';
        # counting the braces can (the network's is the outermost).
        label = _NETWORK_OPEN if _open_braces(source) <= 1 else _JUNCTION_OPEN
    line, column = max(err.line, 1), max(err.column, 1)
    if _at_end(err):
        # count lines as Lark does (only "\n" ends one), not as str.splitlines() does
        lines = (source[:-1] if source.endswith("\n") else source).split("\n")
        line, column = len(lines), len(lines[-1]) + 1
        found = "end of file"
    elif isinstance(err, UnexpectedCharacters):
        found = repr(source[err.pos_in_stream]) if err.pos_in_stream < len(source) else "end"
    elif isinstance(err, UnexpectedToken):
        found = repr(str(err.token))
    else:  # pragma: no cover - Lark has no other kinds
        found = "input"
    expected = _describe(set(getattr(err, "expected", None) or getattr(err, "allowed", None)
                             or ()))
    if label is not None:
        message, hint = label
        message = f"{message} (found {found})"
    else:
        message = f"unexpected {found}"
        hint = f"expected {expected}" if expected else None
    if isinstance(err, UnexpectedCharacters) and label is None:
        message = f"unexpected character {found}"
        hint = ("names are letters, digits and '_'; comments start with '#'"
                + (f"; expected {expected}" if expected else ""))
    return SpecError(message, SourcePos(file, line, column), source, hint=hint, kind="syntax")
