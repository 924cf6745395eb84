"""The reproduction page: every suite found under an experiment folder, as one document.

``routec report --experiments runs -o docs/results.md`` reads ``runs/SUITE/RUN``
(as ``routec experiment`` writes them) and writes the Markdown page plus its
figures beside it (``docs/results/``): setup (machine, budget, commands), the
paper's claims with verdicts, wall-clock throughput of routed inference, and per
dataset the Fig. 5 curve, per-suite tables, Fig. 6 dataflow diagrams and Fig. 8
heatmaps. Numbers come only from the run directories (checkpoints evaluated by
routed inference, cached as eval_*.json; logged metrics), so rerunning the command
regenerates the page.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routec.errors import RoutecError, RunError
from routec.experiment.suites import SUITES
from routec.report.claims import CLAIMS, UNTESTED, Evidence
from routec.report.summary import (Evaluator, RunInfo, SummaryRow, load_run_info,
                                   markdown_table, rows_for)

Progress = Callable[[str], None]


@dataclass
class Suite:
    name: str
    runs: list[RunInfo]  # found with a checkpoint, in the suite's order
    missing: list[str]  # runs of the suite with no checkpoint yet

    @property
    def data(self) -> str:
        return self.runs[0].config.data


def find_suites(root: Path) -> list[Suite]:
    """Suites with at least one checkpointed run under ``root``, in the order of SUITES."""
    root = Path(root)
    if not root.is_dir():
        raise RunError(f"{root}: no such experiment folder",
                       hint="pass the --out folder of routec experiment (default: runs)")
    found = []
    for name, runs in SUITES.items():
        infos, missing = [], []
        for run in runs:
            d = root / name / run
            if (d / "checkpoint.pt").is_file():
                infos.append(load_run_info(d, run))
            elif d.is_dir():
                missing.append(run)
        if infos:
            found.append(Suite(name, infos, missing))
    if not found:
        raise RunError(f"{root}: no suite has a checkpointed run",
                       hint="run e.g. routec experiment hybrid-static --out " + str(root))
    return found


# -- training facts from the logs ------------------------------------------------------------
def metric_lines(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
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


def early_late_macs(run_dir: Path) -> tuple[float, float] | None:
    """Mean training-window MACs over the first and the last 10% of logged windows."""
    recs = [r for r in metric_lines(run_dir) if "event" not in r and "train_mean_macs" in r]
    if len(recs) < 2:
        return None
    k = max(1, len(recs) // 10)
    mean = lambda rs: sum(float(r["train_mean_macs"]) for r in rs) / len(rs)  # noqa: E731
    return mean(recs[:k]), mean(recs[-k:])


COLLAPSE = 0.10  # a fall of validation accuracy this large from its peak is called out


def accuracy_fall(run_dir: Path) -> tuple[float, int, float] | None:
    """(peak, iteration of the peak, last) validation accuracy, if it fell ≥ COLLAPSE.

    A run that learned and then lost it (diverged) reads very differently from one that
    never learned; the table's final number alone cannot tell them apart.
    """
    vals = [(int(r["iteration"]), float(r["val_accuracy"])) for r in metric_lines(run_dir)
            if "event" not in r and "val_accuracy" in r and "iteration" in r]
    if not vals:
        return None
    peak_it, peak = max(vals, key=lambda v: (v[1], -v[0]))
    last = vals[-1][1]
    return (peak, peak_it, last) if peak - last >= COLLAPSE else None


def machines(suites: list[Suite]) -> tuple[dict[str, list[str]], list[str]]:
    """Machine description → runs trained (partly) on it; runs with no machine logged."""
    seen: dict[str, list[str]] = {}
    unknown = []
    for s in suites:
        for info in s.runs:
            descs = [r["machine"] for r in metric_lines(info.path)
                     if r.get("event") in ("start", "resume") and "machine" in r]
            if not descs:
                unknown.append(f"{s.name}/{info.name}")
            for d in descs:
                key = (f"{d['cpu']}, {d['cpus']} CPUs, {d['torch_threads']} torch thread(s), "
                       f"{d['device']}{', ' + d['gpu'] if 'gpu' in d else ''}; "
                       f"torch {d['torch']}, Python {d['python']}, {d['platform']}")
                runs = seen.setdefault(key, [])
                if f"{s.name}/{info.name}" not in runs:
                    runs.append(f"{s.name}/{info.name}")
    return seen, unknown


# -- the document ---------------------------------------------------------------------------
def build_results(root: Path, out_md: Path, *, fmt: str = "png", throughput: bool = True,
                  use_cache: bool = True, data_root: str | None = None,
                  cache_dir: str | None = None, command: str = "",
                  progress: Progress | None = None) -> list[Path]:
    """Write ``out_md`` and its figures folder; returns the files written."""
    from routec.report import plots

    say = progress or (lambda _msg: None)
    out_md = Path(out_md)
    if out_md.suffix != ".md":
        raise RoutecError(f"{out_md}: the results page is Markdown; name it *.md")
    figs = out_md.parent / out_md.stem
    try:
        figs.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RoutecError(f"{figs}: cannot create the figures folder ({err.strerror})") from None
    rel = figs.name
    suites = find_suites(root)
    rows: dict[str, list[SummaryRow]] = {}
    for s in suites:
        for info in s.runs:
            say(f"evaluating {s.name}/{info.name}")
            ev = Evaluator(info.path, data_root=data_root, cache_dir=cache_dir,
                           use_cache=use_cache)
            rows.setdefault(s.name, []).extend(rows_for(info, ev, "test"))
    # claims, timing and figures use finished runs only; tables list every run
    finished = {(s.name, i.name) for s in suites for i in s.runs
                if all(r.finished for r in rows[s.name] if r.run == i.name)}
    done = {name: [r for r in rs if (name, r.run) in finished] for name, rs in rows.items()}
    done_runs = {s.name: [i for i in s.runs if (s.name, i.name) in finished] for s in suites}
    evidence = Evidence(
        rows={name: rs for name, rs in done.items() if rs},
        early_late_macs={s.name: {i.name: el for i in done_runs[s.name]
                                  if (el := early_late_macs(i.path)) is not None}
                         for s in suites if s.runs[0].routed},
        seconds={s.name: {i.name: training_seconds(i.path) for i in done_runs[s.name]}
                 for s in suites})
    written: list[Path] = []
    parts = [_intro(suites, root, command, data_root)]
    unfinished = [f"{s.name}/{i.name}" for s in suites for i in s.runs
                  if (s.name, i.name) not in finished]
    parts.append(_claims_section(evidence, unfinished))
    if throughput:
        say("timing routed inference")
        parts.append(_throughput_section(suites, evidence.rows, data_root, cache_dir))
    for data in dict.fromkeys(s.data for s in suites):
        group = [s for s in suites if s.data == data]
        parts.append(f"## {data}\n")
        fig5 = figs / f"fig5_{data}.{fmt}"
        _fig5(group, done, fig5, data)
        written.append(fig5)
        parts.append(f"![Fig. 5: {data} accuracy vs mean MACs]({rel}/{fig5.name})\n")
        for s in group:
            parts.append(_suite_section(s, rows[s.name], evidence))
            if s.runs[0].routed:
                panels = [(i.name, _heatmap(i.path)) for i in done_runs[s.name]]
                panels = [(n, h) for n, h in panels if h.iterations]
                if panels:
                    p = figs / f"fig8_{s.name}.{fmt}"
                    plots.dataflow_heatmaps(panels, p, title=f"{s.name}: fraction of examples "
                                            "classified at each exit over training")
                    written.append(p)
                    parts.append(f"Fig. 8-style: dataflow over training "
                                 f"({_heatmap_source(panels)}).\n\n"
                                 f"![Fig. 8: {s.name}]({rel}/{p.name})\n")
            if s.name.endswith("-actor") and done_runs[s.name]:
                say(f"drawing dataflow of {s.name}")
                table, files = _fig6(done_runs[s.name], s.name, s.data, figs, rel,
                                     data_root, cache_dir)
                written.extend(files)
                parts.append(table)
    from routec.report.draw import write_bytes

    write_bytes(out_md, "\n".join(parts).encode("utf-8"))
    for old in figs.glob("fig[568]_*"):  # figures of runs no longer on the page
        if old not in written:
            old.unlink()
    return [out_md, *written]


def _portable(text: str, data_root: str | None) -> str:
    """Write the data root as $ROUTEC_DATA: the page should not depend on one machine's paths."""
    from routec.data.root import resolve_data_root

    root = resolve_data_root(data_root)
    for form in sorted({str(root), str(root.resolve())}, key=len, reverse=True):
        text = text.replace(form.rstrip("/") + "/", "$ROUTEC_DATA/")
    return text


