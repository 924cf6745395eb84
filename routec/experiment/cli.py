"""``routec experiment NAME``: run a suite; finished runs are skipped, unfinished resumed.

Several processes (or machines sharing the output folder) can work on one suite:
``--shard K/N`` takes every N-th run, and a lock file per run keeps two
processes from training the same run at once.

When a run finishes (or is found finished with no record), its record, the small
part the results page reads (``routec.experiment.records``), is written under
``--records`` (default: ``results/records`` beside OUT), ready to commit. A run with
no directory whose record matches its settings and spec is skipped: the records are
committed, the run directories are not, and a new machine should not retrain them.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routec.errors import RoutecError, RunError, TrainingDiverged
from routec.experiment.suites import CPU_ITERATIONS, FULL_ITERATIONS, SUITES, split_budget
from routec.flags import number
from routec.train.interrupt import Interrupted
from routec.train.lock import RunLock, holder

if TYPE_CHECKING:
    from routec.experiment.pace import PaceKey


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run the paper's experiment suites",
                       description="Run every run of each SUITE into OUT/SUITE/RUN; "
                                   "rerunning skips finished (or recorded) runs and resumes "
                                   "unfinished ones.")
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help="suite names, run one after another; omit with --list")
    p.add_argument("--list", action="store_true", help="list suites and their runs")
    p.add_argument("--status", action="store_true",
                   help="say, per suite (all of them if none is named), which runs are done "
                        "(recorded at this budget), partly trained in OUT, or not started")
    p.add_argument("--out", default="runs", help="output root (default: runs)")
    p.add_argument("--iterations", type=number(int, at_least=1), default=CPU_ITERATIONS,
                   help=f"iterations per run (default {CPU_ITERATIONS}, a CPU budget)")
    p.add_argument("--full", action="store_true",
                   help=f"the paper's protocol: {FULL_ITERATIONS} iterations per run")
    p.add_argument("--shard", default="0/1", help="K/N: run only runs K, K+N, K+2N, ...")
    p.add_argument("--runs", nargs="+", help="only these runs of the suite")
    p.add_argument("--data", help="override the suite's dataset (e.g. synthetic for a try)")
    p.add_argument("--spec", help="override the suite's spec")
    p.add_argument("--batch", type=number(int, at_least=2),
                   help="override the batch size (default 128)")
    p.add_argument("--records", metavar="DIR",
                   help="where finished runs' records go (default: results/records beside "
                        "OUT, so --out runs writes results/records)")
    p.add_argument("--no-records", action="store_true", help="write no records")
    p.add_argument("--data-root")
    p.add_argument("--cache-dir")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_experiment)


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise RoutecError(f"--shard must look like K/N, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise RoutecError(f"--shard {text}: need 0 <= K < N")
    return k, n


def run_status(run_dir: Path, iterations: int) -> str:
    """'done', 'partial' or 'new'."""
    from routec.train.checkpoint import load_checkpoint

    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return "new"
    state = load_checkpoint(ckpt)
    return "done" if state["iteration"] >= iterations else "partial"


def keep_record(run_dir: Path, records: Path | None, suite: str, run: str,
                args: argparse.Namespace) -> None:
    """Write a finished run's record unless one describing its checkpoint exists.

    A record that cannot be written is reported and the suite goes on: the run
    itself is safe in its directory, and ``routec report --harvest`` can redo it.
    """
    if records is None:
        return
    from routec.experiment.records import record_is_current, write_record
    from routec.train.checkpoint import load_checkpoint

    target = records / suite / run
    try:
        state = load_checkpoint(run_dir / "checkpoint.pt")
        if not state["finished"] or record_is_current(target, state):
            return
        write_record(run_dir, target, suite, run, data_root=args.data_root,
                     cache_dir=args.cache_dir)
        print(f"{suite}/{run}: record written to {target}", file=sys.stderr)
    except Exception as err:  # noqa: BLE001 - a record must never stop a suite
        print(f"{suite}/{run}: no record written ({_error_text(err)})", file=sys.stderr)


def _error_text(err: Exception) -> str:
    """A record-writing error in one line: routec's own message, else the exception."""
    return err.message if isinstance(err, RoutecError) else f"{type(err).__name__}: {err}"


