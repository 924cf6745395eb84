"""Routing priced in measured time, judged on the clock.

An actor trained with ``--cost latency`` pays for the seconds its path takes (from a
cost table measured by ``routec profile``), not for its MACs. Whether that buys
anything shows only on a clock: this module times every network of a
time-priced suite, of its MAC-priced counterpart (the same suite name without
``-latency``) and of the static suite of the same data, all in one process,
round-robin, in the engine, batch and thread count the cost table was measured
with, and asks: at equal measured time per image, is the time-priced network more
accurate?

As for the throughput table (:mod:`routec.report.throughput`), timing needs no
weights: each network is built from its record's spec and images are sent along
its exits in the proportions its record measured on the test split. The numbers
are stored in ``RECORDS/clock.json`` (``routec report clock RECORDS``) and the
page is rendered from that file.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routec.report.plots import CurvePoint, best_mixture_at
from routec.report.summary import SummaryRow

CLOCK = "clock.json"
DEFAULT_BATCH, DEFAULT_THREADS = 256, 1  # the engine: routec.engine.registry.profile_default
CURVES = {"static": "static (n columns)", "macs": "actor, priced in MACs",
          "latency": "actor, priced in measured time"}


@dataclass(frozen=True)
class ClockGroup:
    """A time-priced suite and what it is judged against (None where not recorded)."""

    latency: str
    macs: str | None
    static: str | None

    @property
    def suites(self) -> list[str]:
        return [s for s in (self.static, self.macs, self.latency) if s is not None]


def clock_groups(configs: dict[str, list[dict[str, Any]]], data: dict[str, str]
                 ) -> list[ClockGroup]:
    """Groups from each recorded suite's run configs and dataset: a suite is time-priced
    when its runs were trained with ``cost = "latency"``."""
    out = []
    for name, cfgs in configs.items():
        if not cfgs or any(c.get("cost") != "latency" for c in cfgs):
            continue
        macs = name.replace("-latency", "", 1)
        static = f"{data[name]}-static"
        out.append(ClockGroup(name, macs if macs != name and macs in configs else None,
                              static if static in configs else None))
    return out


def _table_of(configs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cost table the suite trained with, when the file is at hand."""
    from routec.engine.profile import load_cost_table
    from routec.errors import RoutecError

    paths = {c.get("cost_table") for c in configs} - {None}
    if len(paths) != 1:
        return None
    try:
        return load_cost_table(str(paths.pop()))
    except RoutecError:
        return None


# -- measuring ------------------------------------------------------------------------------
def measure_clock(root: Path, *, engine: str | None = None, batch: int | None = None,
                  threads: int | None = None, images: int = 2000, min_seconds: float = 5.0,
                  repeats: int = 5, say: Callable[[str], None] | None = None
                  ) -> dict[str, Any]:
    """Time every network of every clock group; the contents of clock.json.

    Engine, batch and threads default to those of the cost table the time-priced
    suite trained with (the time it was taught is the time it is judged on)."""
    import torch

    from routec.engine.profile import path_seconds
    from routec.report.suites import find_suites, machine_text
    from routec.engine.timing import measure_throughput
    from routec.report.throughput import timed_network, timing_images
    from routec.train.machine import describe

    say = say or (lambda _m: None)
    by_name = {s.name: s for s in find_suites(root)}
    groups = clock_groups({n: [i.config.model_dump() for i in s.runs]
                           for n, s in by_name.items()},
                          {n: s.data for n, s in by_name.items()})
    if not groups:
        from routec.errors import RunError

        raise RunError(f"{root}: no suite trained with --cost latency has a record",
                       hint="train one, e.g. routec experiment hybrid-actor-latency")
    table = _table_of([i.config.model_dump() for i in by_name[groups[0].latency].runs])
    from routec.engine import registry

    engine = engine or (table or {}).get("engine") or registry.profile_default()
    batch = batch or int((table or {}).get("batch", DEFAULT_BATCH))
    threads = threads or int((table or {}).get("threads", DEFAULT_THREADS))
    secs = {o["node"]: float(o["seconds"]) for o in (table or {}).get("nodes", [])}
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        timed, nets, mixes, predicted = {}, {}, {}, {}
        for g in groups:
            for suite in g.suites:
                for info in by_name[suite].runs:
                    key = f"{suite}/{info.name}"
                    if key in nets:
                        continue
                    rec = by_name[suite].records[info.name]
                    timed[key] = timed_network(Path(root) / suite / info.name, rec, engine,
                                               images)
                    net, mixes[key] = timed[key].net, timed[key].exit_count
                    nets[key] = (timed[key].runner, None)
                    if table is not None and set(net.NODES) <= secs.keys():
                        # by node name: a static prefix of the profiled network has
                        # the same columns and exits, so the table prices it too
                        sub = {"nodes": [{"node": v, "seconds": secs[v]} for v in net.NODES]}
                        per_exit = path_seconds(sub, net)
                        predicted[key] = sum(c * s for c, s in zip(mixes[key], per_exit)) \
                            / sum(mixes[key])
        x = timing_images(list(timed.values()))
        n = len(x)
        say(f"timing {len(nets)} networks round-robin ({engine}, batch {batch}, "
            f"{threads} thread(s), {n} images per pass)")
        t = measure_throughput(nets, x, batch=batch, repeats=repeats, min_seconds=min_seconds,
                               exits={key: v.exits[:n] for key, v in timed.items()})
        machine = machine_text(describe(torch.device("cpu")))
    finally:
        torch.set_num_threads(before)
    return {"format": 1, "engine": engine, "batch": batch, "threads": threads, "images": n,
            "machine": machine, "runs": {
                key: {"exit_count": mixes[key],
                      "seconds_per_image": statistics.median(t[key].passes) / n,
                      "table_seconds_per_image": predicted.get(key),
                      "passes": t[key].passes} for key in nets}}


