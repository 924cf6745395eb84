"""Per-run results for reports, and the summary table in Markdown and HTML.

Reports never retrain: test accuracy and mean MACs come from routed inference
on a run's saved checkpoint (``routec.train.evaluate.evaluate``). Each
evaluation is cached beside the checkpoint as ``eval_<split>_<policy>_<k>.json``
and reused while the checkpoint file is unchanged, so a report reruns fast.
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from routec.errors import RunError
from routec.train.config import RunConfig, saved_config

POLICY = "argmax"


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
    from routec.report.plots import read_metrics

    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: not a run directory",
                       hint="pass directories written by routec train --out")
    try:
        config = saved_config(json.loads((path / "config.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise RunError(f"{path}: no config.json (not a routec run directory?)") from None
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise RunError(f"{path / 'config.json'}: unreadable ({err})") from None
    start, _ = read_metrics(path)
    return RunInfo(name or path.resolve().name, path, config, start)


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
    if cfg.dynamic:
        label += ", dynamic k_cpt"
        if cfg.k_cpt_conditioning != "paper":  # its own curve beside the paper's form
            label += f" ({cfg.k_cpt_conditioning})"
    return label


# -- cached evaluation --------------------------------------------------------------------
def k_tag(k: float | None) -> str:
    return "fixed" if k is None else f"{k:g}"


def cache_path(run_dir: Path, split: str, k: float | None, policy: str = POLICY) -> Path:
    return Path(run_dir) / f"eval_{split}_{policy}_{k_tag(k)}.json"


def _fingerprint(ckpt: Path) -> dict[str, int]:
    st = ckpt.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Evaluator:
    """Routed-inference evaluations of one run's checkpoint, cached in its directory.

    The checkpoint and dataset are loaded only when some evaluation is not cached.
    """

    def __init__(self, run_dir: Path, *, data_root: str | None = None,
                 cache_dir: str | None = None, use_cache: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.ckpt = self.run_dir / "checkpoint.pt"
        self.data_root, self.cache_dir, self.use_cache = data_root, cache_dir, use_cache
        self._loaded: tuple[Any, Any, Any, dict[str, Any]] | None = None
        self.computed = 0  # evaluations actually run (not read from the cache)

    def result(self, split: str, k: float | None) -> dict[str, Any]:
        if not self.ckpt.is_file():
            raise RunError(f"{self.run_dir}: no checkpoint.pt to evaluate")
        path = cache_path(self.run_dir, split, k)
        fp = _fingerprint(self.ckpt)
        if self.use_cache:
            cached = _read_json(path)
            if cached and cached.get("checkpoint") == fp:
                return cached
        record = self._evaluate(split, k)
        record["checkpoint"] = fp
        _write_json_quietly(path, record)
        return record

    def _evaluate(self, split: str, k: float | None) -> dict[str, Any]:
        from routec.train.evaluate import evaluate
        from routec.train.runs import load_run

        if self._loaded is None:
            self._loaded = load_run(self.run_dir, self.data_root, self.cache_dir)
        cfg, net, data, state = self._loaded
        part = data.test if split == "test" else data.val
        r = evaluate(net, part.images, part.labels,  # k: in the run's unit (per ms: latency)
                     k_cpt=None if k is None else cfg.router_k_cpt(k), policy=POLICY)
        self.computed += 1
        return {"split": split, "policy": POLICY, "k_cpt": k, "iteration": state["iteration"],
                "finished": state["finished"], "classes": list(state["classes"]),
                "result": r.as_dict()}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_quietly(path: Path, record: dict[str, Any]) -> None:
    """Cache if the run directory is writable; a read-only run still gets its report."""
    from routec.errors import RoutecError
    from routec.report.draw import write_bytes

    try:
        write_bytes(path, (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    except RoutecError:
        pass


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