def keep_failure(run_dir: Path, records: Path | None, suite: str, run: str,
                 err: TrainingDiverged, cfg: Any, args: argparse.Namespace) -> bool:
    """Write the failure record of a run that diverged; False if none was written."""
    if records is None:
        return False
    from routec.experiment.records import write_failure
    from routec.train.model import spec_text

    target = records / suite / run
    try:
        write_failure(run_dir, target, suite, run, err, cfg.model_dump(),
                      spec_text(cfg.spec)[1], data_root=args.data_root)
    except Exception as write_err:  # noqa: BLE001 - a record must never stop a suite
        print(f"{suite}/{run}: no failure record written ({_error_text(write_err)})",
              file=sys.stderr)
        return False
    print(f"{suite}/{run}: its divergence is recorded in {target / 'failure.json'}",
          file=sys.stderr)
    return True


def _outcome(records: Path | None, suite: str, run: str, cfg: Any
             ) -> tuple[bool, dict[str, Any] | None]:
    """(a committed record answers this run, its failure record if it diverged), both for
    these exact settings and spec: a fresh machine with the records but no run
    directories skips recorded runs, and does not train diverged ones again."""
    if records is None:
        return False, None
    from routec.experiment.records import failure_answers, record_answers
    from routec.train.model import spec_text

    folder, config, text = records / suite / run, cfg.model_dump(), spec_text(cfg.spec)[1]
    if record_answers(folder, config, text):
        return True, None
    return False, failure_answers(folder, config, text)


