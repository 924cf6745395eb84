"""How long the runs a campaign still lacks will take, at the pace its records show.

A suite's runs take hours each on a CPU, so a campaign is spread over sittings and
machines; the records of finished runs say how many seconds an iteration took for
each kind of run (same spec, strategy, static prefix and batch cost the same), which
prices the runs still to train.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from routec.experiment.records import read_record, record_dirs


def pace_key(config: dict[str, Any]) -> tuple[Any, ...]:
    """Runs with the same key do the same work per iteration."""
    return (config.get("spec"), config.get("strategy"), config.get("static_columns"),
            config.get("batch"), config.get("device", "cpu"))


def recorded_pace(records_root: Path | None) -> dict[tuple[Any, ...], float]:
    """Median training seconds per iteration of the recorded runs, by :func:`pace_key`."""
    seen: dict[tuple[Any, ...], list[float]] = {}
    if records_root is None or not Path(records_root).is_dir():
        return {}
    for _suite, _run, folder in record_dirs(Path(records_root)):
        rec = read_record(folder)
        if not rec or not rec.get("training_seconds") or not rec.get("iteration"):
            continue
        seen.setdefault(pace_key(rec["config"]), []).append(
            float(rec["training_seconds"]) / int(rec["iteration"]))
    return {k: statistics.median(v) for k, v in seen.items()}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"
