"""What a training run reports: the running window of train metrics, validation,
the metrics.jsonl lines and the progress bar.

The window is part of the checkpoint, so a run resumed between two log lines
writes the same next line as one that never stopped.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from routec.data.splits import sample_indices
from routec.errors import RunError
from routec.files import atomic_write_text
from routec.runtime.routing import RoutedNetwork
from routec.train.config import RunConfig
from routec.train.costs import StepResult
from routec.train.evaluate import evaluate

METRICS = "metrics.jsonl"


class MetricsWindow:
    """Running sums and exit counts since the last log line, under the inference policy;
    the loss's parts (``loss_<part>`` sums) and the mean per-node TALR scales too."""

    def __init__(self, path_macs: Tensor, saved: dict[str, Any] | None = None) -> None:
        self.path_macs = path_macs
        self.sums: dict[str, float] = {"loss": 0.0, "correct": 0.0, "macs": 0.0, "n": 0.0}
        self.leaf_counts = torch.zeros(len(path_macs))
        self.talr: Tensor | None = None  # Σ of the steps' TALR scales, where TALR applies
        self.talr_steps = 0
        if saved is not None:  # a checkpoint written between two log lines
            self.sums.update(saved["sums"])
            self.leaf_counts = saved["leaf_counts"].clone()
            talr = saved.get("talr")  # absent from checkpoints written before it was logged
            self.talr = None if talr is None else talr.clone()
            self.talr_steps = int(saved.get("talr_steps", 0))
        self.t0 = time.perf_counter()

    def add(self, res: StepResult, y: Tensor) -> None:
        """Count one step's batch (``y``: the labels this process saw)."""
        self.sums["loss"] += float(res.loss.detach()) * len(y)
        self.sums["correct"] += float((res.logits.argmax(dim=1) == y).sum())
        self.sums["macs"] += float(self.path_macs[res.leaf.cpu()].sum())
        self.sums["n"] += len(y)
        self.leaf_counts += torch.bincount(res.leaf.cpu(), minlength=len(self.path_macs))
        if res.parts:  # one transfer from the device for all of them
            values = torch.stack([v.double() for v in res.parts.values()]).tolist()
            for name, v in zip(res.parts, values):
                self.sums[f"loss_{name}"] = self.sums.get(f"loss_{name}", 0.0) + v * len(y)
        if res.talr is not None:
            scales = res.talr.detach().double().cpu()
            self.talr = scales if self.talr is None else self.talr + scales
            self.talr_steps += 1

    def record(self, done: int, lr: float, tau: float) -> dict[str, Any]:
        """The train half of the log line for iteration ``done``."""
        n = self.sums["n"]
        out = {
            "iteration": done, "lr": lr, "tau": tau,
            "train_loss": self.sums["loss"] / n,
            "train_accuracy": self.sums["correct"] / n,
            "train_mean_macs": self.sums["macs"] / n,
            "train_exit_fraction": (self.leaf_counts / self.leaf_counts.sum()).tolist(),
            "seconds": time.perf_counter() - self.t0,
        }
        out.update({f"train_{k}": v / n for k, v in self.sums.items() if k.startswith("loss_")})
        if self.talr is not None and self.talr_steps:
            out["train_talr_scale"] = (self.talr / self.talr_steps).tolist()
        return out

    def reset(self) -> None:
        """Start the next window after a log line."""
        self.sums = {key: 0.0 for key in self.sums}
        self.leaf_counts.zero_()
        self.talr, self.talr_steps = None, 0

    def state(self) -> dict[str, Any]:
        """The checkpoint's "window" entry (copies: the loop goes on adding)."""
        out: dict[str, Any] = {"sums": dict(self.sums), "leaf_counts": self.leaf_counts.clone(),
                               "talr_steps": self.talr_steps}
        if self.talr is not None:
            out["talr"] = self.talr.clone()
        return out


class Validation:
    """The validation split (or the --val-examples sample of it) and how it is scored."""

    def __init__(self, cfg: RunConfig, data: Any, path_seconds: list[float] | None) -> None:
        self.cfg = cfg
        self.images, self.labels = data.val.images, data.val.labels
        if cfg.val_examples:  # a sample of the whole split: it is stored class by class
            keep = sample_indices(len(self.labels), cfg.val_examples)
            self.images, self.labels = self.images[keep], self.labels[keep]
        self.eval_k = (cfg.router_k_cpt(0.04 if cfg.cost == "latency" else 4e-9)
                       if cfg.dynamic else None)
        self.path_seconds = path_seconds  # measured time per exit, from the cost table

    def run(self, net: RoutedNetwork) -> dict[str, Any]:
        """Accuracy, mean MACs and exit fractions (and mean seconds with a cost table)."""
        r = evaluate(net, self.images, self.labels, k_cpt=self.eval_k)
        val = {"accuracy": r.accuracy, "mean_macs": r.mean_macs,
               "exit_fraction": r.exit_fraction}
        if self.path_seconds is not None:
            val["mean_seconds"] = sum(f * t for f, t in zip(r.exit_fraction, self.path_seconds))
        return val

    def add_to(self, record: dict[str, Any], val: dict[str, Any]) -> None:
        """The validation half of a log line: val_* keys, and the k_cpt it was scored at."""
        record.update({f"val_{key}": v for key, v in val.items()})
        if self.eval_k is not None:
            record["val_k_cpt"] = self.eval_k / self.cfg.router_k_cpt(1.0)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One log line, flushed at once (a killed run keeps every line it wrote)."""
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
    except OSError as err:  # a full disk names no file: say which one
        raise RunError(f"{path}: cannot write ({err.strerror or err})") from None


def truncate_metrics(path: Path, iteration: int) -> None:
    """On resume, drop log lines written after the checkpoint (they will be redone)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("iteration", 0) <= iteration:
                keep.append(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
    atomic_write_text(path, "".join(k + "\n" for k in keep))


def last_validation(metrics: Path) -> dict[str, Any] | None:
    """The last validation result logged in ``metrics`` (val_* keys, prefix dropped)."""
    found = None
    try:
        lines = metrics.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "val_accuracy" in record:
            found = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
    return found


class Progress:
    """A rich progress bar showing iteration, loss, accuracy, mean MACs and it/s."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.enabled = enabled and os.environ.get("ROUTEC_NO_PROGRESS") is None
        if not self.enabled:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                   TimeRemainingColumn)
        from rich.progress import Progress as Bar

        self.progress = Bar(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=False)
        self.task = self.progress.add_task("train", total=total, completed=start, stats="")
        self.progress.start()
        self.last = time.perf_counter()
        self.last_it = start

    def update(self, it: int, window: dict[str, float]) -> None:
        if not self.enabled or window["n"] == 0:
            return
        now = time.perf_counter()
        if now - self.last < 0.5 and it < self.progress.tasks[0].total:
            return
        rate = (it - self.last_it) / max(now - self.last, 1e-9)
        self.last, self.last_it = now, it
        stats = (f"loss {window['loss'] / window['n']:.3f}  acc {window['correct'] / window['n']:.3f}"
                 f"  MACs {window['macs'] / window['n'] / 1e6:.2f}M  {rate:.1f} it/s")
        self.progress.update(self.task, completed=it, stats=stats)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
