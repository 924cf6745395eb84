"""The suites recorded under a records folder (``RECORDS/SUITE/RUN``, as ``routec
experiment`` and ``routec report harvest`` write them): what the results page, the
throughput table and the clock read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routec.errors import RunError
from routec.experiment.suites import SUITES
from routec.report.summary import RunInfo, load_run_info

RECORDS = "results/records"  # the committed records folder, as the page's commands name it


@dataclass
class Suite:
    name: str
    runs: list[RunInfo]  # recorded runs, in the suite's order
    records: dict[str, dict[str, Any]]  # run → its record.json
    missing: list[str]  # runs of the suite with no record yet (and no failure record)
    diverged: dict[str, dict[str, Any]]  # run → its failure.json (training diverged)

    @property
    def data(self) -> str:
        return self.runs[0].config.data

    @property
    def routed(self) -> bool:
        return self.runs[0].routed


def find_suites(root: Path) -> list[Suite]:
    """Suites with at least one record under ``root``, in the order of SUITES."""
    from routec.experiment.records import read_record

    root = Path(root)
    if not root.is_dir():
        raise RunError(f"{root}: no such records folder",
                       hint=f"records are written by routec experiment (default {RECORDS})")
    failures = find_failures(root)
    found = []
    for name, runs in SUITES.items():
        infos, records, missing = [], {}, []
        diverged = failures.get(name, {})
        for run in runs:
            if run in diverged:
                continue
            if (rec := read_record(root / name / run)) is None:
                missing.append(run)
                continue
            infos.append(load_run_info(root / name / run, run))
            records[run] = rec
        if infos:
            found.append(Suite(name, infos, records, missing, diverged))
    if not found:
        raise RunError(f"{root}: no suite has a run record",
                       hint="records come from routec experiment, or routec report harvest "
                            "RUNS -o " + str(root))
    return found


def find_failures(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """suite → run → failure.json of every run recorded as diverged, including suites with
    no evaluated run at all (which :func:`find_suites` leaves out)."""
    from routec.experiment.records import RECORD, read_failure

    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name, runs in SUITES.items():
        for run in runs:
            folder = Path(root) / name / run
            if not (folder / RECORD).is_file() and (f := read_failure(folder)) is not None:
                found.setdefault(name, {})[run] = f
    return found


def machine_text(d: dict[str, Any]) -> str:
    return (f"{d['cpu']}, {d['cpus']} CPUs, {d['torch_threads']} torch thread(s), "
            f"{d['device']}{', ' + d['gpu'] if 'gpu' in d else ''}; "
            f"torch {d['torch']}, Python {d['python']}, {d['platform']}")