def _intro(suites: list[Suite], root: Path, command: str, data_root: str | None) -> str:
    its = sorted({i.config.iterations for s in suites for i in s.runs})
    batches = sorted({i.config.batch for s in suites for i in s.runs})
    seen, unknown = machines(suites)
    sources: dict[str, set[str]] = {}  # where each dataset's files came from
    for s in suites:
        for i in s.runs:
            if i.start.get("data_source"):
                sources.setdefault(s.data, set()).add(str(i.start["data_source"]))
    lines = [
        "# Reproducing McGill & Perona (2017) at a CPU budget\n",
        "This page is generated from saved run directories; do not edit it by hand. "
        "Regenerate it with:\n",
        f"```\n{command or 'routec report --experiments ' + str(root) + ' -o docs/results.md'}"
        "\n```\n",
        "## Setup\n",
        f"- Budget: {', '.join(map(str, its))} iterations of batch {', '.join(map(str, batches))} "
        "per network (the paper trains 80,000; `routec experiment SUITE --full` runs that).",
        *_schedules(suites),
        "- Accuracy: test split, routed inference with argmax routing; mean MACs: counted by "
        "routed inference (the multiply-accumulates each test example's own path runs).",
    ]
    for machine, runs in seen.items():
        lines.append(f"- Machine: {machine} ({len(runs)} runs).")
    if unknown:
        lines.append(f"- Machine not logged (trained before routec logged it) for: "
                     f"{', '.join(unknown)}.")
    for data, srcs in sources.items():
        for src in sorted(srcs):
            lines.append(f"- Data ({data}): {_portable(src, data_root)}.")
    lines += ["", "Runs were trained with (the data root set by `ROUTEC_DATA`):\n", "```"]
    for s in suites:
        names = [i.name for i in s.runs] + s.missing
        sub = "" if set(names) >= set(SUITES[s.name]) else " --runs " + " ".join(names)
        for n in sorted({i.config.iterations for i in s.runs}):
            lines.append(f"routec experiment {s.name} --iterations {n}{sub} --out {root}")
    lines.append("```\n")
    partial = [f"{s.name}/{m}" for s in suites for m in s.missing]
    if partial:
        lines.append(f"Started but not yet checkpointed (left out): {', '.join(partial)}.\n")
    not_run = [name for name in SUITES if name not in {s.name for s in suites}]
    lines.append(f"Suites not run at this budget: {', '.join(not_run) or 'none'}.\n")
    return "\n".join(lines)


