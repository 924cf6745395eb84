"""Suites and sweeps on a Ray cluster: each run one Ray task, retried from its checkpoint.

A task runs :func:`routec.experiment.engine.run_one`, the very function that trains and
records a run when no cluster is used, so run directories and records come out the
same however a run was scheduled. A task whose worker dies (a killed process, a lost
machine) is started again by Ray (``max_retries``); the run then resumes from its last
checkpoint, as any interrupted routec run does, and ends where an uninterrupted run
would.

Runs read and write their folders directly: OUT and the records folder must be on a
filesystem every worker reaches at the same path (a shared disk; on one machine, any
folder). Ray's object store carries only the small job descriptions and outcomes,
never checkpoints. Ray is an optional extra (``pip install "routec[ray]"``), imported
only when ``--ray`` is given.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from routec.errors import RoutecError, RunError
from routec.experiment.engine import Outcome, RunJob

INSTALL_HINT = 'pip install "routec[ray]"'
STOP_WAIT_SECONDS = 120  # after Ctrl-C: how long running runs get to write a checkpoint
OBJECT_STORE_BYTES = 128 * 2**20  # jobs and outcomes are small; checkpoints never go there


@dataclass(frozen=True)
class RayOptions:
    address: str | None  # None: a Ray instance on this machine, for this command only
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 3


class SuiteInterrupted(RunError):
    """Ctrl-C (or SIGTERM) stopped a suite on Ray; running runs wrote their checkpoints."""

    exit_code = 130


def require_ray() -> Any:
    """The ``ray`` module, or the one-line error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise RoutecError("--ray needs Ray, which is not installed",
                          hint=INSTALL_HINT) from None
    return ray


def local_cpus() -> int:
    """CPUs this process may use (its affinity, which a container or taskset narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def connect(ray: Any, address: str | None) -> None:
    """Start a Ray instance on this machine (no address) or join a running cluster."""
    import logging

    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address is None:
            ray.init(num_cpus=local_cpus(), include_dashboard=False,
                     object_store_memory=OBJECT_STORE_BYTES, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as err:  # noqa: BLE001 - Ray raises several types; all mean the same
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = "a Ray instance on this machine" if address is None else \
            f"the Ray cluster at {address}"
        raise RoutecError(f"cannot start or reach {where} ({first})",
                          hint="start a cluster with `ray start --head` and pass --ray auto "
                               "on one of its machines, or --ray alone for a Ray instance "
                               "on this machine") from None


class _Board:
    """A Ray actor that counts each run's starts: a second start is a retry."""

    def __init__(self) -> None:
        self.starts: dict[str, int] = {}

    def started(self, name: str) -> None:
        self.starts[name] = self.starts.get(name, 0) + 1

    def read(self) -> dict[str, int]:
        return dict(self.starts)


def train_in_worker(job: RunJob, cwd: str, threads: int, board: Any
                    ) -> tuple[Outcome, list[str]]:
    """The body of a run's task: on the worker, in the folder the command ran in (relative
    spec, table and weight paths resolve as they did there), train and record the run;
    its messages come back with its outcome."""
    from routec.train.interrupt import Interrupted

    messages: list[str] = []
    host = os.uname().nodename
    for folder, what in ((cwd, "the folder the command ran in"), (job.out, "OUT"),
                         (job.records, "the records folder")):
        if folder is not None and not Path(folder).is_dir():
            messages.append(f"{job.name}: {what} ({folder}) is not on {host}: OUT and the "
                            "records must be on a filesystem every worker reaches, at the "
                            "same path")
            return Outcome(job.name, "failed"), messages
    board.started.remote(job.name)
    import torch

    torch.set_num_threads(threads)
    os.chdir(cwd)
    from routec.experiment.engine import run_one

    try:
        return run_one(job, say=messages.append), messages
    except Interrupted as err:  # this worker was signalled: its checkpoint is written
        messages.append(f"{job.name}: {err.message}")
        return Outcome(job.name, "failed"), messages


