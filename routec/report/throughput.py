"""Wall-clock throughput of routed inference: do saved MACs show up as saved time?

Networks are timed round-robin in one process (so drift in machine load hits them
alike), each pass routing the whole image set in batches, and the median pass is
kept. Time is what an engine's ``route`` takes (``routec.engine``: eager is
``net.route`` itself; fused, compiled, onnx as built there).

The results page compares, per dataset, the most accurate actor run with the
cheapest static network at least as accurate. Timing needs no trained weights:
how long routed inference takes depends on the path each image takes, not on
what the weights are, so :func:`routec.report.results.measure_records` builds each
network from its record's spec, freshly initialised, and sends images along the
exits in the proportions the record measured
(:class:`routec.engine.timing.FixedExits`), timed by
:func:`routec.engine.timing.measure_throughput` as ``routec bench`` is. The
measurements are stored in ``RECORDS/throughput.json`` and the page is rendered
from that file, so regenerating the page does not re-time anything.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routec.report.summary import SummaryRow, macs_saving_text
from routec.train.run_files import SPEC

TIMING_PASSES, TIMING_SECONDS = 5, 5.0
MAX_IMAGES = 2000  # images per timing pass (the recorded exit mix, scaled to this many)


# -- which networks the page times -----------------------------------------------------------
@dataclass
class Pair:
    actor_suite: str
    actor: SummaryRow
    static_suite: str
    static: SummaryRow
    matched: bool  # the static network is at least as accurate as the actor

    @property
    def label(self) -> str:
        return self.actor_suite.replace("-actor", "")

    @property
    def key(self) -> tuple[str, str]:
        return f"{self.actor_suite}/{self.actor.run}", f"{self.static_suite}/{self.static.run}"


def pick_pair(actor: list[SummaryRow], static: list[SummaryRow]
              ) -> tuple[SummaryRow, SummaryRow, bool]:
    """The most accurate actor run, and the cheapest static network at least as accurate
    (``matched`` True), else the most accurate static network (``matched`` False)."""
    best = max(actor, key=lambda r: (r.accuracy, -r.mean_macs))
    good = [r for r in static if r.accuracy >= best.accuracy]
    if good:
        return best, min(good, key=lambda r: r.mean_macs), True
    return best, max(static, key=lambda r: (r.accuracy, -r.mean_macs)), False


def pairs(rows: dict[str, list[SummaryRow]]) -> list[Pair]:
    """One pair per (actor suite, static suite) of the same data and network width."""
    from routec.experiment.suites import SEED_SUITES

    out = []
    for name, rs in rows.items():
        static = name.replace("-actor", "-static", 1)
        if "-actor" not in name or static == name or not rs or not rows.get(static) \
                or name in SEED_SUITES:  # seed twins of points already timed
            continue
        a, s, matched = pick_pair(rs, rows[static])
        out.append(Pair(name, a, static, s, matched))
    return out


# -- the stored measurements ---------------------------------------------------------------
def load_measurements(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"pairs": []}
    return data if isinstance(data, dict) and "pairs" in data else {"pairs": []}


def _exit_count(rec: dict[str, Any]) -> list[int]:
    return list(rec["evaluations"][0]["dataflow"]["exit_count"])


def _entries(p: Pair, stored: dict[str, Any],
             records_of: Callable[[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored timings of this pair, one per engine, for the records as they are now."""
    a_key, s_key = p.key
    a_mix = _exit_count(records_of(p.actor_suite, p.actor.run))
    return [e for e in stored["pairs"] if e["actor"]["run"] == a_key
            and e["static"]["run"] == s_key and e["actor"]["exit_count"] == a_mix]


