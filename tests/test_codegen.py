"""The generated module as a file: standalone, importable, same network as in memory."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.codegen import build_class, emit_module
from routec.graph import build_graph
from routec.parse import bundled_specs, load_spec
from helpers import calibrate, images, randomise


def import_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(bundled_specs()))
def test_written_module_matches_the_in_memory_one(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}_net.py"
    assert main(["compile", name, "-o", str(out)]) == 0
    g = build_graph(load_spec(name))
    assert out.read_text() == emit_module(g)
    module = import_file(out, f"gen_{name}")
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and v.__module__ == module.__name__]
    (cls,) = classes
    from_file, in_memory = cls(), build_class(g)()
    randomise(in_memory, seed=4)
    x = images(16, g.input_shape, seed=4)
    calibrate(in_memory, x)
    from_file.load_state_dict(in_memory.state_dict())
    from_file.eval()
    with torch.no_grad():
        a, b = from_file.route(x), in_memory.route(x)
        torch.testing.assert_close(from_file(x).leaf_logits, in_memory(x).leaf_logits)
    assert torch.equal(a.leaf, b.leaf)
    torch.testing.assert_close(a.logits, b.logits)


@pytest.mark.parametrize("name", sorted(bundled_specs()))
def test_generated_code_imports_only_torch_and_the_runtime(name: str) -> None:
    tree = ast.parse(emit_module(build_graph(load_spec(name))))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported <= {"__future__", "torch", "routec.runtime", "routec.runtime.routing"}


def test_compile_report_prints_nodes_and_paths(capsys) -> None:
    assert main(["compile", "paper_chain", "--report"]) == 0
    out = capsys.readouterr().out
    g = build_graph(load_spec("paper_chain"))
    for node in g.nodes:
        assert node.id in out
    for macs in g.path_macs():
        assert f"{macs:,}" in out
    assert f"{g.total_params:,}" in out


def test_compile_static_option(capsys) -> None:
    assert main(["compile", "paper_chain", "--static", "3", "-o", "-"]) == 0
    source = capsys.readouterr().out
    assert "self.c3 =" in source and "self.c4 =" not in source
    assert main(["compile", "paper_chain", "--static", "9"]) == 2
    assert "choose n from 1 to 8" in capsys.readouterr().err


def test_bad_spec_path_and_bad_output_path(tmp_path: Path, capsys) -> None:
    assert main(["compile", str(tmp_path / "missing.route")]) == 2
    err = capsys.readouterr().err
    assert "no spec file" in err and "paper_chain" in err and "Traceback" not in err
    assert main(["compile", "tiny", "-o", str(tmp_path / "no" / "such" / "dir.py")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_python_dash_m_routec(tmp_path: Path) -> None:
    bad = tmp_path / "bad.route"
    bad.write_text("network n (input = 3x32x32, classes = 10) {\n  route c1 -> exit\n}\n")
    ok = subprocess.run([sys.executable, "-m", "routec", "compile", "tiny"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "ok: tiny" in ok.stdout
    fail = subprocess.run([sys.executable, "-m", "routec", "compile", str(bad)],
                          capture_output=True, text=True)
    assert fail.returncode == 2
    assert f"{bad}:2:9: error: unknown column or def 'c1'" in fail.stderr
    assert "Traceback" not in fail.stderr


def test_installed_grammar_is_the_repository_grammar() -> None:
    from routec.parse.grammar import grammar_text

    repo = Path(__file__).resolve().parents[1] / "grammars" / "route.lark"
    assert grammar_text() == repo.read_text(encoding="utf-8")
