"""``routec draw`` (node-link diagrams of specs and runs) and ``routec report`` (run
summaries, the results page, its records and timings: one verb each)."""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from routec.backbone.flags import add_model_flags, supply_from_flags
from routec.errors import RoutecError, RunError
from routec.flags import number
from routec.report.curves import curve_points
from routec.report.draw import COLOUR_BY, FORMATS

SPLITS = ("test", "val")


def add_commands(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "draw", help="draw a routing tree, or a trained run's measured dataflow",
        description="Draw SPEC (a .route file or bundled spec name) as a node-link diagram "
                    "with MACs per node and per path. Given a run directory or checkpoint, "
                    "route a data split through it and size each exit's circle by the "
                    "fraction of examples classified there (area), colour it by accuracy, "
                    "MNIST/CIFAR share or dominant class, and width edges by their traffic.")
    d.add_argument("target", metavar="SPEC|RUN",
                   help="a .route file, a bundled spec name, a run directory or a checkpoint")
    d.add_argument("-o", "--output", help="picture file, format from its suffix: "
                   + ", ".join("." + f for f in FORMATS) + " (default: NAME.svg here)")
    d.add_argument("--by", choices=COLOUR_BY, default=None,
                   help="run: colour exits by accuracy (default), origin (MNIST vs CIFAR "
                        "share) or dominant class")
    d.add_argument("--split", choices=SPLITS, default=None, help="run: data split (test)")
    d.add_argument("--k-cpt", type=number(float, at_least=0), default=None,
                   help="run trained with dynamic k_cpt: route at this k_cpt (default 4e-9)")
    d.add_argument("--json", metavar="FILE", help="run: also write the measured numbers")
    d.add_argument("--classes", type=int, help="spec: number of classes, if it leaves it open")
    d.add_argument("--static", type=int, metavar="N",
                   help="spec: draw the static baseline, the first N columns and one exit")
    d.add_argument("--dpi", type=number(int, at_least=1, at_most=2400), default=96,
                   help="PNG resolution (default 96, at most 2400)")
    d.add_argument("--data-root")
    d.add_argument("--cache-dir")
    add_model_flags(d, weights=False)
    d.set_defaults(func=run_draw)

    add_report_command(sub)


# -- routec report: one verb per job ---------------------------------------------------------
# the flags each verb replaced (routec report --experiments RECORDS ...), still accepted
LEGACY = {"experiments": "results", "harvest": "harvest", "throughput": "throughput",
          "clock": "clock"}


def note_new_spelling(old: str, new: str) -> None:
    """The one line an old spelling prints: it still works, and this is its new name."""
    print(f"note: 'routec report {old}' is now 'routec report {new}'", file=sys.stderr)


class _AnyWord(dict):  # type: ignore[type-arg]
    """The verbs' parsers, by name, as the choices argparse checks a first word against
    before :class:`_Verbs` sees it: every word passes, so that an old spelling's run
    directory reaches :class:`_Verbs`."""

    def __contains__(self, key: object) -> bool:
        return True


class _Verbs(argparse._SubParsersAction):
    """The verbs of ``routec report``; a first word that is no verb is the run directory
    of the old spelling ``routec report RUN_DIR...``, read as ``runs RUN_DIR...``."""

    def accept_run_dirs(self) -> None:
        """Once every verb is added: let any first word through to :meth:`__call__`."""
        self.choices = _AnyWord(self.choices)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if values and values[0] not in self.choices.keys():  # the real verbs
            note_new_spelling("RUN_DIR...", "runs RUN_DIR...")
            values = ["runs", *values]
        super().__call__(parser, namespace, values, option_string)


