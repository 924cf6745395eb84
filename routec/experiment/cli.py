"""``routec experiment NAME``: run a suite; finished runs are skipped, unfinished resumed.

Several processes (or machines sharing the output folder) can work on one suite:
``--shard K/N`` takes every N-th run, and a lock file per run keeps two
processes from training the same run at once. ``--ray [ADDRESS]`` runs each run as a
task of a Ray cluster instead (``routec.experiment.ray_runner``), on the same engine
(``routec.experiment.engine``): the same run directories, the same records.

When a run finishes (or is found finished with no record), its record, the small
part the results page reads (``routec.experiment.records``), is written under
``--records`` (default: ``results/records`` beside OUT), ready to commit. A run with
no directory whose record matches its settings and spec is skipped: the records are
committed, the run directories are not, and a new machine should not retrain them.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routec.errors import RoutecError, RunError
from routec.experiment.engine import RunJob, recorded_outcome, run_jobs, run_status
from routec.experiment.suites import CPU_ITERATIONS, FULL_ITERATIONS, SUITES, split_budget
from routec.flags import number
from routec.train.run_dir import RunDir

if TYPE_CHECKING:
    from routec.experiment.pace import PaceKey


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="run the paper's experiment suites",
                       description="Run every run of each SUITE into OUT/SUITE/RUN; "
                                   "rerunning skips finished (or recorded) runs and resumes "
                                   "unfinished ones.")
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help="suites, run one after another (--list shows their runs): "
                        + ", ".join(SUITES))
    p.add_argument("--list", action="store_true", help="list suites and their runs")
    p.add_argument("--status", action="store_true",
                   help="say, per suite (all of them if none is named), which runs are done "
                        "(recorded at this budget), partly trained in OUT, or not started")
    p.add_argument("--spec", help="override the suite's spec")
    add_run_flags(p)
    p.set_defaults(func=run_experiment)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of every command that runs a list of runs (experiment, sweep): budget,
    folders, overrides, and where the runs are scheduled."""
    p.add_argument("--out", default="runs", help="output root (default: runs)")
    p.add_argument("--iterations", type=number(int, at_least=1), default=CPU_ITERATIONS,
                   help=f"iterations per run (default {CPU_ITERATIONS}, a CPU budget)")
    p.add_argument("--full", action="store_true",
                   help=f"the paper's protocol: {FULL_ITERATIONS} iterations per run")
    p.add_argument("--shard", default="0/1", help="K/N: run only runs K, K+N, K+2N, ...")
    p.add_argument("--runs", nargs="+", help="only these runs")
    p.add_argument("--data", help="override the dataset (e.g. synthetic for a try)")
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
    ray = p.add_argument_group("on a Ray cluster (pip install \"routec[ray]\")")
    ray.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                     help="run each run as a Ray task: without ADDRESS on a Ray instance "
                          "started for this command on this machine; with one (auto, "
                          "HOST:PORT, ray://HOST:PORT) on that cluster. OUT and the records "
                          "must be on a folder every worker reaches")
    ray.add_argument("--cpus-per-run", type=number(float, above=0),
                     help="CPUs each run reserves (and torch threads it uses; default 1)")
    ray.add_argument("--gpus-per-run", type=number(float, at_least=0),
                     help="GPUs each run reserves (default 0; with --device cuda)")
    ray.add_argument("--max-retries", type=number(int, at_least=0),
                     help="times a run whose worker died is started again, from its last "
                          "checkpoint (default 3)")


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise RoutecError(f"--shard must look like K/N, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise RoutecError(f"--shard {text}: need 0 <= K < N")
    return k, n


def run_settings(run: dict[str, Any], base: int, args: argparse.Namespace
                 ) -> dict[str, Any]:
    """A suite run's training settings under this command's budget and overrides (a run
    may ask for a multiple of the suite's budget, e.g. a longer-trained twin)."""
    run, times = split_budget(run)
    settings: dict[str, Any] = {**run, "iterations": base * times, "device": args.device}
    for key in ("data", "spec", "batch", "data_root", "cache_dir"):
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    return settings


def records_folder(args: argparse.Namespace) -> Path | None:
    """Where records go: --records, else results/records beside --out; None with
    --no-records."""
    if args.no_records:
        return None
    from routec.experiment.records import default_records

    return Path(args.records) if args.records else default_records(args.out)


def check_scheduling(args: argparse.Namespace) -> None:
    """One error for flags that do not go together, before any run starts; a bad
    --device is one error, not one per run (with --ray the workers' devices count)."""
    ray_only = [flag for flag, value in (("--cpus-per-run", args.cpus_per_run),
                                         ("--gpus-per-run", args.gpus_per_run),
                                         ("--max-retries", args.max_retries))
                if value is not None]
    if args.ray is None:
        if ray_only:
            raise RoutecError(f"{ray_only[0]} applies with --ray",
                              hint="without Ray, runs train one after another in this "
                                   "process; --shard K/N spreads them over processes")
        from routec.train.device import resolve_device

        resolve_device(args.device)
    elif (args.gpus_per_run or 0) > 0 and args.device == "cpu":
        raise RoutecError("--gpus-per-run reserves GPUs that --device cpu runs would not use",
                          hint="add --device cuda")


def execute(jobs: list[RunJob], args: argparse.Namespace) -> None:
    """Run the jobs, in this process or as Ray tasks; one error naming the runs that
    failed (a run that diverged and was recorded as such did not fail)."""
    if args.ray is not None:
        from routec.experiment.ray_runner import RayOptions, run_on_ray

        options = RayOptions(address=args.ray or None,
                             cpus_per_run=args.cpus_per_run or 1.0,
                             gpus_per_run=args.gpus_per_run or 0.0,
                             max_retries=3 if args.max_retries is None else args.max_retries)
        outcomes = run_on_ray(jobs, options, progress=not args.no_progress)
    else:
        outcomes = run_jobs(jobs)
    failed = [o.job for o in outcomes if o.failed]
    if failed:
        raise RunError(f"{len(failed)} run(s) failed: {', '.join(failed)}")


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
    check_scheduling(args)
    records = records_folder(args)
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
    execute([job for suite in suites for job in suite_jobs(suite, base, args, records)],
            args)
    return 0


def _selected(suite: str, args: argparse.Namespace) -> list[str]:
    """The runs of ``suite`` this process takes: --runs, then every N-th for --shard K/N."""
    return selected_runs(suite, list(SUITES[suite]), args)


def selected_runs(suite: str, runs: list[str], args: argparse.Namespace) -> list[str]:
    """Of a suite's (or sweep's) runs, those named by --runs, then every N-th for
    --shard K/N."""
    if args.runs:
        unknown = sorted(set(args.runs) - set(runs))
        if unknown:
            raise RoutecError(f"'{suite}' has no run {', '.join(unknown)}",
                              hint="its runs: " + ", ".join(runs))
        runs = [r for r in runs if r in args.runs]
    k, n = _shard(args.shard)
    return [name for i, name in enumerate(runs) if i % n == k]


def job(suite: str, name: str, settings: dict[str, Any], args: argparse.Namespace,
        records: Path | None) -> RunJob:
    return RunJob(suite, name, settings, out=str(args.out),
                  records=None if records is None else str(records),
                  data_root=args.data_root, cache_dir=args.cache_dir,
                  progress=not args.no_progress)


def suite_jobs(suite: str, base: int, args: argparse.Namespace, records: Path | None
               ) -> list[RunJob]:
    """The runs of ``suite`` this process takes, under this command's budget."""
    return [job(suite, name, run_settings(SUITES[suite][name], base, args), args, records)
            for name in _selected(suite, args)]


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
        answered, failure = recorded_outcome(
            None if records is None else records / suite / name, cfg)
        status = "done" if answered else run_status(run_dir, cfg.iterations)
        if status == "done":
            recorded.append(name)  # recorded, or finished here (recorded on the next pass)
            continue
        if failure:
            diverged.append(f"{name} at iteration {failure['iteration']}")
            continue
        at = 0
        if status == "partial":
            at = RunDir(run_dir).state()["iteration"]
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
