"""The curves of accuracy against MACs (the paper's Fig. 5) that a set of runs makes:
which curve each summary row belongs to, and its label. Light to import; the
drawing is :mod:`routec.report.plots`."""
from __future__ import annotations

from typing import Any


def curve_points(infos: list[Any], rows: list[Any]) -> list[Any]:
    """Fig. 5 points: static runs on one curve, every other strategy a curve over k_cpt."""
    from routec.report.plots import CurvePoint

    datasets = {i.config.data for i in infos}
    networks = {r.network for r in rows if r.strategy != "static"}
    budgets: dict[str, set[int]] = {}  # a strategy trained for two budgets: two curves
    for r in rows:
        budgets.setdefault(r.strategy, set()).add(r.iterations)
    points = []
    for r in rows:
        curve = "static" if r.strategy == "static" else r.strategy
        if len(networks) > 1 and curve != "static":
            curve += f" ({r.network})"
        if len(budgets[r.strategy]) > 1:
            curve += f", {r.iterations:,} its"
        if len(datasets) > 1:
            curve = f"{r.data}: {curve}"
        if r.strategy == "static":
            label = f"n={r.static_columns}" if r.static_columns else r.network
        else:
            label = "" if r.k_value is None else f"{r.k_value:.3g}"  # ÷9 widths: 8.89e-10
        points.append(CurvePoint(curve, r.mean_macs, r.accuracy, label, r.run))
    return points