def add_report_command(sub: argparse._SubParsersAction) -> None:
    from routec.engine import registry

    r = sub.add_parser(
        "report", help="plots, tables and the results page from trained runs (no retraining)",
        description="What to report is a verb: 'runs' for a report on run directories, "
                    "'results' for the results page from run records, 'harvest' to write "
                    "those records, 'throughput' and 'clock' to time the networks the page "
                    "compares. Accuracy and MACs come from routed inference on the "
                    "checkpoints, cached as eval_*.json in each run directory.")
    verbs = r.add_subparsers(dest="verb", metavar="VERB", action=_Verbs)
    runs = verbs.add_parser(
        "runs", help="accuracy vs MACs, dataflow heatmaps and a summary table of run "
                     "directories",
        description="From run directories' logs and checkpoints: accuracy vs mean MACs "
                    "(static runs as one curve, each other strategy as a curve over k_cpt, a "
                    "dynamic-k_cpt run over its grid), a dataflow-over-training heatmap per "
                    "routed run, and a Markdown and HTML summary table.")
    runs.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories")
    runs.add_argument("-o", "--out", default=None, help="output folder (default: report)")
    _figure_format(runs)
    runs.add_argument("--split", choices=SPLITS, default="test")
    runs.add_argument("--diagrams", action="store_true",
                      help="also draw each routed run's dataflow diagram (needs Graphviz)")
    runs.add_argument("--no-cache", action="store_true", help="re-evaluate every checkpoint")
    _data_flags(runs)
    runs.set_defaults(func=report_runs)

    res = verbs.add_parser(
        "results", help="the results page from run records",
        description="The results page from the run records under RECORDS (as routec "
                    "experiment writes them, e.g. results/records; a folder of run "
                    "directories is evaluated into temporary records first).")
    res.add_argument("records", metavar="RECORDS", help="folder of run records")
    res.add_argument("-o", "--out", default=None,
                     help="the page's .md file (default: results.md); figures go in a "
                          "folder of the same name beside it")
    _figure_format(res)
    _data_flags(res)
    res.set_defaults(func=report_results)

    har = verbs.add_parser(
        "harvest", help="write the records of finished runs",
        description="Write the record of every finished run under RUNS (routec "
                    "experiment's --out) into -o; run directories are only read.")
    har.add_argument("runs_root", metavar="RUNS", help="folder of suites of run directories")
    har.add_argument("-o", "--out", default=None, help="records folder (default: "
                                                         "results/records)")
    har.add_argument("--force", action="store_true",
                     help="rewrite records that are already up to date")
    _data_flags(har)
    har.set_defaults(func=report_harvest)

    thr = verbs.add_parser(
        "throughput", help="time the networks the results page compares",
        description="Time the networks the results page compares (from their records, no "
                    "weights needed) and store the numbers in RECORDS/throughput.json.")
    thr.add_argument("records", metavar="RECORDS", help="folder of run records")
    thr.add_argument("--engine", nargs="+", default=None, choices=registry.names(),
                     metavar="ENGINE",
                     help=f"inference engines to time, of {registry.listing(last='or')} "
                          f"(default: {registry.reference()})")
    thr.set_defaults(func=report_throughput)

    clk = verbs.add_parser(
        "clock", help="time the suites trained with --cost latency",
        description="Time every network of the suites trained with --cost latency, their "
                    "MAC-priced counterparts and the static suite (from their records) and "
                    "store the numbers in RECORDS/clock.json.")
    clk.add_argument("records", metavar="RECORDS", help="folder of run records")
    clk.add_argument("--engine", default=None, choices=registry.names(), metavar="ENGINE",
                     help=f"the engine, of {registry.listing(last='or')} (default: the cost "
                          "table's)")
    clk.set_defaults(func=report_clock)
    verbs.accept_run_dirs()

    # the old spellings, before the verbs: hidden from --help, still accepted
    hidden = argparse.SUPPRESS
    for flag in LEGACY:
        r.add_argument(f"--{flag}", help=hidden)
    r.add_argument("--force", action="store_true", help=hidden)
    r.add_argument("--engine", nargs="+", default=None, choices=registry.names(),
                   metavar="ENGINE", help=hidden)
    r.add_argument("-o", "--out", default=None, help=hidden)
    r.add_argument("--format", choices=FIGURE_FORMATS, default="png", help=hidden)
    r.add_argument("--split", choices=SPLITS, default="test", help=hidden)
    r.add_argument("--diagrams", action="store_true", help=hidden)
    r.add_argument("--no-cache", action="store_true", help=hidden)
    r.add_argument("--data-root", help=hidden)
    r.add_argument("--cache-dir", help=hidden)
    r.set_defaults(func=report_old_spelling, verb=None)


