"""Engines whose requirement is missing fail with one line naming engine and install;
nothing falls back to another engine."""
from __future__ import annotations

import builtins
import os

import pytest
import torch

from helpers import compile_bundled, images, randomise
from routec.engine import optimize_for_inference
from routec.errors import RoutecError


def _hide_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = builtins.__import__

    def fake(mod, *args, **kwargs):
        if mod == name or mod.startswith(name + "."):
            raise ImportError(f"No module named '{mod}'", name=mod)
        return real(mod, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_onnx_engine_without_onnxruntime(monkeypatch) -> None:
    _, net = compile_bundled("tiny")
    _hide_module(monkeypatch, "onnxruntime")
    with pytest.raises(RoutecError) as err:
        optimize_for_inference(net, "onnx")
    text = err.value.render()
    assert "engine 'onnx'" in text and "onnxruntime" in text and "pip install" in text
    assert len(err.value.message.splitlines()) == 1


def test_compiled_engine_without_a_compiler(monkeypatch) -> None:
    import shutil

    _, net = compile_bundled("tiny")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(RoutecError) as err:
        optimize_for_inference(net, "compiled")
    text = err.value.render()
    assert "engine 'compiled'" in text and "compiler" in text and "install" in text


def test_unknown_engine() -> None:
    _, net = compile_bundled("tiny")
    with pytest.raises(RoutecError, match="unknown engine 'tensorrt'"):
        optimize_for_inference(net, "tensorrt")


def test_export_without_onnx_is_an_error(monkeypatch, tmp_path, capsys) -> None:
    from routec.cli import main

    _hide_module(monkeypatch, "onnx")
    assert main(["export", str(tmp_path / "no-run"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "engine 'onnx'" in err and "Traceback" not in err


@pytest.mark.skipif(os.environ.get("ROUTEC_TEST_COMPILED") != "1",
                    reason="torch.compile takes minutes on a small CPU; "
                           "set ROUTEC_TEST_COMPILED=1")
def test_compiled_engine_agrees() -> None:
    g, net = compile_bundled("tiny")
    randomise(net, seed=5)
    from helpers import calibrate

    calibrate(net, images(100, g.input_shape, seed=1))
    eng = optimize_for_inference(net, "compiled")
    for n in (0, 1, 9, 5):
        x = images(n, g.input_shape, seed=n)
        with torch.inference_mode():
            ref = net.route(x)
        out = eng.route(x)
        assert torch.equal(out.leaf, ref.leaf)
        assert torch.allclose(out.logits, ref.logits, atol=2e-4, rtol=1e-4)
        assert torch.equal(out.macs, ref.macs)
