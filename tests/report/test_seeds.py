"""The seed-spread section: each twinned point's seeds, from the rows of both suites."""
from __future__ import annotations

import re
import statistics

import torch

from routec.experiment.suites import EXTRA_SEEDS, SEED_TWINS, SUITES
from routec.report.seeds import render_seeds, seed_groups
from routec.report.summary import SummaryRow


def _row(run: str, acc: float, macs: float) -> SummaryRow:
    return SummaryRow(run=run, strategy="actor", network="paper_chain", data="hybrid",
                      k_cpt="-", iterations=3000, finished=True, accuracy=acc,
                      mean_macs=macs)


def test_seed_suites_differ_from_their_twins_in_the_seed_alone() -> None:
    for base, runs in SEED_TWINS.items():
        twins = SUITES[f"{base}-seeds"]
        assert len(twins) == len(runs) * len(EXTRA_SEEDS)
        for run in runs:
            for seed in EXTRA_SEEDS:
                settings = dict(twins[f"{run}-s{seed}"])
                assert settings.pop("seed") == seed != 0
                assert settings == SUITES[base][run]


def test_each_point_gathers_its_seeds_and_the_page_gives_their_spread() -> None:
    gen = torch.Generator().manual_seed(1)
    acc = {(b, r, s): 0.85 + 0.05 * float(torch.rand(1, generator=gen))
           for b, runs in SEED_TWINS.items() for r in runs for s in (0, *EXTRA_SEEDS)}
    rows: dict[str, list[SummaryRow]] = {b: [] for b in SEED_TWINS}
    for (b, r, s), a in acc.items():
        name, suite = (r, b) if s == 0 else (f"{r}-s{s}", f"{b}-seeds")
        rows.setdefault(suite, []).append(_row(name, a, 1e6 * (1 + s)))
    rows["hybrid-actor"].append(_row("k4e-9", 0.99, 5e6))  # no twin: not a group
    groups = seed_groups(rows)
    assert {(g.suite, g.run) for g in groups} == {(b, r) for b, rs in SEED_TWINS.items()
                                                  for r in rs}
    text = render_seeds(rows)
    for g in groups:
        want = [acc[(g.suite, g.run, s)] for s in (0, *EXTRA_SEEDS)]
        assert list(g.accuracy.values()) == want
        line = next(x for x in text.splitlines() if x.startswith(f"| {g.suite}/{g.run} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == ", ".join(map(str, (0, *EXTRA_SEEDS)))
        assert cells[3] == f"{100 * (max(want) - min(want)):.2f} pp"
        assert cells[4] == f"{100 * statistics.stdev(want):.2f} pp"
    spreads = {f"{b}/{r}": max(acc[(b, r, s)] for s in (0, *EXTRA_SEEDS))
               - min(acc[(b, r, s)] for s in (0, *EXTRA_SEEDS))
               for b, rs in SEED_TWINS.items() for r in rs}
    widest = max(spreads, key=spreads.__getitem__)
    assert re.search(rf"widest spread is {100 * spreads[widest]:.2f} pp \({widest}\)", text)


def test_a_point_with_no_twin_recorded_leaves_the_section_pending() -> None:
    rows = {"hybrid-actor": [_row("k2e-9", 0.9, 6e6)]}
    assert seed_groups(rows) == []
    assert "*Pending: suite(s) hybrid-static-seeds, hybrid-actor-seeds" in render_seeds(rows)
