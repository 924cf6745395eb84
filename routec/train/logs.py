"""A run's training log (``metrics.jsonl``, written by :mod:`routec.train.metrics`), read
back: its start event, its per-iteration records, the time it trained and the machines
it trained on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routec.errors import RoutecError, RunError
from routec.train.run_files import METRICS


def metric_lines(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RoutecError(f"{path}: not a text file, so not a routec training log") from None
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def training_seconds(run_dir: Path) -> float:
    """Wall-clock seconds of training, summed over sittings (each resume restarts the clock;
    work redone after a kill is not counted, as its log lines were dropped)."""
    total, current = 0.0, 0.0
    for rec in metric_lines(run_dir):
        if rec.get("event") in ("start", "resume"):
            total, current = total + current, 0.0
        elif "seconds" in rec:
            current = float(rec["seconds"])
    return total + current


def machines_of(run_dir: Path) -> list[dict[str, Any]]:
    """The machines a run trained on (one per start or resume), as logged."""
    return [r["machine"] for r in metric_lines(run_dir)
            if r.get("event") in ("start", "resume") and "machine" in r]


def read_metrics(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's start event and its per-iteration records (last record per iteration)."""
    path = Path(run_dir) / METRICS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise RunError(f"{path}: cannot read the run's metrics ({err.strerror})") from None
    except UnicodeDecodeError:
        raise RunError(f"{path}: not a text file, so not a routec training log") from None
    start: dict[str, Any] = {}
    records: dict[int, dict[str, Any]] = {}
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("iteration", 0), int):
            continue  # not a record routec writes
        if rec.get("event") == "start":
            start = rec
        elif "event" not in rec and "iteration" in rec:  # not a start/resume event
            records[int(rec["iteration"])] = rec
    if not start:
        raise RunError(f"{path}: no start record", hint="is this a routec run directory?")
    return start, [records[k] for k in sorted(records)]
