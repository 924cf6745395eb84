"""The engine registry: one module per engine in routec/engine/backends, and every list of
engines (command-line choices, defaults, "fastest available") derived from it.

* an engine's name is a string literal only in its own module;
* every registered engine routes like ``net.route``;
* a missing requirement is a one-line error naming what to install;
* ``routec bench --help`` and ``routec profile --help`` list the registered engines.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from helpers import calibrate, compile_bundled, images, randomise
from routec.engine import optimize_for_inference, registry
from routec.errors import RoutecError

ROOT = Path(__file__).resolve().parents[2] / "routec"
BACKENDS = ROOT / "engine" / "backends"


def _literals(path: Path, wanted: set[str]) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in wanted]


def test_backends_are_the_files_and_names_are_spelled_once() -> None:
    files = sorted(p.stem for p in BACKENDS.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(registry.names()) == files
    assert {"eager", "fused", "compiled", "onnx"} <= set(files)
    wanted = set(registry.names())
    outside, per_name = [], {n: [] for n in wanted}
    for path in sorted(ROOT.rglob("*.py")):
        for line, value in _literals(path, wanted):
            if path.parent == BACKENDS:
                per_name[value].append(path.stem)
            else:
                outside.append(f"{path.relative_to(ROOT.parent)}:{line}: {value!r}")
    assert outside == [], "engine names spelled outside routec/engine/backends:\n" + \
        "\n".join(outside)
    # each name once, in the module of that name
    assert per_name == {n: [n] for n in wanted}


def test_lookups() -> None:
    names = registry.names()
    assert [e.name for e in registry.engines()] == list(names)
    assert names.index(registry.reference()) == 0
    assert registry.default() in registry.supporting(registry.PROFILE)
    assert registry.profile_default() == registry.default()
    assert set(registry.timed_by_default()) <= set(registry.available())
    assert set(registry.available()) <= set(names)
    for name in names:
        assert registry.get(name).name == name and registry.get(name).summary
    with pytest.raises(RoutecError) as err:
        registry.get("tensorrt")
    assert "unknown engine 'tensorrt'" in err.value.message
    assert all(n in err.value.hint for n in names)
    assert registry.parse_names("") is None
    assert registry.parse_names(f" {names[1]},{names[0]}") == [names[1], names[0]]
    with pytest.raises(RoutecError, match="unknown engine"):
        registry.parse_names("tensorrt")


def _routes_here(name: str) -> bool:
    entry = registry.get(name)
    if not entry.available:
        return False
    # engines timed only on request compile for minutes on a small CPU
    return registry.BENCH in entry.supports or os.environ.get("ROUTEC_TEST_COMPILED") == "1"


@pytest.mark.parametrize("name", registry.names())
def test_every_engine_routes_tiny_like_net_route(name: str) -> None:
    if not _routes_here(name):
        pytest.skip(f"engine {name} not run here")
    g, net = compile_bundled("tiny")
    randomise(net, seed=5)
    calibrate(net, images(100, g.input_shape, seed=1))
    net.eval()
    eng = optimize_for_inference(net, name)
    assert eng.name == name and eng.describe() == name
    for n in (0, 1, 9):
        x = images(n, g.input_shape, seed=n + 3)
        with torch.inference_mode():
            ref = net.route(x)
        out = eng.route(x)
        assert torch.equal(out.leaf, ref.leaf)
        assert torch.allclose(out.logits, ref.logits, atol=2e-4, rtol=1e-4)
        assert torch.equal(out.macs, ref.macs)


def test_default_engine_is_the_registry_default() -> None:
    _, net = compile_bundled("tiny")
    assert optimize_for_inference(net).name == registry.default()


def test_a_missing_onnxruntime_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    entry = registry.get("onnx")
    assert not entry.available
    assert "onnx" not in registry.available()
    assert "onnx" not in registry.timed_by_default()
    _, net = compile_bundled("tiny")
    with pytest.raises(RoutecError) as err:
        optimize_for_inference(net, "onnx")
    assert len(err.value.message.splitlines()) == 1
    assert "engine 'onnx'" in err.value.message and "onnxruntime" in err.value.message
    assert "pip install" in (err.value.hint or "")


def test_a_failing_requirement_check_stops_the_build() -> None:
    from routec.engine.registry import EngineError

    entry = registry.get(registry.default())

    def missing() -> None:
        raise EngineError(f"engine '{entry.name}' needs something", hint="install it")

    patched = dataclasses.replace(entry, requires=missing)
    assert not patched.available
    with pytest.raises(EngineError, match="needs something"):
        patched.build(compile_bundled("tiny")[1])


def _named(text: str) -> set[str]:
    words = set(re.findall(r"[a-z]+", text))
    return {n for n in registry.names() if n in words}


def test_bench_help_lists_the_registered_engines(capsys) -> None:
    from routec.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    start = out.rindex("--engines ENGINE")  # the option's entry, after the usage line
    engines_help = out[start:out.index("--static", start)]
    assert _named(engines_help) == set(registry.names())
    on_request = set(registry.names()) - set(registry.supporting(registry.BENCH))
    for name in on_request:
        assert f"{name} on request" in " ".join(engines_help.split())


def test_profile_help_lists_the_profiling_engines(capsys) -> None:
    from routec.cli import main

    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    out = capsys.readouterr().out
    choices = re.search(r"--engine \{([a-z,]+)\}", out)
    assert choices is not None
    assert choices.group(1).split(",") == registry.supporting(registry.PROFILE)
    assert f"default {registry.profile_default()}" in " ".join(out.split())


@pytest.mark.parametrize("command", ["eval", "report"])
def test_other_engine_options_offer_the_registered_engines(command: str) -> None:
    from routec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in sub.choices[command]._actions if "--engine" in a.option_strings)
    assert list(option.choices) == list(registry.names())