FIGURE_FORMATS = ("png", "svg", "pdf")


def _figure_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FIGURE_FORMATS, default="png",
                   help="figure format (default png)")


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="where the runs' datasets are (to evaluate "
                                       "checkpoints)")
    p.add_argument("--cache-dir")


# -- draw ---------------------------------------------------------------------------------
def is_run(target: str) -> bool:
    """A run directory or a checkpoint file (torch's zip format), not a spec."""
    p = Path(target)
    if p.is_dir():
        return True
    if not p.is_file():
        return False
    if p.suffix in (".pt", ".pth", ".ckpt"):
        return True
    try:
        with p.open("rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def run_draw(args: argparse.Namespace) -> int:
    from routec.report.draw import render

    if is_run(args.target):
        if args.classes is not None or args.static is not None:
            raise RoutecError("--classes and --static apply to a spec, not to a trained run")
        graph, name = _run_diagram(args)
    else:
        if args.by or args.split or args.k_cpt is not None or args.json:
            raise RoutecError("--by, --split, --k-cpt and --json apply to a run directory or "
                              "checkpoint, not to a spec",
                              hint=f"'{args.target}' is not a directory or checkpoint file")
        graph, name = _spec_diagram(args)
    out = Path(args.output or f"{name}.svg")
    from routec.report.draw import dot_available, output_format, render_matplotlib

    if dot_available() or output_format(out) == "dot":
        render(graph, out, dpi=args.dpi)
        print(f"wrote {out}", file=sys.stderr)
    else:  # no Graphviz on this machine: the same picture from matplotlib, said so
        g, flow, by = graph.routec_source
        render_matplotlib(g, out, flow, by=by, dpi=args.dpi)
        print(f"wrote {out} (drawn with matplotlib: Graphviz's 'dot' program is not "
              "installed)", file=sys.stderr)
    return 0


def _spec_diagram(args: argparse.Namespace) -> tuple[Any, str]:
    from routec.graph import build_graph, static_prefix
    from routec.parse import load_spec
    from routec.report.draw import diagram

    supply_from_flags(args)
    spec = load_spec(args.target)
    if args.static is not None:
        spec = static_prefix(spec, args.static)
    g = build_graph(spec, classes=args.classes)
    d = diagram(g)
    d.routec_source = (g, None, "accuracy")  # what a renderer without Graphviz draws
    return d, g.name


def _run_diagram(args: argparse.Namespace) -> tuple[Any, str]:
    from routec.report.dataflow import measure_run
    from routec.report.draw import diagram, write_bytes

    by, split = args.by or "accuracy", args.split or "test"
    flow, g = measure_run(args.target, split=split, k_cpt=args.k_cpt,
                          data_root=args.data_root, cache_dir=args.cache_dir)
    if args.json:
        write_bytes(Path(args.json), (json.dumps(flow.as_dict(), indent=1) + "\n").encode())
    d = diagram(g, flow, by=by)
    d.routec_source = (g, flow, by)  # what a renderer without Graphviz draws
    return d, f"{g.name}_dataflow_{split}_{by}"


# -- report -------------------------------------------------------------------------------
def report_old_spelling(args: argparse.Namespace) -> int:
    """``routec report --experiments RECORDS`` and the other flags the verbs replaced:
    checked as before, then run as their verb, with a note naming it."""
    modes = [m for m in LEGACY if getattr(args, m)]
    if len(modes) > 1:
        raise RoutecError(f"--{modes[0]} and --{modes[1]} are separate commands; give one")
    if args.force and modes != ["harvest"]:
        raise RoutecError("--force applies to --harvest")
    if not modes:
        raise RoutecError("say what to report: routec report runs RUN_DIR..., results "
                          "RECORDS, harvest RUNS, throughput RECORDS or clock RECORDS",
                          hint="routec report --help says what each does (the old "
                               "spellings RUN_DIR... and --experiments RECORDS still work)")
    (mode,) = modes
    verb = LEGACY[mode]
    what = "RUNS" if verb == "harvest" else "RECORDS"
    note_new_spelling(f"--{mode} {what}", f"{verb} {what}")
    if verb == "harvest":
        args.runs_root = args.harvest
        return report_harvest(args)
    args.records = getattr(args, mode)
    if verb == "throughput":
        if args.out:
            raise RoutecError("--throughput writes RECORDS/throughput.json; -o does not apply")
        return report_throughput(args)
    if verb == "clock":
        if args.out:
            raise RoutecError("--clock writes RECORDS/clock.json; -o does not apply")
        if args.engine and len(args.engine) > 1:
            raise RoutecError("--clock times in one engine (default: the cost table's); "
                              f"got {' '.join(args.engine)}")
        args.engine = args.engine[0] if args.engine else None
        return report_clock(args)
    if args.diagrams or args.split != "test":
        raise RoutecError("--diagrams and --split apply to run directories; a results page "
                          "always draws the actor suites' diagrams on the test split")
    args.spelled = "routec report --experiments"  # the page names the command as typed
    return report_results(args)


def report_runs(args: argparse.Namespace) -> int:
    out = Path(args.out or "report")
    written = build_report([Path(r) for r in args.runs], out, fmt=args.format,
                           split=args.split, diagrams=args.diagrams,
                           use_cache=not args.no_cache, data_root=args.data_root,
                           cache_dir=args.cache_dir)
    print(f"wrote {len(written)} files to {out}: " + ", ".join(p.name for p in written),
          file=sys.stderr)
    return 0


def report_harvest(args: argparse.Namespace) -> int:
    from routec.experiment.records import harvest

    out = Path(args.out or "results/records")
    written = harvest(Path(args.runs_root), out, force=args.force, data_root=args.data_root,
                      cache_dir=args.cache_dir)
    print(f"wrote {len(written)} record(s) to {out}", file=sys.stderr)
    return 0


def report_throughput(args: argparse.Namespace) -> int:
    from routec.report.draw import write_bytes
    from routec.report.results import THROUGHPUT, measure_records, stderr_progress

    root = Path(args.records)
    data = measure_records(root, tuple(args.engine or ()) or None, say=stderr_progress)
    write_bytes(root / THROUGHPUT, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    print(f"wrote {root / THROUGHPUT} ({len(data['pairs'])} timed pair(s))", file=sys.stderr)
    return 0


def report_clock(args: argparse.Namespace) -> int:
    from routec.report.clock import CLOCK, measure_clock
    from routec.report.draw import write_bytes
    from routec.report.results import stderr_progress

    root = Path(args.records)
    data = measure_clock(root, engine=args.engine, say=stderr_progress)
    write_bytes(root / CLOCK, (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    print(f"wrote {root / CLOCK} ({len(data['runs'])} timed network(s), {data['engine']}, "
          f"batch {data['batch']}, {data['threads']} thread(s))", file=sys.stderr)
    return 0


def report_results(args: argparse.Namespace) -> int:
    import shlex
    import tempfile

    from routec.report.results import build_results, has_records, stderr_progress

    out = Path(args.out or "results.md")
    root = Path(args.records)
    spelled = getattr(args, "spelled", "routec report results")
    command = " ".join([spelled, shlex.quote(args.records),
                        "-o", shlex.quote(str(out))]
                       + (["--format", args.format] if args.format != "png" else []))
    if root.is_dir() and not has_records(root) and any(root.glob("*/*/checkpoint.pt")):
        from routec.experiment.records import harvest

        with tempfile.TemporaryDirectory(prefix="routec-records-") as tmp:
            print(f"{root} holds run directories, not records: evaluating them into "
                  f"temporary records (routec report harvest {root} -o DIR keeps them)",
                  file=sys.stderr)
            harvest(root, Path(tmp), data_root=args.data_root, cache_dir=args.cache_dir)
            written = build_results(Path(tmp), out, fmt=args.format, command=command,
                                    progress=stderr_progress)
    else:
        written = build_results(root, out, fmt=args.format, command=command,
                                progress=stderr_progress)
    print(f"wrote {out} and {len(written) - 1} figures in {out.parent / out.stem}",
          file=sys.stderr)
    return 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def _unique_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        base, k = _safe(p.resolve().name), 2
        name = base
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def build_report(runs: list[Path], out: Path, *, fmt: str = "png", split: str = "test",
                 diagrams: bool = False, use_cache: bool = True, data_root: str | None = None,
                 cache_dir: str | None = None) -> list[Path]:
    """Write the report files into ``out``; returns their paths."""
    from routec.report import plots
    from routec.report.summary import load_run_info, rows_for
    from routec.train.run_dir import RunDir

    if split not in SPLITS:
        raise RunError(f"unknown split '{split}'", hint="use test or val")
    infos = [load_run_info(p, n) for p, n in zip(runs, _unique_names(runs))]
    _make_dir(out)
    rows, figures, written, heatmaps = [], [], [], {}
    for info in infos:
        ev = RunDir(info.path, data_root=data_root, cache_dir=cache_dir).evaluator(use_cache)
        rows.extend(rows_for(info, ev, split))
    points = curve_points(infos, rows)
    datasets = sorted({i.config.data for i in infos})
    acc_path = out / f"accuracy_vs_macs.{fmt}"
    curves = plots.accuracy_vs_macs(
        points, acc_path, title=f"accuracy vs mean MACs, {'/'.join(datasets)} {split} split, "
                                f"routed inference")
    written.append(acc_path)
    figures.append(("accuracy vs mean MACs per example", acc_path.name))
    for info in infos:
        if not info.routed:
            continue
        h = plots.heatmap_data(info.path)
        heatmaps[info.name] = h.__dict__
        if h.iterations:
            p = out / f"dataflow_training_{info.name}.{fmt}"
            plots.dataflow_heatmap(h, p, title=f"{info.name}: fraction of "
                                   f"{'validation' if h.source == 'val' else 'training'} "
                                   "examples classified at each exit over training")
            written.append(p)
            figures.append((f"{info.name}: dataflow over training", p.name))
        if diagrams:
            p = _dataflow_diagram(info, out, split, data_root, cache_dir)
            written.append(p)
            figures.append((f"{info.name}: measured dataflow ({split} split)", p.name))
    written.extend(_write_tables(out, rows, curves, heatmaps, figures, split))
    return written


def _dataflow_diagram(info: Any, out: Path, split: str, data_root: str | None,
                      cache_dir: str | None) -> Path:
    from routec.report.dataflow import measure_run
    from routec.report.draw import diagram, render

    flow, g = measure_run(info.path, split=split, data_root=data_root, cache_dir=cache_dir)
    by = "origin" if info.config.data in ("hybrid", "synthetic") else "accuracy"
    p = out / f"dataflow_{info.name}.svg"
    return render(diagram(g, flow, by=by), p)


def _write_tables(out: Path, rows: list[Any], curves: dict[str, list[Any]],
                  heatmaps: dict[str, Any], figures: list[tuple[str, str]], split: str
                  ) -> list[Path]:
    from dataclasses import asdict

    from routec.report.draw import write_bytes
    from routec.report.summary import html_page, markdown_table

    title = "routec report"
    notes = [f"Accuracy and mean MACs per example: routed inference (argmax) on the {split} "
             "split, evaluated from each run's checkpoint. Exit fractions are in the order of "
             "each run's exits."]
    md = (f"# {title}\n\n{notes[0]}\n\n{markdown_table(rows, split)}\n"
          + "".join(f"![{cap}]({src})\n\n" for cap, src in figures))
    page = html_page(title, rows, figures, split, notes)
    data = {"split": split, "rows": [r.as_dict() for r in rows],
            "curves": {k: [asdict(p) for p in v] for k, v in curves.items()},
            "heatmaps": heatmaps}
    paths = [out / "summary.md", out / "summary.html", out / "summary.json"]
    for p, text in zip(paths, [md, page, json.dumps(data, indent=1) + "\n"]):
        write_bytes(p, text.encode("utf-8"))
    return paths


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RoutecError(f"{out}: cannot create the report folder ({err.strerror})") from None
