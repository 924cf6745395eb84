"""Malformed specs: every fault is a SpecError of the right kind at the right place.

Each case is the valid ``BASE`` spec with one mistake. The case text marks the
fault with ``⟨here⟩``; the test strips the marker and works out the expected line
and column from where it stood, so expected positions never come from routec.
The whole pipeline runs for each case: parse, build the graph, emit the module.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

import routec.codegen
import routec.graph
import routec.parse
from routec.errors import RoutecError, SpecError
from routec.cli import main

MARK = "⟨here⟩"
FILE = "case.route"

BASE = """\
network base (input = 3x32x32, classes = 10) {
    stem   to_pyramid(scales = 3)
    router default = mlp(hidden = [16])
    router quick   = linear
    exit   default = linear
    exit   wide    = mlp(hidden = [16])

    column a = multiscale[8, 8, 8]
    column b = multiscale[16, 16]
    column plain(w) = conv(w, kernel = 3) -> bn -> relu -> pool(2)

    def tail = b -> either(router = quick) { exit | plain(8) -> exit(wide) }

    route a -> either { exit | tail | plain(4) -> exit }
}
"""


@dataclass(frozen=True)
class Case:
    id: str
    text: str  # the spec, with MARK where the error must point
    kind: str
    fragment: str  # part of the message


def edit(*pairs: tuple[str, str]) -> str:
    """BASE with each ``old`` (which must occur exactly once) replaced by ``new``."""
    text = BASE
    for old, new in pairs:
        assert text.count(old) == 1, f"{old!r} is not unique in the base spec"
        text = text.replace(old, new)
    return text


def locate(marked: str) -> tuple[str, int, int]:
    """(text without the marker, 1-based line, 1-based column of the marker)."""
    assert marked.count(MARK) == 1, "a case needs exactly one marker"
    i = marked.index(MARK)
    line = marked.count("\n", 0, i) + 1
    column = i - (marked.rfind("\n", 0, i) + 1) + 1
    return marked.replace(MARK, ""), line, column


H = MARK  # short alias for the tables below

CASES = [
    # --- unknown names ------------------------------------------------------------------
    Case("unknown-column-in-route",
         edit(("| plain(4) -> exit }", f"| {H}plian(4) -> exit }}")),
         "unknown-name", "unknown column or def 'plian'"),
    Case("unknown-column-in-def",
         edit(("def tail = b ->", f"def tail = {H}bb ->")),
         "unknown-name", "unknown column or def 'bb'"),
    Case("unknown-def",
         edit(("| tail |", f"| {H}tial |")),
         "unknown-name", "unknown column or def 'tial'"),
    Case("unknown-router-at-junction",
         edit(("b -> either(router = quick)", f"b -> {H}either(router = quik)")),
         "unknown-name", "unknown router 'quik'"),
    Case("unknown-exit-head-at-leaf",
         edit(("-> exit(wide) }", f"-> {H}exit(wid) }}")),
         "unknown-name", "unknown exit head 'wid'"),
    Case("unknown-router-kind",
         edit(("router quick   = linear", f"router quick   = {H}lineer")),
         "unknown-name", "unknown router kind 'lineer'"),
    Case("unknown-exit-kind",
         edit(("exit   wide    = mlp(", f"exit   wide    = {H}perceptron(")),
         "unknown-name", "unknown exit kind 'perceptron'"),
    Case("unknown-layer",
         edit(("-> relu ->", f"-> {H}rleu ->")),
         "unknown-name", "unknown layer 'rleu'"),
    Case("unknown-stem",
         edit(("stem   to_pyramid", f"stem   {H}to_pyramids")),
         "unknown-name", "unknown stem 'to_pyramids'"),
    Case("unknown-name-in-layer-argument",
         edit(("conv(w, kernel", f"conv({H}width, kernel")),
         "unknown-name", "unknown name 'width'"),
    Case("name-as-template-argument",
         edit(("plain(4) -> exit }", f"plain({H}w) -> exit }}")),
         "unknown-name", "'w' is not a value"),
    # --- arity ------------------------------------------------------------------------
    Case("template-too-many-arguments",
         edit(("| plain(4) -> exit }", f"| {H}plain(4, 5) -> exit }}")),
         "arity", "column 'plain' takes 1 argument, got 2"),
    Case("template-no-arguments",
         edit(("| plain(4) -> exit }", f"| {H}plain -> exit }}")),
         "arity", "column 'plain' takes 1 argument, got 0"),
    Case("layer-too-many-arguments",
         edit(("pool(2)", f"pool(2, {H}2)")),
         "arity", "pool takes at most 1 argument, got 2"),
    Case("layer-missing-required-argument",
         edit(("conv(w, kernel = 3)", f"{H}conv(kernel = 3)")),
         "arity", "conv needs the argument 'channels'"),
    Case("router-ways-mismatch",
         edit(("router quick   = linear", "router quick   = linear(ways = 3)"),
              ("b -> either(router = quick)", f"b -> {H}either(router = quick)")),
         "arity", "router 'quick' has 3 ways but this junction has 2 branches"),
    Case("junction-with-one-branch",
         edit(("route a -> either { exit | tail | plain(4) -> exit }",
               f"route a -> {H}either {{ tail }}")),
         "arity", "a junction needs at least 2 branches, got 1"),
    Case("def-called-with-arguments",
         edit(("| tail |", f"| tail({H}2) |")),
         "arity", "def 'tail' takes no arguments"),
    # --- shapes -----------------------------------------------------------------------
    Case("multiscale-more-levels-than-pyramid",
         edit(("column a = multiscale[8, 8, 8]", f"column a = {H}multiscale[8, 8, 8, 8]")),
         "shape", "multiscale with 4 levels needs an input pyramid of at least 4 levels"),
    Case("pool-on-too-small-map",
         edit(("-> pool(2)", f"-> {H}pool(16)")),
         "shape", "pool(16) needs a map of at least 16x16, got 8x8"),
    Case("to-pyramid-too-many-scales",
         edit(("stem   to_pyramid(scales = 3)", f"stem   {H}to_pyramid(scales = 7)")),
         "shape", "needs both sides divisible by 64"),
    Case("even-kernel",
         edit(("conv(w, kernel = 3)", f"{H}conv(w, kernel = 4)")),
         "shape", "kernel size 4 is even"),
    # --- cycles -----------------------------------------------------------------------
    Case("def-uses-itself",
         edit(("-> exit(wide) }", f"-> exit(wide) | {H}tail }}")),
         "cycle", "def 'tail' uses itself"),
    Case("defs-use-each-other",
         edit(("-> exit(wide) }", f"-> exit(wide) | {H}more }}"),
              ("\n    route a", "\n    def more = b -> tail\n    route a")),
         "cycle", "def 'tail' uses itself (tail -> more -> tail)"),
    # --- unreachable declarations -------------------------------------------------------
    Case("unused-column",
         edit(("    column b =", f"    column {H}spare = multiscale[8]\n    column b =")),
         "unreachable", "column 'spare' is never used"),
    Case("unused-def",
         edit(("\n    route a", f"\n    def {H}spare = b -> exit\n    route a")),
         "unreachable", "def 'spare' is never used"),
    Case("unused-router",
         edit(("router quick   = linear", f"router quick   = {H}linear"),
              ("either(router = quick)", "either")),
         "unreachable", "router head 'quick' is never used"),
    Case("unused-exit-head",
         edit(("exit   wide    = mlp(", f"exit   wide    = {H}mlp("),
              ("-> exit(wide) }", "-> exit }")),
         "unreachable", "exit head 'wide' is never used"),
    # --- leaves that are not classifiers --------------------------------------------------
    Case("route-ends-in-column",
         edit(("route a -> either { exit | tail | plain(4) -> exit }", f"route {H}a")),
         "leaf-not-classifier", "this path ends at column 'a'"),
    Case("branch-ends-in-column",
         edit(("| plain(4) -> exit }", f"| {H}plain(4) }}")),
         "leaf-not-classifier", "this path ends at column 'plain'"),
    Case("def-ends-in-column",
         edit(("def tail = b -> either(router = quick) { exit | plain(8) -> exit(wide) }",
               f"def tail = a -> {H}b")),
         "leaf-not-classifier", "this path ends at column 'b'"),
    # --- duplicates -------------------------------------------------------------------
    Case("column-twice",
         edit(("    column plain", f"    column {H}b = multiscale[8]\n    column plain")),
         "duplicate", "name 'b' is defined twice"),
    Case("column-and-def-same-name",
         edit(("\n    route a", f"\n    def {H}a = b -> exit\n    route a")),
         "duplicate", "name 'a' is defined twice"),
    Case("router-twice",
         edit(("    exit   default", f"    router {H}quick = mlp\n    exit   default")),
         "duplicate", "router head 'quick' is defined twice"),
    Case("exit-head-twice",
         edit(("\n\n    column a", f"\n    exit {H}wide = linear\n\n    column a")),
         "duplicate", "exit head 'wide' is defined twice"),
    Case("stem-twice",
         edit(("    router default", f"    stem {H}identity\n    router default")),
         "duplicate", "the stem is given twice"),
    Case("route-twice",
         edit(("\n}\n", f"\n    {H}route a -> exit\n}}\n")),
         "duplicate", "the route is given twice"),
    Case("keyword-argument-twice",
         edit(("conv(w, kernel = 3)", f"conv(w, kernel = 3, {H}kernel = 5)")),
         "duplicate", "argument 'kernel' given twice"),
    Case("template-parameter-twice",
         edit(("column plain(w)", f"column plain(w, {H}w)")),
         "duplicate", "parameter 'w' given twice"),
    Case("network-option-twice",
         edit(("classes = 10)", f"classes = 10, {H}classes = 10)")),
         "duplicate", "network option 'classes' given twice"),
    # --- bad numbers ------------------------------------------------------------------
    Case("zero-channels",
         edit(("multiscale[8, 8, 8]", f"multiscale[8, {H}0, 8]")),
         "bad-number", "must be between 1 and 65536, got 0"),
    Case("negative-channels-through-template",
         edit(("plain(4) -> exit }", f"plain({H}-4) -> exit }}")),
         "bad-number", "'channels' of conv must be between 1 and 65536, got -4"),
    Case("float-where-integer-needed",
         edit(("pool(2)", f"pool({H}2.5)")),
         "bad-number", "'size' of pool must be a whole number"),
    Case("number-out-of-float-range",
         edit(("mlp(hidden = [16])\n    router quick",
               f"mlp(hidden = [{H}1e999])\n    router quick")),
         "bad-number", "bad number '1e999'"),
    Case("huge-integer",
         edit(("multiscale[16, 16]", f"multiscale[{H}99999999999, 16]")),
         "bad-number", "number 99999999999 is too large"),
    Case("input-shape-with-two-dimensions",
         edit(("input = 3x32x32", f"input = {H}3x32")),
         "bad-number", "bad input shape '3x32'"),
    Case("input-shape-with-zero",
         edit(("input = 3x32x32", f"input = {H}0x32x32")),
         "bad-number", "bad input shape '0x32x32'"),
    Case("input-not-a-shape",
         edit(("input = 3x32x32", f"input = {H}32")),
         "bad-number", "input must be a shape like 3x32x32"),
    Case("one-class",
         edit(("classes = 10", f"classes = {H}1")),
         "bad-number", "classes must be a whole number from 2 to 100000"),
    Case("fractional-classes",
         edit(("classes = 10", f"classes = {H}2.5")),
         "bad-number", "classes must be a whole number from 2 to 100000"),
    # --- syntax -----------------------------------------------------------------------
    Case("missing-arrow",
         edit(("route a -> either", f"route a {H}either")),
         "syntax", "expected '->' between two steps of a route"),
    Case("comma-instead-of-bar",
         edit(("{ exit | tail |", f"{{ exit {H}, tail |")),
         "syntax", "branches of a junction are separated by '|'"),
    Case("unclosed-network-brace",
         edit(("-> exit }\n}\n", f"-> exit }}{H}\n")),
         "syntax", "the network is not closed"),
    Case("unclosed-junction",
         edit(("-> exit }\n}\n", f"-> exit{H}\n")),
         "syntax", "a junction is not closed"),
    Case("unclosed-junction-before-network-brace",  # either '}' may be the missing one
         edit(("-> exit }\n}\n", f"-> exit\n}}{H}\n")),
         "syntax", "is not closed"),
    Case("unclosed-list",
         edit(("multiscale[16, 16]", f"multiscale[16, 16 {H}-> bn")),
         "syntax", "a list is not closed"),
    Case("unclosed-argument-list",
         edit(("to_pyramid(scales = 3)", f"to_pyramid(scales = 3 {H}3)")),
         "syntax", "an argument list is not closed"),
    Case("nothing-after-arrow",
         edit(("plain(4) -> exit }", f"plain(4) -> {H}}}")),
         "syntax", "a route or def has nothing after '->'"),
    Case("statement-keyword-misspelt",
         edit(("    column b =", f"    {H}columns b =")),
         "syntax", "or a new statement (found 'columns')"),
    Case("stray-character",
         edit(("column a = multiscale[8, 8, 8]", f"column a = multiscale[8, 8, 8] {H}@")),
         "syntax", "before the next layer, or a new statement (found '@')"),
    Case("missing-equals",
         edit(("column b = multiscale", f"column b {H}multiscale")),
         "syntax", "expected '=' after the name being defined"),
    Case("empty-branch",
         edit(("{ exit | tail |", f"{{ exit | {H}| tail |")),
         "syntax", "an empty branch in a junction"),
    Case("header-without-parentheses",
         edit(("network base (input = 3x32x32, classes = 10) {",
               f"network base {H}input = 3x32x32, classes = 10 {{")),
         "syntax", "the network header is malformed"),
    Case("keyword-glued-to-a-name",  # once read as `column a`
         edit(("    column a =", f"    {H}columna =")),
         "syntax", "unexpected 'columna'"),
    Case("keyword-glued-to-a-call",  # once read as `stem to_pyramid(...)`
         edit(("stem   to_pyramid", f"{H}stemto_pyramid")),
         "syntax", "expected a statement"),
    Case("nul-character",
         edit(("column b = multiscale", f"column b = {H}\x00multiscale")),
         "syntax", "NUL character"),
    Case("positional-after-keyword",
         edit(("conv(w, kernel = 3)", f"conv(kernel = 3, {H}w)")),
         "syntax", "positional argument after a keyword argument"),
    # --- reserved words ---------------------------------------------------------------
    Case("reserved-column-name-train",
         edit(("column a =", f"column {H}train =")),
         "reserved", "'train' is a reserved word and cannot name a column"),
    Case("reserved-column-name-class",
         edit(("column b =", f"column {H}class =")),
         "reserved", "'class' is a reserved word and cannot name a column"),
    Case("reserved-nn-module-method",  # the column would shadow Module.bfloat16()
         edit(("column b =", f"column {H}bfloat16 =")),
         "reserved", "'bfloat16' is a reserved word and cannot name a column"),
    Case("reserved-generated-class-constant",
         edit(("column b =", f"column {H}NODES =")),
         "reserved", "'NODES' is a reserved word and cannot name a column"),
    Case("reserved-underscore-name",
         edit(("column b =", f"column {H}_emit =")),
         "reserved", "'_emit' is a reserved word and cannot name a column"),
    Case("reserved-def-name",
         edit(("def tail =", f"def {H}self =")),
         "reserved", "'self' is a reserved word and cannot name a def"),
    Case("reserved-template-parameter",
         edit(("column plain(w)", f"column plain({H}x)")),
         "reserved", "'x' is a reserved word and cannot name a parameter"),
    # --- missing parts, options, arguments --------------------------------------------
    Case("missing-route",
         edit(("network base", f"network {H}base"),
              ("    route a -> either { exit | tail | plain(4) -> exit }\n", "")),
         "missing-route", "network 'base' has no route"),
    Case("missing-input",
         edit(("network base (input = 3x32x32, classes = 10)",
               f"network {H}base (classes = 10)")),
         "missing-input", "does not say its input shape"),
    Case("unknown-network-option",
         edit(("classes = 10)", f"classes = 10, {H}dropout = 1)")),
         "unknown-option", "unknown network option 'dropout'"),
    Case("unknown-keyword-argument",
         edit(("pool(2)", f"pool({H}stride = 2)")),
         "bad-argument", "pool has no argument 'stride'"),
    Case("list-where-count-needed",
         edit(("conv(w, kernel = 3)", f"conv(w, kernel = {H}[3])")),
         "bad-number", "'kernel' of conv must be a whole number"),
    Case("count-where-list-needed",
         edit(("multiscale[16, 16]", f"multiscale(channels = {H}16)")),
         "bad-argument", "'channels' of multiscale must be a list"),
    Case("wrong-template-keyword",
         edit(("plain(4) -> exit }", f"plain({H}width = 4) -> exit }}")),
         "bad-argument", "column 'plain' has no parameter 'width'"),
    Case("junctions-nested-too-deep",  # the generated code nests a block per junction
         edit(("route a -> either { exit | tail | plain(4) -> exit }",
               "route " + "a -> either { exit |\n" * 64 + f"  a -> {H}either {{ exit | tail }}"
               + "\n   " + " }" * 64 + "\n    def spare = plain(4) -> exit"),
              ("| plain(8) -> exit(wide) }", "| spare }")),
         "too-deep", "more than 64 junctions on one path"),
    # --- chains that go on after their end ----------------------------------------------
    Case("step-after-exit",
         edit(("plain(4) -> exit }", f"plain(4) -> exit -> {H}b }}")),
         "after-end", "nothing can follow an exit in a chain"),
    Case("step-after-junction",
         edit(("-> exit }\n}", f"-> exit }} -> {H}b\n}}")),
         "after-end", "nothing can follow a junction in a chain"),
]

NO_CLASSES = edit(("network base (input = 3x32x32, classes = 10)",
                   f"network {H}base (input = 3x32x32)"))


def compile_text(text: str) -> str:
    spec = routec.parse.parse_spec(text, FILE)
    graph = routec.graph.build_graph(spec)
    return routec.codegen.emit_module(graph)


def check_error(err: SpecError, text: str, line: int, column: int) -> None:
    """The rendered message: position, the offending line, a caret under the column, a hint."""
    rendered = err.render()
    assert rendered.startswith(f"{FILE}:{line}:{column}: error: "), rendered
    src_line = text.split("\n")[line - 1].expandtabs(1)  # lines end at "\n" only
    prefix = f"{line:>5} | "
    lines = rendered.splitlines()
    assert prefix + src_line in lines, rendered
    caret = lines[lines.index(prefix + src_line) + 1]
    assert caret.strip() == "^", rendered
    assert caret.index("^") == len(prefix) + column - 1, rendered
    assert "\nhint: " in rendered, f"no hint:\n{rendered}"
    assert len(lines) <= 20


def test_base_spec_is_valid() -> None:
    assert "class BaseNet" in compile_text(BASE)


def test_cases_are_distinct_and_many() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) >= 30
    kinds = {c.kind for c in CASES}
    assert {"syntax", "bad-number", "unknown-name", "arity", "shape", "cycle", "unreachable",
            "leaf-not-classifier", "duplicate", "reserved", "after-end", "missing-route",
            "unknown-option"} <= kinds


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_spec(case: Case) -> None:
    text, line, column = locate(case.text)
    with pytest.raises(SpecError) as info:
        compile_text(text)
    err = info.value
    assert type(err) is SpecError
    assert (err.kind, err.pos.line, err.pos.column) == (case.kind, line, column), err.render()
    assert err.pos.file == FILE
    assert case.fragment in err.message, err.render()
    check_error(err, text, line, column)


def test_missing_classes() -> None:
    text, line, column = locate(NO_CLASSES)
    spec = routec.parse.parse_spec(text, FILE)
    assert spec.classes is None
    with pytest.raises(SpecError) as info:
        routec.graph.build_graph(spec)
    err = info.value
    assert (err.kind, err.pos.line, err.pos.column) == ("missing-classes", line, column)
    assert "does not say how many classes" in err.message
    check_error(err, text, line, column)
    # passing the classes fixes it
    assert routec.codegen.emit_module(routec.graph.build_graph(spec, classes=10))


@pytest.mark.parametrize("classes", [0, 1, -3, 100_001])
def test_bad_classes_argument(classes: int) -> None:
    """--classes out of range is a user fault too (it has no position in the spec)."""
    spec = routec.parse.parse_spec(locate(NO_CLASSES)[0], FILE)
    with pytest.raises(RoutecError, match="classes"):
        routec.graph.build_graph(spec, classes=classes)


def test_reserved_names_cover_the_generated_class() -> None:
    """A column becomes an attribute of the generated RoutedNetwork subclass, so no column
    may take the name of one of its members (the module would call the member)."""
    from routec.parse.to_spec import RESERVED
    from routec.runtime.routing import RoutedNetwork

    members = {n for n in dir(RoutedNetwork) if n.isidentifier() and not n.startswith("_")}
    assert members - RESERVED == set()


def test_caret_line_after_a_form_feed() -> None:
    text, line, column = locate(edit(("\n\n    column a", "\n    \f\n    column a"),
                                     ("multiscale[8, 8, 8]", f"multiscale[8, {H}0, 8]")))
    with pytest.raises(SpecError) as info:
        compile_text(text)
    assert (info.value.pos.line, info.value.pos.column) == (line, column)
    check_error(info.value, text, line, column)


# --- the command line --------------------------------------------------------------------

def _main(argv: list[str]) -> int:
    return main(argv)


CLI_CASES = ["missing-arrow", "unknown-column-in-route", "pool-on-too-small-map",
             "unused-router", "huge-integer"]


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_reports_spec_errors(case_id: str, tmp_path, capsys) -> None:
    case = next(c for c in CASES if c.id == case_id)
    text, line, column = locate(case.text)
    path = tmp_path / "bad.route"
    path.write_text(text, encoding="utf-8")
    code = _main(["compile", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 20
    assert err.startswith(f"{path}:{line}:{column}: error: ")
    assert case.fragment in err
    assert out == ""


def test_cli_missing_classes_and_ok(tmp_path, capsys) -> None:
    path = tmp_path / "open.route"
    path.write_text(locate(NO_CLASSES)[0], encoding="utf-8")
    assert _main(["compile", str(path)]) == 2
    err = capsys.readouterr().err
    assert "does not say how many classes" in err and "Traceback" not in err
    assert _main(["compile", str(path), "--classes", "10"]) == 0
    assert "ok: base" in capsys.readouterr().out
