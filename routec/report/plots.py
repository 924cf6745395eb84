"""Matplotlib figures of runs: accuracy vs mean MACs (Fig. 5), dataflow over training (Fig. 8).

Figures are built on a bare :class:`matplotlib.figure.Figure` (no pyplot), so
drawing never touches a global backend or opens a window.
"""
from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from routec.errors import RoutecError, RunError
from routec.report.draw import write_bytes
from routec.train.run_dir import RunDir, read_metrics  # noqa: F401

PLOT_FORMATS = ("png", "svg", "pdf")


# -- accuracy vs MACs -----------------------------------------------------------------------
@dataclass(frozen=True)
class CurvePoint:
    """One evaluated network (or one k_cpt of a dynamic-k_cpt network)."""

    curve: str
    mean_macs: float
    accuracy: float
    label: str = ""
    run: str = ""


def best_mixture_at(points: list[CurvePoint], x: float) -> float | None:
    """The best accuracy ``points`` reach at mean cost ``x`` (their ``mean_macs``, or
    another per-image cost such as measured time): images can be split between any two
    networks and both accuracy and cost are then the same mix of theirs, so this is the
    upper hull of the lines between pairs; None outside their range."""
    best = None
    for a in points:
        for b in points:
            if a.mean_macs <= x <= b.mean_macs:
                span = b.mean_macs - a.mean_macs
                w = 0.0 if span == 0 else (x - a.mean_macs) / span
                acc = a.accuracy + w * (b.accuracy - a.accuracy)
                best = acc if best is None else max(best, acc)
    return best


def group_curves(points: list[CurvePoint]) -> dict[str, list[CurvePoint]]:
    """Points by curve, each curve sorted by MACs (static first, then by name)."""
    curves: dict[str, list[CurvePoint]] = {}
    for p in points:
        curves.setdefault(p.curve, []).append(p)
    order = sorted(curves, key=lambda c: (not c.startswith("static"), c))
    return {c: sorted(curves[c], key=lambda p: (p.mean_macs, p.accuracy)) for c in order}


FOCUS_BELOW_BEST = 0.15  # the y-axis shows accuracies within this much of the best point


def accuracy_axis(points: list[CurvePoint]) -> tuple[float, float, list[CurvePoint]]:
    """The y-range to draw and the points that fall below it.

    One collapsed run (a critic that diverged to chance) would otherwise stretch the
    axis to zero and flatten every curve worth comparing into a line; such points are
    marked at the bottom edge with their accuracy instead.
    """
    accs = [p.accuracy for p in points]
    best = max(accs)
    shown = [a for a in accs if a >= best - FOCUS_BELOW_BEST]
    span = max(best - min(shown), 0.01)
    low, high = min(shown) - 0.08 * span, best + 0.08 * span
    return low, high, [p for p in points if p.accuracy < low]


def accuracy_vs_macs(points: list[CurvePoint], path: Path, title: str = "",
                     xlabel: str = "mean MACs per example (routed inference)",
                     engineering_x: bool = True) -> dict[str, list[CurvePoint]]:
    """Plot every curve; returns the curves exactly as drawn (for tables and tests).

    Static networks are labelled by depth; routed points by k_cpt only when few
    curves share the plot (the tables beside it carry every value). The x axis is
    the points' ``mean_macs``; another cost (e.g. measured milliseconds per image)
    comes with its own ``xlabel`` and ``engineering_x=False``.
    """
    curves = group_curves(points)
    fig = Figure(figsize=(7.0, 4.6))
    ax = fig.add_subplot()
    label_routed = len(curves) <= 2
    for name, pts in curves.items():
        xs, ys = [p.mean_macs for p in pts], [p.accuracy for p in pts]
        static = name.startswith("static")
        line, = ax.plot(xs, ys, marker="s" if static else "o", markersize=4, linewidth=1.4,
                        linestyle="--" if static else "-", label=name)
        for p in pts:
            if p.label and (static or label_routed):
                ax.annotate(p.label, (p.mean_macs, p.accuracy), textcoords="offset points",
                            xytext=(3, 3), fontsize=6, alpha=0.7)
    if points:
        low, high, below = accuracy_axis(points)
        ax.set_ylim(low, high)
        colour = {name: ax.get_lines()[i].get_color() for i, name in enumerate(curves)}
        for p in below:  # off the axis: a marker on the bottom edge says where it went
            ax.plot([p.mean_macs], [low], marker="v", markersize=7, clip_on=False,
                    color=colour[p.curve], linestyle="none")
            ax.annotate(f"{p.label} {p.accuracy:.3f}".strip(), (p.mean_macs, low),
                        textcoords="offset points", xytext=(0, 7), ha="center", fontsize=6)
    if engineering_x:
        ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title("\n".join(textwrap.wrap(title or "accuracy vs computation", 90)), fontsize=10)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    return curves


# -- dataflow over training -----------------------------------------------------------------
@dataclass
class Heatmap:
    """Fraction classified at each exit (rows) at each logged iteration (columns)."""

    exits: list[str]
    iterations: list[int]
    fractions: list[list[float]]  # exit × iteration
    source: str  # "val" (validation evaluations) or "train" (training windows)
    path_macs: list[int] = field(default_factory=list)


