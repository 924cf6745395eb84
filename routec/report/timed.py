"""A figure's networks on the clock: accuracy against measured time per image.

Some figures come with a timing file under the records root (``FigureSpec.timing``),
written by a bench script that routes each network's test images in every engine,
round-robin, and keeps each network's fastest engine (``bench/trained_backbone.py``).
This module only renders it: a plot, a table, and two readings a sceptical reader asks
for: how much of the MAC saving each routed network turns into time saved against the
model alone, and whether learned routing beats confidence thresholds at equal time.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routec.report.plots import CurvePoint, accuracy_vs_macs, best_mixture_at

CONFIDENCE = "multi-exit + confidence"


def read_timing(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def timed_points(timing: dict[str, Any]) -> list[CurvePoint]:
    """Each timed network at its fastest engine's milliseconds per image."""
    return [CurvePoint(p["curve"], p["seconds_per_image"] * 1e3, p["accuracy"], p["label"],
                       p["run"]) for p in timing["points"] if "seconds_per_image" in p]


def realised_share(macs: float, ms: float, full_macs: float, full_ms: float) -> float | None:
    """The share of a network's MAC saving against the model alone that shows as time
    saved: (1 − t/t_full) / (1 − MACs/MACs_full); None when it saves no MACs."""
    saved = 1 - macs / full_macs
    return None if saved <= 0 else (1 - ms / full_ms) / saved


def timing_section(timing: dict[str, Any], title: str,
                   figure: Callable[[str, Callable[[Path], None]], str], name: str) -> str:
    """The plot and tables of one figure's timing file."""
    points = timed_points(timing)
    by_key = {(p["curve"], p["label"]): p for p in timing["points"]}
    link = figure(name, lambda path: accuracy_vs_macs(
        points, path, title=f"{title}: test accuracy vs measured time per image",
        xlabel="milliseconds per image, each network in its fastest engine",
        engineering_x=False))
    out = [f"![{title}, on the clock]({link})\n",
           f"Measured with `{timing['command']}` on {timing['machine']} (torch "
           f"{timing['torch']}, {timing['threads']} thread(s)): each network routes "
           f"{timing['images']:,} test images at batch {timing['batch']} in each of "
           f"{', '.join(timing['engines'])}, all timed round-robin in one process (medians "
           f"of {timing['repeats']}); each is placed at its fastest engine. Accuracy and "
           "MACs are its whole test split's, from its record.\n"]
    full = next((p for p in timing["points"] if p["curve"] == "static"
                 and "seconds_per_image" in p
                 and p["mean_macs"] == max(q["mean_macs"] for q in timing["points"]
                                           if q["curve"] == "static")), None)
    lines = ["| network | setting | mean MACs | test accuracy | ms per image | engine | "
             "MAC saving realised |", "| --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for p in sorted(points, key=lambda p: (p.curve != "static", p.curve, p.mean_macs)):
        raw = by_key[(p.curve, p.label)]
        share = None if full is None else realised_share(
            raw["mean_macs"], raw["seconds_per_image"], full["mean_macs"],
            full["seconds_per_image"])
        lines.append(f"| {p.curve} | {p.label} | {raw['mean_macs'] / 1e6:.2f} M | "
                     f"{p.accuracy:.4f} | {p.mean_macs:.3f} | {raw['engine']} | "
                     f"{'-' if share is None else f'{share:.0%}'} |")
    out.append("\n".join(lines) + "\n")
    if full is not None:
        out.append(f"MAC saving realised: the share of a network's MAC saving against the "
                   f"largest static network ({full['label']}: "
                   f"{full['mean_macs'] / 1e6:.2f} M MACs, "
                   f"{full['seconds_per_image'] * 1e3:.3f} ms per image) that shows as time "
                   "saved, (1 − t/t_full) / (1 − MACs/MACs_full).\n")
    confidence = [p for p in points if p.curve == CONFIDENCE]
    learned = [p for p in points if p.curve not in ("static", CONFIDENCE)]
    compared = [(p, ref) for p in learned
                if (ref := best_mixture_at(confidence, p.mean_macs)) is not None]
    if compared:
        ahead = sum(1 for p, ref in compared if p.accuracy > ref)
        mean = sum(p.accuracy - ref for p, ref in compared) / len(compared) * 100
        out.append(f"At equal measured time, {ahead} of {len(compared)} routed networks "
                   "within the thresholds' range are more accurate than confidence "
                   f"thresholds (mean difference {mean:+.2f} pp; thresholds mixed as on "
                   "the MAC plot).\n")
    return "\n".join(out)
