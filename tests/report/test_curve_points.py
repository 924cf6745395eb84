"""Fig. 5 curves: which runs share a curve."""
from __future__ import annotations

from types import SimpleNamespace

from routec.report.cli import curve_points
from routec.report.summary import SummaryRow


def _row(run: str, strategy: str, iterations: int, macs: float) -> SummaryRow:
    return SummaryRow(run=run, strategy=strategy, network="paper_chain", data="hybrid",
                      k_cpt="dynamic", iterations=iterations, finished=True, accuracy=0.9,
                      mean_macs=macs, k_value=1e-9)


def test_one_strategy_at_two_budgets_draws_two_curves_and_one_budget_one() -> None:
    infos = [SimpleNamespace(config=SimpleNamespace(data="hybrid"))]
    dyn = "actor, dynamic k_cpt"
    rows = [_row("a", dyn, 3000, 5e6), _row("b", dyn, 3000, 4e6), _row("n1", "static", 3000, 1e6)]
    assert {p.curve for p in curve_points(infos, rows)} == {dyn, "static"}
    rows.append(_row("c", dyn, 6000, 3e6))
    curves = {p.curve: p.run for p in curve_points(infos, rows)}
    assert set(curves) == {f"{dyn}, 3,000 its", f"{dyn}, 6,000 its", "static"}
    assert curves[f"{dyn}, 6,000 its"] == "c"