def render_rows(chosen: list[Pair], stored: dict[str, Any],
                records_of: Callable[[str, str], dict[str, Any]]) -> str:
    lines = ["The most accurate actor run against the cheapest static network at least as "
             "accurate (or, if none is, the most accurate static network). Timing needs no "
             "trained weights: each network is built from its record's spec and images are "
             "sent along its exits in the proportions its record measured on the test split "
             "(routers still run); timed round-robin in one process, the median of at least "
             f"{TIMING_PASSES} passes and {TIMING_SECONDS:g} s per network. Relative columns: "
             "the actor's value over the static network's (throughput above 1 and MACs below "
             "1 favour routing); in brackets, the range of the ratio over pairs of passes run "
             "back to back.\n",
             "| data | engine | network | test accuracy | mean MACs | images/s | relative "
             "throughput | relative MACs |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    unmeasured, used, best = [], [], []
    for p in chosen:
        entries = _entries(p, stored, records_of)
        macs = p.actor.mean_macs / p.static.mean_macs
        if len(entries) > 1:  # each side in its fastest engine: the baseline is not handicapped
            ea = max(entries, key=lambda e: e["actor"]["images_per_second"])
            es = max(entries, key=lambda e: e["static"]["images_per_second"])
            ra, rs = ea["actor"]["images_per_second"], es["static"]["images_per_second"]
            best.append(f"{p.label}: routed {ra:,.0f} images/s ({ea['engine']}) against "
                        f"static {rs:,.0f} ({es['engine']}), {ra / rs:.2f}x at "
                        + macs_saving_text(1 / macs))
        note = "" if p.matched else " (no static network is as accurate)"
        if not entries:
            unmeasured.append(p.label)
            for key, row, label in (("actor", p.actor, p.key[0]),
                                    ("static", p.static, p.key[1] + note)):
                rel = f"{macs:.2f}" if key == "actor" else "1"
                lines.append(f"| {p.label} | — | {label} | {row.accuracy:.4f} | "
                             f"{row.mean_macs:,.0f} | not measured | — | {rel} |")
            continue
        for e in entries:
            used.append(e)
            a, s = e["actor"], e["static"]
            speed = a["images_per_second"] / s["images_per_second"]
            paired = sorted(y / x for x, y in zip(a["passes"], s["passes"]))
            for key, row, label, t in (("actor", p.actor, p.key[0], a),
                                       ("static", p.static, p.key[1] + note, s)):
                rel = (f"{speed:.2f} ({paired[0]:.2f}–{paired[-1]:.2f}) | {macs:.2f}"
                       if key == "actor" else "1 | 1")
                lines.append(f"| {p.label} | {e['engine']} | {label} | {row.accuracy:.4f} | "
                             f"{row.mean_macs:,.0f} | {t['images_per_second']:,.0f} | {rel} |")
    if used:
        facts: dict[str, list[str]] = {}
        for e in used:
            how = (f"{e['threads']} torch thread(s), batch {e['batch']}, {e['images']} images "
                   f"per pass, on {e['machine']}")
            if e["engine"] not in facts.setdefault(how, []):
                facts[how].append(e["engine"])
        lines.append("\n" + " ".join(f"Measured ({', '.join(engines)}) with {how}."
                                     for how, engines in facts.items()))
    if best:
        lines.append("\nEach side in its fastest engine: " + "; ".join(best) + ".")
    if unmeasured:
        lines.append(f"\nNot yet timed for the records as they stand: {', '.join(unmeasured)} "
                     "(run `routec report throughput RECORDS`).")
    return "\n".join(lines)


# -- measuring ------------------------------------------------------------------------------
def network_of(record_dir: Path, rec: dict[str, Any], seed: int = 0) -> Any:
    """The record's network, built from its spec with fresh (untrained) weights."""
    import torch

    from routec.codegen import build_class
    from routec.graph import build_graph, static_prefix
    from routec.parse import parse_spec
    from routec.train.model import to_device

    cfg = rec["config"]
    spec = parse_spec((Path(record_dir) / SPEC).read_text(encoding="utf-8"),
                      rec["spec_label"])
    if cfg.get("static_columns") is not None:
        spec = static_prefix(spec, cfg["static_columns"])
    unit = None  # the paper's k_cpt input unless the record's routers read it every layer
    if cfg.get("k_cpt_conditioning", "paper") != "paper":
        from routec.train.config import saved_config

        unit = saved_config(cfg).router_kcpt_unit
    g = build_graph(spec, classes=len(rec["classes"]), dynamic_kcpt=cfg["k_cpt"] == "dynamic",
                    kcpt_unit=unit)
    torch.manual_seed(seed)
    net = build_class(g)()
    to_device(net, torch.device("cpu"))
    return net.eval()


@dataclass
class Timed:
    """A record's network set up for timing: its engine's runner, the exit of each
    timed image (the record's exit mix, scaled) and that mix (examples per exit)."""
    net: Any
    runner: Any
    exits: Any  # leaf index per image
    exit_count: list[int]


def timed_network(record_dir: Path, rec: dict[str, Any], engine: str,
                  images: int) -> Timed:
    """Build a record's network in ``engine``, routing at most ``images`` images in the
    proportions the record measured."""
    from routec.engine import optimize_for_inference
    from routec.engine.timing import sample_exits

    net = network_of(record_dir, rec)
    mix = _exit_count(rec)
    return Timed(net, optimize_for_inference(net, engine),
                 sample_exits(mix, min(images, sum(mix))), mix)


def timing_images(timed: list[Timed]) -> Any:
    """One seeded image set, as many images as the shortest scaled mix routes."""
    import torch

    n = min(len(t.exits) for t in timed)
    shape = tuple(timed[0].runner.INPUT_SHAPE)
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(0))
