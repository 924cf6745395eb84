"""The paper's claims (§5–6), each checked against measured runs by a stated rule.

A claim reads only evaluated rows (test accuracy and routed mean MACs per run) and
logged training curves, and returns what was measured and a verdict: reproduced,
partly reproduced, not reproduced, or not tested (its suites were not run). The
rule is part of the claim, so the results page prints it beside the verdict.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from routec.report.summary import SummaryRow

REPRODUCED, PARTLY, NOT, UNTESTED = ("reproduced", "partly reproduced", "not reproduced",
                                     "not tested")
MATCH = 0.005  # accuracies within half a percentage point count as matching


@dataclass
class Evidence:
    """Everything claims may read: rows by suite, and per-run training facts."""

    rows: dict[str, list[SummaryRow]]  # suite → evaluated rows (test split)
    early_late_macs: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    # suite → run → (mean training MACs over the first 10% of logged windows, last 10%)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # suite → run → s

    def points(self, suite: str) -> list[tuple[float, float]]:
        """(mean MACs, accuracy) of a suite, by MACs."""
        return sorted((r.mean_macs, r.accuracy) for r in self.rows.get(suite, []))


@dataclass
class Finding:
    measured: str
    verdict: str


@dataclass
class Claim:
    section: str
    statement: str
    rule: str
    check: Callable[[Evidence], Finding]

    def finding(self, ev: Evidence) -> Finding:
        return self.check(ev)


# -- helpers --------------------------------------------------------------------------------
def envelope(points: list[tuple[float, float]], macs: float) -> float | None:
    """Best accuracy among ``points`` costing at most ``macs``: what that budget buys from
    a curve's networks. None if every network costs more."""
    affordable = [a for m, a in points if m <= macs]
    return max(affordable) if affordable else None


def margins(ev: Evidence, suite: str, baseline: str) -> list[tuple[float, float]]:
    """(MACs, accuracy − the best baseline accuracy at no more MACs) for every point of
    ``suite`` that some baseline network can afford."""
    base = ev.points(baseline)
    out = []
    for m, a in ev.points(suite):
        b = envelope(base, m)
        if b is not None:
            out.append((m, a - b))
    return out


