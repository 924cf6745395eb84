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


def test_routed_points_are_labelled_by_k_cpt_to_three_figures() -> None:
    """Width runs divide k_cpt by 4 or 9; a label of 8.88889e-10 crowds the plot."""
    infos = [SimpleNamespace(config=SimpleNamespace(data="cifar10"))]
    row = _row("k8e-9", "actor", 3000, 5e6)
    row.k_value = 8e-9 / 9
    zero = _row("k0e-9", "actor", 3000, 6e6)
    zero.k_value = 0.0
    labels = {p.run: p.label for p in curve_points(infos, [row, zero])}
    assert labels == {"k8e-9": "8.89e-10", "k0e-9": "0"}
