"""The onnx engine's sessions do not spin against each other.

A routed network is several ONNX Runtime sessions called in turn, each with its own
intra-op thread pool. Pools whose idle workers spin took the cores from the session
running next, and at 2 threads routed onnx timed several times slower than at one
(docs/benchmarks.md); every session the engine makes lets its workers sleep.
"""
from __future__ import annotations

from typing import Any

import pytest

ort = pytest.importorskip("onnxruntime")


def test_every_session_of_the_onnx_engine_lets_idle_workers_sleep(monkeypatch) -> None:
    import torch

    from routec.codegen import build_class
    from routec.engine import optimize_for_inference
    from routec.graph import build_graph
    from routec.parse import load_spec

    made: list[Any] = []
    real = ort.InferenceSession

    def recording(*args: Any, **kwargs: Any) -> Any:
        sess = real(*args, **kwargs)
        made.append(sess)
        return sess

    monkeypatch.setattr(ort, "InferenceSession", recording)
    net = build_class(build_graph(load_spec("tiny")))().eval()
    engine = optimize_for_inference(net, "onnx", threads=2)
    assert len(made) == len(engine.segments) > 1
    for sess in made:
        opts = sess.get_session_options()
        assert opts.intra_op_num_threads == 2
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = torch.rand(8, *net.INPUT_SHAPE)
    with torch.inference_mode():
        ref = net.route(x)
    out = engine.route(x)
    assert out.leaf.tolist() == ref.leaf.tolist()
    assert torch.allclose(out.logits, ref.logits, atol=1e-4, rtol=1e-4)


def test_the_torch_free_runner_lets_idle_workers_sleep_too(monkeypatch, tmp_path) -> None:
    """routec.deploy loads an export as one session per node: the same rule holds."""
    from routec.codegen import build_class
    from routec.deploy.loader import load
    from routec.engine.onnx_export import export_network
    from routec.graph import build_graph
    from routec.parse import load_spec

    net = build_class(build_graph(load_spec("tiny")))().eval()
    export_network(net, tmp_path / "export")
    made: list[Any] = []
    real = ort.InferenceSession

    def recording(*args: Any, **kwargs: Any) -> Any:
        sess = real(*args, **kwargs)
        made.append(sess)
        return sess

    monkeypatch.setattr(ort, "InferenceSession", recording)
    load(tmp_path / "export", threads=2)
    assert len(made) > 1
    for sess in made:
        assert sess.get_session_options().get_session_config_entry(
            "session.intra_op.allow_spinning") == "0"
