"""The training loop: exact resume, kill safety, NaN stop, eval, configs, policies."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.report.plots import read_metrics
from routec.errors import RunError
from routec.train.checkpoint import load_checkpoint
from routec.train.config import make_config
from routec.train.loop import train

QUICK = dict(spec="tiny", data="synthetic", batch=16, log_every=5, eval_every=10,
             checkpoint_every=5, val_examples=64, k_cpt=1e-6)


def cfg(**over):
    return make_config({**QUICK, **over})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoint.pt")["model"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("strategy,extra", [("actor", {}), ("critic", {}),
                                            ("critic", {"critic_mode": "sampled"}),
                                            ("actor", {"k_cpt": "dynamic"})])
def test_resume_continues_exactly(tmp_path: Path, strategy: str, extra: dict) -> None:
    c = cfg(strategy=strategy, iterations=20, **extra)
    train(c, tmp_path / "whole", progress=False)
    # stop between checkpoints (at 13; the last checkpoint is at 10), then resume
    train(c, tmp_path / "split", progress=False, stop_after=13)
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["iteration"] == 10
    train(c, tmp_path / "split", resume=True, progress=False)
    assert same_weights(weights(tmp_path / "whole"), weights(tmp_path / "split"))
    lines = [json.loads(l) for l in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    its = [l["iteration"] for l in lines if "train_loss" in l]
    assert its == sorted(set(its)) == [5, 10, 15, 20]  # no duplicated or lost log lines
    events = [l for l in lines if "event" in l]
    assert [(e["event"], e["iteration"]) for e in events] == [("start", 0), ("resume", 10)]
    assert all(e["machine"]["cpus"] == os.cpu_count() for e in events)
    _, records = read_metrics(tmp_path / "split")  # the report reads past the events
    assert [r["iteration"] for r in records] == its and all("event" not in r for r in records)


def _cli_train(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "routec", "train", "tiny", "--data", "synthetic",
            "--strategy", "actor", "--iterations", "60", "--batch", "16", "--k-cpt", "1e-6",
            "--checkpoint-every", "4", "--log-every", "4", "--eval-every", "1000",
            "--val-examples", "32", "--no-progress", "--out", str(out), *extra]


def test_sigkill_mid_training_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cli_train(whole), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(_cli_train(killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    ckpt = killed / "checkpoint.pt"
    while time.time() < deadline:
        if ckpt.exists():
            try:
                if load_checkpoint(ckpt)["iteration"] >= 12:
                    break
            except RunError:  # never expected: a checkpoint is replaced atomically
                raise
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = load_checkpoint(ckpt)["iteration"]
    assert 12 <= at_kill < 60, "the run should have been killed mid-way"
    resumed = subprocess.run(_cli_train(killed, "--resume"), env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert same_weights(weights(whole), weights(killed))


def test_partial_and_corrupt_checkpoints(tmp_path: Path) -> None:
    c = cfg(strategy="actor", iterations=10)
    train(c, tmp_path, progress=False, stop_after=7)
    # a temp file left by a kill during a write is never read
    (tmp_path / ".checkpoint.pt.abc.tmp").write_bytes(b"half a checkpoint")
    train(c, tmp_path, resume=True, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 10
    # a damaged checkpoint is reported, not half-used
    data = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="unreadable checkpoint"):
        train(c, tmp_path, resume=True, progress=False)


def test_existing_run_needs_resume_and_same_config(tmp_path: Path) -> None:
    train(cfg(iterations=5), tmp_path, progress=False)
    with pytest.raises(RunError, match="already holds a run"):
        train(cfg(iterations=5), tmp_path, progress=False)
    with pytest.raises(RunError, match="another configuration"):
        train(cfg(iterations=10, lr=0.05), tmp_path, resume=True, progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    # the paper's recipe (no gradient clipping): lr 1e9 then overflows in a few steps
    c = cfg(strategy="actor", iterations=200, lr=1e9, checkpoint_every=1, talr=False,
            preset="paper")
    with pytest.raises(RunError, match=r"loss became (nan|inf).*last good checkpoint"):
        train(c, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["iteration"] < 200
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_non_finite_state_is_never_checkpointed(tmp_path: Path) -> None:
    """With clipping the loss can stay finite while a batch-norm running variance
    overflows: the run stops either way, and every checkpoint it left is finite."""
    c = cfg(strategy="actor", iterations=200, lr=1e9, checkpoint_every=1, talr=False)
    with pytest.raises(RunError, match=r"(non-finite|loss became).*last good checkpoint"):
        train(c, tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["iteration"] < 200
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_eval_json_matches_dense_argmax(tmp_path: Path, capsys) -> None:
    from routec.train.runs import load_run
    from routec.train.tree import Tree, inference_leaf

    run = tmp_path / "run"
    assert main(["train", "tiny", "--data", "synthetic", "--iterations", "15", "--batch", "16",
                 "--k-cpt", "1e-6", "--out", str(run), "--no-progress",
                 "--val-examples", "32"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (r,) = payload["results"]
    _, net, data, _ = load_run(str(run))
    with torch.no_grad():
        dense = net(data.test.images)
    tree = Tree.of(net)
    leaf = inference_leaf(tree, dense.scores, len(data.test))
    logits = dense.leaf_logits[leaf, torch.arange(len(leaf))]
    acc = float((logits.argmax(1) == data.test.labels).float().mean())
    assert r["accuracy"] == pytest.approx(acc)
    fractions = torch.bincount(leaf, minlength=len(tree.leaves)).double() / len(leaf)
    assert r["exit_fraction"] == pytest.approx(fractions.tolist())
    assert r["mean_macs"] == pytest.approx(float(tree.path_macs()[leaf].mean()))
    assert sum(map(sum, r["class_exit_counts"])) == len(data.test)
    assert main(["eval", str(run)]) == 0
    assert "mean MACs" in capsys.readouterr().out


def test_confidence_policy_extremes(tmp_path: Path) -> None:
    from routec.train.evaluate import evaluate
    from helpers import compile_bundled

    g, net = compile_bundled("paper_chain")
    x, y = torch.rand(8, *g.input_shape), torch.zeros(8, dtype=torch.long)
    low = evaluate(net, x, y, policy="confidence", threshold=0.0)
    assert low.exit_fraction[0] == 1.0 and low.mean_macs == g.path_macs()[0]
    high = evaluate(net, x, y, policy="confidence", threshold=1.01)
    assert high.exit_fraction[-1] == 1.0
    consulted = sum(g.nodes[leaf].macs for leaf in g.leaves[:-1])  # asked, never taken
    assert high.mean_macs == pytest.approx(g.path_macs()[-1] + consulted)


def test_config_file_flags_and_saved_effective_config(tmp_path: Path) -> None:
    conf = tmp_path / "run.toml"
    conf.write_text('strategy = "critic"\nbatch = 8\nk_cpt = 2e-9\nlr = 0.05\n')
    out = tmp_path / "run"
    assert main(["train", "tiny", "--config", str(conf), "--lr", "0.02", "--iterations", "3",
                 "--data", "synthetic", "--out", str(out), "--no-progress",
                 "--val-examples", "16"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["strategy"] == "critic" and saved["batch"] == 8 and saved["lr"] == 0.02
    assert saved["k_cpt"] == 2e-9 and saved["tau"] is None and saved["talr"] is True
    conf.write_text('strategy = "critc"\n')
    assert main(["train", "tiny", "--config", str(conf), "--data", "synthetic",
                 "--out", str(tmp_path / "x")]) == 2


def test_static_and_multi_exit_strategies(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="one exit"):
        train(cfg(strategy="static", iterations=2), tmp_path / "a", progress=False)
    train(cfg(spec="paper_chain", strategy="static", static_columns=2, iterations=3, batch=8),
          tmp_path / "b", progress=False)
    train(cfg(strategy="multi-exit", iterations=3), tmp_path / "c", progress=False)
    assert load_checkpoint(tmp_path / "c" / "checkpoint.pt")["finished"]


def test_torchrun_data_parallel_two_cpu_processes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "routec", "train", "tiny", "--data", "synthetic", "--iterations", "8",
           "--batch", "32", "--k-cpt", "1e-6", "--out", str(out), "--log-every", "4",
           "--val-examples", "32", "--no-progress"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("done:") == 1  # only rank 0 reports
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["world_size"] == 2
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["iteration"] == 8 and state["finished"]
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_evaluate_takes_a_policy_callable_too() -> None:
    from routec.train.evaluate import evaluate
    from helpers import compile_bundled

    g, net = compile_bundled("paper_chain")
    x, y = torch.rand(6, *g.input_shape), torch.zeros(6, dtype=torch.long)

    def deepest(j, scores, rows, h):
        return torch.full_like(rows, scores.shape[1] - 1)

    r = evaluate(net, x, y, policy=deepest)
    assert r.exit_fraction[-1] == 1.0 and r.mean_macs == g.path_macs()[-1]
    with pytest.raises(RunError, match="unknown policy"):
        evaluate(net, x, y, policy="greedy")
