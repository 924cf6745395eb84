"""Defaults that train: a plain conv network (no batch-norm) learns with default flags;
the paper's exact recipe stays one setting away, and every run records which it used."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.experiment.suites import SUITES, split_budget
from routec.train.checkpoint import load_checkpoint
from routec.train.config import PRESETS, make_config, saved_config
from routec.train.loop import train
from routec.train.schedules import halving, learning_rate

PLAIN = """network plain (input = 3x32x32, classes = 10) {
    column c1 = conv(16) -> relu -> pool -> conv(32) -> relu -> pool
    column c2 = conv(32) -> relu -> pool -> conv(64) -> relu -> pool
    route c1 -> either { exit | c2 -> exit }
}
"""


def test_a_plain_conv_network_learns_with_default_flags(tmp_path: Path, capsys) -> None:
    """300 iterations of `routec train plain.route --data synthetic`: the generated set
    has 10 balanced classes (chance 0.10). With the paper's recipe (raw images, no
    clipping) this network's first-layer ReLUs die within ~20 steps and it ends at
    chance for most seeds (docs/training.md)."""
    torch.set_num_threads(1)
    (tmp_path / "plain.route").write_text(PLAIN)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "plain.route"), "--data", "synthetic",
                 "--iterations", "300", "--out", str(run), "--no-progress"]) == 0
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    final = [l for l in lines if "val_accuracy" in l][-1]
    assert final["iteration"] == 300
    assert final["val_accuracy"] >= 0.5, final
    config = json.loads((run / "config.json").read_text())
    assert (config["preset"], config["normalize"], config["warmup"],
            config["clip_grad_norm"]) == ("default", True, 0, 1.0)


def test_presets_fill_only_what_is_not_given() -> None:
    d = make_config({"spec": "tiny"})
    assert (d.preset, d.normalize, d.warmup, d.clip_grad_norm) == ("default", True, 0, 1.0)
    p = make_config({"spec": "tiny", "preset": "paper"})
    assert (p.preset, p.normalize, p.warmup, p.clip_grad_norm) == ("paper", False, 0, 0.0)
    assert p.lr == 0.1 and p.momentum == 0.9 and p.talr  # the paper's §5 settings
    mixed = make_config({"spec": "tiny", "preset": "paper", "warmup": 50})
    assert (mixed.warmup, mixed.clip_grad_norm) == (50, 0.0)
    # a saved config records the resolved values: reloading it changes nothing
    assert make_config(d.model_dump()) == d and make_config(p.model_dump()) == p
    assert set(PRESETS["default"]) == set(PRESETS["paper"])


def test_runs_saved_before_presets_read_as_the_paper() -> None:
    old = make_config({"spec": "tiny", "preset": "paper"}).model_dump()
    for key in ("preset", "normalize", "warmup", "clip_grad_norm"):
        del old[key]
    assert saved_config(old) == make_config({"spec": "tiny", "preset": "paper"})


def test_the_experiment_suites_reproduce_the_paper_exactly() -> None:
    """Every suite of a network routec builds uses the paper's recipe; a suite routing a
    model trained elsewhere feeds it as it was trained (standardised channels)."""
    every = [split_budget(run)[0] for suite in SUITES.values() for run in suite.values()]
    runs = [r for r in every if not r.get("models")]
    assert runs and all(make_config({**r, "iterations": 10}).preset == "paper" for r in runs)
    assert all(make_config({**r, "iterations": 10}).clip_grad_norm == 0 for r in runs)
    assert not any(make_config({**r, "iterations": 10}).normalize for r in runs)
    supplied = [make_config({**r, "iterations": 10}) for r in every if r.get("models")]
    assert supplied and all(c.normalize and c.pixels == "unit" for c in supplied)


@pytest.mark.parametrize("warmup", [0, 1, 7, 100])
def test_warmup_is_linear_then_the_halving_schedule(warmup: int) -> None:
    for t in range(0, 300, 3):
        expected = 0.1 * 2 ** (-t / 1e4) * (min(1.0, (t + 1) / warmup) if warmup else 1.0)
        assert math.isclose(learning_rate(0.1, 1e4, warmup, t), expected, rel_tol=1e-12)
    assert learning_rate(0.1, 1e4, warmup, 500) == halving(0.1, 1e4, 500)


def _one_step(tmp_path: Path, name: str, **over) -> dict[str, torch.Tensor]:
    cfg = make_config({"spec": "tiny", "data": "synthetic", "batch": 16, "iterations": 1,
                       "k_cpt": 1e-9, "val_examples": 16, "augment": False, **over})
    train(cfg, tmp_path / name, progress=False)
    return load_checkpoint(tmp_path / name / "checkpoint.pt")["model"]


def test_clipping_bounds_the_first_step(tmp_path: Path) -> None:
    """SGD's first step moves the weights by lr·g: with clipping, by at most lr·max_norm."""
    start = _one_step(tmp_path, "still", lr=1e-30)  # the initial weights (same seed)

    def moved(w: dict[str, torch.Tensor]) -> float:
        return math.sqrt(sum(float(((w[k].double() - start[k].double()) ** 2).sum())
                             for k in start if w[k].is_floating_point()
                             and "running" not in k))

    clipped = moved(_one_step(tmp_path, "clipped", lr=0.1, clip_grad_norm=1e-3))
    free = moved(_one_step(tmp_path, "free", lr=0.1, clip_grad_norm=0))
    assert clipped <= 0.1 * 1e-3 * 1.001
    assert free > 10 * clipped
