"""The documentation is executable: every snippet in it is compiled or run.

* Every ```route block in ``docs/*.md`` and ``README.md`` is a complete spec; it is
  parsed, validated, counted and turned into a module. Comments starting ``#>`` are
  claims the test checks (``#> nodes:``, ``#> path MACs:``, ``#> MACs:``,
  ``#> params:``, ``#> shape:``, ``#> same as:``) or compile options
  (``#> option: --static 3``).
* Every ```route-error block is a spec that must fail with exactly the message in
  its ``# error:`` comment (and the hint in ``# hint:``, when given).
* Every error message that ``docs/dsl.md`` lists (``error: ...`` anywhere in it)
  must be produced by one of those blocks or by a case generated below (inputs
  that cannot be shown as a snippet: a 1 MB file, a NUL byte, 200 nested junctions).
* Every error message routec's parser and validator can raise is listed in the docs.
* Every ```python block in ``docs/api.md`` and ``docs/dsl.md`` runs (except blocks
  marked ```python no-run).
"""
from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import routec
from routec.errors import RoutecError, SpecError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DSL = DOCS / "dsl.md"
API = DOCS / "api.md"
ROUTE_DOCS = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
SNIPPET_FILE = "doc.route"


# --- reading fenced blocks ----------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str  # the info string: "route", "route-error", "python no-run", ...
    body: str
    before: str  # the nearest non-blank line above the opening fence

    @property
    def lang(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a Markdown file (``` fences at the start of a line)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(`{3,})([^`]*)$", lines[i])  # CommonMark: no backtick in the info
        if not m:
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).strip(), i
        j = i + 1
        while j < len(lines) and not re.match(rf"^{fence}\s*$", lines[j]):
            j += 1
        assert j < len(lines), f"{path.name}:{start + 1}: unclosed code fence"
        before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        out.append(Block(path, start + 1, info, "\n".join(lines[start + 1:j]) + "\n", before))
        i = j + 1
    return out


def blocks(lang: str, paths: list[Path]) -> list[Block]:
    return [b for p in paths if p.exists() for b in fenced_blocks(p) if b.lang == lang]


ROUTE_BLOCKS = blocks("route", ROUTE_DOCS)
ERROR_BLOCKS = blocks("route-error", [DSL])
PYTHON_BLOCKS = [b for b in blocks("python", [API, DSL]) if "no-run" not in b.info.split()]


# --- compiling snippets --------------------------------------------------------------------

def directives(body: str, prefix: str) -> list[tuple[str, str]]:
    """``(key, value)`` of every ``<prefix> key: value`` comment line."""
    out = []
    for line in body.split("\n"):
        s = line.strip()
        if s.startswith(prefix + " "):
            key, _, value = s[len(prefix) + 1:].partition(":")
            out.append((key.strip(), value.strip()))
    return out


def compile_options(options: list[str]) -> dict:
    """``--static N``, ``--classes N``, ``--dynamic-kcpt`` as compile_network arguments."""
    kw: dict = {}
    for opt in options:
        words = opt.split()
        if words[0] == "--dynamic-kcpt":
            kw["dynamic_kcpt"] = True
        elif words[0] == "--static":
            kw["static"] = int(words[1])
        elif words[0] == "--classes":
            kw["classes"] = int(words[1])
        else:
            raise AssertionError(f"unknown option in a doc snippet: {opt}")
    return kw


def compile_snippet(body: str, options: list[str], file: str = SNIPPET_FILE):
    """The whole pipeline on a snippet: parse, validate and count, emit and load the class."""
    return routec.compile_network(file, text=body, **compile_options(options))


def _ints(text: str) -> list[int]:
    return [int(v.replace(",", "").replace("_", "")) for v in re.findall(r"[\d,_]+", text)]


def _named(text: str) -> dict[str, str]:
    """``a = 1,024; b = [8x4x4]`` → {"a": "1,024", "b": "[8x4x4]"}."""
    pairs = [part.split("=", 1) for part in text.split(";") if part.strip()]
    assert all(len(p) == 2 for p in pairs), f"claims read 'name = value; ...': {text}"
    return {k.strip(): v.strip() for k, v in pairs}


def supply_models(claims: list[tuple[str, str]]) -> None:
    """``#> supply: NAME = FACTORY``: a model from tests/models.py, as a user supplies one."""
    import models
    import torch

    from routec.backbone.supplied import supply

    for key, value in claims:
        if key == "supply":
            name, factory = (v.strip() for v in value.split("="))
            torch.manual_seed(0)
            supply(name, getattr(models, factory)())


def check_claims(block: Block) -> None:
    claims = directives(block.body, "#>")
    options = [v for k, v in claims if k == "option"]
    supply_models(claims)
    net = compile_snippet(block.body, options)
    g = net.graph
    nodes = {n.id: n for n in g.nodes}
    for key, value in claims:
        if key in ("option", "supply"):
            continue
        if key == "nodes":
            assert [n.id for n in g.nodes] == [v.strip() for v in value.split(",")], \
                f"{block.id}: nodes are {[n.id for n in g.nodes]}"
        elif key == "path MACs":
            assert g.path_macs() == _ints(value), f"{block.id}: path MACs are {g.path_macs()}"
        elif key == "MACs":
            for name, v in _named(value).items():
                assert nodes[name].macs == _ints(v)[0], \
                    f"{block.id}: MACs of {name} are {nodes[name].macs}"
        elif key == "params":
            for name, v in _named(value).items():
                assert nodes[name].params == _ints(v)[0], \
                    f"{block.id}: parameters of {name} are {nodes[name].params}"
        elif key == "shape":
            for name, v in _named(value).items():
                shape = "[" + ", ".join(f"{c}x{h}x{w}" for c, h, w in nodes[name].out_shape) + "]"
                assert shape == v, f"{block.id}: shape of {name} is {shape}"
        elif key == "same as":
            bundled = routec.compile_network(value).graph
            mine = [(n.id, n.kind, n.parent, n.way, n.macs, n.params, n.out_shape)
                    for n in g.nodes]
            theirs = [(n.id, n.kind, n.parent, n.way, n.macs, n.params, n.out_shape)
                      for n in bundled.nodes]
            assert (g.name, mine) == (bundled.name, theirs), f"{block.id} differs from {value}"
        else:
            raise AssertionError(f"{block.id}: unknown claim '#> {key}:'")


def test_the_docs_have_snippets() -> None:
    """Extraction works (so the tests below cannot pass by finding nothing)."""
    dsl_routes = [b for b in ROUTE_BLOCKS if b.path == DSL]
    assert len(dsl_routes) >= 25
    assert len(ERROR_BLOCKS) >= 60
    assert len([b for b in PYTHON_BLOCKS if b.path == API]) >= 12
    # every snippet in dsl.md is checked: no other fenced language slips through unseen
    langs = {b.lang for b in fenced_blocks(DSL)}
    assert langs <= {"route", "route-error", "text", "sh", "python"}, langs


@pytest.mark.parametrize("block", ROUTE_BLOCKS, ids=[b.id for b in ROUTE_BLOCKS])
def test_route_snippet_compiles(block: Block) -> None:
    check_claims(block)


def test_claims_can_fail() -> None:
    good = next(b for b in ROUTE_BLOCKS if "#> path MACs:" in b.body)
    wrong = re.sub(r"(#> path MACs: \d)", r"\g<1>9", good.body, count=1)
    with pytest.raises(AssertionError):
        check_claims(Block(good.path, good.line, "route", wrong, ""))


def test_the_walkthrough_ends_in_the_bundled_specs() -> None:
    same = {v for b in ROUTE_BLOCKS if b.path == DSL
            for k, v in directives(b.body, "#>") if k == "same as"}
    assert {"paper_chain", "paper_tree"} <= same


def test_every_construct_appears_in_a_snippet() -> None:
    """Each keyword, stem, layer, router and exit kind of the language is shown."""
    from routec.graph import catalogue as C
    from routec.graph.registry import BUILTIN_LAYERS

    text = "\n".join(b.body for b in ROUTE_BLOCKS if b.path == DSL)
    specs = [routec.parse_spec(b.body) for b in ROUTE_BLOCKS if b.path == DSL]
    layers = {call.name for s in specs for c in s.columns.values() for call in c.layers
              if call.name not in s.models}
    stems = {s.stem.name for s in specs if s.stem}
    routers = {c.name for s in specs for c in s.routers.values()}
    exits = {c.name for s in specs for c in s.exits.values()}
    assert layers == set(BUILTIN_LAYERS)
    assert stems == set(C.STEM_SIGNATURES)
    assert routers == set(C.ROUTER_SIGNATURES)
    assert exits == set(C.EXIT_SIGNATURES)
    for word in ("network", "stem", "router", "exit", "column", "def", "route", "either", "model",
                 "either(router =", "exit(", "multiscale[", "multiscale(channels", "#"):
        assert word in text, word
    assert any(s.macros for s in specs) and any(c.params for s in specs
                                                for c in s.columns.values())


def test_reserved_words_are_listed() -> None:
    from routec.parse.to_spec import RESERVED

    text = DSL.read_text(encoding="utf-8")
    found = re.search(r"<!-- reserved-words -->\s*```text\n(.*?)```", text, re.S)
    assert found, "dsl.md lists the reserved words after <!-- reserved-words -->"
    assert set(found.group(1).split()) == set(RESERVED)


# --- error messages ------------------------------------------------------------------------

def expected_error(block: Block) -> tuple[str, str | None, list[str], str]:
    d = directives(block.body, "#")
    errors = [v for k, v in d if k == "error"]
    hints = [v for k, v in d if k == "hint"]
    files = [v for k, v in d if k == "file"]
    assert len(errors) == 1, f"{block.id}: a route-error block has one '# error:' line"
    options = [v for k, v in directives(block.body, "#>") if k == "option"]
    return errors[0], hints[0] if hints else None, options, files[0] if files else SNIPPET_FILE


@pytest.fixture(autouse=True)
def no_models_left_supplied():
    """A snippet's supplied models must not leak into the next snippet's hints."""
    yield
    from routec.backbone.supplied import withdraw_all

    withdraw_all()


def raised_by(body: str, options: list[str], file: str = SNIPPET_FILE) -> RoutecError:
    supply_models(directives(body, "#>"))
    with pytest.raises(RoutecError) as info:
        compile_snippet(body, options, file)
    return info.value


@pytest.mark.parametrize("block", ERROR_BLOCKS, ids=[b.id for b in ERROR_BLOCKS])
def test_route_error_snippet_fails_as_documented(block: Block) -> None:
    message, hint, options, file = expected_error(block)
    err = raised_by(block.body, options, file)
    assert err.message == message, err.render()
    if hint is not None:
        assert err.hint == hint, err.render()
    if isinstance(err, SpecError) and err.pos is not None:
        assert err.pos.file == file
        assert err.render().startswith(f"{file}:{err.pos.line}:{err.pos.column}: error: ")


def test_rendered_error_examples_match() -> None:
    """A ```text block right after a route-error block shows exactly what a user sees."""
    all_blocks = fenced_blocks(DSL)
    shown = 0
    for prev, block in zip(all_blocks, all_blocks[1:]):
        if prev.lang == "route-error" and block.lang == "text":
            message, _, options, file = expected_error(prev)
            assert raised_by(prev.body, options, file).render() + "\n" == block.body
            shown += 1
    assert shown >= 2


def _nested(depth: int) -> str:
    return ("network deep (input = 3x32x32, classes = 10) {\n    column c = conv(4)\n    route "
            + "c -> either { exit | " * depth + "exit" + " }" * depth + "\n}\n")


BASIC = "network n (input = 3x32x32, classes = 10) {\n    column c = conv(8)\n    route c -> exit\n}\n"


def _from_text(text: str):
    return lambda: routec.compile_network(SNIPPET_FILE, text=text)


def _from_path(path: str):
    return lambda: routec.compile_network(path)


def _unreadable():
    def read_text(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    original = Path.read_text
    Path.read_text = read_text  # as if the file's mode forbade reading (tests may run as root)
    try:
        routec.compile_network("locked.route")
    finally:
        Path.read_text = original


# Errors a snippet cannot show: message -> what produces it (run in tmp_path).
GENERATED = {
    "spec is too large (1048577 characters)": _from_text(" " * (1 << 20) + "\n"),
    "NUL character in spec": _from_text(BASIC.replace("conv(8)", "conv(8)\x00")),
    "more than 64 junctions on one path": _from_text(_nested(65)),
    "spec is nested too deeply": _from_text(_nested(300)),
    "no spec file 'my_net.route' and no bundled spec of that name": _from_path("my_net.route"),
    "specs: not a file": _from_path("specs"),
    "binary.route: not a UTF-8 text file": _from_path("binary.route"),
    "locked.route: cannot read (Permission denied)": _unreadable,
    "this junction has 10,000 branches, but the expanded network may have at most 5,000 "
    "nodes": _from_text("network n (input = 3x32x32, classes = 10) {\n    column c = conv(4)"
                        "\n    route c -> either { " + " | ".join(["exit"] * 10_000)
                        + " }\n}\n"),
}


def in_fresh_thread(fn):
    """Run ``fn`` on a new thread: a fresh, shallow Python stack under a fresh
    interpreter's recursion limit, as from the command line.

    (How deep the caller's stack already is changes where a recursion limit is met; see
    test_generated_error. And the limit itself is not the default once anything in this
    process has compiled with torch.compile: inductor raises it to 2,000.)"""
    import sys
    import threading

    outcome: list[BaseException | None] = [None]

    def run() -> None:
        try:
            fn()
        except BaseException as err:  # handed to the test thread
            outcome[0] = err

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # CPython's default
    try:
        t = threading.Thread(target=run)
        t.start()
        t.join()
    finally:
        sys.setrecursionlimit(limit)
    return outcome[0]


@pytest.mark.parametrize("message", list(GENERATED))
def test_generated_error(message: str, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "binary.route").write_bytes(b"network \xff\xfe")
    (tmp_path / "locked.route").write_text(BASIC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # In a fresh thread: a spec nested a few hundred levels deep is refused with a
    # SpecError when routec is called from a shallow stack (the command line), but
    # from deep inside pytest the recursion limit can be met inside a Lark callback,
    # and that RecursionError then escapes as lark.exceptions.VisitError.
    err = in_fresh_thread(GENERATED[message])
    assert isinstance(err, RoutecError), repr(err)
    assert err.message == message


def listed_messages() -> set[str]:
    """Every message dsl.md shows: ``error: MESSAGE`` in any block or code span."""
    text = DSL.read_text(encoding="utf-8")
    found = set(re.findall(r"(?:^|[\s`#:])error: ([^`\n]+?)`", text))  # in code spans
    for block in fenced_blocks(DSL):
        found |= set(re.findall(r"error: (.+)", block.body))
    return {m.strip() for m in found}


def test_every_listed_error_is_produced() -> None:
    produced = {expected_error(b)[0] for b in ERROR_BLOCKS} | set(GENERATED)
    listed = listed_messages()
    assert len(listed) >= 60
    assert listed - produced == set(), "listed in dsl.md but not produced by any test"
    assert set(GENERATED) <= listed, "generated cases that dsl.md does not list"


# Raised only in states the earlier stages rule out; kept in the code as safety nets.
UNREACHABLE = {
    # every pyramid level is exactly half the one before it (to_pyramid checks that the
    # sides divide, multiscale keeps sizes, plain layers leave one level)
    "multiscale level",
    # the parser's own recursion limit is met first ("spec is nested too deeply")
    "the route is nested too deeply",
}


def message_templates() -> list[str]:
    """Regexes of the error messages routec.parse and routec.graph raise (from the source)."""
    raisers = {"SpecError", "RoutecError", "BindError", "ShapeError", "error", "_error", "fail"}
    out = []
    for path in [*sorted((ROOT / "routec" / "parse").glob("*.py")),
                 *sorted((ROOT / "routec" / "graph").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                f = node.func
                name = (f.id if isinstance(f, ast.Name)
                        else f.attr if isinstance(f, ast.Attribute) else "")
                arg = node.args[0]
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                # friendly(): message = f"unexpected {found}" and the like
                target = node.targets[0]
                name = "error" if isinstance(target, ast.Name) and target.id == "message" else ""
                arg = node.value
            else:
                continue
            if name not in raisers or not isinstance(arg, (ast.Constant, ast.JoinedStr)):
                continue
            parts = [arg] if isinstance(arg, ast.Constant) else arg.values
            regex = "".join(re.escape(p.value) if isinstance(p, ast.Constant) else ".+?"
                            for p in parts)
            if regex.strip(".+?"):
                out.append(regex)
    from routec.parse.syntax_errors import MISTAKES

    out += [re.escape(message) + r" \(found .+\)" for message, _ in MISTAKES]
    return out


def test_every_error_routec_can_raise_is_documented() -> None:
    templates = message_templates()
    assert len(templates) >= 60
    listed = listed_messages()
    missing = [t for t in templates
               if not any(re.search(t, m) for m in listed)
               and not any(u in t.replace("\\", "") for u in UNREACHABLE)]
    assert missing == [], "error messages the code raises but dsl.md does not list"


# --- the Python API ------------------------------------------------------------------------

def test_api_doc_covers_the_exports() -> None:
    text = API.read_text(encoding="utf-8")
    missing = [name for name in routec.__all__ if f"`{name}" not in text]
    assert missing == []


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_snippet_runs(block: Block, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROUTEC_NO_PROGRESS", "1")
    code = compile(block.body, f"{block.path.name}:{block.line}", "exec")
    exec(code, {"__name__": "__doc_snippet__"})


def test_python_snippets_can_fail() -> None:
    with pytest.raises(AssertionError):
        exec(compile("import routec\nassert routec.compile_network('tiny').graph.classes == 5",
                     "x", "exec"), {})
