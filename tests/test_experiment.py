"""routec experiment: suites as resumable, shardable lists of runs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from routec.cli import main
from routec.experiment.cli import RunLock
from routec.experiment.suites import SUITES
from routec.train.checkpoint import load_checkpoint
from routec.train.config import K_CPT_GRID

QUICK = ["--data", "synthetic", "--spec", "tiny", "--batch", "8", "--no-progress"]


def test_suites_cover_the_paper() -> None:
    for name in ["hybrid-static", "hybrid-actor", "hybrid-critic", "hybrid-critic-optimistic",
                 "hybrid-critic-clserr", "hybrid-actor-dynamic", "hybrid-actor-nokdec",
                 "hybrid-actor-notalr", "hybrid-actor-tree", "cifar2-static", "cifar2-actor",
                 "cifar5-static", "cifar5-actor", "cifar10-static", "cifar10-actor"]:
        assert name in SUITES
    assert [r["static_columns"] for r in SUITES["hybrid-static"].values()] == list(range(1, 9))
    assert sorted(r["k_cpt"] for r in SUITES["hybrid-actor"].values()) == sorted(K_CPT_GRID)
    assert {r["utility"] for r in SUITES["hybrid-critic-optimistic"].values()} == {"optimistic"}
    assert all(r["talr"] is False for r in SUITES["hybrid-actor-notalr"].values())


def test_finished_runs_are_skipped_and_unfinished_resumed(tmp_path: Path, capsys) -> None:
    args = ["experiment", "hybrid-actor", "--runs", "k0e-9", "k4e-9", "--out", str(tmp_path),
            *QUICK]
    assert main([*args, "--iterations", "3"]) == 0
    first = load_checkpoint(tmp_path / "hybrid-actor" / "k4e-9" / "checkpoint.pt")
    assert first["iteration"] == 3 and first["config"]["k_cpt"] == 4e-9
    capsys.readouterr()
    assert main([*args, "--iterations", "3"]) == 0
    assert capsys.readouterr().err.count("finished, skipped") == 2
    assert main([*args, "--iterations", "5"]) == 0  # a larger budget resumes both runs
    assert "resuming" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "hybrid-actor" / "k0e-9" / "checkpoint.pt")["iteration"] == 5


def test_shards_split_the_runs(tmp_path: Path) -> None:
    runs = ["k0e-9", "k1e-9", "k2e-9"]
    base = ["experiment", "hybrid-actor", "--runs", *runs, "--out", str(tmp_path),
            "--iterations", "1", *QUICK]
    assert main([*base, "--shard", "1/2"]) == 0
    done = sorted(p.name for p in (tmp_path / "hybrid-actor").iterdir()
                  if (p / "checkpoint.pt").exists())
    assert done == ["k1e-9"]
    assert main([*base, "--shard", "0/2"]) == 0
    assert sorted(p.name for p in (tmp_path / "hybrid-actor").iterdir()) == sorted(runs)


def test_a_locked_run_is_left_to_its_owner(tmp_path: Path, capsys) -> None:
    run = tmp_path / "hybrid-actor" / "k0e-9"
    run.mkdir(parents=True)
    (run / ".lock").write_text(str(os.getpid()))  # a live process holds it
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "--out", str(tmp_path),
                 "--iterations", "1", *QUICK]) == 0
    assert "another process is training it" in capsys.readouterr().err
    assert not (run / "checkpoint.pt").exists()
    (run / ".lock").write_text("999999999")  # its process is gone: the lock is stale
    with RunLock(run) as got:
        assert got and (run / ".lock").read_text() == str(os.getpid())
    assert not (run / ".lock").exists()


def test_unknown_suite_or_run(tmp_path: Path, capsys) -> None:
    assert main(["experiment", "hybrid-nothing"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert main(["experiment", "hybrid-actor", "--runs", "k3e-9"]) == 2
    assert "has no run k3e-9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "hybrid-actor", "--iterations", "x"])
