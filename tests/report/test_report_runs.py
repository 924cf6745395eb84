"""``routec report``: accuracy vs MACs, dataflow over training, summary tables, eval cache.

Every number in the report is checked against its source: accuracies and MACs
against a fresh routed evaluation of the checkpoint, heatmaps against the JSON
lines the trainer logged.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

import routec.train.evaluate as evaluate_module
from routec.errors import RoutecError, RunError
from routec.report import cli as report_cli
from routec.report import plots
from routec.report.summary import cache_path, strategy_label
from routec.train.config import make_config
from routec.train.evaluate import evaluate
from routec.train.loop import train
from routec.train.runs import load_run

GRID = (0.0, 4e-9, 3.2e-8)  # a short dynamic-k_cpt grid keeps evaluations few
BASE = {"spec": "tiny", "data": "synthetic", "iterations": 20, "batch": 16, "log_every": 5,
        "eval_every": 10, "val_examples": 64}


def cli(*argv: str | Path) -> int:
    p = argparse.ArgumentParser(prog="routec")
    report_cli.add_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args([str(a) for a in argv])
    return int(args.func(args) or 0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four short runs: two actor k_cpt values, a static baseline, a dynamic-k_cpt actor."""
    root = tmp_path_factory.mktemp("runs")
    settings = {
        "actor_a": {"k_cpt": 1e-6},
        "actor_b": {"k_cpt": 0.0, "seed": 1},
        "static1": {"strategy": "static", "static_columns": 1},
        "dynamic": {"k_cpt": "dynamic", "k_cpt_grid": GRID},
    }
    out = {}
    for name, extra in settings.items():
        train(make_config({**BASE, **extra}), root / name, progress=False)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def report(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "rep"
    assert cli("report", *runs.values(), "-o", out) == 0
    return out


def logged(run: Path, key: str) -> tuple[list[int], list[list[float]]]:
    """(iterations, rows) of a metric as written in metrics.jsonl, read independently."""
    its, rows = [], []
    for line in run.joinpath("metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if key in rec:
            its.append(rec["iteration"])
            rows.append(rec[key])
    return its, rows


def test_report_files(report: Path) -> None:
    names = {p.name for p in report.iterdir()}
    assert {"accuracy_vs_macs.png", "summary.md", "summary.html", "summary.json"} <= names
    for routed in ("actor_a", "actor_b", "dynamic"):
        assert f"dataflow_training_{routed}.png" in names
    assert "dataflow_training_static1.png" not in names  # one exit: no dataflow
    for p in report.glob("*.png"):
        with Image.open(p) as im:
            im.load()
            assert im.size[0] >= 400 and im.size[1] >= 100
    html = (report / "summary.html").read_text()
    for src in re.findall(r'<img src="([^"]+)"', html):
        assert (report / src).is_file()
    assert html.count("<tr>") == 1 + 3 + len(GRID)


def test_numbers_come_from_routed_evaluation(report: Path, runs: dict[str, Path]) -> None:
    rows = json.loads((report / "summary.json").read_text())["rows"]
    by_run: dict[str, list[dict]] = {}
    for r in rows:
        by_run.setdefault(r["run"], []).append(r)
    assert {k: len(v) for k, v in by_run.items()} == {
        "actor_a": 1, "actor_b": 1, "static1": 1, "dynamic": len(GRID)}
    for name, path in runs.items():
        cfg, net, data, state = load_run(path)
        ks = list(GRID) if cfg.dynamic else [None]
        for row, k in zip(by_run[name], ks):
            r = evaluate(net, data.test.images, data.test.labels, k_cpt=k)
            assert row["accuracy"] == pytest.approx(r.accuracy)
            assert row["mean_macs"] == pytest.approx(r.mean_macs)
            assert row["exit_fraction"] == pytest.approx(r.exit_fraction)
            assert sum(row["exit_fraction"]) == pytest.approx(1.0)
            assert row["iterations"] == state["iteration"] == 20
            assert row["strategy"] == strategy_label(cfg)
    md = (report / "summary.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)
    assert len({line.count(" | ") for line in table[2:]}) == 1
    first = next(r for r in rows if r["run"] == "actor_a")
    assert f"| actor_a | actor | 1e-06 | 20 | {first['accuracy']:.4f} |" in md


def test_accuracy_vs_macs_curves(report: Path) -> None:
    data = json.loads((report / "summary.json").read_text())
    curves = data["curves"]
    assert set(curves) == {"static", "actor", "actor, dynamic k_cpt"}
    assert len(curves["actor"]) == 2 and len(curves["static"]) == 1
    dyn = curves["actor, dynamic k_cpt"]
    assert sorted(p["label"] for p in dyn) == sorted(f"{k:g}" for k in GRID)
    for pts in curves.values():
        macs = [p["mean_macs"] for p in pts]
        assert macs == sorted(macs)
    rows = {(r["run"], r["k_value"]): r for r in data["rows"]}
    for p in dyn:
        r = rows[("dynamic", float(p["label"]))]
        assert (p["mean_macs"], p["accuracy"]) == (r["mean_macs"], r["accuracy"])


def test_heatmap_equals_logged_fractions(report: Path, runs: dict[str, Path]) -> None:
    heat = json.loads((report / "summary.json").read_text())["heatmaps"]
    for name in ("actor_a", "dynamic"):
        its, rows = logged(runs[name], "val_exit_fraction")
        assert its == [10, 20]
        h = plots.heatmap_data(runs[name])
        assert h.source == "val" and h.iterations == its
        assert h.fractions == [[row[e] for row in rows] for e in range(len(rows[0]))]
        assert heat[name]["fractions"] == h.fractions
        start = json.loads(runs[name].joinpath("metrics.jsonl").read_text().splitlines()[0])
        assert h.exits == start["exits"]
    its, rows = logged(runs["actor_a"], "train_exit_fraction")
    h = plots.heatmap_data(runs["actor_a"], source="train")
    assert h.iterations == its == [5, 10, 15, 20]
    assert h.fractions == [[row[e] for row in rows] for e in range(len(rows[0]))]


def test_heatmap_and_curve_svg(runs: dict[str, Path], tmp_path: Path) -> None:
    h = plots.heatmap_data(runs["actor_a"])
    plots.dataflow_heatmap(h, tmp_path / "h.svg")
    ET.fromstring((tmp_path / "h.svg").read_bytes())
    pts = [plots.CurvePoint("static", 3.0, 0.5), plots.CurvePoint("static", 1.0, 0.4),
           plots.CurvePoint("actor", 2.0, 0.6, "1e-09")]
    curves = plots.accuracy_vs_macs(pts, tmp_path / "c.pdf")
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    assert [p.mean_macs for p in curves["static"]] == [1.0, 3.0]
    with pytest.raises(RoutecError, match="unknown plot format"):
        plots.accuracy_vs_macs(pts, tmp_path / "c.gif")


def test_collapsed_run_does_not_stretch_the_accuracy_axis(tmp_path: Path) -> None:
    good = [plots.CurvePoint("static", m, a) for m, a in ((1.0, 0.86), (2.0, 0.91), (3.0, 0.90))]
    good += [plots.CurvePoint("actor", 1.5, 0.93, "2e-09")]
    collapsed = plots.CurvePoint("critic-optimistic", 4.0, 0.14, "1e-09")
    low, high, below = plots.accuracy_axis(good + [collapsed])
    assert below == [collapsed]
    assert all(low < p.accuracy < high for p in good)
    assert high - low < 0.2  # the good points fill the axis, not 0.14 .. 0.93
    low2, high2, below2 = plots.accuracy_axis(good)
    assert below2 == [] and (low2, high2) == (low, high)
    plots.accuracy_vs_macs(good + [collapsed], tmp_path / "c.svg")
    svg = (tmp_path / "c.svg").read_text()
    ET.fromstring(svg.encode())
    assert "1e-09 0.140" in svg  # the off-axis point is named on the bottom edge


def test_evaluations_are_cached(report: Path, runs: dict[str, Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, path in runs.items():
        ks = list(GRID) if name == "dynamic" else [None]
        for k in ks:
            cached = json.loads(cache_path(path, "test", k).read_text())
            assert cached["k_cpt"] == k and cached["iteration"] == 20
    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs.get("k_cpt"))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", counting)
    assert cli("report", runs["actor_a"], runs["dynamic"], "-o", tmp_path / "again") == 0
    assert calls == []  # everything came from the cache
    before = (report / "summary.json").read_text()
    again = json.loads((tmp_path / "again" / "summary.json").read_text())["rows"]
    assert again == [r for r in json.loads(before)["rows"] if r["run"] in ("actor_a", "dynamic")]
    ckpt = runs["actor_a"] / "checkpoint.pt"
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a newer checkpoint
    assert cli("report", runs["actor_a"], "-o", tmp_path / "third") == 0
    assert calls == [None]


def test_report_errors(tmp_path: Path, runs: dict[str, Path]) -> None:
    with pytest.raises(RunError, match="no config.json"):
        cli("report", tmp_path, "-o", tmp_path / "r")
    with pytest.raises(RunError, match="not a run directory"):
        cli("report", tmp_path / "nowhere", "-o", tmp_path / "r")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RoutecError, match="cannot create the report folder"):
        cli("report", runs["actor_a"], "-o", blocker / "sub")
    copy = tmp_path / "nockpt"
    shutil.copytree(runs["actor_a"], copy)
    (copy / "checkpoint.pt").unlink()
    for p in copy.glob("eval_*.json"):
        p.unlink()
    with pytest.raises(RunError, match="no checkpoint.pt"):
        cli("report", copy, "-o", tmp_path / "r")


def test_report_with_diagrams(runs: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed")
    out = tmp_path / "rep"
    assert cli("report", runs["actor_a"], "-o", out, "--diagrams", "--format", "svg") == 0
    ET.fromstring((out / "dataflow_actor_a.svg").read_bytes())
    ET.fromstring((out / "accuracy_vs_macs.svg").read_bytes())
    assert "dataflow_actor_a.svg" in (out / "summary.md").read_text()


def test_draw_dynamic_run_at_a_chosen_k(runs: dict[str, Path], tmp_path: Path) -> None:
    js = tmp_path / "dyn.json"
    assert cli("draw", runs["dynamic"], "--k-cpt", "3.2e-8", "-o", tmp_path / "d.dot",
               "--json", js) == 0
    numbers = json.loads(js.read_text())
    _, net, data, _ = load_run(runs["dynamic"])
    r = evaluate(net, data.test.images, data.test.labels, k_cpt=3.2e-8)
    assert numbers["k_cpt"] == 3.2e-8
    assert numbers["exit_fraction"] == pytest.approx(r.exit_fraction)
    assert numbers["accuracy"] == pytest.approx(r.accuracy)
    assert numbers["mean_macs"] == pytest.approx(r.mean_macs)
    assert "k_cpt 3.2e-08" in (tmp_path / "d.dot").read_text()
