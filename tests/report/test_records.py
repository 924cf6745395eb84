"""Run records: what they hold (checked against the checkpoints they describe), how they
are written and harvested, the throughput timing that needs no weights, and the committed
results page regenerated from the committed records."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.experiment.records import RECORD, harvest, portable, read_record
from routec.report.results import RECORDS, build_results
from routec.engine.timing import FixedExits, sample_exits
from routec.report.throughput import network_of
from routec.train.evaluate import evaluate
from routec.train.runs import load_run

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--data", "synthetic", "--spec", "tiny", "--batch", "8", "--iterations", "10",
         "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("records")
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "k2e-9", "--out",
                 str(base / "runs"), *QUICK]) == 0
    assert main(["experiment", "hybrid-static", "--runs", "n2", "--out", str(base / "runs"),
                 *QUICK]) == 0
    return base


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_finished_run_writes_its_record_and_nothing_heavy(runs: Path) -> None:
    rec_dir = runs / "results" / "records" / "hybrid-actor" / "k2e-9"
    assert sorted(p.name for p in rec_dir.iterdir()) == sorted(
        ["config.json", "metrics.jsonl", "spec.route", RECORD])
    assert sum(p.stat().st_size for p in rec_dir.iterdir()) < 200_000
    run_dir = runs / "runs" / "hybrid-actor" / "k2e-9"
    for name in ("config.json", "spec.route", "metrics.jsonl"):
        assert (rec_dir / name).read_text() == (run_dir / name).read_text()
    rec = read_record(rec_dir)
    assert rec is not None and rec["finished"] and rec["iteration"] == 10
    assert rec["config"] == json.loads((run_dir / "config.json").read_text())


def test_the_record_holds_the_checkpoints_routed_evaluation(runs: Path) -> None:
    run_dir = runs / "runs" / "hybrid-actor" / "k0e-9"
    rec = read_record(runs / "results" / "records" / "hybrid-actor" / "k0e-9")
    _, net, data, _ = load_run(run_dir)
    images, labels = data.test.images, data.test.labels
    r = evaluate(net, images, labels)
    (ev,) = rec["evaluations"]
    got = ev["result"]
    assert got["accuracy"] == pytest.approx(r.accuracy)
    assert got["mean_macs"] == pytest.approx(r.mean_macs)
    assert got["exit_fraction"] == pytest.approx(r.exit_fraction)
    assert got["class_exit_counts"] == r.class_exit_counts
    assert got["exit_names"] == r.exit_names
    # per-node counts, by brute force: every node on the path of the exit each image reached
    out = net.route(images)
    counts = [0] * len(net.NODES)
    for leaf in out.leaf.tolist():
        for node in net.path(net.LEAVES[leaf]):
            counts[node] += 1
    assert ev["dataflow"]["node_count"] == counts
    origin = data.test.origin.clamp(0, 1)
    for e in range(len(net.LEAVES)):
        mine = out.leaf == e
        assert ev["dataflow"]["exit_origin"][e] == [int((mine & (origin == o)).sum())
                                                   for o in (0, 1)]
    assert rec["path_macs"] == net.path_macs()


def test_harvest_reads_runs_and_rebuilds_the_same_records(runs: Path, tmp_path: Path) -> None:
    before = _snapshot(runs / "runs")
    out = tmp_path / "records"
    written = harvest(runs / "runs", out, say=lambda _m: None)
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "hybrid-actor/k0e-9", "hybrid-actor/k2e-9", "hybrid-static/n2"]
    assert _snapshot(runs / "runs") == before  # run directories only read
    for p in written:
        auto = runs / "results" / "records" / p.relative_to(out)
        assert read_record(p) == read_record(auto)
    assert harvest(runs / "runs", out, say=lambda _m: None) == []  # all current
    assert len(harvest(runs / "runs", out, force=True, say=lambda _m: None)) == 3


def test_a_finished_run_without_a_record_gets_one_when_skipped(runs: Path, tmp_path: Path,
                                                               capsys) -> None:
    root = tmp_path / "runs"
    shutil.copytree(runs / "runs" / "hybrid-static", root / "hybrid-static")
    records = tmp_path / "elsewhere"
    args = ["experiment", "hybrid-static", "--runs", "n2", "--out", str(root), "--records",
            str(records), *QUICK]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "finished, skipped" in err and "record written" in err
    assert read_record(records / "hybrid-static" / "n2") == read_record(
        runs / "results" / "records" / "hybrid-static" / "n2")
    assert main(args) == 0
    assert "record written" not in capsys.readouterr().err  # already current


def test_data_root_paths_are_written_portably(tmp_path: Path) -> None:
    root = tmp_path / "data"
    text = f"MNIST from {root}/MNIST/raw (IDX files); CIFAR-10 from {root}/cifar.tar.gz"
    assert portable(text, str(root)) == ("MNIST from $ROUTEC_DATA/MNIST/raw (IDX files); "
                                         "CIFAR-10 from $ROUTEC_DATA/cifar.tar.gz")
    assert portable("no paths here", str(root)) == "no paths here"
    from routec.experiment.records import portable_config

    assert portable_config({"data_root": str(root), "cache_dir": f"{root}/cache", "seed": 1},
                           str(root)) == {"data_root": "$ROUTEC_DATA",
                                          "cache_dir": "$ROUTEC_DATA/cache", "seed": 1}


# -- throughput without weights --------------------------------------------------------------
@pytest.mark.parametrize("counts,n", [([5, 0, 3, 2], 20), ([1, 1, 1], 7), ([9990, 10], 2000)])
def test_a_scaled_mix_keeps_the_recorded_proportions(counts: list[int], n: int) -> None:
    leaves = sample_exits(counts, n)
    got = torch.bincount(leaves, minlength=len(counts)).tolist()
    assert sum(got) == n
    for g, c in zip(got, counts):
        assert abs(g - c * n / sum(counts)) < 1


@pytest.mark.parametrize("engine", ["eager", "fused"])
def test_fixed_exits_send_each_image_to_its_exit(runs: Path, engine: str) -> None:
    from routec.engine import optimize_for_inference

    rec_dir = runs / "results" / "records" / "hybrid-actor" / "k0e-9"
    rec = read_record(rec_dir)
    net = network_of(rec_dir, rec)  # fresh weights: routing comes from the script alone
    leaves = torch.arange(len(net.LEAVES)).repeat(5)[torch.randperm(5 * len(net.LEAVES))]
    x = torch.rand(len(leaves), *net.INPUT_SHAPE)
    runner = optimize_for_inference(net, engine)
    with torch.no_grad():
        out = runner.route(x, policy=FixedExits(net, leaves))
    assert out.leaf.tolist() == leaves.tolist()
    assert out.macs.tolist() == [float(net.path_macs()[i]) for i in leaves.tolist()]


# -- the committed page ----------------------------------------------------------------------
def test_the_committed_page_regenerates_from_the_committed_records(tmp_path: Path) -> None:
    """docs/results.md is exactly what the records under results/records give, so it can
    be regenerated on any machine (figures are redrawn by the same run of the command;
    their bytes depend on the matplotlib and Graphviz versions, the Markdown does not)."""
    records = ROOT / RECORDS
    page = ROOT / "docs" / "results.md"
    if not any(records.glob(f"*/*/{RECORD}")):
        pytest.skip("no committed records")
    out = tmp_path / "results.md"
    build_results(records, out, figures=False,
                  command=f"routec report results {RECORDS} -o docs/results.md")
    assert out.read_text(encoding="utf-8") == page.read_text(encoding="utf-8")
    # every figure the page links is committed beside it
    import re

    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text(encoding="utf-8")):
        assert (page.parent / link).is_file(), link
    assert os.sep + "shared" + os.sep not in out.read_text(encoding="utf-8")
