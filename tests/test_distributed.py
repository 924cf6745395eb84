"""Data-parallel training under torchrun: two gloo processes resume exactly, as one node
or as two; the backend follows the device; each process of a node takes its own GPU."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from routec.errors import RunError
from routec.train import distributed as D
from routec.train.checkpoint import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
TRAIN = ["-m", "routec", "train", "tiny", "--data", "synthetic", "--batch", "32",
         "--k-cpt", "1e-6", "--log-every", "3", "--eval-every", "6", "--checkpoint-every", "3",
         "--val-examples", "32", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(run: Path) -> list[dict]:
    """The log lines, without their wall-clock seconds."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in x.items() if k != "seconds"} for x in lines if "event" not in x]


def _board(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)]
            for t in acc.Tags()["scalars"] if t != "time/seconds"}


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


def test_two_processes_stop_and_resume_exactly_on_one_node_or_two(tmp_path: Path) -> None:
    """6 iterations on one node's two processes, then --resume to 12 as two nodes of one
    process each (the static rendezvous docs/training.md shows): the same weights, log and
    curves as 12 iterations that never stopped."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    one_node = [*TORCHRUN, "--standalone", "--nproc-per-node", "2"]
    _finish([subprocess.Popen([*one_node, *TRAIN, "--iterations", n, "--out", str(out)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for n, out in (("12", whole), ("6", split))])
    assert load_checkpoint(split / "checkpoint.pt")["iteration"] == 6
    port = _free_port()
    nodes = [subprocess.Popen(
        [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
         "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "routec", "train", "--resume",
         "--out", str(split), "--iterations", "12", "--no-progress"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outs = _finish(nodes)
    assert ["done:" in o for o in outs] == [True, False]  # the leader reports, and only it
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["iteration"] == b["iteration"] == 12 and b["finished"]
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _records(split) == _records(whole)
    assert [r["iteration"] for r in _records(split)] == [3, 6, 9, 12]
    events = [json.loads(x) for x in (split / "metrics.jsonl").read_text().splitlines()]
    assert [(e["event"], e["world_size"]) for e in events if "event" in e] == \
        [("start", 2), ("resume", 2)]
    # only the leader writes TensorBoard events: one file per sitting, curves as if unbroken
    assert len(list(whole.glob("events.out.tfevents.*"))) == 1
    assert len(list(split.glob("events.out.tfevents.*"))) == 2
    assert _board(split) == _board(whole)


def test_the_backend_follows_the_device(monkeypatch) -> None:
    monkeypatch.delenv("ROUTEC_DIST_BACKEND", raising=False)
    # a machine with GPUs training on its CPU: gloo (nccl cannot reduce CPU tensors)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.backend(torch.device("cpu")) == "gloo"
    assert D.backend(torch.device("cuda", 0)) == "nccl"
    monkeypatch.setenv("ROUTEC_DIST_BACKEND", "gloo")
    assert D.backend(torch.device("cuda", 0)) == "gloo"


def test_each_process_of_a_node_takes_its_own_gpu(monkeypatch) -> None:
    """--device cuda under torchrun is cuda:LOCAL_RANK (the node's GPUs as torch counts
    them here: four, on this CPU-only machine)."""
    chosen: list[int] = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    for local in range(4):
        monkeypatch.setenv("LOCAL_RANK", str(local))
        assert D.process_device(torch.device("cuda")) == torch.device("cuda", local)
    assert chosen == [0, 1, 2, 3]
    assert D.process_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(RunError, match="all 4 processes of this node on one GPU"):
        D.process_device(torch.device("cuda", 1))
    monkeypatch.setenv("LOCAL_RANK", "5")
    with pytest.raises(RunError, match="4 GPU"):
        D.process_device(torch.device("cuda"))
    monkeypatch.setenv("WORLD_SIZE", "1")  # not under torchrun: the device as given
    assert D.process_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
