"""Run directories are safe to share and to interrupt.

- no command that reads a checkpoint runs code from it (weights_only loading);
- a checkpoint whose tensors were altered inside an intact zip is reported as damaged;
- one writer per run: a second trainer on the same --out is refused with the holder's pid;
- SIGINT and SIGTERM write a checkpoint before exiting, and the run resumes exactly;
- --resume refuses fewer iterations than done and a changed spec file.
"""
from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}
QUICK = ["--data", "synthetic", "--batch", "8", "--no-progress", "--val-examples", "32"]


class MakesADirectory:
    """Unpickling this calls os.mkdir(marker): the shape of a hostile checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[Path, Path]:
    """(experiment OUT, a run in it) whose checkpoint would create ``marker`` when read."""
    out = tmp_path_factory.mktemp("hostile")
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "--out", str(out),
                 "--iterations", "2", "--data", "synthetic", "--spec", "tiny", "--batch", "8",
                 "--no-progress", "--no-records"]) == 0
    run = out / "hybrid-actor" / "k0e-9"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["iteration"] = 1  # partial, so that experiment and --resume go on to read it
    state["finished"] = False
    state["window"] = MakesADirectory(out / "PWNED")
    torch.save(state, run / "checkpoint.pt")
    return out, run


def _commands(out: Path, run: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "eval": ["eval", str(run)],
        "draw": ["draw", str(run), "-o", str(tmp / "flow.png")],
        "export": ["export", str(run), "-o", str(tmp / "export")],
        "profile": ["profile", str(run), "--images", "16", "--repeats", "1"],
        "report": ["report", str(run), "-o", str(tmp / "report")],
        "report --harvest": ["report", "--harvest", str(out), "-o", str(tmp / "records")],
        "bench": ["bench", str(run), "--images", "16", "--repeats", "1"],
        "train --resume": ["train", "tiny", "--resume", "--out", str(run), "--iterations",
                           "3", *QUICK],
        "experiment": ["experiment", "hybrid-actor", "--runs", "k0e-9", "--out", str(out),
                       "--iterations", "2", "--data", "synthetic", "--spec", "tiny",
                       "--batch", "8", "--no-progress", "--no-records"],
        "experiment --status": ["experiment", "--status", "hybrid-actor", "--runs", "k0e-9",
                                "--out", str(out), "--iterations", "2", "--data",
                                "synthetic", "--spec", "tiny", "--batch", "8",
                                "--no-records"],
    }


@pytest.mark.parametrize("command", list(_commands(Path("o"), Path("r"), Path("t"))))
def test_no_command_runs_code_from_a_checkpoint(command: str, hostile, tmp_path: Path,
                                                 capsys) -> None:
    out, run = hostile
    argv = _commands(out, run, tmp_path)[command]
    code = main(argv)
    err = capsys.readouterr().err
    assert not (out / "PWNED").exists(), f"{command} ran code from the checkpoint"
    assert code == 2 and "refused" in err and "posix.mkdir" in err, (command, code, err)
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) >= 1


def test_a_tensor_altered_inside_an_intact_zip_is_damage(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "tiny", "--iterations", "3", "--out", str(run), *QUICK]) == 0
    ckpt = run / "checkpoint.pt"
    before = load_checkpoint(ckpt)
    rewritten = tmp_path / "rewritten.pt"
    with zipfile.ZipFile(ckpt) as src, zipfile.ZipFile(rewritten, "w",
                                                       zipfile.ZIP_STORED) as dst:
        records = [i for i in src.infolist() if "/data/" in i.filename]
        victim = max(records, key=lambda i: i.file_size)  # the largest tensor: weights
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == victim.filename:
                payload = bytes(b ^ 0x55 for b in payload[:64]) + payload[64:]
            dst.writestr(info, payload)  # a new, correct CRC: the zip stays intact
    os.replace(rewritten, ckpt)
    with zipfile.ZipFile(ckpt) as z:
        assert z.testzip() is None, "the zip itself must look fine"
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "damaged checkpoint" in err and str(ckpt) in err and "Traceback" not in err
    assert before["iteration"] == 3


def _train_cmd(out: Path, *extra: str, iterations: int = 400) -> list[str]:
    return [sys.executable, "-m", "routec", "train", "tiny", "--data", "synthetic",
            "--strategy", "actor", "--iterations", str(iterations), "--batch", "8",
            "--k-cpt", "1e-6", "--checkpoint-every", "1000000", "--log-every", "5",
            "--eval-every", "1000000", "--val-examples", "32", "--no-progress",
            "--out", str(out), *extra]


def _wait_for_iteration(metrics: Path, at_least: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists():
            its = [json.loads(x).get("iteration", 0) for x in
                   metrics.read_text().splitlines() if x.strip().endswith("}")]
            if its and max(its) >= at_least:
                return
        time.sleep(0.05)
    raise AssertionError(f"training never reached iteration {at_least}")


def test_a_second_trainer_on_one_out_is_refused_and_the_first_run_is_intact(
        tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(run, iterations=300), env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_iteration(run / "metrics.jsonl", 5, first)
    # the second trainer differs in --lr, so an overwrite of config.json would show
    code = main(["train", "tiny", "--iterations", "20", "--lr", "0.01", "--out", str(run),
                 *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and f"pid {first.pid}" in err and "another process" in err
    code = main(["train", "tiny", "--resume", "--iterations", "400", "--out", str(run),
                 *QUICK])
    assert code == 2 and f"pid {first.pid}" in capsys.readouterr().err
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 300 and state["config"]["lr"] != 0.01
    assert json.loads((run / "config.json").read_text())["lr"] == state["config"]["lr"]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x.get("event") for x in lines].count("start") == 1
    its = [x["iteration"] for x in lines if "event" not in x]
    assert its == list(range(5, 301, 5)), "one run's log, in order"


def test_a_lock_left_by_a_killed_process_is_free(tmp_path: Path) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from routec.train.lock import RunLock; "
         "l = RunLock(sys.argv[1]); l.__enter__(); print('held', flush=True); "
         "time.sleep(600)", str(run)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from routec.train.lock import RunBusy, RunLock
    with pytest.raises(RunBusy, match=f"pid {holder.pid}"):
        with RunLock(run):
            pass
    holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
    holder.wait()
    with RunLock(run):
        assert f"pid {os.getpid()}" in (run / ".lock").read_text()


def _logged_steps(run: Path) -> list[int]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x["iteration"] for x in lines if "event" not in x]


def _board_steps(run: Path) -> list[int]:
    """The steps of the loss curve TensorBoard shows for the run."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars("loss/total")]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_checkpoint_and_the_run_resumes_exactly(
        sig: signal.Signals, tmp_path: Path) -> None:
    stopped, whole = tmp_path / "stopped", tmp_path / "whole"
    proc = subprocess.Popen(_train_cmd(stopped), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_iteration(stopped / "metrics.jsonl", 10, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and f"{sig.name} at iteration" in err
    at = load_checkpoint(stopped / "checkpoint.pt")["iteration"]
    assert 10 <= at < 400, "the checkpoint is the signal's, not a periodic one"
    assert not list(stopped.glob(".*.tmp"))
    # the TensorBoard events of every logged line were written out before it stopped
    assert _board_steps(stopped) == _logged_steps(stopped)
    done = subprocess.run(_train_cmd(stopped, "--resume", iterations=at + 7), env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _board_steps(stopped) == _logged_steps(stopped)
    subprocess.run(_train_cmd(whole, iterations=at + 7), env=ENV, check=True,
                   capture_output=True)
    a = load_checkpoint(stopped / "checkpoint.pt")["model"]
    b = load_checkpoint(whole / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), at


def test_resume_refuses_fewer_iterations_and_removes_stale_temporaries(
        tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", "tiny", "--iterations", "6", "--out", str(run), *QUICK]) == 0
    config = (run / "config.json").read_bytes()
    assert main(["train", "tiny", "--resume", "--iterations", "4", "--out", str(run),
                 *QUICK]) == 2
    err = capsys.readouterr().err
    assert "--iterations 4" in err and "iteration 6" in err and "Traceback" not in err
    assert (run / "config.json").read_bytes() == config, "a refused resume writes nothing"
    stale = run / ".checkpoint.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 4096)  # what a kill during a checkpoint write leaves
    assert main(["train", "tiny", "--resume", "--iterations", "8", "--out", str(run),
                 *QUICK]) == 0
    assert not stale.exists()
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 8


def test_resume_refuses_an_edited_spec_file(tmp_path: Path, capsys) -> None:
    import hashlib

    from routec.parse import resolve_spec_path

    spec = tmp_path / "mine.route"
    spec.write_text(resolve_spec_path("tiny")[1])
    run = tmp_path / "run"
    assert main(["train", str(spec), "--iterations", "3", "--out", str(run), *QUICK]) == 0
    old = hashlib.sha256(spec.read_bytes()).hexdigest()
    spec.write_text(spec.read_text() + "\n# an edit after training started\n")
    new = hashlib.sha256(spec.read_bytes()).hexdigest()
    assert main(["train", str(spec), "--resume", "--iterations", "5", "--out", str(run),
                 *QUICK]) == 2
    err = capsys.readouterr().err
    assert "changed" in err and old[:12] in err and new[:12] in err
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 3


def test_no_module_reads_files_with_a_code_running_loader() -> None:
    """Every file routec reads goes through a loader that cannot run code: torch.load
    with weights_only=True, np.load without allow_pickle, json, and the numpy-only
    unpickler for CIFAR batches."""
    offences = []
    # codegen/load.py executes the module routec itself generated from a parsed, validated
    # spec (whose emitted constants tests/test_fuzz.py checks); it reads no file.
    # engine/modules.py executes a fixed template over integer arities.
    trusted = {ROOT / "routec" / "codegen" / "load.py", ROOT / "routec" / "engine" / "modules.py"}
    for path in sorted(set((ROOT / "routec").rglob("*.py")) - trusted):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if name.endswith("torch.load") and kw.get("weights_only") != "True":
                offences.append(f"{path.name}:{node.lineno} {name} without weights_only=True")
            if name.endswith("np.load") and kw.get("allow_pickle", "False") != "False":
                offences.append(f"{path.name}:{node.lineno} np.load(allow_pickle=...)")
            if name in ("pickle.load", "pickle.loads", "marshal.loads", "eval", "exec",
                        "yaml.load", "dill.load"):
                offences.append(f"{path.name}:{node.lineno} {name}")
    assert offences == []