class _Display:
    """Runs done, running, retried and failed, with the time left: a rich bar, or (with
    --no-progress) a line per change."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and not os.environ.get("ROUTEC_NO_PROGRESS")
        self.last = ""
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[state]}"), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.task = self.bar.add_task("runs", total=total, state="")
            self.bar.start()

    def say(self, message: str) -> None:
        if self.enabled:
            self.bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=sys.stderr, flush=True)

    def show(self, done: int, running: int, retried: int, failed: int) -> None:
        state = f"{running} running, {retried} retried, {failed} failed"
        if self.enabled:
            self.bar.update(self.task, completed=done, state=state)
        elif state != self.last:
            self.say(f"runs: {done} of {self.total} done, {state}")
        self.last = state

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def run_on_ray(jobs: list[RunJob], options: RayOptions, *, progress: bool = True
               ) -> list[Outcome]:
    """Every job as a Ray task; their outcomes. Ctrl-C cancels the tasks (each running
    run writes its checkpoint first) and raises :class:`SuiteInterrupted`."""
    ray = require_ray()
    cwd = os.getcwd()
    jobs = [replace(j, out=str(Path(j.out).resolve()), progress=False,
                    records=None if j.records is None else str(Path(j.records).resolve()))
            for j in jobs]
    for folder in {j.out for j in jobs} | {j.records for j in jobs if j.records}:
        Path(folder).mkdir(parents=True, exist_ok=True)  # workers check that they see it
    connect(ray, options.address)
    refs: dict[Any, RunJob] = {}
    display: _Display | None = None
    try:
        board = ray.remote(num_cpus=0)(_Board).remote()
        task = ray.remote(train_in_worker).options(
            num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
            max_retries=options.max_retries, retry_exceptions=False)
        threads = max(1, int(options.cpus_per_run))
        refs = {task.remote(job, cwd, threads, board): job for job in jobs}
        display = _Display(len(jobs), progress)
        return _collect(ray, refs, board, display, options)
    except KeyboardInterrupt:
        if display is not None:
            display.close()
            display = None
        stopped = _stop(ray, list(refs))
        out = ", ".join(sorted({j.out for j in jobs}))
        raise SuiteInterrupted(f"interrupted: {stopped} unfinished run(s) stopped (those "
                               f"started wrote a checkpoint in {out}); run the same command "
                               "again to resume them") from None
    finally:
        if display is not None:
            display.close()
        ray.shutdown()


def _collect(ray: Any, refs: dict[Any, RunJob], board: Any, display: _Display,
             options: RayOptions) -> list[Outcome]:
    """Wait for every task, showing progress; a task that failed for good is a failed run."""
    outcomes: list[Outcome] = []
    pending, retried_seen = list(refs), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
        for ref in ready:
            outcome, messages = _result(ray, ref, refs[ref], options)
            for message in messages:
                display.say(message)
            outcomes.append(outcome)
        starts = ray.get(board.read.remote())
        retried = sum(1 for n in starts.values() if n > 1)
        if retried > retried_seen:
            for name, n in starts.items():
                if n > 1:
                    display.say(f"{name}: its worker died; started again ({n - 1} of "
                                f"{options.max_retries} retries), from its last checkpoint")
            retried_seen = retried
        finished = {o.job for o in outcomes}
        running = sum(1 for name in starts if name not in finished)
        display.show(len(outcomes), running, retried,
                     sum(1 for o in outcomes if o.failed))
    return outcomes


def _result(ray: Any, ref: Any, job: RunJob, options: RayOptions
            ) -> tuple[Outcome, list[str]]:
    """A finished task's (outcome, messages); a task Ray gave up on is a failed run."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:  # the task raised: a bug, said in one line
        cause = err.cause if getattr(err, "cause", None) is not None else err
        return Outcome(job.name, "failed"), [
            f"{job.name}: failed on its worker ({type(cause).__name__}: {cause})"]
    except ray.exceptions.RayError as err:  # its worker died more often than retried
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return Outcome(job.name, "failed"), [
            f"{job.name}: its worker died {options.max_retries + 1} time(s); the run keeps "
            f"its last checkpoint ({first})"]


def _stop(ray: Any, refs: list[Any]) -> int:
    """Cancel the unfinished tasks, a running one as SIGINT stops a run (a checkpoint,
    then it ends), and wait for them up to STOP_WAIT_SECONDS (a second Ctrl-C: at once);
    the number cancelled."""
    if not refs:
        return 0
    _, unfinished = ray.wait(refs, num_returns=len(refs), timeout=0)
    for ref in unfinished:
        ray.cancel(ref)
    try:
        deadline, left = time.monotonic() + STOP_WAIT_SECONDS, list(unfinished)
        while left and time.monotonic() < deadline:
            _, left = ray.wait(left, num_returns=len(left), timeout=1.0)
    except KeyboardInterrupt:
        for ref in unfinished:
            ray.cancel(ref, force=True)
    return len(unfinished)
