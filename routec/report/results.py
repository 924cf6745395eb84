"""The reproduction page: every recorded suite, as one document.

``routec report results results/records -o docs/results.md`` reads run
records (``RECORDS/SUITE/RUN``, as ``routec experiment`` and ``routec report
harvest`` write them; see :mod:`routec.experiment.records`) and writes the
Markdown page plus its figures beside it (``docs/results/``): setup (machine,
budget, exact commands), the paper's claims of §5–6 with verdicts, wall-clock
throughput of routed inference, and the counterparts of the paper's Figs. 5–10
with per-suite tables. Numbers come only from the records (no weights, no run
directories), and throughput only from the measurements stored beside them in
``throughput.json`` (``routec report throughput``), so the page is the same
wherever it is regenerated.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routec.errors import RoutecError, RunError
from routec.experiment.suites import CPU_ITERATIONS, FIGURES, SUITES, split_budget
from routec.report.claims import CLAIMS, PENDING, Evidence
from routec.report.suites import (RECORDS, Suite, find_failures, find_suites,  # noqa: F401
                                  machine_text)
from routec.report.summary import RunInfo, SummaryRow, markdown_table, rows_for
from routec.report.throughput import MAX_IMAGES, TIMING_PASSES, TIMING_SECONDS
from routec.train.run_dir import RunDir, training_seconds  # noqa: F401

Progress = Callable[[str], None]
PAGE = "docs/results.md"
THROUGHPUT = "throughput.json"


class RecordEvaluations:
    """A record's stored evaluations, answering as the checkpoint evaluator does."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def result(self, split: str, k: float | None) -> dict[str, Any]:
        for ev in self.record["evaluations"]:
            if ev["k_cpt"] == k:
                return {"iteration": self.record["iteration"],
                        "finished": self.record["finished"], "result": ev["result"]}
        raise RunError(f"{self.record['suite']}/{self.record['run']}: the record has no "
                       f"evaluation at k_cpt {k}")


def has_records(root: Path) -> bool:
    return any(Path(root).glob("*/*/record.json"))


# -- training facts from the logs ------------------------------------------------------------
def early_late_macs(run_dir: Path) -> tuple[float, float] | None:
    """Mean training-window MACs over the first and the last 10% of logged windows."""
    recs = [r for r in RunDir(run_dir).metric_lines()
            if "event" not in r and "train_mean_macs" in r]
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
    vals = [(int(r["iteration"]), float(r["val_accuracy"])) for r in RunDir(run_dir).metric_lines()
            if "event" not in r and "val_accuracy" in r and "iteration" in r]
    if not vals:
        return None
    peak_it, peak = max(vals, key=lambda v: (v[1], -v[0]))
    last = vals[-1][1]
    return (peak, peak_it, last) if peak - last >= COLLAPSE else None


def machines(suites: list[Suite], diverged: dict[str, Path] | None = None
             ) -> tuple[dict[str, list[str]], list[str]]:
    """Machine description → runs trained (partly) on it; runs with no machine logged.
    ``diverged`` adds the record folders (by "suite/run") of runs that diverged."""
    folders = {f"{s.name}/{info.name}": info.path for s in suites for info in s.runs}
    folders.update(diverged or {})
    seen: dict[str, list[str]] = {}
    unknown = []
    for name, folder in folders.items():
        descs = RunDir(folder).machines()
        if not descs:
            unknown.append(name)
        for d in descs:
            runs = seen.setdefault(machine_text(d), [])
            if name not in runs:
                runs.append(name)
    return seen, unknown


# -- the document ---------------------------------------------------------------------------
def build_results(root: Path, out_md: Path, *, fmt: str = "png", figures: bool = True,
                  command: str = "", progress: Progress | None = None) -> list[Path]:
    """Write ``out_md`` and its figures folder from the records under ``root``.

    Returns the files written. With ``figures`` False the page is written with its
    figure links but no figure is drawn (the Markdown is the same either way).
    """
    say = progress or (lambda _msg: None)
    out_md = Path(out_md)
    if out_md.suffix != ".md":
        raise RoutecError(f"{out_md}: the results page is Markdown; name it *.md")
    figs = out_md.parent / out_md.stem
    if figures:
        try:
            figs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RoutecError(f"{figs}: cannot create the figures folder "
                              f"({err.strerror})") from None
    page = Page(find_suites(root), Path(root), figs, figs.name, fmt, figures, say)
    text = page.render(command)
    from routec.report.draw import write_bytes

    write_bytes(out_md, text.encode("utf-8"))
    if figures:
        for old in figs.glob("fig*_*"):  # figures of runs no longer on the page
            if old not in page.written:
                old.unlink()
    return [out_md, *page.written]


