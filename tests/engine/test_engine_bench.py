"""``routec bench`` reports routed against static for a spec (forced mix) and a run."""
from __future__ import annotations

import json

import pytest

from routec.cli import main

pytest.importorskip("onnxruntime")
QUICK = ["--batch", "8", "--images", "16", "--repeats", "1", "--seconds", "0",
         "--latency-images", "2"]


def test_bench_spec_prints_every_field(capsys) -> None:
    assert main(["bench", "tiny", "--mix", "50,20,20,10", *QUICK]) == 0
    out = capsys.readouterr().out
    for field in ("MAC ratio", "speed ratio", "MAC saving realised", "p50 / p95",
                  "time per node", "routing (between", "deepest path", "cost per junction",
                  "eager", "fused", "onnx"):
        assert field in out, field


def test_bench_spec_json_numbers(capsys) -> None:
    from routec.api import compile_network
    from routec.graph import static_depth
    from routec.parse import load_spec

    assert main(["bench", "tiny", "--mix", "50,20,20,10", "--json", "--no-nodes",
                 "--engines", "fused", *QUICK]) == 0
    r = json.loads(capsys.readouterr().out)
    g = compile_network("tiny").graph
    sg = compile_network("tiny", static=static_depth(load_spec("tiny"))).graph
    # the mix really was forced (16 images: 8, 3, 3, 2 after rounding) ...
    assert r["exit_mix"] == pytest.approx([8 / 16, 3 / 16, 3 / 16, 2 / 16])
    # ... and the MACs are the graph's per-path MACs under that mix
    expect = sum(f * m for f, m in zip(r["exit_mix"], g.path_macs()))
    assert r["macs"]["routed"] == pytest.approx(expect)
    assert r["macs"]["static"] == sg.path_macs()[0]
    assert r["macs"]["ratio"] == pytest.approx(sg.path_macs()[0] / expect)
    b = r["best"]
    assert b["speed_ratio"] == pytest.approx(b["routed_images_per_s"] / b["static_images_per_s"])
    assert b["realised"] == pytest.approx(b["speed_ratio"] / b["mac_ratio"])
    for key in ("routed/fused", "routed-deepest/fused", "static/fused"):
        lat = r["latency"][key]
        assert 0 < lat["p50"] <= lat["p95"]


def test_bench_run(trained_run, capsys) -> None:
    assert main(["bench", str(trained_run), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "static baseline: no static runs found" in out
    assert "MAC ratio" in out and "speed ratio" in out and "time per node" in out


def test_bench_bad_mix(capsys) -> None:
    assert main(["bench", "tiny", "--mix", "50,50"]) == 2
    assert "--mix needs 4 values" in capsys.readouterr().err


def test_bench_run_picks_the_cheapest_static_run_at_least_as_accurate(
        trained_run, static_runs, capsys) -> None:
    from routec.report.summary import Evaluator

    acc = Evaluator(trained_run).result("test", None)["result"]
    scored = {d.name: Evaluator(d).result("test", None)["result"] for d in static_runs.iterdir()}
    good = [n for n, r in scored.items() if r["accuracy"] >= acc["accuracy"]]
    if good:
        expect = min(good, key=lambda n: scored[n]["mean_macs"])
    else:
        expect = max(scored, key=lambda n: (scored[n]["accuracy"], -scored[n]["mean_macs"]))
    assert main(["bench", str(trained_run), "--static", str(static_runs), "--json",
                 "--no-nodes", "--engines", "fused", *QUICK]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["baseline"]["static_run"].endswith(expect)
    assert r["baseline"]["routed_accuracy"] == acc["accuracy"]
    # the routed side routes its own test images: its MACs are what evaluation counts
    assert r["macs"]["static"] == scored[expect]["mean_macs"]
