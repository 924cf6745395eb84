"""The ResNet section's comparison at equal MACs, and multi-exit records' confidence points."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from routec.report.plots import CurvePoint
from routec.report.results import against_confidence, equal_macs_table, static_accuracy_at


def test_static_accuracy_is_the_best_mix_of_two_static_networks() -> None:
    static = [CurvePoint("static", 10e6, 0.40, "n=1"), CurvePoint("static", 30e6, 0.35, "n=2"),
              CurvePoint("static", 40e6, 0.62, "n=3")]
    # n=2 lies under the line from n=1 to n=3: mixing n=1 and n=3 beats it
    assert static_accuracy_at(static, 30e6) == pytest.approx(0.40 + (20 / 30) * 0.22)
    assert static_accuracy_at(static, 20e6) == pytest.approx(0.40 + (10 / 30) * 0.22)
    assert static_accuracy_at(static, 10e6) == pytest.approx(0.40)
    assert static_accuracy_at(static, 5e6) is None and static_accuracy_at(static, 41e6) is None
    # brute force over mixes of any two networks on a fine grid of shares
    for m in (12e6, 25e6, 33e6, 39e6):
        mixes = [a.accuracy * (1 - w) + b.accuracy * w for a in static for b in static
                 for w in [i / 1000 for i in range(1001)]
                 if abs(a.mean_macs * (1 - w) + b.mean_macs * w - m) < 2e4]
        assert static_accuracy_at(static, m) == pytest.approx(max(mixes), abs=2e-3)


def test_equal_macs_table_rows() -> None:
    points = [CurvePoint("static", 10e6, 0.40, "n=1"), CurvePoint("static", 30e6, 0.60, "n=2"),
              CurvePoint("actor", 15e6, 0.52, "8e-09"),
              CurvePoint("multi-exit + confidence", 25e6, 0.50, "0.9"),
              CurvePoint("multi-exit + confidence", 50e6, 0.70, "0.99")]
    rows = [l for l in equal_macs_table(points).splitlines() if l.startswith("| ")][2:]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert cells[0] == ["actor", "k_cpt 8e-09", "15.00 M", "0.5200", "0.4500", "+7.0 pp"]
    assert cells[1] == ["multi-exit + confidence", "threshold 0.9", "25.00 M", "0.5000",
                        "0.5500", "-5.0 pp"]
    assert cells[2][4:] == ["-", "-"]
    text = equal_macs_table(points)
    assert "1 of 3 routed points are more accurate than the static networks" in text
    assert "(multi-exit + confidence, threshold 0.99) reaches 0.7000 at 50.00 M" in text
    assert "(n=2) 0.6000 at 30.00 M (0.60x the routed point's MACs)" in text


def _verdict_rows(text: str) -> list[list[str]]:
    rows = [l for l in text.splitlines() if l.startswith("| ")][2:]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows]


@pytest.mark.parametrize("shift, verdict", [(+0.03, "yes"), (-0.03, "no"),
                                            (0.0, "no difference"), (None, "mixed")])
def test_learned_routing_is_judged_against_the_threshold_curve(shift, verdict) -> None:
    """Actor points placed above, below, on, and on both sides of the thresholds'
    curve: the differences are read off the curve by hand, and the verdict follows."""
    confidence = [CurvePoint("multi-exit + confidence", 10e6, 0.60, "0.5"),
                  CurvePoint("multi-exit + confidence", 20e6, 0.80, "0.9"),
                  CurvePoint("multi-exit + confidence", 40e6, 0.85, "0.99")]
    at = {12e6: 0.64, 15e6: 0.70, 30e6: 0.825}  # on the lines between thresholds
    shifts = [shift] * 3 if shift is not None else [+0.03, -0.03, +0.03]
    actor = [CurvePoint("actor", m, a + s, f"{i}e-09")
             for i, ((m, a), s) in enumerate(zip(at.items(), shifts))]
    static = [CurvePoint("static", 10e6, 0.5, "n=1")]
    text = against_confidence(static + actor + confidence, confidence, 10_000)
    cells = _verdict_rows(text)
    assert [c[0] for c in cells] == ["actor"] * 3  # neither static nor thresholds listed
    for c, s in zip(cells, shifts):
        assert c[5] == f"{s * 100:+.2f} pp"
    assert f"Verdict, at equal MACs: {verdict}" in text
    # the yardstick: a binomial standard error at the points' mean accuracy
    mean = sum(p.accuracy for p in actor) / 3
    assert f"({(mean * (1 - mean) / 10_000) ** 0.5 * 100:.2f} pp on 10,000 test images)" in text


def test_points_outside_the_thresholds_range_are_not_judged() -> None:
    confidence = [CurvePoint("multi-exit + confidence", 10e6, 0.6, "0.5"),
                  CurvePoint("multi-exit + confidence", 20e6, 0.8, "0.9")]
    actor = [CurvePoint("actor", 5e6, 0.9, "64e-09"), CurvePoint("actor", 15e6, 0.70, "8e-09")]
    text = against_confidence(actor + confidence, confidence, 1000)
    cells = _verdict_rows(text)
    assert cells[0][4:] == ["-", "-"] and cells[1][5] == "+0.00 pp"
    assert "Over the 1 routed network within" in text


def test_multi_exit_record_holds_confidence_evaluations_equal_to_eval(tmp_path: Path,
                                                                      capsys) -> None:
    from routec.cli import main
    from routec.experiment.records import CONFIDENCE_THRESHOLDS, build_record

    run = tmp_path / "run"
    assert main(["train", "tiny", "--data", "synthetic", "--strategy", "multi-exit",
                 "--iterations", "6", "--batch", "16", "--val-examples", "32",
                 "--no-progress", "--out", str(run)]) == 0
    rec = build_record(run, "suite", "run")
    assert [c["threshold"] for c in rec["confidence"]] == list(CONFIDENCE_THRESHOLDS)
    capsys.readouterr()
    for c in rec["confidence"][::3]:
        assert main(["eval", str(run), "--policy", "confidence", "--threshold",
                     str(c["threshold"]), "--json"]) == 0
        (r,) = json.loads(capsys.readouterr().out)["results"]
        assert r["accuracy"] == c["result"]["accuracy"]
        assert r["mean_macs"] == pytest.approx(c["result"]["mean_macs"])
        assert r["exit_fraction"] == c["result"]["exit_fraction"]


def test_throughput_summary_takes_each_side_in_its_fastest_engine() -> None:
    """Routed in the engine fastest for it, static in the one fastest for it: the
    baseline never gets a slower engine than it could have."""
    from types import SimpleNamespace

    from routec.report.throughput import Pair, render_rows

    row = lambda run, macs: SimpleNamespace(run=run, accuracy=0.5, mean_macs=macs)  # noqa: E731
    pair = Pair("x-actor", row("k1", 10e6), "x-static", row("n3", 40e6), True)
    speeds = {"eager": (100.0, 80.0), "fused": (300.0, 150.0), "onnx": (200.0, 250.0)}
    stored = {"pairs": [
        {"engine": e, "images": 10, "batch": 2, "threads": 1, "machine": "m",
         "actor": {"run": "x-actor/k1", "exit_count": [1], "images_per_second": a,
                   "passes": [1.0]},
         "static": {"run": "x-static/n3", "exit_count": [1], "images_per_second": s,
                    "passes": [1.0]}} for e, (a, s) in speeds.items()]}
    text = render_rows([pair], stored, lambda suite, run: {"evaluations": [
        {"k_cpt": None, "dataflow": {"exit_count": [1]}}]})
    assert ("x: routed 300 images/s (fused) against static 250 (onnx), 1.20x at 4.00x "
            "fewer MACs") in text
    # a routed network that costs more than its baseline is said to, not "0.80x fewer"
    dearer = Pair("x-actor", row("k1", 50e6), "x-static", row("n3", 40e6), False)
    text = render_rows([dearer], stored, lambda suite, run: {"evaluations": [
        {"k_cpt": None, "dataflow": {"exit_count": [1]}}]})
    assert "1.20x at 1.25x more MACs" in text and "fewer MACs" not in text
