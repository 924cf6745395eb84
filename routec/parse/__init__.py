"""The parse stage: ``.route`` text → :class:`routec.spec.NetworkSpec`.

Every fault raises :class:`routec.errors.SpecError` with ``file:line:col``, the
offending line, a caret and a hint; nothing else escapes for any input text.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from lark.exceptions import UnexpectedInput

from routec.errors import RoutecError, SpecError, SourcePos
from routec.parse.grammar import parser
from routec.parse.syntax_errors import friendly
from routec.parse.to_spec import to_spec
from routec.spec import NetworkSpec

__all__ = ["parse_spec", "load_spec", "bundled_specs", "resolve_spec_path"]

MAX_SOURCE_BYTES = 1 << 20  # a spec is a few dozen lines; refuse runaway inputs early


def parse_spec(text: str, file: str = "<string>") -> NetworkSpec:
    """Parse spec text; ``file`` only labels error messages."""
    if len(text) > MAX_SOURCE_BYTES:
        raise SpecError(f"spec is too large ({len(text)} characters)", None, kind="too-large",
                        hint=f"a spec is at most {MAX_SOURCE_BYTES} characters")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        col = text.index("\x00") - (text.rfind("\n", 0, text.index("\x00")) + 1) + 1
        raise SpecError("NUL character in spec", SourcePos(file, line, col), text, kind="syntax",
                        hint="a .route file is plain text")
    lark = parser()
    try:
        tree = lark.parse(text)
    except UnexpectedInput as err:
        raise friendly(err, lark, file, text) from None
    except RecursionError:
        raise SpecError("spec is nested too deeply", SourcePos(file, 1, 1), text,
                        kind="too-deep", hint="split very long chains or deep nesting into defs"
                        ) from None
    try:
        return to_spec(tree, file, text)
    except RecursionError:
        raise SpecError("spec is nested too deeply", SourcePos(file, 1, 1), text,
                        kind="too-deep", hint="split very long chains or deep nesting into defs"
                        ) from None


def bundled_specs() -> dict[str, str]:
    """Names of the specs that ship with routec (``paper_chain`` → its text)."""
    from routec import specs

    root = resources.files("routec.specs")
    return {name: root.joinpath(f"{name}.route").read_text(encoding="utf-8")
            for name in specs.names()}


def resolve_spec_path(spec: str) -> tuple[str, str]:
    """``(label, text)`` for a path or a bundled spec name; no guessing beyond that."""
    path = Path(spec)
    if path.is_file():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RoutecError(f"{path}: not a UTF-8 text file") from None
        except OSError as err:
            raise RoutecError(f"{path}: cannot read ({err.strerror})") from None
    bundled = bundled_specs()
    if path.exists() and spec not in bundled:  # a folder named like a bundled spec is no spec
        raise RoutecError(f"{path}: not a file")
    if spec in bundled:
        return f"<bundled>/{spec}.route", bundled[spec]
    raise RoutecError(
        f"no spec file '{spec}' and no bundled spec of that name",
        hint="bundled specs: " + ", ".join(bundled),
    )


def load_spec(spec: str) -> NetworkSpec:
    """Parse a spec given as a path or as the name of a bundled spec."""
    label, text = resolve_spec_path(spec)
    return parse_spec(text, label)
