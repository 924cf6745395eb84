"""TensorBoard event files: every logged number, read back with TensorBoard's own reader,
equals the run's metrics.jsonl; --no-tensorboard writes none; a resumed run shows each
step once, with the values of a run that never stopped."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from helpers import compile_bundled
from routec.cli import main
from routec.train.config import make_config
from routec.train.loop import train

QUICK = dict(spec="tiny", data="synthetic", batch=16, log_every=5, eval_every=10,
             checkpoint_every=5, val_examples=64, k_cpt=1e-6, iterations=20)


def board(run: Path) -> dict[str, dict[int, float]]:
    """tag -> {step: value}, as TensorBoard shows the run (purges applied); a step seen
    twice in one tag fails here."""
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        assert len(steps) == len(set(steps)), f"{tag}: steps {steps} repeat"
        out[tag] = {e.step: e.value for e in events}
    return out


def lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def f32(v: float) -> float:
    """What an event file stores for ``v`` (a 32-bit float)."""
    return float(np.float32(v))


def test_every_scalar_matches_metrics_jsonl(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(make_config(QUICK), run, progress=False)
    seen = board(run)
    log = lines(run)
    start = log[0]
    records = [r for r in log if "event" not in r]
    g, _ = compile_bundled("tiny")
    exits = [g.nodes[i].id for i in g.leaves]
    nodes = [n.id for n in g.nodes]
    assert exits == start["exits"]
    # the tags a reader looks for, and the log-line values they must carry
    expected: dict[str, dict[int, float]] = {}

    def want(tag: str, step: int, value: float) -> None:
        expected.setdefault(tag, {})[step] = f32(value)

    scalar_keys = {"train_loss": "loss/total", "train_loss_error": "loss/error",
                   "train_loss_computation": "loss/computation",
                   "train_loss_decisiveness": "loss/decisiveness", "train_loss_l2": "loss/l2",
                   "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val",
                   "train_mean_macs": "mean_macs/train", "val_mean_macs": "mean_macs/val",
                   "lr": "schedule/lr", "tau": "schedule/temperature"}
    for r in records:
        step = r["iteration"]
        for key, tag in scalar_keys.items():
            if key in r:
                want(tag, step, r[key])
        want("schedule/k_cpt", step, QUICK["k_cpt"])
        for name, share in zip(exits, r["train_exit_fraction"]):
            want(f"exits/{name}", step, share)
        for name, share in zip(exits, r.get("val_exit_fraction", [])):
            want(f"val_exits/{name}", step, share)
        for name, scale in zip(nodes, r["train_talr_scale"]):
            want(f"talr/{name}", step, scale)
    assert len(expected) == len(scalar_keys) + 1 + 2 * len(exits) + len(nodes)
    for tag, values in expected.items():
        assert seen.get(tag) == values, tag
    # the log has what the board draws: every step, every 5 iterations, validation at 10, 20
    assert sorted(seen["loss/total"]) == [5, 10, 15, 20]
    assert sorted(seen["accuracy/val"]) == [10, 20]
    # the parts add up to the loss, and TALR scales are √n/‖p‖ ≥ 1 (a node no example
    # misses has scale 1: the stem)
    for r in records:
        parts = sum(r[f"train_loss_{p}"] for p in ("error", "computation", "decisiveness", "l2"))
        assert parts == pytest.approx(r["train_loss"], rel=1e-5)
        assert r["train_talr_scale"][0] == pytest.approx(1.0)
        assert min(r["train_talr_scale"]) >= 1 - 1e-9


@pytest.mark.parametrize("extra,parts", [
    ({"strategy": "critic"}, {"error", "regression", "l2"}),
    ({"strategy": "critic", "critic_mode": "sampled"}, {"error", "regression", "l2"}),
    ({"strategy": "multi-exit"}, {"error", "l2"})])
def test_loss_parts_of_every_strategy_add_up(tmp_path: Path, extra: dict, parts: set) -> None:
    train(make_config({**QUICK, "iterations": 5, **extra}), tmp_path, progress=False)
    (r,) = [r for r in lines(tmp_path) if "event" not in r]
    logged = {k.removeprefix("train_loss_") for k in r if k.startswith("train_loss_")}
    assert logged == parts
    assert sum(r[f"train_loss_{p}"] for p in parts) == pytest.approx(r["train_loss"], rel=1e-5)
    assert ("train_talr_scale" in r) == (extra["strategy"] != "multi-exit")  # TALR's strategies
    assert set(board(tmp_path)) >= {f"loss/{p}" for p in parts}


def _cli(out: Path, *extra: str) -> list[str]:
    return ["train", "tiny", "--data", "synthetic", "--batch", "16", "--k-cpt", "1e-6",
            "--log-every", "5", "--eval-every", "10", "--val-examples", "32",
            "--no-progress", "--out", str(out), *extra]


def test_no_tensorboard_writes_no_events_and_a_resume_may_turn_it_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(_cli(run, "--iterations", "10", "--no-tensorboard")) == 0
    assert json.loads((run / "config.json").read_text())["tensorboard"] is False
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
    # not a change of the run's result, so a resume may switch it (and keeps it off unasked)
    assert main(["train", "--resume", "--out", str(run), "--iterations", "15"]) == 0
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
    assert main(["train", "--resume", "--out", str(run), "--iterations", "20",
                 "--tensorboard"]) == 0
    assert sorted(board(run)["loss/total"]) == [20]  # from where it was turned on


def test_resumed_run_continues_its_curves_without_repeating_steps(tmp_path: Path) -> None:
    c = make_config({**QUICK, "log_every": 2})
    train(c, tmp_path / "whole", progress=False)
    # stopped at 13: log lines at 2..12 were written, the checkpoint is at 10
    train(c, tmp_path / "split", progress=False, stop_after=13)
    train(c, tmp_path / "split", resume=True, progress=False)
    files = sorted((tmp_path / "split").glob("events.out.tfevents.*"))
    assert len(files) == 2  # the resume appended a second file to the same folder
    raw = [e.step for f in files for e in EventFileLoader(str(f)).Load()
           if e.HasField("summary") and e.summary.value[0].tag == "loss/total"]
    assert raw.count(12) == 2  # on disk twice: once by each sitting ...
    split, whole = board(tmp_path / "split"), board(tmp_path / "whole")
    assert sorted(split["loss/total"]) == list(range(2, 21, 2))  # ... drawn once
    split.pop("time/seconds"), whole.pop("time/seconds")  # wall clock: differs
    assert split == whole  # resume is exact, so are its curves
    its = [r["iteration"] for r in lines(tmp_path / "split") if "event" not in r]
    assert its == sorted(split["loss/total"])
