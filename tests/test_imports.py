"""routec's import graph, read from the source, follows docs/design.md.

Every ``import`` and ``from ... import`` statement of every module counts, those inside
functions too. The test fails on an import cycle, on a command-line module imported by
a module that is not one, and on an import from a later stage of the pipeline order
declared in the ```stages block of docs/design.md.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "routec"
DESIGN = ROOT / "docs" / "design.md"


def declared_stages() -> list[tuple[str, list[str]]]:
    """(stage, module prefixes) in pipeline order, from the ```stages block."""
    text = DESIGN.read_text(encoding="utf-8")
    m = re.search(r"^```stages\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert m, f"{DESIGN}: no ```stages block"
    stages = []
    for line in m.group(1).splitlines():
        if line.strip():
            name, _, names = line.partition(":")
            stages.append((name.strip(), [n.strip() for n in names.split(",") if n.strip()]))
    return stages


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """routec modules that ``name`` imports → the line of the first such import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        while target and target not in known:  # a name inside a module: that module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # `from routec.x import y`: module y, or a name in x
                sub = f"{source}.{alias.name}"
                add(sub if sub in known else source, node.lineno)
    return found


def graph() -> nx.DiGraph:
    known = modules()
    g = nx.DiGraph()
    g.add_nodes_from(known)
    for name, path in known.items():
        for target, line in imports(name, path, known).items():
            g.add_edge(name, target, line=line)
    return g


def stage_of(name: str, stages: list[tuple[str, list[str]]]) -> int:
    best, index = "", -1
    for i, (_, prefixes) in enumerate(stages):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > len(best):
                best, index = p, i
    return index


def is_cli(name: str) -> bool:
    last = name.rpartition(".")[2]
    return last in ("cli", "__main__") or last.endswith("_cli")


def where(g: nx.DiGraph, a: str, b: str) -> str:
    return f"{a} imports {b} (line {g.edges[a, b]['line']})"


def test_the_design_page_declares_each_module_once() -> None:
    stages = declared_stages()
    prefixes = [p for _, ps in stages for p in ps]
    assert len(prefixes) == len(set(prefixes)), "a module is named in two stages"
    known = modules()
    assert all(p in known for p in prefixes), [p for p in prefixes if p not in known]
    unplaced = [m for m in known if stage_of(m, stages) < 0]
    assert not unplaced, f"modules in no stage of docs/design.md: {unplaced}"


def test_no_import_cycle() -> None:
    g = graph()
    cycles = sorted(" → ".join([*c, c[0]]) for c in nx.simple_cycles(g))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_only_command_line_modules_import_command_line_modules() -> None:
    g = graph()
    bad = sorted(where(g, a, b) for a, b in g.edges if is_cli(b) and not is_cli(a))
    assert not bad, "\n".join(bad)


def test_no_import_from_a_later_stage() -> None:
    stages = declared_stages()
    g = graph()
    bad = []
    for a, b in g.edges:
        sa, sb = stage_of(a, stages), stage_of(b, stages)
        if sb > sa:
            bad.append(f"{where(g, a, b)}: stage {stages[sa][0]} imports stage {stages[sb][0]}")
    assert not bad, "\n".join(sorted(bad))


def test_the_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    known = {"routec.a": tmp_path / "a.py", "routec.b": tmp_path / "b.py",
             "routec.pkg": tmp_path / "pkg" / "__init__.py",
             "routec.pkg.c": tmp_path / "pkg" / "c.py"}
    known["routec.a"].write_text("def f():\n    from routec.b import thing\n"
                                 "    from routec.pkg import c\n    import routec.pkg\n")
    assert imports("routec.a", known["routec.a"], known) == {
        "routec.b": 2, "routec.pkg.c": 3, "routec.pkg": 4}
    (tmp_path / "pkg").mkdir()
    known["routec.pkg.c"].write_text("from . import x\nfrom ..b import y\n")
    assert imports("routec.pkg.c", known["routec.pkg.c"], known) == {
        "routec.pkg": 1, "routec.b": 2}
