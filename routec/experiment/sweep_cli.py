"""``routec sweep``: the cross product of settings' values, run like a suite.

``routec sweep tiny --k-cpt 0,1e-9,4e-9 --strategy actor,critic --seed 0,1`` or
``routec sweep --axes sweep.toml`` (``routec.experiment.sweeps`` documents the file)
names every point of the product from its axis values (``actor-k4e-9-s1``) and runs it
into OUT/SWEEP/RUN on the engine ``routec experiment`` uses: finished or recorded runs
are skipped, unfinished ones resumed, records written to --records, and ``--ray``
spreads the runs over a Ray cluster.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from routec.errors import RoutecError
from routec.experiment.cli import (add_run_flags, check_scheduling, execute, job,
                                   records_folder, run_settings, selected_runs)
from routec.experiment.suites import FULL_ITERATIONS, SUITES

# the axes with a flag of their own, in the order they appear in run names (after a
# sweep file's axes and before --axis ones, except the seed, which comes last)
AXIS_FLAGS = (("strategy", "--strategy"), ("k_cpt", "--k-cpt"), ("lr", "--lr"))
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train the cross product of settings' values",
                       description="Train one run per point of the cross product of the "
                                   "axes given (flags, --axis or a --axes file) into "
                                   "OUT/SWEEP/RUN, each run named from its axis values; "
                                   "rerunning skips finished (or recorded) runs and resumes "
                                   "unfinished ones.")
    p.add_argument("spec", nargs="?", metavar="SPEC",
                   help="a .route file or bundled spec name (or spec in the file's [fixed])")
    p.add_argument("--axes", metavar="FILE",
                   help="a TOML sweep file: name, [fixed] settings and [axes] lists")
    p.add_argument("--name", help="the sweep's folder under OUT and the records (default: the "
                                  "file's name, else sweep-SPEC)")
    p.add_argument("--strategy", metavar="LIST", help="axis: strategies, e.g. actor,critic")
    p.add_argument("--k-cpt", metavar="LIST", help="axis: k_cpt values, e.g. 0,1e-9,4e-9")
    p.add_argument("--lr", metavar="LIST", help="axis: learning rates")
    p.add_argument("--seed", metavar="LIST", help="axis: seeds, e.g. 0,1,2 (last in names)")
    p.add_argument("--axis", action="append", default=[], metavar="KEY=LIST",
                   help="axis: any run setting and its values, e.g. k_dec=0,0.01 (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting every run shares, e.g. preset=paper (repeatable)")
    p.add_argument("--list", action="store_true", help="list the runs and their settings")
    add_run_flags(p)
    p.set_defaults(func=run_sweep)


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RoutecError(f"{flag} takes KEY=VALUE, got {text!r}")
    return key.strip().replace("-", "_"), value


def sweep_of(args: argparse.Namespace) -> tuple[str, dict[str, dict[str, Any]]]:
    """(the sweep's name, its runs: name → settings) from the file and the flags."""
    from routec.experiment.sweeps import axis_values, checked_sweep, read_sweep_file

    name, fixed, axes = (read_sweep_file(args.axes) if args.axes
                         else (None, {}, []))
    order: list[tuple[str, Any]] = list(axes)
    given = [(key, getattr(args, key)) for key, _ in AXIS_FLAGS]
    given += [_pair(a, "--axis") for a in args.axis]
    given += [("seed", args.seed)]
    for key, text in given:
        if text is None:
            continue
        values = axis_values(key, text)
        at = next((i for i, (k, _) in enumerate(order) if k == key), None)
        if at is None:
            order.append((key, values))
        else:  # a flag overrides the file's axis, in the file's place
            order[at] = (key, values)
    for text in args.set:
        key, value = _pair(text, "--set")
        fixed[key] = value
    if args.spec is not None:
        fixed["spec"] = args.spec
    for key, _ in order:
        if key in ("data", "batch") and getattr(args, key) is not None:
            raise RoutecError(f"--{key} is also an axis of the sweep; give it one way")
    if "spec" not in fixed and "spec" not in dict(order):
        raise RoutecError("routec sweep needs a SPEC (or spec in the sweep file's [fixed])")
    if not order:
        raise RoutecError("the sweep has no axis",
                          hint="give values to sweep, e.g. --k-cpt 0,1e-9,4e-9, or an "
                               "[axes] table in --axes FILE")
    name = args.name or name or f"sweep-{Path(str(fixed.get('spec', 'runs'))).stem}"
    if not NAME.match(name):
        raise RoutecError(f"sweep name {name!r} cannot name a folder",
                          hint="letters, digits, '.', '_', '+' and '-'")
    if name in SUITES:
        raise RoutecError(f"{name} is a suite of the paper's experiments",
                          hint=f"routec experiment {name} runs it; give the sweep another "
                               "--name")
    return name, checked_sweep(fixed, order).runs()


def run_sweep(args: argparse.Namespace) -> int:
    name, runs = sweep_of(args)
    if args.list:
        for run, settings in runs.items():
            print(f"{name}/{run}: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        return 0
    check_scheduling(args)
    records = records_folder(args)
    base = FULL_ITERATIONS if args.full else args.iterations
    jobs = [job(name, run, run_settings(runs[run], base, args), args, records)
            for run in selected_runs(name, list(runs), args)]
    execute(jobs, args)
    return 0