def _schedules(suites: list[Suite]) -> list[str]:
    """The learning-rate and temperature schedules, and where this budget leaves them."""
    from routec.train.schedules import halving

    seen: dict[str, list[str]] = {}
    for s in suites:
        for i in s.runs:
            c = i.config
            text = (f"SGD with momentum {c.momentum:g}, lr {c.lr:g} halving every {c.lr_halflife:g} iterations (ends at "
                    f"{halving(c.lr, c.lr_halflife, c.iterations):.3g})")
            if c.strategy in ("actor", "critic"):
                text += (f", τ {c.effective_tau:g} halving every {c.tau_halflife:g} (ends at "
                         f"{halving(c.effective_tau, c.tau_halflife, c.iterations):.3g})")
            suites_of = seen.setdefault(text, [])
            if s.name not in suites_of:
                suites_of.append(s.name)
    return [f"- Schedule ({', '.join(names)}): {text}; the paper's settings (τ's half-life "
            "as in its scripts), cut short by the budget."
            for text, names in seen.items()]


def _claims_section(ev: Evidence, unfinished: list[str]) -> str:
    lines = ["## The paper's claims, side by side with what we measured\n",
             "| § | claim | measured | verdict | rule |", "|---|---|---|---|---|"]
    for c in CLAIMS:
        f = c.finding(ev)
        verdict = f"**{f.verdict}**" if f.verdict != UNTESTED else f.verdict
        lines.append(f"| {c.section} | {c.statement} | {f.measured} | {verdict} | {c.rule} |")
    if unfinished:
        lines.append(f"\nClaims, timings and figures use finished runs only; these unfinished "
                     f"runs appear, at their last checkpoint, only in their suite's table: "
                     f"{', '.join(unfinished)}.")
    return "\n".join(lines) + "\n"