def _pct(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _grade(share: float) -> str:
    return REPRODUCED if share >= 0.75 else PARTLY if share >= 0.25 else NOT


def _missing(ev: Evidence, *suites: str) -> Finding | None:
    absent = [s for s in suites if not ev.rows.get(s)]
    if absent:
        return Finding(f"suite(s) {', '.join(absent)} not run", UNTESTED)
    return None


# -- the claims -----------------------------------------------------------------------------
def _beats_static(data: str, strategy: str) -> Callable[[Evidence], Finding]:
    suite, static = f"{data}-{strategy}", f"{data}-static"

    def check(ev: Evidence) -> Finding:
        if (m := _missing(ev, suite, static)):
            return m
        ms = margins(ev, suite, static)
        if not ms:
            return Finding(f"no {suite} run lies within the MACs range of {static}", NOT)
        above = sum(d > 0 for _, d in ms)
        mean = sum(d for _, d in ms) / len(ms)
        return Finding(f"{above} of {len(ms)} {suite} runs beat the best static network "
                       f"at no more MACs; mean margin {_pct(mean)}", _grade(above / len(ms)))
    return check


def _peak_vs_static(data: str) -> Callable[[Evidence], Finding]:
    suite, static = f"{data}-actor", f"{data}-static"

    def check(ev: Evidence) -> Finding:
        if (m := _missing(ev, suite, static)):
            return m
        actor, base = max(ev.rows[suite], key=_acc), max(ev.rows[static], key=_acc)
        gap = actor.accuracy - base.accuracy
        verdict = REPRODUCED if gap > 0 else PARTLY if gap > -MATCH else NOT
        return Finding(f"peak actor {actor.accuracy:.4f} ({actor.run}) vs peak static "
                       f"{base.accuracy:.4f} ({base.run}): {_pct(gap)}", verdict)
    return check


def _acc(r: SummaryRow) -> tuple[float, float]:
    return (r.accuracy, -r.mean_macs)


def _shallow_first(ev: Evidence) -> Finding:
    suite = "hybrid-actor"
    if (m := _missing(ev, suite)):
        return m
    runs = ev.early_late_macs.get(suite, {})
    if not runs:
        return Finding("no logged training windows", UNTESTED)
    shallower = [r for r, (early, late) in runs.items() if early < late]
    ratio = sorted(early / late for early, late in runs.values() if late > 0)
    median = ratio[len(ratio) // 2] if ratio else float("nan")
    return Finding(f"{len(shallower)} of {len(runs)} actor runs routed to cheaper paths in the "
                   f"first 10% of training than in the last 10% (median early/late mean-MACs "
                   f"ratio {median:.2f})", _grade(len(shallower) / len(runs)))


def _mean_margin(ev: Evidence, suite: str, static: str) -> float | None:
    ms = margins(ev, suite, static)
    return sum(d for _, d in ms) / len(ms) if ms else None


def _ordering(worse: str, better: tuple[str, ...]) -> Callable[[Evidence], Finding]:
    """The ``worse`` suite's mean margin over static networks is below each of ``better``'s."""
    def check(ev: Evidence) -> Finding:
        if (m := _missing(ev, worse, *better, "hybrid-static")):
            return m
        w = _mean_margin(ev, worse, "hybrid-static")
        bs = {b: _mean_margin(ev, b, "hybrid-static") for b in better}
        if w is None or any(v is None for v in bs.values()):
            return Finding("some suite has no run costs as much as the cheapest static network", NOT)
        text = f"mean margin over static networks: {worse} {_pct(w)}; " + "; ".join(
            f"{b} {_pct(v)}" for b, v in bs.items() if v is not None)
        wins = sum(w < v for v in bs.values() if v is not None)
        verdict = REPRODUCED if wins == len(bs) else PARTLY if wins else NOT
        return Finding(text, verdict)
    return check


def _slight_advantage(ev: Evidence) -> Finding:
    if (m := _missing(ev, "cifar10-actor", "cifar10-static")):
        return m
    mean = _mean_margin(ev, "cifar10-actor", "cifar10-static")
    if mean is None:
        return Finding("no cifar10-actor run lies costs as much as the cheapest static network", NOT)
    verdict = (REPRODUCED if 0 < mean < 0.02 else PARTLY if -MATCH < mean <= 0 else NOT)
    return Finding(f"mean margin of actor runs over static networks {_pct(mean)}", verdict)


def _dynamic_matches(ev: Evidence) -> Finding:
    dyn, fixed = "hybrid-actor-dynamic", "hybrid-actor"
    if (m := _missing(ev, dyn, fixed)):
        return m
    base = ev.points(fixed)
    central = [r for r in ev.rows[dyn] if r.k_value is not None and 1e-9 <= r.k_value <= 3.2e-8]
    gaps = []
    for r in central:
        b = envelope(base, r.mean_macs)
        if b is not None:
            gaps.append(r.accuracy - b)
    if not gaps:
        return Finding("no dynamic-k_cpt point costs as much as the cheapest fixed-k_cpt run", NOT)
    close = sum(g >= -2 * MATCH for g in gaps)
    text = (f"{close} of {len(gaps)} central-k_cpt points within 1 pp of (or above) the "
            f"best of the 8 networks at no more MACs; mean gap {_pct(sum(gaps) / len(gaps))}")
    secs = ev.seconds.get(fixed, {})
    dyn_s = sum(ev.seconds.get(dyn, {}).values())
    if secs and dyn_s:
        text += f"; training time {sum(secs.values()) / dyn_s:.1f}x less than the {len(secs)} nets"
    return Finding(text, _grade(close / len(gaps)))


def _cheaper_at_static_peak(data: str, need: float, partly: float, what: str
                            ) -> Callable[[Evidence], Finding]:
    suite, static = f"{data}-actor", f"{data}-static"

    def check(ev: Evidence) -> Finding:
        if (m := _missing(ev, suite, static)):
            return m
        peak = max(ev.rows[static], key=_acc)
        good = [r for r in ev.rows[suite] if r.accuracy >= peak.accuracy]
        if not good:
            best = max(ev.rows[suite], key=_acc)
            return Finding(f"no {suite} run reaches the static peak {peak.accuracy:.4f} "
                           f"({peak.run}); best {best.accuracy:.4f} ({best.run}, "
                           f"{_pct(best.accuracy - peak.accuracy)}) with "
                           f"{peak.mean_macs / best.mean_macs:.2f}x fewer MACs", NOT)
        cheapest = min(good, key=lambda r: r.mean_macs)
        ratio = peak.mean_macs / cheapest.mean_macs
        verdict = REPRODUCED if ratio >= need else PARTLY if ratio >= partly else NOT
        return Finding(f"{cheapest.run} reaches {cheapest.accuracy:.4f} (static peak "
                       f"{peak.accuracy:.4f}, {peak.run}) with {ratio:.2f}x fewer MACs "
                       f"({what})", verdict)
    return check


CLAIMS: list[Claim] = [
    Claim("5.1", "For a given computational budget, dynamically-routed (actor) networks achieve "
          "higher accuracy than architecture-matched static baselines (hybrid data).",
          "reproduced if ≥ 75% of actor runs beat every static network that costs no more "
          "MACs (the margin: accuracy minus that best static accuracy); partly if ≥ 25%", _beats_static("hybrid", "actor")),
    Claim("5.1", "Pragmatic critic networks also beat static baselines at equal computation.",
          "as above, for the pragmatic critic runs", _beats_static("hybrid", "critic")),
    Claim("5.1", "Dynamically-routed networks avoid deep paths at the beginning of training "
          "(Fig. 8).",
          "reproduced if ≥ 75% of actor runs have lower mean MACs over the first 10% of "
          "logged training windows than over the last 10%; partly if ≥ 25%", _shallow_first),
    Claim("5.1", "Optimistic critic networks perform poorly compared to other dynamically-routed "
          "networks.",
          "reproduced if the optimistic critic's mean margin over static networks is below "
          "both the actor's and the pragmatic critic's; partly if below one",
          _ordering("hybrid-critic-optimistic", ("hybrid-actor", "hybrid-critic"))),
    Claim("5.1", "Actor networks perform better than critic networks.",
          "reproduced if the pragmatic critic's mean margin over static networks is below "
          "the actor's",
          _ordering("hybrid-critic", ("hybrid-actor",))),
    Claim("5.1", "Actor networks achieve higher peak accuracy than comparable static networks.",
          "reproduced if the most accurate actor run beats the most accurate static network; "
          "partly if within 0.5 pp", _peak_vs_static("hybrid")),
    Claim("5.1", "Pragmatic critics trained with classification error (not cross-entropy) still "
          "beat static networks.",
          "as the first claim, for the classification-error critic runs",
          _beats_static("hybrid", "critic-clserr")),
    Claim("5.2", "A nonzero k_dec (exploration) is necessary to train effective actor networks.",
          "reproduced if actor runs without k_dec have a lower mean margin over static "
          "networks than actor runs with it",
          _ordering("hybrid-actor-nokdec", ("hybrid-actor",))),
    Claim("5.3", "TALR improves actor networks in high-accuracy regimes.",
          "reproduced if actor runs without TALR have a lower mean margin over static "
          "networks than with TALR", _ordering("hybrid-actor-notalr", ("hybrid-actor",))),
    Claim("5.4", "Trees with 2- and 3-way junctions are more accurate under tight budgets.",
          "reproduced if the tree's actor runs have a higher mean margin over the chain's "
          "static networks than the chain's actor runs",
          _ordering("hybrid-actor", ("hybrid-actor-tree",))),
    Claim("5.5", "One network trained over a range of k_cpt performs comparably to 8 networks "
          "trained at fixed k_cpt over a central region of the curve, at 1/8 of the training.",
          "reproduced if ≥ 75% of its points at k_cpt in [1e-9, 3.2e-8] are within 1 pp of "
          "(or above) the best fixed-k_cpt actor run at no more MACs; partly if ≥ 25%",
          _dynamic_matches),
    Claim("5.6", "On CIFAR-2, dynamically-routed networks reach a higher peak accuracy than "
          "static networks at a third of the computational cost.",
          "reproduced if some actor run matches the static peak accuracy with ≥ 3x fewer "
          "MACs; partly with ≥ 1.5x fewer",
          _cheaper_at_static_peak("cifar2", 3.0, 1.5, "paper: ~3x")),
    Claim("5.6", "Dynamic routing offers only a slight advantage on CIFAR-10.",
          "reproduced if the CIFAR-10 actor runs' mean margin over static networks is "
          "positive but under 2 pp; partly if it is in (-0.5, 0] pp", _slight_advantage),
    Claim("6", "Under mild computational constraints, dynamically-routed networks are 2–3 times "
          "more efficient than comparable static networks without losing accuracy.",
          "reproduced if an actor run matches the static peak accuracy with ≥ 2x fewer MACs; "
          "partly with ≥ 1.2x fewer",
          _cheaper_at_static_peak("hybrid", 2.0, 1.2, "paper: 2-3x")),
]
