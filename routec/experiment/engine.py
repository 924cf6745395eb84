"""One run of a suite or sweep, trained and recorded: the unit every scheduler shares.

``routec experiment`` and ``routec sweep`` plan their runs as :class:`RunJob` values and
hand each to :func:`run_one`: in this process one after another (:func:`run_jobs`), or
inside a Ray task on any machine of a cluster (``routec.experiment.ray_runner``). Both
write the same run directories and the same records, so a record cannot tell how its
run was scheduled.

A run found finished (or answered by a committed record, or recorded as diverged) is
skipped; an unfinished one resumes from its checkpoint; a lock per run directory keeps
two processes (``--shard``, or two machines on one folder) from training one run.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from routec.errors import RoutecError, RunError, TrainingDiverged
from routec.train.run_dir import RunDir

Say = Callable[[str], None]
Kind = Literal["trained", "recorded", "finished", "diverged", "busy", "failed"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunJob:
    """Everything one run needs, small and picklable: a Ray task carries it to a worker."""

    suite: str
    run: str
    settings: dict[str, Any]  # training settings, with the budget and overrides applied
    out: str  # OUT: the run trains into OUT/SUITE/RUN
    records: str | None  # RECORDS: its record goes to RECORDS/SUITE/RUN; None: no record
    data_root: str | None = None
    cache_dir: str | None = None
    progress: bool = True

    @property
    def name(self) -> str:
        return f"{self.suite}/{self.run}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / self.suite / self.run

    @property
    def record_dir(self) -> Path | None:
        return None if self.records is None else Path(self.records) / self.suite / self.run


@dataclass(frozen=True)
class Outcome:
    """What became of a run: ``failed`` runs make the command fail; every other kind is
    an answer (trained now, already recorded or finished, diverged and recorded as such,
    or left to the process that holds its lock)."""

    job: str
    kind: Kind

    @property
    def failed(self) -> bool:
        return self.kind == "failed"


def run_status(run_dir: Path, iterations: int) -> str:
    """'done', 'partial' or 'new'."""
    run = RunDir(run_dir)
    if not run.checkpoint.exists():
        return "new"
    state = run.state()
    return "done" if state["iteration"] >= iterations else "partial"


def error_text(err: Exception) -> str:
    """A record-writing error in one line: routec's own message, else the exception."""
    return err.message if isinstance(err, RoutecError) else f"{type(err).__name__}: {err}"


def keep_record(job: RunJob, say: Say = _stderr) -> None:
    """Write a finished run's record unless one describing its checkpoint exists.

    A record that cannot be written is reported and the suite goes on: the run
    itself is safe in its directory, and ``routec report --harvest`` can redo it.
    """
    target = job.record_dir
    if target is None:
        return
    from routec.experiment.records import record_is_current, write_record

    try:
        state = RunDir(job.run_dir).state()
        if not state["finished"] or record_is_current(target, state):
            return
        write_record(job.run_dir, target, job.suite, job.run, data_root=job.data_root,
                     cache_dir=job.cache_dir)
        say(f"{job.name}: record written to {target}")
    except Exception as err:  # noqa: BLE001 - a record must never stop a suite
        say(f"{job.name}: no record written ({error_text(err)})")


def keep_failure(job: RunJob, err: TrainingDiverged, cfg: Any, say: Say = _stderr) -> bool:
    """Write the failure record of a run that diverged; False if none was written."""
    target = job.record_dir
    if target is None:
        return False
    from routec.experiment.records import write_failure
    from routec.train.model import spec_text

    try:
        write_failure(job.run_dir, target, job.suite, job.run, err, cfg.model_dump(),
                      spec_text(cfg.spec)[1], data_root=job.data_root)
    except Exception as write_err:  # noqa: BLE001 - a record must never stop a suite
        say(f"{job.name}: no failure record written ({error_text(write_err)})")
        return False
    say(f"{job.name}: its divergence is recorded in {target / 'failure.json'}")
    return True


def recorded_outcome(record_dir: Path | None, cfg: Any) -> tuple[bool, dict[str, Any] | None]:
    """(a committed record answers this run, its failure record if it diverged), both for
    these exact settings and spec: a fresh machine with the records but no run
    directories skips recorded runs, and does not train diverged ones again."""
    if record_dir is None:
        return False, None
    from routec.experiment.records import failure_answers, record_answers
    from routec.train.model import spec_text

    config, text = cfg.model_dump(), spec_text(cfg.spec)[1]
    if record_answers(record_dir, config, text):
        return True, None
    return False, failure_answers(record_dir, config, text)


def run_one(job: RunJob, say: Say = _stderr) -> Outcome:
    """Train ``job``'s run unless it is answered, resuming its checkpoint if it has one,
    and write its record (or its failure record, if it diverged).

    Raises :class:`~routec.train.interrupt.Interrupted` when a signal stopped training
    (its checkpoint written); every other error of one run is an outcome, so one bad
    run does not stop the rest.
    """
    from routec.train.config import make_config
    from routec.train.interrupt import Interrupted
    from routec.train.lock import RunLock, holder
    from routec.train.loop import train

    try:
        cfg = make_config(job.settings)
    except RunError as err:  # e.g. an override this run's settings cannot take
        say(f"{job.name}: {err.render()}")
        return Outcome(job.name, "failed")
    run_dir, record_dir = job.run_dir, job.record_dir
    answered, failure = recorded_outcome(record_dir, cfg)
    if not RunDir(run_dir).has_checkpoint and answered:
        say(f"{job.name}: recorded in {record_dir}, skipped")
        return Outcome(job.name, "recorded")
    status = run_status(run_dir, cfg.iterations)
    if status != "done" and failure:
        say(f"{job.name}: diverged at iteration {failure['iteration']} (recorded in "
            f"{record_dir}), skipped; delete its failure.json to train it again")
        return Outcome(job.name, "diverged")
    if status == "done":
        say(f"{job.name}: finished, skipped")
        keep_record(job, say)
        return Outcome(job.name, "finished")
    lock = RunLock(run_dir)
    if not lock.acquire():
        say(f"{job.name}: another process is training it ({holder(run_dir)}), skipped")
        return Outcome(job.name, "busy")
    try:
        say(f"{job.name}: {'resuming' if status == 'partial' else 'starting'} "
            f"({cfg.iterations} iterations)")
        try:
            train(cfg, run_dir, resume=status == "partial", progress=job.progress)
        except TrainingDiverged as err:  # an outcome of the settings: recorded as one
            say(f"{job.name}: {err.render()}")
            return Outcome(job.name, "diverged" if keep_failure(job, err, cfg, say)
                           else "failed")
        except Interrupted:  # Ctrl-C or SIGTERM stops the suite, its checkpoint written
            raise
        except RunError as err:  # one bad run does not stop the suite
            say(f"{job.name}: {err.render()}")
            return Outcome(job.name, "failed")
        keep_record(job, say)
        return Outcome(job.name, "trained")
    finally:
        lock.release()


def run_jobs(jobs: Iterable[RunJob]) -> list[Outcome]:
    """Every job in this process, one after another (the single-machine engine)."""
    return [run_one(job) for job in jobs]