def pick_throughput_pair(actor: list[SummaryRow], static: list[SummaryRow]
                         ) -> tuple[SummaryRow, SummaryRow, bool]:
    """The most accurate actor run, and the cheapest static network at least as accurate
    (``matched`` True), else the most accurate static network (``matched`` False)."""
    best = max(actor, key=lambda r: (r.accuracy, -r.mean_macs))
    good = [r for r in static if r.accuracy >= best.accuracy]
    if good:
        return best, min(good, key=lambda r: r.mean_macs), True
    return best, max(static, key=lambda r: (r.accuracy, -r.mean_macs)), False


TIMING_PASSES, TIMING_SECONDS = 5, 5.0


def _throughput_section(suites: list[Suite], rows: dict[str, list[SummaryRow]],
                        data_root: str | None, cache_dir: str | None) -> str:
    from routec.report import throughput
    from routec.train.runs import load_run

    by_name = {s.name: s for s in suites}
    lines = ["## Routed inference on the clock\n",
             "The most accurate actor run against the cheapest static network at least as "
             "accurate (or, if none is, the most accurate static network), timed round-robin "
             "in one process over the test split; the median of at least "
             f"{TIMING_PASSES} passes and {TIMING_SECONDS:g} s per network. Relative columns: the "
             "actor's value over the static network's (throughput above 1 and MACs below 1 "
             "favour routing); in brackets, the range of the ratio over pairs of passes run "
             "back to back.\n",
             "| data | network | test accuracy | mean MACs | images/s | relative throughput "
             "| relative MACs |",
             "|---|---|---:|---:|---:|---:|---:|"]
    any_pair = False
    threads = batch = 0
    passes: list[str] = []
    for name, s in by_name.items():
        static_suite = name.removesuffix("-actor") + "-static"
        if not name.endswith("-actor") or not rows.get(name) or not rows.get(static_suite):
            continue
        actor, static, matched = pick_throughput_pair(rows[name], rows[static_suite])
        runs = {"actor": (s, actor), "static": (by_name[static_suite], static)}
        nets, images = {}, None
        for key, (suite, row) in runs.items():
            info = next(i for i in suite.runs if i.name == row.run)
            _, net, data, _ = load_run(info.path, data_root, cache_dir)
            nets[key] = (net, None)
            images = data.test.images
        assert images is not None
        t = throughput.measure(nets, images, repeats=TIMING_PASSES, min_seconds=TIMING_SECONDS)
        threads, batch = t["actor"].threads, t["actor"].batch
        passes.append(f"{s.data} {len(t['actor'].passes)}")
        any_pair = True
        speed = t["actor"].images_per_second / t["static"].images_per_second
        # pass i of each network ran back to back: their ratios show the machine's noise
        paired = sorted(b / a for a, b in zip(t["actor"].passes, t["static"].passes))
        macs = actor.mean_macs / static.mean_macs
        note = "" if matched else " (no static network is as accurate)"
        relative = {"actor": (f"{speed:.2f} ({paired[0]:.2f}–{paired[-1]:.2f})", f"{macs:.2f}"),
                    "static": ("1", "1")}
        for key, row in (("actor", actor), ("static", static)):
            label = f"{name}/{row.run}" if key == "actor" else f"{static_suite}/{row.run}{note}"
            lines.append(f"| {s.data} | {label} | {row.accuracy:.4f} | {row.mean_macs:,.0f} | "
                         f"{t[key].images_per_second:,.0f} | {' | '.join(relative[key])} |")
    if not any_pair:
        return "\n".join(lines[:1]) + "\nNo dataset has both an actor and a static suite.\n"
    lines.append(f"\nMeasured with {threads} torch thread(s), batch {batch}, on the machine "
                 f"that regenerated this page; passes per network: {', '.join(passes)}.")
    return "\n".join(lines) + "\n"