def heatmap_data(run_dir: Path, source: str = "auto") -> Heatmap:
    """Exit × iteration fractions as logged: validation ones when there are any (as in
    the paper's Fig. 8), else the training windows'."""
    start, records = RunDir(run_dir).read_metrics()
    if source == "auto":
        source = "val" if any("val_exit_fraction" in r for r in records) else "train"
    key = f"{source}_exit_fraction"
    rows = [r for r in records if key in r]
    exits = list(start.get("exits", []))
    fractions = [[float(r[key][e]) for r in rows] for e in range(len(exits))]
    return Heatmap(exits, [int(r["iteration"]) for r in rows], fractions, source,
                   list(start.get("path_macs", [])))


FOLD_EXITS = 8  # runs with more exits than this show their busy exits, the rest as one row
BUSY = 0.05  # an exit is busy in a run if it takes this fraction at some logged point


def fold_idle_exits(panels: list[tuple[str, Heatmap]]) -> list[tuple[str, Heatmap]]:
    """For networks of many exits (a tree has dozens, most of them idle): each run keeps
    the exits that take ≥ BUSY at some logged point, in order, and sums the others into
    one row, so a panel stays readable and still adds up to 1."""
    if all(len(h.exits) <= FOLD_EXITS for _, h in panels):
        return panels
    out = []
    for name, h in panels:
        busy = [max(row, default=0.0) >= BUSY for row in h.fractions]
        keep = [e for e, b in enumerate(busy) if b]
        rest = [e for e, b in enumerate(busy) if not b]
        exits = [h.exits[e] for e in keep]
        fractions = [list(h.fractions[e]) for e in keep]
        macs = [h.path_macs[e] for e in keep] if h.path_macs else []  # none logged: none
        if rest:
            exits.append(f"{len(rest)} other exits")
            fractions.append([sum(h.fractions[e][t] for e in rest)
                              for t in range(len(h.iterations))])
            if h.path_macs:
                macs.append(0)  # a folded row has no one path's MACs
        out.append((name, Heatmap(exits, h.iterations, fractions, h.source, macs)))
    return out


def dataflow_heatmap(h: Heatmap, path: Path, title: str = "") -> None:
    """Fig. 8: fraction of examples classified at each exit over training."""
    import numpy as np

    if not h.iterations:
        raise RunError(f"no logged exit fractions to plot for {title or path}")
    h = fold_idle_exits([("", h)])[0][1]
    its = np.asarray(h.iterations, dtype=float)
    mids = (its[1:] + its[:-1]) / 2
    first = its[0] - (mids[0] - its[0] if len(its) > 1 else max(its[0], 1.0) / 2)
    last = its[-1] + (its[-1] - mids[-1] if len(its) > 1 else max(its[0], 1.0) / 2)
    edges = np.concatenate([[first], mids, [last]])
    fig = Figure(figsize=(7.0, 0.9 + 0.28 * max(len(h.exits), 2)))
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(edges, np.arange(len(h.exits) + 1),
                         np.asarray(h.fractions, dtype=float), cmap="magma", vmin=0.0,
                         vmax=1.0, shading="flat")
    labels = [f"{e}  ({_macs(m)})" if m else e
              for e, m in zip(h.exits, h.path_macs or [0] * len(h.exits))]
    ax.set_yticks(np.arange(len(h.exits)) + 0.5, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("iteration")
    which = "validation examples" if h.source == "val" else "training examples (running window)"
    ax.set_title(title or f"fraction of {which} classified at each exit", fontsize=9)
    bar = fig.colorbar(mesh, ax=ax, pad=0.01)
    bar.set_label(f"fraction of {h.source} examples", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def dataflow_heatmaps(panels: list[tuple[str, Heatmap]], path: Path, title: str = "") -> None:
    """Fig. 8 for a suite: one heatmap per run, stacked, sharing the colour scale."""
    import numpy as np

    if not panels:
        raise RunError(f"no runs with logged exit fractions to plot for {title or path}")
    panels = fold_idle_exits(panels)
    heights = [0.35 + 0.22 * max(len(h.exits), 2) for _, h in panels]
    fig = Figure(figsize=(7.0, 0.6 + sum(heights)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    mesh = None
    for ax, (name, h) in zip(axes, panels):
        its = np.asarray(h.iterations, dtype=float)
        step = float(its[1] - its[0]) if len(its) > 1 else max(float(its[0]), 1.0)
        edges = np.concatenate([[its[0] - step / 2], (its[1:] + its[:-1]) / 2,
                                [its[-1] + step / 2]])
        mesh = ax.pcolormesh(edges, np.arange(len(h.exits) + 1),
                             np.asarray(h.fractions, dtype=float), cmap="magma", vmin=0.0,
                             vmax=1.0, shading="flat")
        ax.set_yticks(np.arange(len(h.exits)) + 0.5, h.exits, fontsize=5)
        ax.invert_yaxis()
        ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("iteration")
    if title:
        fig.suptitle(title, fontsize=9)
    assert mesh is not None
    bar = fig.colorbar(mesh, ax=list(axes), pad=0.01, fraction=0.03, aspect=40)
    bar.set_label("fraction classified at the exit", fontsize=7)
    save_figure(fig, path)


def _macs(m: float) -> str:
    from routec.report.draw import fmt_macs

    return fmt_macs(m) + " MACs"


# -- saving -----------------------------------------------------------------------------
def save_figure(fig: Figure, path: Path, dpi: int = 110) -> None:
    """Save by suffix; unknown formats and unwritable places are one-line user errors."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise RoutecError(f"{path}: unknown plot format '{path.suffix or '(none)'}'",
                          hint="end the file name in " + ", ".join("." + f for f in PLOT_FORMATS))
    buf = io.BytesIO()
    meta = {"Date": None} if fmt in ("svg", "pdf") else {}  # same data, same bytes
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
    write_bytes(path, buf.getvalue())
