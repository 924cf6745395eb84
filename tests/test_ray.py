"""--ray: a sweep's runs as Ray tasks on a local instance, a worker killed mid-run.

The runs must come out as if trained one after another without Ray: a killed worker's
task is retried, resumes from its run's last checkpoint, and ends where an unbroken run
ends, so its record equals the sequential run's record."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason='--ray needs the ray extra: pip install "routec[ray]"')

import torch  # noqa: E402

from routec.cli import main  # noqa: E402
from routec.train.checkpoint import load_checkpoint  # noqa: E402

ITERATIONS = 60
SWEEP = ["sweep", "tiny", "--k-cpt", "0,4e-9", "--seed", "0,1", "--name", "four",
         "--set", "checkpoint_every=5", "--set", "log_every=5", "--data", "synthetic",
         "--batch", "8", "--iterations", str(ITERATIONS), "--no-progress"]
RUNS = ["k0e-9-s0", "k0e-9-s1", "k4e-9-s0", "k4e-9-s1"]
VICTIM = "k0e-9-s1"  # the run whose worker is killed
DEADLINE = 240  # seconds: Ray's start on a busy 2-core machine takes 15 of them


def ray_sweep(out: Path, records: Path, *extra: str) -> subprocess.Popen:
    """The CLI in a process of its own (Ray's driver), one torch thread per run as the
    sequential reference has."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "routec", *SWEEP, "--out", str(out), "--records", str(records),
         "--ray", "--cpus-per-run", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    start = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before {path} appeared:\n{proc.stderr.read()}")
        if time.monotonic() - start > DEADLINE:
            proc.kill()
            pytest.fail(f"no {path} after {DEADLINE} s")
        time.sleep(0.01)


def lock_holder(run_dir: Path) -> int:
    """The pid of the process that locked the run (its .lock says 'pid N on HOST ...')."""
    return int((run_dir / ".lock").read_text().split()[1])


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_killed_worker_is_retried_and_every_record_equals_the_sequential_one(
        tmp_path: Path, one_thread, capsys) -> None:
    ray_out, ray_records = tmp_path / "ray" / "runs", tmp_path / "ray" / "records"
    proc = ray_sweep(ray_out, ray_records)
    victim = ray_out / "four" / VICTIM
    wait_for(victim / "checkpoint.pt", proc)  # mid-run: trained 5 of its 60 iterations
    worker = lock_holder(victim)
    assert worker not in (proc.pid, os.getpid())  # a Ray worker trains it, not the driver
    os.kill(worker, signal.SIGKILL)
    _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    assert f"four/{VICTIM}: its worker died; started again (1 of 3 retries)" in err

    # the same four runs, one after another in this process, without Ray
    seq_out, seq_records = tmp_path / "seq" / "runs", tmp_path / "seq" / "records"
    assert main([*SWEEP, "--out", str(seq_out), "--records", str(seq_records)]) == 0
    capsys.readouterr()

    for run in RUNS:
        ray_dir, seq_dir = ray_out / "four" / run, seq_out / "four" / run
        events = [m.get("event") for m in metrics(ray_dir) if "event" in m]
        assert events == (["start", "resume"] if run == VICTIM else ["start"]), run
        ray_rec = json.loads((ray_records / "four" / run / "record.json").read_text())
        seq_rec = json.loads((seq_records / "four" / run / "record.json").read_text())
        # wall-clock seconds differ, and the machine is listed once per sitting (the killed
        # run trained in two); every machine must be the sequential run's one
        for rec in (ray_rec, seq_rec):
            rec.pop("training_seconds")
        assert {json.dumps(m, sort_keys=True) for m in ray_rec.pop("machines")} == \
            {json.dumps(m, sort_keys=True) for m in seq_rec.pop("machines")}
        assert ray_rec == seq_rec, run  # settings, and the evaluation bit for bit
        for name in ("config.json", "spec.route"):
            assert (ray_records / "four" / run / name).read_bytes() == \
                (seq_records / "four" / run / name).read_bytes()
        # the training curve too, line by line, but for its clock
        curve = [{k: v for k, v in m.items() if k != "seconds"}
                 for m in metrics(ray_dir) if "event" not in m]
        assert curve == [{k: v for k, v in m.items() if k != "seconds"}
                         for m in metrics(seq_dir) if "event" not in m], run
        assert len(curve) == ITERATIONS // 5
        state = load_checkpoint(ray_dir / "checkpoint.pt")
        assert state["finished"] and state["iteration"] == ITERATIONS
    assert lock_holder(ray_out / "four" / VICTIM) != worker  # a new worker finished it


def test_ctrl_c_stops_the_sweep_with_checkpoints_and_one_line(tmp_path: Path) -> None:
    """SIGINT to the driver cancels every task; a running run writes a checkpoint at the
    iteration it reached and stops; exit status 130; the next command resumes."""
    out, records = tmp_path / "runs", tmp_path / "records"
    proc = ray_sweep(out, records, "--runs", "k0e-9-s0", "k4e-9-s0", "--iterations", "100000")
    wait_for(out / "four" / "k0e-9-s0" / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted: 2 unfinished run(s) stopped") and \
        "run the same command again to resume them" in last, err
    state = load_checkpoint(out / "four" / "k0e-9-s0" / "checkpoint.pt")
    assert 5 <= state["iteration"] < 100_000 and not state["finished"]
    assert metrics(out / "four" / "k0e-9-s0")[-1]["iteration"] <= state["iteration"]
    assert not list(records.glob("four/*/record.json"))
    # resumed without Ray: the lock the stopped worker held is free again
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "routec", *SWEEP, "--out", str(out), "--records", str(records),
         "--runs", "k0e-9-s0", "--iterations", str(state["iteration"] + 5)],
        capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert f"four/k0e-9-s0: resuming ({state['iteration'] + 5} iterations)" in done.stderr
