"""The paper's claims (§5–6), each checked against measured runs by a stated rule.

A claim reads only evaluated rows (test accuracy and routed mean MACs per run) and
logged training curves (and, for the dataflow claims, the records' per-exit
counts), and returns what was measured and a verdict: reproduced, partly
reproduced, not reproduced, or pending (a suite it needs has no complete
records yet: that is no result). A run whose training diverged has an outcome but
no evaluation: its suite counts as complete, the rule is applied to the evaluated
runs, and the finding names the runs left out. The rule is part of the claim, so
the results page prints it beside the verdict.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from routec.report.summary import SummaryRow, macs_saving_text

REPRODUCED, PARTLY, NOT, PENDING = ("reproduced", "partly reproduced", "not reproduced",
                                    "pending")
MATCH = 0.005  # accuracies within half a percentage point count as matching


@dataclass
class Evidence:
    """Everything claims may read: rows by suite, and per-run training facts."""

    rows: dict[str, list[SummaryRow]]  # suite → evaluated rows (test split)
    early_late_macs: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    # suite → run → (mean training MACs over the first 10% of logged windows, last 10%)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # suite → run → s
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # suite → run → record.json (per-exit and per-node counts)
    expected: dict[str, list[str]] | None = None  # suite → its runs; None: take rows as whole
    diverged: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # suite → run → failure.json, for runs whose training diverged (no evaluation)
    consulted: list[str] = field(default_factory=list)  # suites the current check asked for

    def absent(self, suite: str) -> str | None:
        """Why ``suite`` cannot be judged yet, or None if its runs are all accounted for
        (evaluated, or diverged)."""
        rows, diverged = self.rows.get(suite, []), self.diverged.get(suite, {})
        if not rows and not diverged:
            return f"suite {suite} not yet run"
        if self.expected is not None and suite in self.expected:
            have = {r.run for r in rows} | set(diverged)
            want = self.expected[suite]
            if not set(want) <= have:
                return f"suite {suite} has {len(have & set(want))} of {len(want)} runs recorded"
        if not rows:
            return f"suite {suite} has no evaluated run (every run diverged)"
        return None

    def left_out(self) -> str:
        """The diverged runs of the suites the current check asked for, as a clause."""
        runs = [f"{suite}/{run} (at iteration {f['iteration']})"
                for suite in dict.fromkeys(self.consulted)
                for run, f in self.diverged.get(suite, {}).items()]
        return f"; not evaluated, since training diverged: {', '.join(runs)}" if runs else ""

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
        ev.consulted.clear()
        found = self.check(ev)
        if found.verdict.startswith(PENDING) or not (note := ev.left_out()):
            return found
        return Finding(found.measured + note, found.verdict)


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


def hull_margin(ev: Evidence, suite: str, baseline: str) -> float | None:
    """Mean of (accuracy − the baseline's upper hull at the same MACs) over ``suite``'s points
    within the baseline's MACs range: the baseline may split images between two of its
    networks, so a sparse or noisy baseline grid does not favour points just above a
    cheap network. Context beside the margin rules, not a rule."""
    from routec.report.plots import CurvePoint, best_mixture_at

    base = [CurvePoint(baseline, m, a) for m, a in ev.points(baseline)]
    ds = [a - h for m, a in ev.points(suite) if (h := best_mixture_at(base, m)) is not None]
    return sum(ds) / len(ds) if ds else None


def _pct(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _grade(share: float) -> str:
    return REPRODUCED if share >= 0.75 else PARTLY if share >= 0.25 else NOT


def _missing(ev: Evidence, *suites: str) -> Finding | None:
    ev.consulted.extend(suites)
    why = [w for s in suites if (w := ev.absent(s))]
    if why:
        return Finding("—", f"{PENDING}: {'; '.join(why)}")
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
        return Finding("no logged training windows", NOT)
    shallower = [r for r, (early, late) in runs.items() if early < late]
    ratio = sorted(early / late for early, late in runs.values() if late > 0)
    median = ratio[len(ratio) // 2] if ratio else float("nan")
    return Finding(f"{len(shallower)} of {len(runs)} actor runs routed to cheaper paths in the "
                   f"first 10% of training than in the last 10% (median early/late mean-MACs "
                   f"ratio {median:.2f})", _grade(len(shallower) / len(runs)))


def _mean_margin(ev: Evidence, suite: str, static: str) -> float | None:
    ms = margins(ev, suite, static)
    return sum(d for _, d in ms) / len(ms) if ms else None


def _ordering(worse: str, better: tuple[str, ...], static: str = "hybrid-static"
              ) -> Callable[[Evidence], Finding]:
    """The ``worse`` suite's mean margin over static networks is below each of ``better``'s."""
    def check(ev: Evidence) -> Finding:
        if (m := _missing(ev, worse, *better, static)):
            return m
        w = _mean_margin(ev, worse, static)
        bs = {b: _mean_margin(ev, b, static) for b in better}
        if w is None or any(v is None for v in bs.values()):
            return Finding("some suite has no run that costs as much as the cheapest static "
                           "network", NOT)
        text = f"mean margin over static networks: {worse} {_pct(w)}; " + "; ".join(
            f"{b} {_pct(v)}" for b, v in bs.items() if v is not None)
        # context, not part of the rule: the margin averages over the grid, the peak does
        # not; against static mixtures a sparse static grid cannot flatter cheap points
        text += " (peak accuracy: " + ", ".join(
            f"{s} {max(r.accuracy for r in ev.rows[s]):.4f}" for s in (worse, *bs)) + ")"
        hull = {s: hull_margin(ev, s, static) for s in (worse, *bs)}
        if all(v is not None for v in hull.values()):
            text += " (against the upper hull of static mixtures at equal MACs: " + ", ".join(
                f"{s} {_pct(v)}" for s, v in hull.items() if v is not None) + ")"
        wins = sum(w < v for v in bs.values() if v is not None)
        verdict = REPRODUCED if wins == len(bs) else PARTLY if wins else NOT
        return Finding(text, verdict)
    return check


def _slight_advantage(ev: Evidence) -> Finding:
    if (m := _missing(ev, "cifar10-actor", "cifar10-static")):
        return m
    mean = _mean_margin(ev, "cifar10-actor", "cifar10-static")
    if mean is None:
        return Finding("no cifar10-actor run costs as much as the cheapest static network", NOT)
    verdict = (REPRODUCED if 0 < mean < 0.02 else PARTLY if -MATCH < mean <= 0 else NOT)
    return Finding(f"mean margin of actor runs over static networks {_pct(mean)}", verdict)


def _dynamic_matches(dyn: str) -> Callable[[Evidence], Finding]:
    return lambda ev: _dynamic_against_fixed(ev, dyn)


def _dynamic_against_fixed(ev: Evidence, dyn: str) -> Finding:
    fixed = "hybrid-actor"
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
    span = [r.mean_macs for r in ev.rows[dyn] if r.k_value is not None]
    fixed_span = [r.mean_macs for r in ev.rows[fixed]]
    text = (f"{close} of {len(gaps)} central-k_cpt points within 1 pp of (or above) the "
            f"best of the 8 networks at no more MACs; mean gap {_pct(sum(gaps) / len(gaps))}; "
            f"its mean MACs span {max(span) / 1e6:.1f}–{min(span) / 1e6:.1f} M over the grid "
            f"(fixed-k_cpt runs: {max(fixed_span) / 1e6:.1f}–{min(fixed_span) / 1e6:.1f} M)")
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
                           + macs_saving_text(peak.mean_macs / best.mean_macs), NOT)
        cheapest = min(good, key=lambda r: r.mean_macs)
        ratio = peak.mean_macs / cheapest.mean_macs
        verdict = REPRODUCED if ratio >= need else PARTLY if ratio >= partly else NOT
        return Finding(f"{cheapest.run} reaches {cheapest.accuracy:.4f} (static peak "
                       f"{peak.accuracy:.4f}, {peak.run}) with {macs_saving_text(ratio)} "
                       f"({what})", verdict)
    return check


# -- claims read from the records' per-exit counts -------------------------------------------
def _evaluation(ev: Evidence, suite: str, run: str) -> dict[str, Any] | None:
    rec = ev.records.get(suite, {}).get(run)
    return rec["evaluations"][0] if rec else None


def _static_overfit(ev: Evidence) -> Finding:
    static = "hybrid-static"
    if (m := _missing(ev, static)):
        return m
    by_n = {r.static_columns: r for r in ev.rows[static] if r.static_columns}
    shallow = [r for n, r in by_n.items() if n <= 6]
    deep = [by_n[n] for n in (7, 8) if n in by_n]
    if not shallow or len(deep) < 2:
        return Finding("needs static networks of ≤ 6, 7 and 8 columns", NOT)
    best = max(shallow, key=_acc)
    below = [r for r in deep if r.accuracy < best.accuracy]
    verdict = REPRODUCED if len(below) == 2 else PARTLY if below else NOT
    return Finding(f"best of n ≤ 6: {best.accuracy:.4f} ({best.run}); " + ", ".join(
        f"{r.run} {r.accuracy:.4f}" for r in deep), verdict)


def _peak_across() -> Callable[[Evidence], Finding]:
    pairs = [("cifar2-actor", "cifar2-static"), ("cifar5-actor", "cifar5-static"),
             ("cifar10-actor", "cifar10-static"), ("cifar10-actor-x2", "cifar10-static-x2"),
             ("cifar10-actor-x3", "cifar10-static-x3")]

    def check(ev: Evidence) -> Finding:
        if (m := _missing(ev, *(s for p in pairs for s in p))):
            return m
        gaps = [(a, max(ev.rows[a], key=_acc).accuracy - max(ev.rows[b], key=_acc).accuracy)
                for a, b in pairs]
        wins = sum(g > 0 for _, g in gaps)
        verdict = REPRODUCED if wins == len(gaps) else PARTLY if wins * 2 >= len(gaps) else NOT
        return Finding("peak actor − peak static: " + "; ".join(
            f"{a.removesuffix('-actor').replace('-actor', '')} {_pct(g)}" for a, g in gaps),
            verdict)
    return check


def _regularised_dhat(ev: Evidence) -> Finding:
    reg, base = "hybrid-actor-regdhat", "hybrid-actor"
    if (m := _missing(ev, reg, base)):
        return m
    plain = {r.k_value: r for r in ev.rows[base]}
    pairs = [(r, plain[r.k_value]) for r in ev.rows[reg] if r.k_value in plain]
    if not pairs:
        return Finding("no k_cpt shared by both suites", NOT)
    cheaper = sum(r.mean_macs < b.mean_macs for r, b in pairs)
    peak_r, peak_b = max(ev.rows[reg], key=_acc), max(ev.rows[base], key=_acc)
    shallow = cheaper / len(pairs) >= 0.75
    lower = peak_r.accuracy < peak_b.accuracy
    verdict = REPRODUCED if shallow and lower else PARTLY if shallow or lower else NOT
    return Finding(f"cheaper paths at {cheaper} of {len(pairs)} k_cpt values; peak accuracy "
                   f"{peak_r.accuracy:.4f} ({peak_r.run}) vs {peak_b.accuracy:.4f} "
                   f"({peak_b.run}): {_pct(peak_r.accuracy - peak_b.accuracy)}", verdict)


def _tree_overfits(ev: Evidence) -> Finding:
    tree, chain = "hybrid-actor-tree", "hybrid-actor"
    if (m := _missing(ev, tree, chain)):
        return m
    t = [r for r in ev.rows[tree] if r.k_value == 0]
    c = [r for r in ev.rows[chain] if r.k_value == 0]
    if not t or not c:
        return Finding("no k_cpt = 0 run in both suites", NOT)
    gap = t[0].accuracy - c[0].accuracy
    return Finding(f"k_cpt = 0: tree {t[0].accuracy:.4f}, chain {c[0].accuracy:.4f} "
                   f"({_pct(gap)})", REPRODUCED if gap < 0 else NOT)


USED = 0.01  # an exit classifying at least this fraction of the test split counts as used


def _count_runs(ev: Evidence, suite: str, judge: Callable[[dict[str, Any]], bool | None],
                none: str, what: str) -> Finding:
    """A verdict from the share of a suite's recorded runs that ``judge`` passes
    (``judge`` returns None for a run it cannot judge)."""
    if (m := _missing(ev, suite)):
        return m
    judged = hits = 0
    for r in ev.rows[suite]:
        e = _evaluation(ev, suite, r.run)
        if e is None or (ok := judge(e)) is None:
            continue
        judged += 1
        hits += bool(ok)
    if not judged:
        return Finding(none, NOT)
    return Finding(f"{hits} of {judged} {what}", _grade(hits / judged))


def _first_exit_beats_the_mean(e: dict[str, Any]) -> bool | None:
    """The first used exit is more accurate than the network as a whole (None with
    fewer than two used exits)."""
    res = e["result"]
    used = [i for i, f in enumerate(res["exit_fraction"]) if f >= USED]
    return None if len(used) < 2 else res["exit_accuracy"][used[0]] > res["accuracy"]


def _early_exits_accurate(ev: Evidence) -> Finding:
    return _count_runs(ev, "hybrid-actor", _first_exit_beats_the_mean,
                       "no actor run classifies at two or more exits",
                       "actor runs that use ≥ 2 exits")


def origin_purity(e: dict[str, Any], min_fraction: float = 0.0) -> list[float]:
    """Per used exit: the share of its examples that come from its majority source."""
    n = e["result"]["examples"]
    out = []
    for o in e["dataflow"]["exit_origin"]:
        if sum(o) and sum(o) / n >= max(min_fraction, 1e-12):
            out.append(max(o) / sum(o))
    return out


def weighted_purity(e: dict[str, Any]) -> float:
    """Mean origin purity of exits, weighted by the examples each classifies."""
    origin = e["dataflow"]["exit_origin"]
    total = sum(sum(o) for o in origin)
    return sum(max(o) for o in origin if sum(o)) / total


def _specialise(ev: Evidence) -> Finding:
    return _count_runs(ev, "hybrid-actor",
                       lambda e: all(p >= 0.8 for p in origin_purity(e, 0.05)),
                       "no per-exit origin counts recorded", "actor runs")


def _tree_specialises_more(ev: Evidence) -> Finding:
    tree, chain = "hybrid-actor-tree", "hybrid-actor"
    if (m := _missing(ev, tree, chain)):
        return m

    def mean(suite: str) -> float:
        es = [e for r in ev.rows[suite] if (e := _evaluation(ev, suite, r.run))]
        return sum(weighted_purity(e) for e in es) / len(es)
    t, c = mean(tree), mean(chain)
    return Finding(f"mean origin purity of exits: tree {t:.3f}, chain {c:.3f}",
                   REPRODUCED if t > c else NOT)


def _difficulty_order(ev: Evidence) -> Finding:
    ds = ("cifar2", "cifar5", "cifar10")
    if (m := _missing(ev, *(f"{d}-{s}" for d in ds for s in ("actor", "static")))):
        return m
    ms = {d: _mean_margin(ev, f"{d}-actor", f"{d}-static") for d in ds}
    if any(v is None for v in ms.values()):
        return Finding("some dataset has no actor run within its static networks' MACs", NOT)
    a, b, c = (ms[d] for d in ds)
    verdict = REPRODUCED if a > b > c else PARTLY if a > c else NOT  # type: ignore[operator]
    return Finding("mean margin over static networks: " + "; ".join(
        f"{d} {_pct(v)}" for d, v in ms.items() if v is not None), verdict)


def _width(ev: Evidence) -> Finding:
    widths = {"×1": ("cifar10-actor", "cifar10-static"),
              "×2": ("cifar10-actor-x2", "cifar10-static-x2"),
              "×3": ("cifar10-actor-x3", "cifar10-static-x3")}
    if (m := _missing(ev, *(s for p in widths.values() for s in p))):
        return m
    ms = {w: _mean_margin(ev, a, b) for w, (a, b) in widths.items()}
    if any(v is None for v in ms.values()):
        return Finding("some width has no actor run within its static networks' MACs", NOT)
    base = ms["×1"]
    kept = sum(ms[w] >= base - MATCH for w in ("×2", "×3"))  # type: ignore[operator]
    verdict = REPRODUCED if kept == 2 else PARTLY if kept else NOT
    return Finding("mean margin over static networks: " + "; ".join(
        f"{w} {_pct(v)}" for w, v in ms.items() if v is not None), verdict)


def _less_overfitting(ev: Evidence) -> Finding:
    actor, static = "hybrid-actor", "hybrid-static"
    if (m := _missing(ev, actor, static)):
        return m
    a0 = [r for r in ev.rows[actor] if r.k_value == 0]
    n8 = [r for r in ev.rows[static] if r.static_columns == 8]
    if not a0 or not n8:
        return Finding("needs the k_cpt = 0 actor run and the 8-column static network", NOT)
    peak = max(ev.rows[static], key=_acc)
    above = a0[0].accuracy > n8[0].accuracy
    overfit = n8[0].accuracy < peak.accuracy
    verdict = REPRODUCED if above and overfit else PARTLY if above else NOT
    return Finding(f"actor at k_cpt = 0 {a0[0].accuracy:.4f}; static n8 {n8[0].accuracy:.4f}; "
                   f"static peak {peak.accuracy:.4f} ({peak.run})", verdict)


CLAIMS: list[Claim] = [
    Claim("5.1", "For a given computational budget, dynamically-routed (actor) networks achieve "
          "higher accuracy than architecture-matched static baselines (hybrid data).",
          "reproduced if ≥ 75% of actor runs beat every static network that costs no more "
          "MACs (the margin: accuracy minus that best static accuracy); partly if ≥ 25%",
          _beats_static("hybrid", "actor")),
    Claim("5.1", "Pragmatic critic networks also beat static baselines at equal computation.",
          "as above, for the pragmatic critic runs", _beats_static("hybrid", "critic")),
    Claim("5.1", "Dynamically-routed networks avoid deep paths at the beginning of training "
          "(Fig. 8).",
          "reproduced if ≥ 75% of actor runs have lower mean MACs over the first 10% of "
          "logged training windows than over the last 10%; partly if ≥ 25%", _shallow_first),
    Claim("5.1", "Static networks of 7 and 8 columns overfit (the actor's early preference for "
          "shallow paths seems to prevent some of it).",
          "reproduced if the 7- and the 8-column static networks are both less accurate than "
          "the best static network of ≤ 6 columns; partly if one is", _static_overfit),
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
    Claim("5.1", "... across experiments: actor networks reach a higher peak accuracy than "
          "static ones on CIFAR-2, CIFAR-5, CIFAR-10 and the ×2 and ×3 wide chains too.",
          "reproduced if in every one of the 5 (actor, static) pairs the most accurate actor "
          "run beats the most accurate static network; partly if in at least half",
          _peak_across()),
    Claim("5.1", "Pragmatic critics trained with classification error (not cross-entropy) still "
          "beat static networks.",
          "as the first claim, for the classification-error critic runs",
          _beats_static("hybrid", "critic-clserr")),
    Claim("5.1", "Critics trained with classification error do not perform as well as the "
          "original (cross-entropy) pragmatic critics.",
          "reproduced if the classification-error critic's mean margin over static networks "
          "is below the pragmatic critic's",
          _ordering("hybrid-critic-clserr", ("hybrid-critic",))),
    Claim("5.2", "Regularising d̂ (c_mod not holding the routing decisions constant) "
          "discourages routing along deep paths, reducing peak accuracy.",
          "reproduced if the regularised actor runs use fewer mean MACs than the plain actor "
          "runs at ≥ 75% of the shared k_cpt values and their most accurate run is less "
          "accurate than the plain actor's; partly if one of the two", _regularised_dhat),
    Claim("5.2", "A nonzero k_dec (exploration) is necessary to train effective actor networks.",
          "reproduced if actor runs without k_dec have a lower mean margin over static "
          "networks than actor runs with it",
          _ordering("hybrid-actor-nokdec", ("hybrid-actor",))),
    Claim("5.3", "TALR improves actor networks in high-accuracy regimes.",
          "reproduced if actor runs without TALR have a lower mean margin over static "
          "networks than with TALR", _ordering("hybrid-actor-notalr", ("hybrid-actor",))),
    Claim("5.3", "TALR improves (pragmatic) critic networks too.",
          "reproduced if critic runs without TALR have a lower mean margin over static "
          "networks than with TALR", _ordering("hybrid-critic-notalr", ("hybrid-critic",))),
    Claim("5.4", "Trees with 2- and 3-way junctions are more accurate under tight budgets.",
          "reproduced if the tree's actor runs have a higher mean margin over the chain's "
          "static networks than the chain's actor runs",
          _ordering("hybrid-actor", ("hybrid-actor-tree",))),
    Claim("5.4", "Unconstrained, such trees are prone to overfitting.",
          "reproduced if the tree's k_cpt = 0 actor run is less accurate than the chain's "
          "k_cpt = 0 actor run", _tree_overfits),
    Claim("5.4", "Early classification layers tend to have high accuracy, pushing difficult "
          "decisions downstream.",
          f"reproduced if in ≥ 75% of the chain's actor runs that classify at ≥ 2 exits (each "
          f"taking ≥ {USED:.0%} of the test split) the first such exit is more accurate than "
          "the network as a whole; partly if ≥ 25%", _early_exits_accurate),
    Claim("5.4", "Terminal layers specialise: the images classified at an exit usually all "
          "come from MNIST or all from CIFAR-10.",
          "reproduced if in ≥ 75% of the chain's actor runs every exit classifying ≥ 5% of "
          "the test split draws ≥ 80% of its images from one source; partly if ≥ 25%",
          _specialise),
    Claim("5.4", "In networks with both 2- and 3-way junctions, branches specialise to an "
          "even greater extent.",
          "reproduced if the tree's actor runs have a higher mean origin purity of exits "
          "(the majority source's share of the images an exit classifies, weighted by "
          "images) than the chain's", _tree_specialises_more),
    Claim("5.5", "One network trained over a range of k_cpt performs comparably to 8 networks "
          "trained at fixed k_cpt over a central region of the curve, at 1/8 of the training.",
          "reproduced if ≥ 75% of its points at k_cpt in [1e-9, 3.2e-8] are within 1 pp of "
          "(or above) the best fixed-k_cpt actor run at no more MACs; partly if ≥ 25%",
          _dynamic_matches("hybrid-actor-dynamic")),
    Claim("5.5*", "The same, with routers that hear k_cpt at every hidden layer, log-scaled "
          "(beyond the paper: `--k-cpt-conditioning every-layer`; the paper's form feeds "
          "k_cpt once, as one input beside 256 to 2,048 image features).",
          "as for §5.5", _dynamic_matches("hybrid-actor-dynamic-listen")),
    Claim("5.6", "On CIFAR-2, dynamically-routed networks reach a higher peak accuracy than "
          "static networks at a third of the computational cost.",
          "reproduced if some actor run is at least as accurate as the static peak with ≥ 3x "
          "fewer MACs; partly with ≥ 1.5x fewer",
          _cheaper_at_static_peak("cifar2", 3.0, 1.5, "paper: ~3x")),
    Claim("5.6", "Dynamic routing is more beneficial when the task involves many "
          "low-difficulty decisions.",
          "reproduced if the actor runs' mean margin over static networks falls from CIFAR-2 "
          "to CIFAR-5 to CIFAR-10; partly if CIFAR-2's is above CIFAR-10's",
          _difficulty_order),
    Claim("5.6", "Dynamic routing offers only a slight advantage on CIFAR-10.",
          "reproduced if the CIFAR-10 actor runs' mean margin over static networks is "
          "positive but under 2 pp; partly if it is in (-0.5, 0] pp", _slight_advantage),
    Claim("5.7", "Increasing model capacity (×2, ×3 wide, k_cpt ÷4, ÷9) either increases or "
          "does not affect the relative advantage of dynamically-routed networks (CIFAR-10).",
          "reproduced if the actor's mean margin over static networks at ×2 and at ×3 is at "
          "least the ×1 margin less 0.5 pp; partly if at one of them", _width),
    Claim("6", "Under mild computational constraints, dynamically-routed networks are 2–3 times "
          "more efficient than comparable static networks without losing accuracy.",
          "reproduced if an actor run is at least as accurate as the static peak with ≥ 2x "
          "fewer MACs; partly with ≥ 1.2x fewer",
          _cheaper_at_static_peak("hybrid", 2.0, 1.2, "paper: 2-3x")),
    Claim("6", "Despite their higher capacity, dynamically-routed networks may be less prone "
          "to overfitting.",
          "reproduced if the k_cpt = 0 actor run (free to use all 8 columns) is more accurate "
          "than the 8-column static network and that network is below the static peak; "
          "partly if only the first holds", _less_overfitting),
]
