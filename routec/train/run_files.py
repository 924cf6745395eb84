"""The files of a run directory, named once.

Training writes them, and every command that opens a run (eval, bench, export,
draw, report, experiment records, resume) finds them through
:class:`routec.train.run_dir.RunDir`, which reads these names; a record folder
copies the three a run is judged by (``RECORDED``) under the same names.
"""
from __future__ import annotations

from pathlib import Path

CHECKPOINT = "checkpoint.pt"      # weights, optimizer, generators, the run's settings
CONFIG = "config.json"            # the effective settings, readable without torch
METRICS = "metrics.jsonl"         # one line per log step, plus start and resume lines
SPEC = "spec.route"               # the spec text the run was started from
COST_TABLE = "cost_table.json"    # --cost latency: the seconds per node it paid for
LOCK = ".lock"                    # held by the one process writing the run

RECORDED = (CONFIG, SPEC, METRICS)
# a file named by a user where a run directory was expected: which file it is
ROLES = {CONFIG: "config", METRICS: "log", SPEC: "spec"}


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint (a run that reached its first one)."""
    return (Path(run_dir) / CHECKPOINT).is_file()
