"""The first minute with the command line: fast start, one-line errors, resume, file modes."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.train.checkpoint import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}
QUICK = ["--data", "synthetic", "--batch", "16", "--k-cpt", "1e-6", "--val-examples", "32",
         "--log-every", "4", "--eval-every", "1000", "--no-progress"]


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI in-process; it must fail with status 2 and one line on stderr."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines()
             if ln.strip() and not ln.startswith(("data:", "note:"))]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- fast start ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--help"], ["compile", "paper_chain"],
                                  ["compile", "paper_chain", "--report"],
                                  ["draw", "paper_tree", "-o", "{tmp}/tree.dot"],
                                  ["train", "--help"], ["experiment", "--list"]])
def test_light_commands_do_not_import_torch(tmp_path: Path, argv: list[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    probe = ("import sys\nfrom routec.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)\n")
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                         env=ENV, timeout=60)
    last = out.stdout.strip().splitlines()[-1]
    assert last in ("NO-TORCH 0", "NO-TORCH None"), out.stdout[-500:] + out.stderr[-500:]


# --- one-line errors -----------------------------------------------------------------------

def test_negative_scientific_number_reaches_the_real_check(capsys, tmp_path: Path) -> None:
    _one_line_error(capsys, ["train", "tiny", "--k-cpt", "-1e-7", "--out", str(tmp_path / "r")],
                    "k_cpt must be ≥ 0")
    # and a negative number is still a value for a numeric flag that allows it
    _one_line_error(capsys, ["train", "tiny", "--lr", "-1.5E-2", "--out", str(tmp_path / "r")],
                    "lr")


@pytest.mark.parametrize("device,needle", [("cuda", "cuda"), ("bogus", "unknown device 'bogus'"),
                                           ("cuda:7", "cuda:7")])
def test_bad_device_is_one_line(capsys, tmp_path: Path, device: str, needle: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _one_line_error(capsys, ["train", "tiny", *QUICK, "--device", device,
                             "--out", str(tmp_path / "r")], needle)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_bad_device_for_an_experiment_is_one_error(capsys, tmp_path: Path) -> None:
    _one_line_error(capsys, ["experiment", "hybrid-static", "--device", "bogus", "--out",
                             str(tmp_path)], "unknown device 'bogus'")
    assert not any(tmp_path.iterdir())


def test_bad_device_in_a_fresh_process_has_no_traceback(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = subprocess.run([sys.executable, "-m", "routec", "train", "tiny", "--data", "synthetic",
                          "--device", "cuda", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("error:")] == \
        [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith("data:")]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("first") / "run"
    assert main(["train", "tiny", *QUICK, "--iterations", "8", "--checkpoint-every", "4",
                 "--out", str(run)]) == 0
    return run


def test_eval_on_a_file_of_the_run_names_the_run_directory(capsys, short_run: Path) -> None:
    line = _one_line_error(capsys, ["eval", str(short_run / "config.json")], "config file",
                           "not a checkpoint", str(short_run))
    assert "delete" not in line


def test_eval_on_a_missing_directory(capsys, tmp_path: Path) -> None:
    _one_line_error(capsys, ["eval", str(tmp_path / "nowhere")], "no such run directory")


def test_resume_of_a_missing_out_is_refused(capsys, tmp_path: Path) -> None:
    _one_line_error(capsys, ["train", "tiny", *QUICK, "--resume", "--out", str(tmp_path / "x")],
                    "does not exist", "drop --resume")
    assert not (tmp_path / "x").exists()


def test_files_are_written_with_the_umask_mode(short_run: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert main(["compile", "tiny", "-o", str(tmp_path / "net.py")]) == 0
        assert main(["draw", "tiny", "-o", str(tmp_path / "tree.dot")]) == 0
    finally:
        os.umask(old)
    for f in (tmp_path / "net.py", tmp_path / "tree.dot", short_run / "checkpoint.pt",
              short_run / "config.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    old = os.umask(0o077)  # a stricter umask is respected, not overridden
    try:
        assert main(["compile", "tiny", "-o", str(tmp_path / "private.py")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.py").stat().st_mode) == 0o600


# --- resume --------------------------------------------------------------------------------

def test_resume_needs_no_flags_and_names_a_changed_setting(capsys, tmp_path: Path) -> None:
    run, whole = tmp_path / "run", tmp_path / "whole"
    args = ["train", "tiny", *QUICK, "--lr", "0.03", "--checkpoint-every", "4"]
    assert main([*args, "--iterations", "12", "--out", str(whole)]) == 0
    assert main([*args, "--iterations", "8", "--out", str(run)]) == 0
    capsys.readouterr()
    # a changed setting is refused with its name and both values
    line = _one_line_error(capsys, ["train", "--out", str(run), "--resume", "--iterations", "12",
                                    "--lr", "0.05"], "--lr", "0.03", "0.05")
    assert "--iterations" not in line.split("(")[0]
    # with no other flag than the new budget, the saved settings continue the run exactly
    assert main(["train", "--out", str(run), "--resume", "--iterations", "12"]) == 0
    a, b = load_checkpoint(run / "checkpoint.pt"), load_checkpoint(whole / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 12
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert json.loads((run / "config.json").read_text())["lr"] == 0.03


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "routec", "train", "tiny", "--data", "synthetic",
            "--iterations", "400", "--batch", "16", "--k-cpt", "1e-6", "--val-examples", "32",
            "--eval-every", "1000", "--log-every", "1", "--checkpoint-every", "100000",
            "--no-progress", "--out", str(out), *extra]


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_kill_before_the_first_timed_checkpoint(capsys, tmp_path: Path) -> None:
    """Killed after training began but before any checkpoint: --resume says so and does
    not start over unless asked; with the timer, a later kill loses under a minute."""
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli(run, "--checkpoint-seconds", "3600"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # training has begun once the first log line is written
        _wait_for(lambda: (run / "metrics.jsonl").exists()
                  and '"train_loss"' in (run / "metrics.jsonl").read_text())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run / "checkpoint.pt").exists()
    _one_line_error(capsys, ["train", "--out", str(run), "--resume"], "no checkpoint",
                    "--start-if-missing")
    assert "train_loss" in (run / "metrics.jsonl").read_text()  # nothing was touched

    # asked to, it starts again from iteration 0 with the saved settings
    assert main(["train", "--out", str(run), "--resume", "--start-if-missing",
                 "--iterations", "3"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["iteration"] == 3
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(l["event"], l["iteration"]) for l in lines if "event" in l] == [("start", 0)]
    assert [l["iteration"] for l in lines if "train_loss" in l] == [1, 2, 3]

    run2 = tmp_path / "timed"
    proc = subprocess.Popen(_cli(run2, "--checkpoint-seconds", "1"), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (run2 / "checkpoint.pt").exists())
        time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    at_kill = load_checkpoint(run2 / "checkpoint.pt")["iteration"]
    assert 0 < at_kill < 400
    events = [json.loads(l) for l in (run2 / "metrics.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start"
    # resuming with no flags continues from the timed checkpoint
    assert main(["train", "--out", str(run2), "--resume", "--iterations", str(at_kill + 4)]) == 0
    lines = [json.loads(l) for l in (run2 / "metrics.jsonl").read_text().splitlines()]
    assert [(l["event"], l["iteration"]) for l in lines if "event" in l] == \
        [("start", 0), ("resume", at_kill)]
    its = [l["iteration"] for l in lines if "train_loss" in l]
    assert its == list(range(1, at_kill + 5))  # one line per iteration, none lost or doubled
