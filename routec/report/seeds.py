"""How far one point of the reproduction page moves with the training seed alone.

Every point elsewhere on the page is one run at seed 0, so a verdict resting on a gap of
a point or two between single runs may be noise. The seeds suites
(:data:`routec.experiment.suites.SEED_TWINS`) train a few of those points again at other
seeds; this module sets each point's seeds side by side, as the yardstick such gaps are
read against.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from routec.experiment.suites import SEED_SUITES, seed_twin
from routec.report.summary import SummaryRow


@dataclass
class SeedGroup:
    """One network's settings trained at several seeds."""

    suite: str  # the base suite, whose run is seed 0
    run: str
    accuracy: dict[int, float] = field(default_factory=dict)  # seed → test accuracy
    macs: dict[int, float] = field(default_factory=dict)  # seed → mean MACs

    @property
    def spread(self) -> float:
        return max(self.accuracy.values()) - min(self.accuracy.values())

    @property
    def sd(self) -> float:
        return statistics.stdev(self.accuracy.values())


def seed_groups(rows: dict[str, list[SummaryRow]]) -> list[SeedGroup]:
    """Every seed-0 point that has a twin at another seed recorded, with all its seeds."""
    groups: dict[tuple[str, str], SeedGroup] = {}
    for suite in SEED_SUITES:
        for r in rows.get(suite, []):
            twin = seed_twin(suite, r.run)
            if twin is None:
                continue
            base, run, seed = twin
            g = groups.setdefault((base, run), SeedGroup(base, run))
            g.accuracy[seed], g.macs[seed] = r.accuracy, r.mean_macs
    out = []
    for (base, run), g in groups.items():
        zero = [r for r in rows.get(base, []) if r.run == run]
        if zero:
            g.accuracy[0], g.macs[0] = zero[0].accuracy, zero[0].mean_macs
        if len(g.accuracy) >= 2:
            g.accuracy = dict(sorted(g.accuracy.items()))
            g.macs = dict(sorted(g.macs.items()))
            out.append(g)
    return out


def render_seeds(rows: dict[str, list[SummaryRow]]) -> str:
    """The page's section: a table of the seeds of each point, and the largest spread."""
    lines = ["## How far a point moves with the seed\n",
             "Beyond the paper: every other point on this page is one run at seed 0. These "
             "networks were trained again with other seeds and nothing else changed (the "
             "seed draws the initial weights, the batch order, the augmentation, the "
             "validation hold-out and the MNIST colours). Gaps between single runs smaller "
             "than these spreads can be noise; the rules above do not use them.\n"]
    groups = seed_groups(rows)
    if not groups:
        lines.append(f"*Pending: suite(s) {', '.join(SEED_SUITES)} not yet run (no "
                     "records).*\n")
        return "\n".join(lines)
    lines += ["| network | seeds | test accuracy by seed | spread (max − min) | sd | "
              "mean MACs by seed |", "|---|---|---|---:|---:|---|"]
    for g in groups:
        lines.append(
            f"| {g.suite}/{g.run} | {', '.join(map(str, g.accuracy))} | "
            + " / ".join(f"{a:.4f}" for a in g.accuracy.values())
            + f" | {100 * g.spread:.2f} pp | {100 * g.sd:.2f} pp | "
            + " / ".join(f"{m / 1e6:.2f} M" for m in g.macs.values()) + " |")
    widest = max(groups, key=lambda g: g.spread)
    lines.append(f"\nThe widest spread is {100 * widest.spread:.2f} pp ({widest.suite}/"
                 f"{widest.run}); the median standard deviation over these networks is "
                 f"{100 * statistics.median(g.sd for g in groups):.2f} pp.\n")
    return "\n".join(lines)