def run_settings(run: dict[str, Any], base: int, args: argparse.Namespace
                 ) -> dict[str, Any]:
    """A suite run's training settings under this command's budget and overrides (a run
    may ask for a multiple of the suite's budget, e.g. a longer-trained twin)."""
    run, times = split_budget(run)
    settings: dict[str, Any] = {**run, "iterations": base * times, "device": args.device}
    for key in ("data", "spec", "batch", "data_root", "cache_dir"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


def run_experiment(args: argparse.Namespace) -> int:
    if (args.list or not args.suites) and not args.status:
        for name, runs in SUITES.items():
            times = {split_budget(r)[1] for r in runs.values()} - {1}
            print(f"{name}: {', '.join(runs)}"
                  + "".join(f" ({t}x the --iterations budget)" for t in sorted(times)))
        return 0
    suites = list(args.suites) or list(SUITES)
    for suite in suites:
        if suite not in SUITES:
            raise RoutecError(f"unknown suite '{suite}'", hint="suites: " + ", ".join(SUITES))
    if args.runs and len(suites) != 1:
        raise RoutecError("--runs names runs of one suite; give exactly one suite with it")
    from routec.train.device import resolve_device

    resolve_device(args.device)  # a bad --device is one error, not one per run
    if args.no_records:
        records = None
    else:
        from routec.experiment.records import default_records

        records = Path(args.records) if args.records else default_records(args.out)
    base = FULL_ITERATIONS if args.full else args.iterations
    if args.status:
        from routec.experiment.pace import hours, recorded_pace

        pace, total, unknown = recorded_pace(records), 0.0, 0
        for suite in suites:
            line, left, missing = suite_status(suite, base, args, records, pace)
            print(line)
            total, unknown = total + left, unknown + missing
        if len(suites) > 1:
            print(f"left: about {hours(total)} of training at the recorded pace, one run per "
                  "process" + (f", and {unknown} run(s) of a kind with no record to price "
                               "them" if unknown else ""))
        return 0
    failed = [f"{suite}/{name}" for suite in suites
              for name in run_suite(suite, base, args, records)]
    if failed:
        raise RunError(f"{len(failed)} run(s) failed: {', '.join(failed)}")
    return 0


def _selected(suite: str, args: argparse.Namespace) -> list[str]:
    """The runs of ``suite`` this process takes: --runs, then every N-th for --shard K/N."""
    runs = SUITES[suite]
    if args.runs:
        unknown = sorted(set(args.runs) - set(runs))
        if unknown:
            raise RoutecError(f"suite '{suite}' has no run {', '.join(unknown)}",
                              hint="its runs: " + ", ".join(runs))
        runs = {k: v for k, v in runs.items() if k in args.runs}
    k, n = _shard(args.shard)
    return [name for i, name in enumerate(runs) if i % n == k]


def _recorded_elsewhere(records: Path | None, suite: str, run: str) -> str:
    """' (recorded at I × B)' when the run has a record of another budget or batch."""
    from routec.experiment.records import read_record

    rec = read_record(records / suite / run) if records is not None else None
    if not rec:
        return ""
    return f" (recorded at {rec['config'].get('iterations')} × {rec['config'].get('batch')})"


def suite_status(suite: str, base: int, args: argparse.Namespace, records: Path | None,
                 pace: dict[PaceKey, float]) -> tuple[str, float, int]:
    """One line: how many of the suite's runs are recorded at this budget, which are
    partly trained under --out (and how far), which are not started, and how long the
    rest should take at the pace recorded runs of the same kind trained at (or, for a
    kind not yet recorded, of one that differs only in its spec, scaled by MACs); with
    the seconds left and the number of runs no record can price."""
    from routec.experiment.pace import hours, pace_key, scaled_pace
    from routec.train.config import make_config

    recorded, diverged, partial, new = [], [], [], []
    estimated: set[str] = set()
    left, unknown = 0.0, 0
    for name in _selected(suite, args):
        cfg = make_config(run_settings(SUITES[suite][name], base, args))
        run_dir = Path(args.out) / suite / name
        answered, failure = _outcome(records, suite, name, cfg)
        status = "done" if answered else run_status(run_dir, cfg.iterations)
        if status == "done":
            recorded.append(name)  # recorded, or finished here (recorded on the next pass)
            continue
        if failure:
            diverged.append(f"{name} at iteration {failure['iteration']}")
            continue
        at = 0
        if status == "partial":
            from routec.train.checkpoint import load_checkpoint

            at = load_checkpoint(run_dir / "checkpoint.pt")["iteration"]
            partial.append(f"{name} ({at} of {cfg.iterations})")
        else:
            new.append(name + _recorded_elsewhere(records, suite, name))
        config = cfg.model_dump()
        per_iteration = pace.get(pace_key(config))
        if per_iteration is None and (scaled := scaled_pace(config, pace)):
            per_iteration, source = scaled
            estimated.add(source)
        if per_iteration is None:
            unknown += 1
        else:
            left += per_iteration * (cfg.iterations - at)
    total = len(recorded) + len(diverged) + len(partial) + len(new)
    parts = [f"{suite}: {len(recorded)} of {total} done"]
    if diverged:
        parts.append(f"diverged (recorded as such): {', '.join(diverged)}")
    if partial:
        parts.append(f"partly trained in {args.out}: {', '.join(partial)}")
    if new:
        parts.append(f"not started: {', '.join(new)}")
    if partial or new:
        scaled = (f" (estimated from {', '.join(sorted(estimated))} by MACs)"
                  if estimated else "")
        parts.append(f"about {hours(left)} left{scaled}" if not unknown else
                     f"no recorded run of this kind to price {unknown} of them")
    return "; ".join(parts), left, unknown


def run_suite(suite: str, base: int, args: argparse.Namespace,
              records: Path | None) -> list[str]:
    """Train the suite's unfinished runs into OUT/SUITE/RUN; returns the runs that failed."""
    from routec.train.config import make_config
    from routec.train.loop import train

    failed = []
    for name in _selected(suite, args):
        try:
            cfg = make_config(run_settings(SUITES[suite][name], base, args))
        except RunError as err:  # e.g. an override this run's settings cannot take
            print(f"{suite}/{name}: {err.render()}", file=sys.stderr)
            failed.append(name)
            continue
        iterations = cfg.iterations
        run_dir = Path(args.out) / suite / name
        answered, failure = _outcome(records, suite, name, cfg)
        if not (run_dir / "checkpoint.pt").exists() and answered:
            print(f"{suite}/{name}: recorded in {records / suite / name}, skipped",
                  file=sys.stderr)
            continue
        status = run_status(run_dir, iterations)
        if status != "done" and failure:
            print(f"{suite}/{name}: diverged at iteration {failure['iteration']} (recorded in "
                  f"{records / suite / name}), skipped; delete its failure.json to train it "
                  "again", file=sys.stderr)
            continue
        if status == "done":
            print(f"{suite}/{name}: finished, skipped", file=sys.stderr)
            keep_record(run_dir, records, suite, name, args)
            continue
        lock = RunLock(run_dir)
        if not lock.acquire():
            print(f"{suite}/{name}: another process is training it ({holder(run_dir)}), "
                  "skipped", file=sys.stderr)
            continue
        try:
            print(f"{suite}/{name}: {'resuming' if status == 'partial' else 'starting'} "
                  f"({iterations} iterations)", file=sys.stderr)
            try:
                train(cfg, run_dir, resume=status == "partial",
                      progress=not args.no_progress)
            except TrainingDiverged as err:  # an outcome of the settings: recorded as one
                print(f"{suite}/{name}: {err.render()}", file=sys.stderr)
                if not keep_failure(run_dir, records, suite, name, err, cfg, args):
                    failed.append(name)
                continue
            except Interrupted:  # Ctrl-C or SIGTERM stops the suite, its checkpoint written
                raise
            except RunError as err:  # one bad run does not stop the suite
                print(f"{suite}/{name}: {err.render()}", file=sys.stderr)
                failed.append(name)
                continue
            keep_record(run_dir, records, suite, name, args)
        finally:
            lock.release()
    return failed