def load_clock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"runs": {}}
    return data if isinstance(data, dict) and "runs" in data else {"runs": {}}


# -- judging --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    compared: int  # time-priced points inside the MAC-priced curve's time range
    better: int  # of those, more accurate than the MAC-priced curve at equal time
    mean_pp: float  # mean accuracy difference over the compared points, in pp
    text: str


def verdict(latency: list[CurvePoint], macs: list[CurvePoint]) -> Verdict:
    """At equal measured time, is the time-priced network more accurate?"""
    diffs = [(p.accuracy - ref) * 100 for p in latency
             if (ref := best_mixture_at(macs, p.mean_macs)) is not None]
    if not diffs:
        return Verdict(0, 0, 0.0, "No verdict: no time-priced network falls inside the "
                       "measured-time range of the MAC-priced ones.")
    better, mean = sum(d > 0 for d in diffs), statistics.fmean(diffs)
    answer = ("Yes" if better > len(diffs) / 2 and mean > 0 else
              "No" if better < len(diffs) / 2 and mean < 0 else "Not clearly")
    text = (f"**{answer}.** At equal measured time per image, {better} of {len(diffs)} "
            f"time-priced networks are more accurate than the MAC-priced actors (mixing two "
            f"of them where that is better); mean difference {mean:+.2f} pp.")
    scatter = hull_scatter(macs)
    if scatter is not None:
        text += (f" For scale: the MAC-priced networks themselves lie on average "
                 f"{scatter:.2f} pp below the hull of the others (one training per k_cpt).")
    return Verdict(len(diffs), better, mean, text)


def hull_scatter(points: list[CurvePoint]) -> float | None:
    """Mean distance, in pp, of each inner point below the upper hull of the other
    points: how much one training's accuracy scatters at this budget."""
    gaps = []
    for p in points:
        others = [q for q in points if q is not p]
        ref = best_mixture_at(others, p.mean_macs)
        if ref is not None:
            gaps.append(max(0.0, ref - p.accuracy) * 100)
    return statistics.fmean(gaps) if gaps else None


# -- rendering ------------------------------------------------------------------------------
def clock_points(group: ClockGroup, rows: dict[str, list[SummaryRow]],
                 stored: dict[str, Any]) -> list[CurvePoint]:
    """One point per timed run: x is the measured milliseconds per image."""
    out = []
    for kind, suite in (("static", group.static), ("macs", group.macs),
                        ("latency", group.latency)):
        for r in rows.get(suite or "", []):
            t = stored["runs"].get(f"{suite}/{r.run}")
            if t is None:
                continue
            label = (f"n={r.static_columns}" if kind == "static" else r.k_cpt)
            out.append(CurvePoint(CURVES[kind], t["seconds_per_image"] * 1e3, r.accuracy,
                                  label, f"{suite}/{r.run}"))
    return out


