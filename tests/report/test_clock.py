"""The results page's clock section: time-priced actors judged on measured time."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from routec.report.clock import (CURVES, ClockGroup, clock_groups, hull_scatter, measure_clock,
                                 verdict)
from routec.report.plots import CurvePoint
from routec.report.plots import best_mixture_at as best_at

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "results" / "records"
TABLE = REPO / "results" / "cost_tables" / "paper_chain.json"


def _p(x: float, acc: float, curve: str = "c") -> CurvePoint:
    return CurvePoint(curve, x, acc)


def test_best_at_is_the_upper_envelope_of_every_mixture() -> None:
    """No split of images over any number of networks beats best_at at its mean cost,
    and best_at is reached by some split (independent check: random mixtures)."""
    rng = random.Random(3)
    pts = [_p(rng.uniform(0.5, 3.0), rng.uniform(0.6, 0.95)) for _ in range(7)]
    lo, hi = min(p.mean_macs for p in pts), max(p.mean_macs for p in pts)
    for _ in range(3000):
        w = [rng.random() ** 3 for _ in pts]
        s = sum(w)
        x = sum(wi * p.mean_macs for wi, p in zip(w, pts)) / s
        acc = sum(wi * p.accuracy for wi, p in zip(w, pts)) / s
        assert acc <= best_at(pts, x) + 1e-12
    for x in (lo, (lo + hi) / 2, hi):  # attained: some pair's mixture at x gives it
        got = best_at(pts, x)
        pairs = [a.accuracy + (x - a.mean_macs) / (b.mean_macs - a.mean_macs)
                 * (b.accuracy - a.accuracy) for a in pts for b in pts
                 if a.mean_macs < x < b.mean_macs]
        pairs += [p.accuracy for p in pts if p.mean_macs == x]
        assert got == pytest.approx(max(pairs))
    assert best_at(pts, lo - 0.01) is None and best_at(pts, hi + 0.01) is None


def test_verdict_answers_from_the_points_not_a_fixed_text() -> None:
    macs = [_p(1.0, 0.80), _p(2.0, 0.90), _p(3.0, 0.92)]
    above = [_p(1.5, 0.87), _p(2.5, 0.93)]  # the hull there: 0.85 and 0.91
    below = [_p(1.5, 0.84), _p(2.5, 0.90)]
    v = verdict(above, macs)
    assert (v.compared, v.better) == (2, 2) and v.mean_pp == pytest.approx(2.0)
    assert v.text.startswith("**Yes.**")
    v = verdict(below, macs)
    assert (v.compared, v.better) == (2, 0) and v.mean_pp == pytest.approx(-1.0)
    assert v.text.startswith("**No.**")
    assert verdict([_p(9.0, 0.99)], macs).compared == 0  # outside the range: no verdict
    # the scatter of the reference curve itself: only the middle point is inside the
    # others' range, and it lies 3 pp above their line (0 below), then 5 pp below
    assert hull_scatter(macs) == pytest.approx(0.0)
    assert hull_scatter([_p(1.0, 0.80), _p(2.0, 0.80), _p(3.0, 0.90)]) == pytest.approx(5.0)
    assert "5.00 pp below the hull" in verdict(
        above, [_p(1.0, 0.80), _p(2.0, 0.80), _p(3.0, 0.90)]).text


def test_groups_pair_a_time_priced_suite_with_its_mac_priced_one_and_the_static_one() -> None:
    lat = {"cost": "latency"}
    configs = {"hybrid-static": [{"cost": "macs"}], "hybrid-actor": [{"cost": "macs"}],
               "hybrid-actor-latency": [lat, lat], "cifar2-actor": [{"cost": "macs"}]}
    data = {"hybrid-static": "hybrid", "hybrid-actor": "hybrid",
            "hybrid-actor-latency": "hybrid", "cifar2-actor": "cifar2"}
    assert clock_groups(configs, data) == [
        ClockGroup("hybrid-actor-latency", "hybrid-actor", "hybrid-static")]
    del configs["hybrid-actor"]
    assert clock_groups(configs, data) == [
        ClockGroup("hybrid-actor-latency", None, "hybrid-static")]
    configs["hybrid-actor-latency"] = [lat, {"cost": "macs"}]  # mixed: not time-priced
    assert clock_groups(configs, data) == []


def _copy(src: Path, dst: Path, **config: object) -> None:
    shutil.copytree(src, dst)
    for name in ("config.json", "record.json"):
        d = json.loads((dst / name).read_text())
        target = d if name == "config.json" else d["config"]
        target.update(config)
        (dst / name).write_text(json.dumps(d))


@pytest.mark.skipif(not (RECORDS / "hybrid-actor" / "k1e-9").is_dir() or not TABLE.is_file(),
                    reason="needs the committed hybrid records and cost table")
def test_clock_times_every_network_and_the_page_shows_the_verdict(tmp_path: Path) -> None:
    from routec.engine.profile import path_seconds
    from routec.report.results import build_results
    from routec.report.throughput import network_of

    root = tmp_path / "records"
    for run in ("n1", "n8"):
        shutil.copytree(RECORDS / "hybrid-static" / run, root / "hybrid-static" / run)
    for run in ("k0e-9", "k1e-9"):
        shutil.copytree(RECORDS / "hybrid-actor" / run, root / "hybrid-actor" / run)
    # a stand-in for a time-priced run: the k1e-9 record, relabelled as trained on time
    _copy(RECORDS / "hybrid-actor" / "k1e-9", root / "hybrid-actor-latency" / "k0.01ms",
          cost="latency", cost_table=str(TABLE), k_cpt=0.01)
    _copy(RECORDS / "hybrid-actor" / "k0e-9", root / "hybrid-actor-latency" / "k0ms",
          cost="latency", cost_table=str(TABLE), k_cpt=0.0)

    data = measure_clock(root, images=64, min_seconds=0.0, repeats=3)
    table = json.loads(TABLE.read_text())
    assert (data["engine"], data["batch"], data["threads"]) == (
        table["engine"], table["batch"], table["threads"])
    assert set(data["runs"]) == {"hybrid-static/n1", "hybrid-static/n8", "hybrid-actor/k0e-9",
                                 "hybrid-actor/k1e-9", "hybrid-actor-latency/k0.01ms",
                                 "hybrid-actor-latency/k0ms"}
    runs = data["runs"]
    # eight columns take longer than one, on any machine
    assert runs["hybrid-static/n8"]["seconds_per_image"] > \
        runs["hybrid-static/n1"]["seconds_per_image"]
    # the cost table's prediction: every test image's path, summed node by node
    rec = json.loads((root / "hybrid-actor" / "k1e-9" / "record.json").read_text())
    net = network_of(root / "hybrid-actor" / "k1e-9", rec)
    secs = {o["node"]: o["seconds"] for o in table["nodes"]}
    counts = rec["evaluations"][0]["dataflow"]["exit_count"]
    total = 0.0
    for leaf, c in zip(net.LEAVES, counts):
        i, path = leaf, []
        while i >= 0:
            path.append(net.NODES[i])
            i = net.PARENT[i]
        total += c * sum(secs[n] for n in path)
    assert runs["hybrid-actor/k1e-9"]["table_seconds_per_image"] == pytest.approx(
        total / sum(counts))
    # a static prefix is priced by node name: stem, c1 and its exit
    assert runs["hybrid-static/n1"]["table_seconds_per_image"] == pytest.approx(
        secs["stem"] + secs["c1"] + secs["exit_c1"])
    assert len(path_seconds(table, net)) == len(counts)

    (root / "clock.json").write_text(json.dumps(data))
    page = tmp_path / "results.md"
    build_results(root, page, figures=True)
    text = page.read_text()
    section = text.split("## Routing priced in measured time", 1)[1].split("\n## ", 1)[0]
    for key in runs:
        assert f"{runs[key]['seconds_per_image'] * 1e3:.3f}" in section
    assert CURVES["latency"] in section
    acc = {f"{s}/{r}": json.loads((root / s / r / "record.json").read_text())["evaluations"][0][
        "result"]["accuracy"] for s, r in (k.split("/") for k in runs)}
    pts = {k: _p(v["seconds_per_image"] * 1e3, acc[k]) for k, v in runs.items()}
    expected = verdict([pts["hybrid-actor-latency/k0.01ms"]],  # k_cpt = 0 is not judged
                       [pts["hybrid-actor/k0e-9"], pts["hybrid-actor/k1e-9"]])
    assert expected.text in section
    assert "(hybrid-actor/k0e-9, hybrid-actor-latency/k0ms) are the same training: their " \
        "test accuracy and exit counts are identical" in section
    assert (tmp_path / "results" / "clock_hybrid-actor-latency.png").is_file()