class Page:
    """The page's parts, each from the records alone."""

    def __init__(self, suites: list[Suite], root: Path, figs: Path, rel: str, fmt: str,
                 draw: bool, say: Progress) -> None:
        self.suites, self.root, self.figs, self.rel = suites, root, figs, rel
        self.fmt, self.draw, self.say = fmt, draw, say
        self.by_name = {s.name: s for s in suites}
        self.failures = find_failures(root)  # also of suites with no evaluated run
        self.written: list[Path] = []
        self.rows: dict[str, list[SummaryRow]] = {
            s.name: [r for info in s.runs
                     for r in rows_for(info, RecordEvaluations(s.records[info.name]), "test")]
            for s in suites}
        self.evidence = Evidence(
            rows=self.rows,
            early_late_macs={s.name: {i.name: el for i in s.runs
                                      if (el := early_late_macs(i.path)) is not None}
                             for s in suites if s.routed},
            seconds={s.name: {i.name: RunDir(i.path).training_seconds() for i in s.runs}
                     for s in suites},
            records={s.name: s.records for s in suites},
            diverged=self.failures,
            expected={name: list(runs) for name, runs in SUITES.items()})

    def figure(self, name: str, make: Callable[[Path], None]) -> str:
        """Draw one figure (unless drawing is off); returns its link target."""
        p = self.figs / name
        if self.draw:
            make(p)
            self.written.append(p)
        return f"{self.rel}/{name}"

    def render(self, command: str) -> str:
        from routec.report.seeds import render_seeds

        parts = [self.intro(command), self.claims(), render_seeds(self.rows),
                 self.throughput(), self.clock()]
        parts += self.figure_sections()
        parts.append("## Every recorded run\n")
        for s in self.suites:
            parts.append(self.suite_table(s))
        return "\n".join(parts)

    # -- setup ---------------------------------------------------------------------------
    def intro(self, command: str) -> str:
        suites = self.suites
        budgets: dict[tuple[int, int], list[str]] = {}  # (iterations, batch) → suites
        for s in suites:
            for b in sorted({(i.config.iterations, i.config.batch) for i in s.runs}):
                budgets.setdefault(b, []).append(s.name)
        common = max(budgets, key=lambda b: len(budgets[b]))
        seen, unknown = machines(suites, {f"{name}/{run}": self.root / name / run
                                          for name, runs in self.failures.items()
                                          for run in runs})
        sources: dict[str, set[str]] = {}  # where each dataset's files came from
        for s in suites:
            for rec in s.records.values():
                if rec.get("data_source"):
                    sources.setdefault(s.data, set()).add(str(rec["data_source"]))
        lines = [
            "# Reproducing McGill & Perona (2017) at a CPU budget\n",
            "This page is generated from the run records committed in "
            f"[`{RECORDS}`](../{RECORDS}) (one folder per finished run: its effective config, "
            "training log, and final routed evaluation with per-exit, per-class and per-node "
            "counts; no weights); do not edit it by hand. Regenerate it anywhere with:\n",
            f"```\n{command or f'routec report results {RECORDS} -o {PAGE}'}\n```\n",
            "## Setup\n",
            f"- Budget: {common[0]:,} iterations of batch {common[1]} per network"
            + "".join(f"; {n:,} × {b} for {', '.join(names)}"
                      for (n, b), names in sorted(budgets.items()) if (n, b) != common)
            + " (the paper trains 80,000 × 128; `routec experiment SUITE --full` runs that).",
            *_schedules(suites),
            "- Accuracy: test split, routed inference with argmax routing; mean MACs: counted "
            "by routed inference (the multiply-accumulates each test example's own path runs).",
        ]
        ids = {machine: f"M{i}" for i, machine in enumerate(seen, start=1)}
        for machine, runs in seen.items():
            lines.append(f"- Machine {ids[machine]}: {machine} ({len(runs)} runs).")
        if unknown:
            lines.append(f"- Machine not logged for: {', '.join(unknown)}.")
        for data, srcs in sources.items():
            for src in sorted(srcs):
                lines.append(f"- Data ({data}): {src}.")
        lines += ["", "### Commands\n",
                  "Every suite, the exact command that trains it (the data root set by "
                  "`ROUTEC_DATA`; each finished run's record is written to "
                  f"`{RECORDS}/SUITE/RUN`), and what the records hold:\n",
                  "| suite | command | budget (iterations × batch) | recorded runs | "
                  "trained on |", "|---|---|---|---|---|"]
        for name, runs in SUITES.items():
            s, failed = self.by_name.get(name), self.failures.get(name, {})
            trained = [(i.name, i.config.iterations, i.config.batch) for i in s.runs] if s \
                else []  # (run, iterations, batch) of every run that trained, diverged or not
            trained += [(run, f["config"]["iterations"], f["config"]["batch"])
                        for run, f in failed.items()]
            # the command names the suite's budget; a run may train a multiple of it
            budgets = sorted({(n // split_budget(runs[run])[1], b) for run, n, b in trained}) \
                or [(CPU_ITERATIONS, 128)]
            cmd = "<br>".join(f"`routec experiment {name} --iterations {n}"
                              + ("" if b == 128 else f" --batch {b}") + " --out runs`"
                              for n, b in budgets)
            times = max(split_budget(r)[1] for r in runs.values())
            budget = ", ".join(sorted({f"{n:,} × {b}" for _, n, b in trained})) or \
                f"{CPU_ITERATIONS * times:,} × 128 (planned)"
            have = f"{len(s.runs) if s else 0} of {len(runs)}" if trained else "none yet"
            if failed:
                have += f", {len(failed)} diverged ({', '.join(failed)})"
            missing = s.missing if s else [r for r in runs if r not in failed]
            if trained and missing:
                have += f" (not yet: {', '.join(missing)})"
            where = ", ".join(ids[m] for m, rs in seen.items()
                              if any(r.split("/", 1)[0] == name for r in rs)) if trained \
                else "—"
            lines.append(f"| {name} | {cmd} | {budget} | {have} | {where} |")
        lines += ["", "Records of runs trained before records were written automatically "
                  f"come from `routec report harvest runs -o {RECORDS}`; the throughput "
                  f"table from `routec report throughput {RECORDS}` (stored in "
                  f"`{RECORDS}/{THROUGHPUT}`).\n"]
        return "\n".join(lines)

    # -- claims --------------------------------------------------------------------------
    def claims(self) -> str:
        lines = ["## The paper's claims (§5–6), side by side with what we measured\n",
                 "A verdict is reached only from recorded runs; a claim whose suites have no "
                 "records yet says *pending* and which suites it waits for (that is not a "
                 "result). A run whose training diverged is an outcome with no evaluation: "
                 "its suite counts as complete, the rule is applied to the suite's evaluated "
                 "runs, and the measured text names the runs left out. Claims that order "
                 "suites by their margin also give, as context the rules do not use, each "
                 "suite's peak accuracy and its mean margin against the upper hull of static "
                 "mixtures (the static side may split images between two of its networks, "
                 "so a sparse or noisy static grid cannot flatter a point just above a cheap "
                 "network).\n",
                 "| § | claim | measured | verdict | rule |", "|---|---|---|---|---|"]
        for c in CLAIMS:
            f = c.finding(self.evidence)
            verdict = f.verdict if f.verdict.startswith(PENDING) else f"**{f.verdict}**"
            lines.append(f"| {c.section} | {c.statement} | {f.measured} | {verdict} | "
                         f"{c.rule} |")
        return "\n".join(lines) + "\n"

    # -- throughput ----------------------------------------------------------------------
    def throughput(self) -> str:
        from routec.report.throughput import load_measurements, pairs, render_rows

        pick = pairs(self.evidence.rows)
        lines = ["## Routed inference on the clock\n"]
        if not pick:
            return "\n".join(lines) + "\nNo dataset has both an actor and a static suite " \
                "recorded yet.\n"
        stored = load_measurements(self.root / THROUGHPUT)
        lines.append(render_rows(pick, stored, self.records_of))
        return "\n".join(lines) + "\n"

    # -- routing priced in measured time --------------------------------------------------
    def clock(self) -> str:
        from routec.report.clock import CLOCK, clock_groups, load_clock, render_clock

        groups = clock_groups({s.name: [i.config.model_dump() for i in s.runs]
                               for s in self.suites}, {s.name: s.data for s in self.suites})
        if not groups:
            return ""
        lines = ["## Routing priced in measured time\n",
                 "Beyond the paper: actors trained with `--cost latency` pay k_cpt (per "
                 "millisecond) for the seconds their path takes according to a cost table "
                 "measured by `routec profile`, instead of k_cpt × MACs. Both grids are "
                 "judged on the clock: each network is timed with its recorded test exit "
                 "mix (no weights needed) and plotted at its measured time per image. The "
                 f"numbers come from `routec report clock {RECORDS}` (stored in "
                 f"`{RECORDS}/{CLOCK}`).\n"]
        stored = load_clock(self.root / CLOCK)
        for g in groups:
            lines.append(render_clock(g, self.rows, stored, self.figure))
        return "\n".join(lines)

    def records_of(self, suite: str, run: str) -> dict[str, Any]:
        return self.by_name[suite].records[run]

    # -- figures -------------------------------------------------------------------------
    def figure_sections(self) -> list[str]:
        out = []
        for fig in FIGURES:
            out.append(f"## {fig.title}\n\n{fig.caption}\n")
            if fig.kind == "curves":
                out.extend(self.curve_panels(fig))
            elif fig.kind == "dataflow":
                out.extend(self.dataflow_panels(fig))
            elif fig.kind == "heatmaps":
                out.extend(self.heatmap_panels(fig))
        return out

    def _pending(self, suites: list[str]) -> str:
        return (f"*Pending: suite(s) {', '.join(suites)} not yet run (no records); this "
                "panel is drawn once they are.*\n")

    def curve_panels(self, fig: Any) -> list[str]:
        from routec.report import plots
        from routec.report.curves import curve_points

        out = []
        for panel in fig.panels:
            have = [self.by_name[n] for n in panel.suites if n in self.by_name]
            missing = [n for n in panel.suites if n not in self.by_name]
            out.append(f"### {panel.title}\n")
            if not have:
                out.append(self._pending(missing))
                continue
            infos = [i for s in have for i in s.runs]
            rows = [r for s in have for r in self.rows[s.name]]
            confidence = confidence_points(have)
            if confidence:  # a multi-exit network's routers are untrained: drop its argmax
                rows = [r for r in rows if r.strategy != "multi-exit"]
            points = curve_points(infos, rows) + confidence
            link = self.figure(f"{fig.key}_{panel.key}.{self.fmt}",
                               lambda p: plots.accuracy_vs_macs(
                                   points, p, title=f"{panel.title}: test accuracy vs mean "
                                   "MACs (routed inference)"))
            out.append(f"![{fig.key} {panel.title}]({link})\n")
            if confidence:
                out.append(equal_macs_table(points))
                if any(not p.curve.startswith("static") and p not in confidence
                       for p in points):
                    examples = min(ev["result"]["examples"] for s in have
                                   for rec in s.records.values()
                                   for ev in rec.get("confidence", []))
                    out.append(against_confidence(points, confidence, examples))
            if missing:
                out.append(f"Not yet on it (no records): {', '.join(missing)}.\n")
        if fig.timing:
            from routec.report.timed import read_timing, timing_section

            timing = read_timing(self.root / fig.timing)
            if timing is not None:
                out.append(timing_section(timing, fig.title, self.figure,
                                          f"{fig.key}_time.{self.fmt}"))
        return out

    def heatmap_panels(self, fig: Any) -> list[str]:
        from routec.experiment.suites import SEED_SUITES
        from routec.report import plots

        out = []
        for s in self.suites:
            if not s.routed or s.name in SEED_SUITES:  # seed twins add no new picture
                continue
            panels = [(i.name, _heatmap(i.path)) for i in s.runs]
            panels = [(n, h) for n, h in panels if h.iterations]
            if not panels:
                continue
            link = self.figure(f"fig8_{s.name}.{self.fmt}", lambda p: plots.dataflow_heatmaps(
                panels, p, title=f"{s.name}: fraction of examples classified at each exit "
                "over training"))
            folded = "" if all(len(h.exits) <= plots.FOLD_EXITS for _, h in panels) else (
                f" In each run, the exits that never take {plots.BUSY:.0%} at a logged point "
                "are summed into one row.")
            out.append(f"### {s.name}\n\nFrom {_heatmap_source(panels)}.{folded}\n\n"
                       f"![Fig. 8: {s.name}]({link})\n")
        if not out:
            out.append(self._pending(["hybrid-actor"]))
        return out

    def dataflow_panels(self, fig: Any) -> list[str]:
        out = []
        for panel in fig.panels:
            name = panel.suites[0]
            out.append(f"### {panel.title}\n")
            s = self.by_name.get(name)
            if s is None:
                out.append(self._pending([name]))
                continue
            self.say(f"drawing dataflow of {name}")
            out.append(self.fig6(s))
        return out

    def fig6(self, s: Suite) -> str:
        from routec.report.draw import diagram, render

        colourings = ("accuracy", "origin") if s.data in ("hybrid", "synthetic") else (
            "accuracy", "class")
        lines = [f"Measured dataflow of each recorded {s.name} network on the test split "
                 "(circle area: fraction classified there; edge width: traffic), coloured "
                 f"by {' and by '.join(colourings)}.\n"]
        for info in s.runs:
            rec = s.records[info.name]
            flow, g = record_dataflow(info, rec)
            lines.append(f"**{info.name}**\n")
            for by in colourings:
                link = self.figure(f"fig6_{s.name}_{info.name}_{by}.svg", lambda p: render(
                    diagram(g, flow, by=by, title=f"{s.name}/{info.name}"), p))
                lines.append(f"![{info.name} by {by}]({link})\n")
        return "\n".join(lines)

    # -- tables --------------------------------------------------------------------------
    def suite_table(self, s: Suite) -> str:
        secs = self.evidence.seconds.get(s.name, {})
        text = [f"### {s.name}\n", markdown_table(self.rows[s.name], "test")]
        if secs:
            total = sum(secs.values())
            text.append(f"Training time: {total / 3600:.2f} h over {len(secs)} run(s) (median "
                        f"{sorted(secs.values())[len(secs) // 2] / 60:.1f} min per run).\n")
        falls = [(i.name, f) for i in s.runs if (f := accuracy_fall(i.path))]
        if falls:
            text.append(f"Validation accuracy fell by {COLLAPSE * 100:.0f} pp or more from its "
                        "peak during training (peak at iteration → last logged): " + "; ".join(
                            f"{n} {peak:.3f} at {it} → {last:.3f}"
                            for n, (peak, it, last) in falls) + ".\n")
        if s.diverged:
            text.append("Diverged, so not evaluated (training stopped at its last good "
                        "checkpoint; training is deterministic, so it would diverge again): "
                        + "; ".join(f"{run}: {diverged_text(f)}"
                                    for run, f in s.diverged.items()) + ".\n")
        if s.missing:
            text.append(f"Not yet recorded: {', '.join(s.missing)}.\n")
        return "\n".join(text)


def diverged_text(failure: dict[str, Any]) -> str:
    """How a run diverged, in a few words, from its failure record."""
    good = failure.get("last_good")
    return failure["cause"] + (f" (last good checkpoint: iteration {good})"
                               if good is not None else "")


def confidence_points(suites: list[Suite]) -> list[Any]:
    """One point per threshold of every multi-exit record's confidence evaluations."""
    from routec.report.plots import CurvePoint

    points = []
    for s in suites:
        for run, rec in s.records.items():
            for ev in rec.get("confidence", []):
                r = ev["result"]
                points.append(CurvePoint("multi-exit + confidence", r["mean_macs"],
                                         r["accuracy"], f"{ev['threshold']:g}", run))
    return points


def static_accuracy_at(static: list[Any], macs: float) -> float | None:
    """The best accuracy static networks reach at mean ``macs``, mixing any two."""
    from routec.report.plots import best_mixture_at

    return best_mixture_at(static, macs)


def equal_macs_table(points: list[Any]) -> str:
    """Each routed point beside the static curve at the same mean MACs."""
    static = [p for p in points if p.curve.startswith("static")]
    lines = ["At equal MACs: each routed network against the best the static networks reach "
             "at its mean MACs, mixing two of them if that is better (the upper hull of the "
             "lines between pairs; '-' outside their range).\n", "| network | setting | mean MACs | test accuracy | static at "
             "these MACs | difference |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for p in sorted((p for p in points if p not in static),
                    key=lambda p: (p.curve, p.mean_macs)):
        ref = static_accuracy_at(static, p.mean_macs)
        setting = (f"threshold {p.label}" if "confidence" in p.curve else f"k_cpt {p.label}")
        lines.append(f"| {p.curve} | {setting} | {p.mean_macs / 1e6:.2f} M | {p.accuracy:.4f} "
                     f"| {'-' if ref is None else f'{ref:.4f}'} | "
                     f"{'-' if ref is None else f'{(p.accuracy - ref) * 100:+.1f} pp'} |")
    routed = [p for p in points if p not in static]
    if static and routed:
        top_s = max(static, key=lambda p: (p.accuracy, -p.mean_macs))
        top_r = max(routed, key=lambda p: (p.accuracy, -p.mean_macs))
        beats = sum(1 for p in routed if (ref := static_accuracy_at(static, p.mean_macs))
                    is not None and p.accuracy > ref)
        lines.append(
            f"\n{beats} of {len(routed)} routed points are more accurate than the static "
            f"networks at their MACs. The most accurate routed point ({top_r.curve}, "
            f"{'threshold' if 'confidence' in top_r.curve else 'k_cpt'} {top_r.label}) "
            f"reaches {top_r.accuracy:.4f} at {top_r.mean_macs / 1e6:.2f} M MACs; the most "
            f"accurate static network ({top_s.label}) {top_s.accuracy:.4f} at "
            f"{top_s.mean_macs / 1e6:.2f} M ({top_s.mean_macs / top_r.mean_macs:.2f}x the "
            "routed point's MACs).")
    return "\n".join(lines) + "\n"


def against_confidence(points: list[Any], confidence: list[Any], examples: int) -> str:
    """Learned routing against confidence thresholds on the same backbone, at equal mean
    MACs: each routed network beside the threshold curve (mixing two thresholds where
    that is better, as for the static curve), then a plain verdict. The yardstick for a
    difference is the test split's own sampling error (a binomial standard error per
    point), since each point is one training seed."""
    from routec.report.plots import best_mixture_at

    learned = sorted((p for p in points if not p.curve.startswith("static")
                      and p not in confidence), key=lambda p: (p.curve, p.mean_macs))
    lines = ["Learned routing against confidence thresholds at equal MACs: each routed "
             "network beside the best the thresholded multi-exit network reaches at its "
             "mean MACs ('-' outside the thresholds' range).\n",
             "| network | k_cpt | mean MACs | test accuracy | thresholds at these MACs | "
             "difference |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    diffs = []
    for p in learned:
        ref = best_mixture_at(confidence, p.mean_macs)
        if ref is not None:
            diffs.append((p, p.accuracy - ref))
        lines.append(f"| {p.curve} | {p.label} | {p.mean_macs / 1e6:.2f} M | {p.accuracy:.4f} | "
                     f"{'-' if ref is None else f'{ref:.4f}'} | "
                     f"{'-' if ref is None else f'{(p.accuracy - ref) * 100:+.2f} pp'} |")
    if diffs:
        acc = sum(p.accuracy for p, _ in diffs) / len(diffs)
        n = examples
        se = (acc * (1 - acc) / n) ** 0.5 * 100  # pp, one point's sampling error
        ahead = [d for _, d in diffs if d * 100 > 2 * se]
        behind = [d for _, d in diffs if d * 100 < -2 * se]
        mean = sum(d for _, d in diffs) / len(diffs) * 100
        if len(ahead) > len(diffs) / 2 and not behind:
            verdict = "yes: learned routing is more accurate than confidence thresholds"
        elif len(behind) > len(diffs) / 2 and not ahead:
            verdict = "no: confidence thresholds are more accurate than learned routing"
        elif not ahead and not behind:
            verdict = ("no difference that the test split can resolve: learned routing "
                       "and confidence thresholds are as accurate")
        else:
            verdict = "mixed: learned routing is ahead at some costs and behind at others"
        lines.append(
            f"\n**Verdict, at equal MACs: {verdict}.** Over the {len(diffs)} routed "
            f"network{'s' if len(diffs) != 1 else ''} within the thresholds' range the difference is {mean:+.2f} pp on average "
            f"({min(d for _, d in diffs) * 100:+.2f} to {max(d for _, d in diffs) * 100:+.2f}); "
            f"{len(ahead)} are ahead and {len(behind)} behind by more than twice one point's "
            f"sampling error ({se:.2f} pp on {n:,} test images).")
    return "\n".join(lines) + "\n"


def record_dataflow(info: RunInfo, rec: dict[str, Any], k: float | None = None
                    ) -> tuple[Any, Any]:
    """(Dataflow, RoutingGraph) of a record, without weights: the graph from its spec."""
    from routec.graph import build_graph, static_prefix
    from routec.parse import parse_spec
    from routec.report.dataflow import DEFAULT_DYNAMIC_KCPT, Dataflow

    cfg = info.config
    if cfg.dynamic and k is None:
        k = DEFAULT_DYNAMIC_KCPT
    spec = parse_spec(RunDir(info.path).spec_file.read_text(encoding="utf-8"), rec["spec_label"])
    if cfg.static_columns is not None:
        spec = static_prefix(spec, cfg.static_columns)
    g = build_graph(spec, classes=len(rec["classes"]), dynamic_kcpt=cfg.dynamic)
    if [n.id for n in g.nodes] != rec["nodes"]:
        raise RunError(f"{info.path}: the record's spec does not build the recorded network")
    ev = next(e for e in rec["evaluations"] if e["k_cpt"] == k)
    d = ev["dataflow"]
    flow = Dataflow(
        network=g.name, examples=ev["result"]["examples"], nodes=[n.id for n in g.nodes],
        kinds=[n.kind for n in g.nodes], parent=[n.parent for n in g.nodes],
        way=[n.way for n in g.nodes], leaves=list(g.leaves), node_count=d["node_count"],
        exit_count=d["exit_count"], exit_correct=d["exit_correct"],
        exit_origin=d["exit_origin"], exit_class=d["exit_class"],
        mean_macs=ev["result"]["mean_macs"], classes=list(rec["classes"]), k_cpt=k,
        split=rec["split"], data=cfg.data, source=f"{rec['suite']}/{rec['run']}")
    return flow, g


def _schedules(suites: list[Suite]) -> list[str]:
    """The learning-rate and temperature schedules, and where this budget leaves them."""
    from routec.train.schedules import halving

    seen: dict[str, list[str]] = {}
    for s in suites:
        for i in s.runs:
            c = i.config
            text = (f"SGD with momentum {c.momentum:g}, lr {c.lr:g} halving every "
                    f"{c.lr_halflife:g} iterations (ends at "
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


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure_records(root: Path, engines: tuple[str, ...] | None = None, *,
                    images: int = MAX_IMAGES, min_seconds: float = TIMING_SECONDS,
                    repeats: int = TIMING_PASSES, say: Callable[[str], None] | None = None
                    ) -> dict[str, Any]:
    """Time every pair the page shows, for each engine (default: the reference engine,
    ``net.route`` itself); the contents of throughput.json."""
    import torch

    from routec.engine import registry

    engines = engines or (registry.reference(),)

    from routec.engine.timing import measure_throughput
    from routec.report.throughput import pairs, timed_network, timing_images
    from routec.train.machine import describe

    say = say or (lambda _m: None)
    suites = find_suites(root)
    page = Page(suites, Path(root), Path(root), "", "png", False, say)
    machine = machine_text(describe(torch.device("cpu")))
    out: list[dict[str, Any]] = []
    for p in pairs(page.rows):
        for engine in engines:
            say(f"timing {p.key[0]} against {p.key[1]} ({engine})")
            timed, nets = {}, {}
            for key, suite, row in (("actor", p.actor_suite, p.actor),
                                    ("static", p.static_suite, p.static)):
                rec = page.records_of(suite, row.run)
                timed[key] = timed_network(Path(root) / suite / row.run, rec, engine, images)
                nets[key] = (timed[key].runner,
                             4e-9 if rec["config"]["k_cpt"] == "dynamic" else None)
            x = timing_images(list(timed.values()))
            n = len(x)
            mixes = {key: t.exit_count for key, t in timed.items()}
            t = measure_throughput(nets, x, repeats=repeats, min_seconds=min_seconds,
                                   exits={key: v.exits[:n] for key, v in timed.items()})
            out.append({"engine": engine, "images": n, "batch": t["actor"].batch,
                        "threads": t["actor"].threads, "machine": machine, **{
                            key: {"run": run, "exit_count": mixes[key],
                                  "images_per_second": t[key].images_per_second,
                                  "passes": t[key].passes}
                            for key, run in zip(("actor", "static"), p.key)}})
    return {"format": 1, "pairs": out}