def render_clock(group: ClockGroup, rows: dict[str, list[SummaryRow]],
                 stored: dict[str, Any], figure: Callable[[str, Callable[[Path], None]], str]
                 ) -> str:
    """The section's plot, table and verdict for one group."""
    from routec.report import plots

    points = clock_points(group, rows, stored)
    untimed = [f"{s}/{r.run}" for s in group.suites for r in rows.get(s, [])
               if f"{s}/{r.run}" not in stored["runs"]]
    lines = [f"### {group.latency} against {group.macs or '(no MAC-priced suite recorded)'}\n"]
    if not points:
        return "\n".join(lines) + "\nNot yet timed: run `routec report clock RECORDS`.\n"
    link = figure(f"clock_{group.latency}.png", lambda p: plots.accuracy_vs_macs(
        points, p, title=f"{group.latency}: test accuracy vs measured time per image",
        xlabel="measured milliseconds per image (routed inference)", engineering_x=False))
    lines.append(f"![{group.latency} on the clock]({link})\n")
    lines.append(
        f"Every network timed round-robin in one process with the {stored['engine']} engine, "
        f"batch {stored['batch']}, {stored['threads']} torch thread(s), {stored['images']} "
        f"test-mix images per pass (the median pass), on {stored['machine']}. "
        "'Cost table' is the time per image the cost table predicts for the same exit mix "
        "(the sum, over each image's path, of the profiled seconds of its nodes).\n")
    lines += ["| network | setting | test accuracy | mean MACs | cost table (ms/image) | "
              "measured (ms/image) | MAC-priced actors at this time | difference |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    macs = [p for p in points if p.curve == CURVES["macs"]]
    macs_of = {f"{s}/{r.run}": r.mean_macs for s in group.suites for r in rows.get(s, [])}
    for p in points:
        t = stored["runs"][p.run]
        ref = best_mixture_at(macs, p.mean_macs) if p.curve == CURVES["latency"] else None
        table = t.get("table_seconds_per_image")
        setting = p.label if p.curve == CURVES["static"] else (
            f"k_cpt {p.label}" + (" per ms" if p.curve == CURVES["latency"] else ""))
        lines.append(
            f"| {p.curve} | {setting} | {p.accuracy:.4f} | {macs_of[p.run] / 1e6:.2f} M | "
            f"{'-' if table is None else f'{table * 1e3:.3f}'} | {p.mean_macs:.3f} | "
            f"{'-' if ref is None else f'{ref:.4f}'} | "
            f"{'-' if ref is None else f'{(p.accuracy - ref) * 100:+.1f} pp'} |")
    unpriced = {f"{group.latency}/{r.run}" for r in rows.get(group.latency, [])
                if r.k_value == 0.0}  # the MAC-priced k_cpt = 0 run again: not judged
    v = verdict([p for p in points if p.curve == CURVES["latency"] and p.run not in unpriced],
                macs)
    lines.append("\n" + v.text)
    same = _unpriced_twins(group, rows, stored)
    if same is not None:
        lines.append(f"\nAt k_cpt = 0 nothing is priced, so the two grids' k_cpt = 0 runs "
                     f"({same[0]}, {same[1]}) are the same training: their test accuracy and "
                     f"exit counts are {'identical' if same[2] else 'NOT identical'}"
                     + (" (training is deterministic, and the price is the only "
                        "difference between the grids)." if same[2] else "."))
    if untimed:
        lines.append(f"\nNot yet timed: {', '.join(untimed)} (run `routec report clock "
                     "RECORDS`).")
    return "\n".join(lines) + "\n"


def _unpriced_twins(group: ClockGroup, rows: dict[str, list[SummaryRow]],
                    stored: dict[str, Any]) -> tuple[str, str, bool] | None:
    """The k_cpt = 0 run of each grid, and whether they came out identical."""
    zero = []
    for suite in (group.macs, group.latency):
        z = [r for r in rows.get(suite or "", []) if r.k_value == 0.0]
        if not z or f"{suite}/{z[0].run}" not in stored["runs"]:
            return None
        zero.append((f"{suite}/{z[0].run}", z[0]))
    (ka, a), (kb, b) = zero
    return ka, kb, (a.accuracy == b.accuracy and stored["runs"][ka]["exit_count"]
                    == stored["runs"][kb]["exit_count"])