def _fig5(group: list[Suite], rows: dict[str, list[SummaryRow]], path: Path, data: str) -> None:
    from routec.report.cli import curve_points
    from routec.report import plots

    infos = [i for s in group for i in s.runs]
    all_rows = [r for s in group for r in rows[s.name]]
    plots.accuracy_vs_macs(curve_points(infos, all_rows), path,
                           title=f"{data}: test accuracy vs mean MACs (routed inference)")


def _suite_section(s: Suite, rows: list[SummaryRow], ev: Evidence) -> str:
    secs = ev.seconds.get(s.name, {})
    total = sum(secs.values())
    text = [f"### {s.name}\n", markdown_table(rows, "test")]
    if secs:
        text.append(f"Training time of the finished runs: {total / 3600:.2f} h over {len(secs)} "
                    f"run(s) (median {sorted(secs.values())[len(secs) // 2] / 60:.1f} min per "
                    "run).\n")
    falls = [(i.name, f) for i in s.runs if (f := accuracy_fall(i.path))]
    if falls:
        text.append(f"Validation accuracy fell by {COLLAPSE * 100:.0f} pp or more from its peak "
                    "during training (peak at iteration → last logged): " + "; ".join(
                        f"{n} {peak:.3f} at {it} → {last:.3f}" for n, (peak, it, last) in falls)
                    + ".\n")
    if s.missing:
        text.append(f"Not yet checkpointed: {', '.join(s.missing)}.\n")
    return "\n".join(text)


def _heatmap(run_dir: Path) -> Any:
    """Validation fractions when logged at ≥ 10 points, else the finer training windows."""
    from routec.report import plots

    val = plots.heatmap_data(run_dir, source="val")
    return val if len(val.iterations) >= 10 else plots.heatmap_data(run_dir, source="train")


def _heatmap_source(panels: list[tuple[str, Any]]) -> str:
    kinds = {h.source for _, h in panels}
    return ("fractions of validation examples at each evaluation" if kinds == {"val"} else
            "fractions of training examples per logged window of iterations, under the "
            "argmax policy")


def _fig6(runs: list[RunInfo], suite: str, data: str, figs: Path, rel: str,
          data_root: str | None, cache_dir: str | None) -> tuple[str, list[Path]]:
    from routec.report.dataflow import measure_run
    from routec.report.draw import diagram, render

    colourings = ("accuracy", "origin") if data in ("hybrid", "synthetic") else (
        "accuracy", "class")
    lines = [f"Fig. 6-style: measured dataflow of each finished {suite} network on the test "
             "split (circle area: fraction classified there; edge width: traffic), coloured "
             f"by {' and by '.join(colourings)}.\n"]
    files = []
    for info in runs:
        flow, g = measure_run(info.path, split="test", data_root=data_root, cache_dir=cache_dir)
        lines.append(f"**{info.name}**\n")
        for by in colourings:
            p = figs / f"fig6_{suite}_{info.name}_{by}.svg"
            render(diagram(g, flow, by=by, title=f"{suite}/{info.name}"), p)
            files.append(p)
            lines.append(f"![{info.name} by {by}]({rel}/{p.name})\n")
    return "\n".join(lines), files


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
