"""Per-run results for reports, and the summary table in Markdown and HTML.

Reports never retrain: test accuracy and mean MACs come from routed inference
on a run's saved checkpoint, cached beside it (:mod:`routec.train.evaluations`).
"""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from routec.train.config import RunConfig
from routec.train.evaluations import POLICY, cache_path, k_tag  # noqa: F401
from routec.train.run_dir import Evaluator, RunDir


@dataclass
class RunInfo:
    """What a run directory says about itself without loading weights."""

    name: str
    path: Path
    config: RunConfig
    start: dict[str, Any]

    @property
    def exits(self) -> list[str]:
        return list(self.start.get("exits", []))

    @property
    def routed(self) -> bool:
        """More than one exit: there is dataflow to show."""
        return len(self.exits) > 1


def load_run_info(path: Path, name: str | None = None) -> RunInfo:
    run = RunDir(path)
    return RunInfo(name or run.path.resolve().name, run.path, run.config(), run.start())


def strategy_label(cfg: RunConfig) -> str:
    """The curve a run belongs to: strategy, its variant, and any ablation."""
    if cfg.strategy == "critic":
        label = f"critic-{cfg.utility}"
        if cfg.critic_error == "classification":
            label += ", classification error"
        if cfg.critic_mode == "sampled":
            label += ", sampled"
    else:
        label = cfg.strategy
    if cfg.strategy in ("actor", "critic"):
        if not cfg.talr:
            label += ", no TALR"
        if cfg.strategy == "actor" and cfg.k_dec == 0:
            label += ", no k_dec"
        if getattr(cfg, "regularise_dhat", False):
            label += ", d̂ regularised"
    if cfg.models and cfg.freeze == "none" and cfg.strategy != "static":
        label += ", backbone fine-tuned"  # beside the same strategy on a frozen one
    if cfg.dynamic:
        label += ", dynamic k_cpt"
        if cfg.k_cpt_conditioning != "paper":  # its own curve beside the paper's form
            label += f" ({cfg.k_cpt_conditioning})"
    return label


# -- rows -----------------------------------------------------------------------------------
@dataclass
class SummaryRow:
    run: str
    strategy: str
    network: str
    data: str
    k_cpt: str
    iterations: int
    finished: bool
    accuracy: float
    mean_macs: float
    exit_names: list[str] = field(default_factory=list)
    exit_fraction: list[float] = field(default_factory=list)
    k_value: float | None = None  # the k_cpt evaluated at (dynamic runs), else the trained one
    static_columns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def eval_ks(cfg: RunConfig) -> list[float | None]:
    """k_cpt values to evaluate at: the training grid for dynamic runs, else none."""
    return list(cfg.k_cpt_grid) if cfg.dynamic else [None]


def rows_for(info: RunInfo, ev: Evaluator, split: str) -> list[SummaryRow]:
    """One row per evaluation: one for a fixed-k_cpt run, one per grid k for a dynamic one."""
    cfg = info.config
    rows = []
    for k in eval_ks(cfg):
        rec = ev.result(split, k)
        r = rec["result"]
        trained = "dynamic" if cfg.dynamic else (
            "-" if cfg.strategy == "static" else f"{float(cfg.k_cpt):g}")  # static: no routing
        rows.append(SummaryRow(
            run=info.name, strategy=strategy_label(cfg), network=info.start.get("network", ""),
            data=cfg.data, k_cpt=trained if k is None else f"{trained} @ {k:g}",
            iterations=int(rec["iteration"]), finished=bool(rec["finished"]),
            accuracy=float(r["accuracy"]), mean_macs=float(r["mean_macs"]),
            exit_names=list(r["exit_names"]), exit_fraction=list(r["exit_fraction"]),
            k_value=k if k is not None else (None if cfg.dynamic else float(cfg.k_cpt)),
            static_columns=cfg.static_columns))
    return rows


# -- tables ---------------------------------------------------------------------------------
COLUMNS = ("run", "strategy", "k_cpt", "iterations", "accuracy", "mean MACs", "exit fractions")


LISTED_EXITS = 8  # up to this many exits a row lists every fraction, in the exits' order


def ratio_text(ratio: float, above: str, below: str) -> str:
    """``ratio`` (baseline over routed) as "2.85x fewer", or, below 1, as its inverse
    with the opposite word ("1.12x more"): never "0.89x fewer"."""
    return f"{ratio:.2f}x {above}" if ratio >= 1 else f"{1 / ratio:.2f}x {below}"


def macs_saving_text(ratio: float) -> str:
    """``ratio`` = baseline MACs / routed MACs."""
    return ratio_text(ratio, "fewer MACs", "more MACs")


def exit_fractions_text(names: list[str], fractions: list[float]) -> str:
    """Every exit's share, in order; for a network with many exits (a tree has dozens,
    most of them idle) only the exits that take ≥ 0.5%, by name, and what the rest take."""
    if len(fractions) <= LISTED_EXITS:
        return " / ".join(f"{f:.2f}" for f in fractions)
    shown = [(n.removeprefix("exit_"), f) for n, f in zip(names, fractions) if f >= 0.005]
    rest = [f for f in fractions if f < 0.005]
    text = ", ".join(f"{n} {f:.2f}" for n, f in shown)
    if rest:
        text += (f"; {len(rest)} other exits under 0.005 each"
                 + (f" ({sum(rest):.3f} in all)" if sum(rest) > 0 else ", all idle"))
    return text


def _cells(row: SummaryRow) -> list[str]:
    its = f"{row.iterations}" + ("" if row.finished else " (unfinished)")
    return [row.run, row.strategy, row.k_cpt, its, f"{row.accuracy:.4f}",
            f"{row.mean_macs:,.0f}", exit_fractions_text(row.exit_names, row.exit_fraction)]


def markdown_table(rows: list[SummaryRow], split: str = "test") -> str:
    """GitHub-flavoured Markdown; exit fractions in the order of the run's exits."""
    head = [c if c != "accuracy" else f"{split} accuracy" for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if c in ("iterations", "accuracy", "mean MACs") else "---"
                            for c in COLUMNS) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def html_table(rows: list[SummaryRow], split: str = "test") -> str:
    head = "".join(f"<th>{html.escape(c if c != 'accuracy' else f'{split} accuracy')}</th>"
                   for c in COLUMNS)
    body = []
    for row in rows:
        cells = _cells(row)
        tip = html.escape(", ".join(f"{n} {f:.3f}" for n, f in
                                    zip(row.exit_names, row.exit_fraction)))
        tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells[:-1])
        body.append(f"<tr>{tds}<td title=\"{tip}\">{html.escape(cells[-1])}</td></tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table>\n"


def html_page(title: str, rows: list[SummaryRow], figures: list[tuple[str, str]],
              split: str = "test", notes: list[str] | None = None) -> str:
    """A self-contained page: the table, then each figure (caption, relative path)."""
    figs = "\n".join(
        f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}">'
        f"<figcaption>{html.escape(cap)}</figcaption></figure>" for cap, src in figures)
    extra = "".join(f"<p>{html.escape(n)}</p>\n" for n in notes or [])
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>\n<style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
            "td:nth-child(4),td:nth-child(5),td:nth-child(6){text-align:right}"
            "img{max-width:100%}figure{margin:1.5em 0}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n{extra}{html_table(rows, split)}{figs}\n"
            "</body></html>\n")
