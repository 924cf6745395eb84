"""The results page: claims' rules on constructed rows, and the page built from run records."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.train.checkpoint import load_checkpoint, save_checkpoint
from routec.report import claims as C
from routec.experiment.suites import SUITES
from routec.report.results import accuracy_fall, build_results, training_seconds
from routec.report.summary import SummaryRow
from routec.report.throughput import pick_pair
from routec.train.config import K_CPT_GRID
from routec.train.evaluate import evaluate
from routec.train.runs import load_run


def row(run: str, macs: float, acc: float, k: float | None = None) -> SummaryRow:
    return SummaryRow(run=run, strategy="x", network="n", data="hybrid", k_cpt="-",
                      iterations=1, finished=True, accuracy=acc, mean_macs=macs, k_value=k)


STATIC = [row(f"n{i}", m, a) for i, (m, a) in enumerate(
    [(1e6, 0.80), (4e6, 0.88), (8e6, 0.86), (12e6, 0.90)], start=1)]


def test_envelope_is_the_best_affordable_network() -> None:
    pts = sorted((r.mean_macs, r.accuracy) for r in STATIC)
    assert C.envelope(pts, 0.5e6) is None  # cheaper than every network
    for m in [1e6, 3e6, 5e6, 9e6, 20e6]:
        assert C.envelope(pts, m) == max(a for mm, a in pts if mm <= m)
    # the 8M network is worse than the 4M one: a budget of 9M still buys 0.88
    assert C.envelope(pts, 9e6) == 0.88


@pytest.mark.parametrize("shift,verdict", [(+0.01, C.REPRODUCED), (-0.005, C.PARTLY),
                                           (-0.05, C.NOT)])
def test_beating_static_depends_on_the_measured_margin(shift: float, verdict: str) -> None:
    # actor points sit on the static envelope, moved up or down by `shift`
    actor = [row("k1", 2e6, 0.80 + shift), row("k2", 5e6, 0.88 + shift),
             row("k3", 10e6, 0.88 + shift), row("k4", 13e6, 0.90 + shift)]
    if shift == -0.005:  # two of four above: partly
        actor[0].accuracy, actor[1].accuracy = 0.85, 0.89
    ev = C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": actor})
    f = C.CLAIMS[0].finding(ev)
    assert f.verdict == verdict
    above = sum(r.accuracy > C.envelope(ev.points("hybrid-static"), r.mean_macs)
                for r in actor)
    assert f.measured.startswith(f"{above} of 4")


def test_missing_suites_are_pending_rather_than_failed() -> None:
    ev = C.Evidence(rows={"hybrid-static": STATIC})
    for claim in C.CLAIMS:
        if claim.statement.startswith("Static networks of 7 and 8"):
            continue  # needs hybrid-static alone
        f = claim.finding(ev)
        assert f.verdict.startswith(f"{C.PENDING}: suite ") and "not yet run" in f.verdict
    # a suite with some of its runs recorded is pending too, when the suite's runs are known
    actor = [row("k0e-9", 2e6, 0.9)]
    ev = C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": actor},
                    expected={"hybrid-static": [r.run for r in STATIC],
                              "hybrid-actor": ["k0e-9", "k1e-9"]})
    assert C.CLAIMS[0].finding(ev).verdict == \
        f"{C.PENDING}: suite hybrid-actor has 1 of 2 runs recorded"


def test_a_diverged_run_completes_its_suite_and_is_named_in_the_finding() -> None:
    """A diverged run is an outcome: the claim is judged on the evaluated runs (the same
    verdict as a suite of just those runs) and says which run it left out, and why."""
    expected = {"hybrid-static": [r.run for r in STATIC], "hybrid-actor": ["k0e-9", "k1e-9"]}
    actor = [row("k0e-9", 5e6, 0.90)]
    failure = {"iteration": 1677, "reason": "loss became nan at iteration 1677"}
    ev = C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": actor}, expected=expected,
                    diverged={"hybrid-actor": {"k1e-9": failure}})
    alone = C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": actor})
    f, f_alone = C.CLAIMS[0].finding(ev), C.CLAIMS[0].finding(alone)
    assert f.verdict == f_alone.verdict == C.REPRODUCED  # 0.90 > 0.88 at 4M
    assert f.measured == (f_alone.measured + "; not evaluated, since training diverged: "
                          "hybrid-actor/k1e-9 (at iteration 1677)")
    # a claim that does not read hybrid-actor does not name its runs
    overfit = next(c for c in C.CLAIMS if c.statement.startswith("Static networks of 7"))
    assert "diverged" not in overfit.finding(ev).measured
    # a suite whose every run diverged cannot be judged
    ev = C.Evidence(rows={"hybrid-static": STATIC}, expected=expected,
                    diverged={"hybrid-actor": {"k0e-9": failure, "k1e-9": failure}})
    assert C.CLAIMS[0].finding(ev).verdict == \
        f"{C.PENDING}: suite hybrid-actor has no evaluated run (every run diverged)"


def test_efficiency_at_the_static_peak() -> None:
    """§6: the cheapest actor run at least as accurate as the best static network."""
    claim = next(c for c in C.CLAIMS if c.section == "6")
    for macs, verdict in [(5e6, C.REPRODUCED), (8e6, C.PARTLY), (11e6, C.NOT)]:
        actor = [row("a", macs, 0.905), row("b", 3e6, 0.85)]
        f = claim.finding(C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": actor}))
        assert f.verdict == verdict
        assert f"{12e6 / macs:.2f}x fewer" in f.measured
    worse = [row("a", 5e6, 0.89)]
    f = claim.finding(C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": worse}))
    assert f.verdict == C.NOT
    assert "best 0.8900 (a, -1.00 pp) with 2.40x fewer MACs" in f.measured  # peak: n4, 0.90 @ 12M


def test_orderings_and_dynamic_k() -> None:
    actor = [row("k1", 2e6, 0.84), row("k2", 5e6, 0.90), row("k3", 13e6, 0.93)]
    critic = [row("k1", 2e6, 0.82), row("k2", 5e6, 0.89)]
    optimistic = [row("k1", 2e6, 0.70), row("k2", 5e6, 0.85)]
    ev = C.Evidence(rows={"hybrid-static": STATIC, "hybrid-actor": actor,
                          "hybrid-critic": critic, "hybrid-critic-optimistic": optimistic})
    optimistic_poor = next(c for c in C.CLAIMS if c.statement.startswith("Optimistic"))
    actor_better = next(c for c in C.CLAIMS if "better than critic" in c.statement)
    assert optimistic_poor.finding(ev).verdict == C.REPRODUCED
    assert actor_better.finding(ev).verdict == C.REPRODUCED
    # the finding names each suite's most accurate run beside the margins
    # and, as context, the margins against static mixtures, worked out by hand: at 2M the
    # best split is 1M/4M (0.80 + 0.08/3), at 5M it is 4M/12M (0.88 + 0.02/8); 13M is
    # beyond the static range and left out
    hull_2m, hull_5m = 0.80 + 0.08 / 3, 0.88 + 0.02 / 8
    critic_hull = ((0.82 - hull_2m) + (0.89 - hull_5m)) / 2
    actor_hull = ((0.84 - hull_2m) + (0.90 - hull_5m)) / 2
    assert actor_better.finding(ev).measured.endswith(
        "(peak accuracy: hybrid-critic 0.8900, hybrid-actor 0.9300) (against the upper hull "
        f"of static mixtures at equal MACs: hybrid-critic {100 * critic_hull:+.2f} pp, "
        f"hybrid-actor {100 * actor_hull:+.2f} pp)")
    ev.rows["hybrid-critic"] = [row("k1", 2e6, 0.86), row("k2", 5e6, 0.92)]  # critic now wins
    assert actor_better.finding(ev).verdict == C.NOT
    assert optimistic_poor.finding(ev).verdict == C.REPRODUCED
    dyn = next(c for c in C.CLAIMS if c.section == "5.5")
    near = [row("d", m, a - 0.004, k) for (m, a), k in zip([(2e6, 0.84), (5e6, 0.90)],
                                                           [2e-9, 8e-9])]
    ev.rows["hybrid-actor-dynamic"] = near
    assert dyn.finding(ev).verdict == C.REPRODUCED
    ev.rows["hybrid-actor-dynamic"] = [row("d", r.mean_macs, r.accuracy - 0.05, r.k_value)
                                       for r in near]
    assert dyn.finding(ev).verdict == C.NOT


def test_throughput_pair_matches_accuracy() -> None:
    actor = [row("k1", 3e6, 0.87), row("k2", 6e6, 0.89)]
    best, static, matched = pick_pair(actor, STATIC)
    assert (best.run, static.run, matched) == ("k2", "n4", True)
    best, static, matched = pick_pair([row("k", 6e6, 0.95)], STATIC)
    assert (static.run, matched) == ("n4", False)


# -- the page, from real (tiny) runs' records ------------------------------------------------
QUICK = ["--data", "synthetic", "--spec", "tiny", "--batch", "8", "--iterations", "12",
         "--no-progress"]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    base = tmp_path_factory.mktemp("exp")
    root, records = base / "runs", base / "results" / "records"
    assert main(["experiment", "hybrid-static", "--runs", "n1", "n2", "--out", str(root),
                 *QUICK]) == 0
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "k4e-9", "--out", str(root),
                 *QUICK]) == 0
    assert main(["experiment", "hybrid-actor-dynamic", "--out", str(root), *QUICK]) == 0
    out = base / "docs" / "results.md"
    # the records alone: the run directories (and their weights) are gone
    shutil.rmtree(root / "hybrid-static")
    saved = base / "saved-runs"
    shutil.move(root, saved)
    assert main(["report", "--throughput", str(records)]) == 0
    assert main(["report", "--experiments", str(records), "-o", str(out)]) == 0
    return saved, records, out, out.read_text(encoding="utf-8")


def _table_rows(text: str, suite: str) -> dict[str, list[str]]:
    section = text.split("## Every recorded run", 1)[1].split(f"### {suite}\n", 1)[1]
    section = section.lstrip("\n").split("\n\n", 1)[0]
    rows = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_page_numbers_are_the_checkpoints_routed_evaluations(page) -> None:
    saved, _, _, text = page
    table = _table_rows(text, "hybrid-actor")
    assert sorted(table) == ["k0e-9", "k4e-9"]
    for run in table:
        _, net, data, _ = load_run(saved / "hybrid-actor" / run)
        r = evaluate(net, data.test.images, data.test.labels)
        cells = table[run]
        assert cells[4] == f"{r.accuracy:.4f}" and cells[5] == f"{r.mean_macs:,.0f}"
        assert cells[6] == " / ".join(f"{f:.2f}" for f in r.exit_fraction)
        assert cells[3] == "12"
    assert sorted(_table_rows(text, "hybrid-static")) == ["n1", "n2"]
    # a dynamic-k_cpt network: one row per k_cpt of the grid, each its own routed evaluation
    _, net, data, _ = load_run(saved / "hybrid-actor-dynamic" / "dynamic")
    section = text.split("## Every recorded run", 1)[1].split("### hybrid-actor-dynamic\n")[1]
    lines = section.lstrip("\n").split("\n\n", 1)[0].splitlines()[2:]
    assert len(lines) == 8
    for line, k in zip(lines, K_CPT_GRID):
        cells = [c.strip() for c in line.strip("|").split("|")]
        r = evaluate(net, data.test.images, data.test.labels, k_cpt=k)
        assert cells[2] == f"dynamic @ {k:g}"
        assert cells[4] == f"{r.accuracy:.4f}" and cells[5] == f"{r.mean_macs:,.0f}"


def test_page_has_claims_timing_figures_and_commands(page) -> None:
    _, records, out, text = page
    claims = [l for l in text.splitlines() if re.match(r"\| (5\.\d\*?|6) \|", l)]
    assert len(claims) == len(C.CLAIMS)
    for line in claims:
        verdict = line.split(" | ")[3]
        assert verdict.strip("*") in {C.REPRODUCED, C.PARTLY, C.NOT} or (
            verdict.startswith(C.PENDING + ": suite ") and "**" not in verdict)
    assert "not tested" not in text
    # two of eight runs recorded: hybrid claims wait for the rest of their suites
    assert "pending: suite hybrid-actor has 2 of 8 runs recorded" in text
    assert "pending: suite cifar2-actor not yet run; suite cifar2-static not yet run" in text
    # timing rows come from throughput.json; the ratio is the quotient of its throughputs
    stored = json.loads((records / "throughput.json").read_text())
    (entry,) = stored["pairs"]
    assert entry["actor"]["run"].startswith("hybrid-actor/")
    timing = [l for l in text.splitlines() if l.startswith("| hybrid | eager |")]
    assert len(timing) == 2
    speeds = [float(l.split("|")[6].replace(",", "")) for l in timing]
    assert speeds[0] == pytest.approx(entry["actor"]["images_per_second"], rel=1e-3, abs=1)
    ratio, low, high = (float(v) for v in re.fullmatch(
        r" ([\d.]+) \(([\d.]+)–([\d.]+)\) ", timing[0].split("|")[7]).groups())
    assert ratio == pytest.approx(entry["actor"]["images_per_second"]
                                  / entry["static"]["images_per_second"], abs=0.006)
    assert low <= high
    # figures exist where the page points
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert any("fig5_strategies.png" in l for l in links)
    assert any("fig8_hybrid-actor" in l for l in links)
    assert sum("fig6_hybrid-actor" in l for l in links) == 4  # 2 runs × 2 colourings
    for link in links:
        data = (out.parent / link).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" or b"<svg" in data[:400]
    for fig in ("Fig. 5", "Figs. 6 and 7", "Fig. 8", "Fig. 9", "Fig. 10"):
        assert f"## {fig}" in text
    assert "Pending: suite(s) cifar10-static-x2, cifar10-actor-x2 not yet run" in text
    # every suite has its exact command; the page's own command is first
    for suite in SUITES:
        assert f"`routec experiment {suite} --iterations " in text
    assert "`routec experiment hybrid-actor --iterations 12 --batch 8 --out runs`" in text
    assert f"routec report --experiments {records} -o {out}" in text
    start = json.loads((records / "hybrid-actor" / "k0e-9" / "metrics.jsonl").read_text()
                       .splitlines()[0])
    assert f"- Data (synthetic): {start['data_source']}." in text


def test_the_page_regenerates_identically_from_records(page, tmp_path: Path) -> None:
    _, records, out, text = page
    again = tmp_path / "results.md"
    assert main(["report", "--experiments", str(records), "-o", str(again)]) == 0
    assert again.read_text(encoding="utf-8").replace(str(again), str(out)) == text
    (tmp_path / "bare").mkdir()
    build_results(records, tmp_path / "bare" / "results.md", figures=False,
                  command=f"routec report --experiments {records} -o {out}")
    assert (tmp_path / "bare" / "results.md").read_text(encoding="utf-8") == text
    assert not (tmp_path / "bare" / "results").exists()


def test_training_seconds_add_up_over_sittings(tmp_path: Path) -> None:
    lines = [{"event": "start", "iteration": 0}, {"iteration": 5, "seconds": 10.0},
             {"iteration": 10, "seconds": 21.5}, {"event": "resume", "iteration": 10},
             {"iteration": 15, "seconds": 4.0}, {"iteration": 20, "seconds": 9.25}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    assert training_seconds(tmp_path) == 21.5 + 9.25


@pytest.mark.parametrize("curve, expected", [
    ([0.3, 0.62, 0.68, 0.28, 0.14], (0.68, 15, 0.14)),  # learned, then lost it
    ([0.3, 0.62, 0.68, 0.66, 0.70], None),              # still learning
    ([0.10, 0.12, 0.11, 0.10, 0.09], None),             # never learned: no fall to report
    ([0.5, 0.9, 0.9, 0.85, 0.79], (0.9, 10, 0.79)),     # first of equal peaks
])
def test_a_fall_from_peak_validation_accuracy_is_found(tmp_path: Path, curve, expected) -> None:
    lines = [{"event": "start", "iteration": 0}]
    for i, acc in enumerate(curve):
        lines.append({"iteration": 5 * (i + 1), "train_accuracy": 0.5})
        lines.append({"iteration": 5 * (i + 1), "val_accuracy": acc})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines))
    assert accuracy_fall(tmp_path) == expected


def test_report_arguments_are_checked(tmp_path: Path, capsys) -> None:
    assert main(["report", "--experiments", str(tmp_path / "none")]) == 2
    assert "no such records folder" in capsys.readouterr().err
    tmp_path.joinpath("empty").mkdir()
    assert main(["report", "--experiments", str(tmp_path / "empty")]) == 2
    assert "no suite has a run record" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "--experiments" in capsys.readouterr().err
    assert main(["report", "--experiments", str(tmp_path), "-o", str(tmp_path / "x.html")]) == 2
    assert "Markdown" in capsys.readouterr().err
    assert main(["report", "--harvest", str(tmp_path), "--throughput", str(tmp_path)]) == 2
    assert "separate commands" in capsys.readouterr().err
    assert main(["report", "--harvest", str(tmp_path / "none")]) == 2
    assert "no such experiment folder" in capsys.readouterr().err


def test_unfinished_runs_get_no_record_and_stay_off_the_page(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "k4e-9", "--out", str(root),
                 *QUICK[:-3], "--iterations", "6", "--no-progress", "--no-records"]) == 0
    cfg = json.loads((root / "hybrid-actor" / "k4e-9" / "config.json").read_text())
    cfg["iterations"] = 1000
    (root / "hybrid-actor" / "k4e-9" / "config.json").write_text(json.dumps(cfg))
    ckpt = root / "hybrid-actor" / "k4e-9" / "checkpoint.pt"
    state = load_checkpoint(ckpt)  # rewritten through routec, so its checksum holds
    state["finished"], state["config"]["iterations"] = False, 1000
    save_checkpoint(ckpt, {k: v for k, v in state.items() if k != "format"})
    out = tmp_path / "docs" / "results.md"
    # a folder of run directories: evaluated into temporary records, finished runs only
    assert main(["report", "--experiments", str(root), "-o", str(out)]) == 0
    text = out.read_text()
    assert sorted(_table_rows(text, "hybrid-actor")) == ["k0e-9"]
    assert "Not yet recorded: k1e-9, k2e-9, k4e-9" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert not any("k4e-9" in l for l in links) and any("k0e-9" in l for l in links)
    # a page regenerated into the same place drops the figures it no longer shows
    (out.parent / "results" / "fig6_hybrid-actor_k9e-9_origin.svg").write_text("<svg/>")
    assert main(["report", "--experiments", str(root), "-o", str(out)]) == 0
    assert not (out.parent / "results" / "fig6_hybrid-actor_k9e-9_origin.svg").exists()
    assert not list(root.glob("*/*/eval_*.json"))  # run directories were only read


def test_throughput_passes_go_on_until_enough_time_is_measured() -> None:
    from routec.codegen import build_class
    from routec.graph import build_graph
    from routec.parse import load_spec
    from routec.engine.timing import measure_throughput as measure

    net = build_class(build_graph(load_spec("tiny")))()
    images = torch.randn(32, 3, 32, 32)
    few = measure({"a": (net, None), "b": (net, None)}, images, batch=16, repeats=2)
    assert [len(t.passes) for t in few.values()] == [2, 2]
    one_pass = max(max(t.passes) for t in few.values())
    t = measure({"a": (net, None), "b": (net, None)}, images, batch=16, repeats=2,
                min_seconds=6 * one_pass)
    for r in t.values():
        assert sum(r.passes) >= 6 * one_pass and len(r.passes) > 2
        assert r.images_per_second == pytest.approx(32 / sorted(r.passes)[len(r.passes) // 2],
                                                     rel=0.5)
    capped = measure({"a": (net, None)}, images, batch=16, repeats=2, min_seconds=1e9,
                     max_repeats=4)
    assert len(capped["a"].passes) == 4


# -- the claims added for §5.1-5.7 and §6, on constructed rows ------------------------------
def _claim(start: str) -> C.Claim:
    (claim,) = [c for c in C.CLAIMS if c.statement.startswith(start)]
    return claim


def srow(n: int, macs: float, acc: float) -> SummaryRow:
    r = row(f"n{n}", macs, acc)
    r.static_columns = n
    return r


@pytest.mark.parametrize("n7,n8,verdict", [(0.85, 0.86, C.REPRODUCED), (0.85, 0.91, C.PARTLY),
                                           (0.92, 0.91, C.NOT)])
def test_static_overfitting(n7: float, n8: float, verdict: str) -> None:
    static = [srow(n, n * 1e6, a) for n, a in [(1, 0.8), (4, 0.9), (6, 0.88)]]
    static += [srow(7, 7e6, n7), srow(8, 8e6, n8)]
    f = _claim("Static networks of 7").finding(C.Evidence(rows={"hybrid-static": static}))
    assert f.verdict == verdict


@pytest.mark.parametrize("shift,peak,verdict", [(-1e6, 0.90, C.REPRODUCED),
                                                (-1e6, 0.95, C.PARTLY), (+1e6, 0.95, C.NOT)])
def test_regularising_dhat_claim(shift: float, peak: float, verdict: str) -> None:
    actor = [row(f"k{i}", m, a, k) for i, (m, a, k) in enumerate(
        [(9e6, 0.93, 0.0), (6e6, 0.91, 1e-9), (4e6, 0.89, 2e-9), (3e6, 0.87, 4e-9)])]
    reg = [row(r.run, r.mean_macs + shift, r.accuracy - 0.01, r.k_value) for r in actor]
    reg[0].accuracy = peak
    f = _claim("Regularising d̂").finding(C.Evidence(rows={"hybrid-actor": actor,
                                                           "hybrid-actor-regdhat": reg}))
    assert f.verdict == verdict


def _pair(margin: float) -> tuple[list[SummaryRow], list[SummaryRow]]:
    actor = [row("k1", 2e6, 0.80 + margin), row("k2", 5e6, 0.88 + margin)]
    return actor, STATIC


@pytest.mark.parametrize("margins,verdict", [((0.05, 0.03, 0.01), C.REPRODUCED),
                                             ((0.05, 0.00, 0.01), C.PARTLY),
                                             ((0.00, 0.02, 0.04), C.NOT)])
def test_difficulty_ordering(margins: tuple[float, ...], verdict: str) -> None:
    rows = {}
    for d, m in zip(("cifar2", "cifar5", "cifar10"), margins):
        rows[f"{d}-actor"], rows[f"{d}-static"] = _pair(m)
    assert _claim("Dynamic routing is more beneficial").finding(
        C.Evidence(rows=rows)).verdict == verdict


@pytest.mark.parametrize("margins,verdict", [((0.01, 0.01, 0.03), C.REPRODUCED),
                                             ((0.03, 0.04, 0.01), C.PARTLY),
                                             ((0.03, 0.01, 0.0), C.NOT)])
def test_width_claim(margins: tuple[float, ...], verdict: str) -> None:
    rows = {}
    for suffix, m in zip(("", "-x2", "-x3"), margins):
        rows[f"cifar10-actor{suffix}"], rows[f"cifar10-static{suffix}"] = _pair(m)
    f = _claim("Increasing model capacity").finding(C.Evidence(rows=rows))
    assert f.verdict == verdict
    assert f"×1 {100 * margins[0]:+.2f} pp" in f.measured


def _record(exit_origin: list[list[int]], exit_correct: list[int]) -> dict:
    counts = [sum(o) for o in exit_origin]
    n = sum(counts)
    return {"evaluations": [{"k_cpt": None, "result": {
        "examples": n, "accuracy": sum(exit_correct) / n,
        "exit_fraction": [c / n for c in counts],
        "exit_accuracy": [k / c if c else None for k, c in zip(exit_correct, counts)]},
        "dataflow": {"exit_origin": exit_origin, "exit_count": counts}}]}


def test_dataflow_claims_read_the_records_counts() -> None:
    # run a: first exit all MNIST and 98% right; the last one mostly CIFAR, 70% right
    a = _record([[500, 10], [0, 0], [40, 450]], [500, 0, 343])
    # run b: mixed exits (60/40), the first no better than the whole
    b = _record([[300, 200], [0, 0], [200, 300]], [300, 0, 400])
    rows = [row("a", 1e6, a["evaluations"][0]["result"]["accuracy"]),
            row("b", 1e6, b["evaluations"][0]["result"]["accuracy"])]
    ev = C.Evidence(rows={"hybrid-actor": rows}, records={"hybrid-actor": {"a": a, "b": b}})
    early = _claim("Early classification layers").finding(ev)
    assert (early.measured, early.verdict) == ("1 of 2 actor runs that use ≥ 2 exits", C.PARTLY)
    special = _claim("Terminal layers specialise").finding(ev)
    assert (special.measured, special.verdict) == ("1 of 2 actor runs", C.PARTLY)
    assert C.weighted_purity(a["evaluations"][0]) == pytest.approx((500 + 450) / 1000)
    tree = _record([[500, 0], [0, 500]], [450, 400])
    ev.rows["hybrid-actor-tree"] = [row("t", 1e6, 0.85)]
    ev.records["hybrid-actor-tree"] = {"t": tree}
    more = _claim("In networks with both").finding(ev)
    assert more.verdict == C.REPRODUCED and "tree 1.000" in more.measured


@pytest.mark.parametrize("a0,n8,verdict", [(0.93, 0.89, C.REPRODUCED), (0.93, 0.92, C.PARTLY),
                                           (0.88, 0.89, C.NOT)])
def test_less_overfitting(a0: float, n8: float, verdict: str) -> None:
    static = [srow(4, 4e6, 0.90), srow(8, 8e6, n8)]
    actor = [row("k0e-9", 7e6, a0, 0.0), row("k4e-9", 3e6, 0.85, 4e-9)]
    f = _claim("Despite their higher capacity").finding(
        C.Evidence(rows={"hybrid-static": static, "hybrid-actor": actor}))
    assert f.verdict == verdict


@pytest.mark.parametrize("peaks,verdict", [((0.01,) * 5, C.REPRODUCED),
                                           ((0.01, 0.01, 0.01, -0.01, -0.01), C.PARTLY),
                                           ((0.01, -0.01, -0.01, -0.01, 0.0), C.NOT)])
def test_peak_accuracy_across_experiments(peaks: tuple[float, ...], verdict: str) -> None:
    rows = {}
    for suite, gap in zip(("cifar2", "cifar5", "cifar10", "cifar10-x2", "cifar10-x3"), peaks):
        data, _, width = suite.partition("-")
        rows[f"{data}-static{'-' + width if width else ''}"] = STATIC
        rows[f"{data}-actor{'-' + width if width else ''}"] = [row("k", 5e6, 0.90 + gap)]
    f = _claim("... across experiments").finding(C.Evidence(rows=rows))
    assert f.verdict == verdict
    assert f.measured.count("pp") == 5
