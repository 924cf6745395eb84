"""TensorBoard event files beside ``metrics.jsonl``: the same numbers, drawn live.

The board writes what the log line says (the records :mod:`routec.train.metrics`
builds), so the two never disagree; only the leader writes. A resumed run appends
to the same folder, and its new event file opens with TensorBoard's purge marker at
the step after the checkpoint, so steps logged past the checkpoint by the run that
was stopped are dropped from the curves, as they are from metrics.jsonl. A fresh
start removes event files left by an attempt that never checkpointed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from routec.errors import RunError

if TYPE_CHECKING:
    from routec.train.run_state import Run

EVENT_FILES = "events.out.tfevents.*"

# log-line key -> TensorBoard tag; the per-exit and per-node lists are in LISTS
TAGS = {
    "train_loss": "loss/total",
    "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/val",
    "train_mean_macs": "mean_macs/train", "val_mean_macs": "mean_macs/val",
    "val_mean_seconds": "mean_seconds/val",
    "lr": "schedule/lr", "tau": "schedule/temperature", "val_k_cpt": "schedule/val_k_cpt",
    "seconds": "time/seconds",
}
PART_PREFIX = "train_loss_"  # train_loss_<part> -> loss/<part> (costs.LOSS_PARTS)
# log-line key of a list -> (tag prefix, what its entries are named by)
LISTS = {"train_exit_fraction": ("exits/", "exits"), "val_exit_fraction": ("val_exits/", "exits"),
         "train_talr_scale": ("talr/", "nodes")}


def scalars(record: dict[str, Any], names: dict[str, list[str]],
            k_cpt: float | None) -> dict[str, float]:
    """The tags and values of one log line; ``names`` gives "exits" and "nodes" in log
    order; ``k_cpt`` (a fixed-k_cpt run's) is drawn beside the schedule."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in LISTS:
            prefix, kind = LISTS[key]
            out.update({prefix + name: float(v) for name, v in zip(names[kind], value)})
        elif key in TAGS:
            out[TAGS[key]] = float(value)
        elif key.startswith(PART_PREFIX):
            out["loss/" + key.removeprefix(PART_PREFIX)] = float(value)
        elif key != "iteration" and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            out[key] = float(value)  # a number the log gained later is drawn under its name
    if k_cpt is not None:
        out["schedule/k_cpt"] = k_cpt
    return out


class Board:
    """The run's TensorBoard writer; a board that is off (``writer`` None) does nothing."""

    def __init__(self, writer: Any, names: dict[str, list[str]], k_cpt: float | None) -> None:
        self.writer, self.names, self.k_cpt = writer, names, k_cpt

    @classmethod
    def open(cls, run: Run, start: int) -> Board:
        """The leader's board for a run going on from iteration ``start``; an off one for
        the other ranks and for --no-tensorboard."""
        cfg = run.cfg
        if not (cfg.tensorboard and run.leader):
            return cls(None, {}, None)
        g = run.graph
        names = {"exits": [g.nodes[i].id for i in g.leaves], "nodes": list(run.net.NODES)}
        return cls(_writer(run.out_dir, start), names, None if cfg.dynamic else float(cfg.k_cpt))

    def add(self, record: dict[str, Any]) -> None:
        """One log line's scalars at its iteration, on disk at once (as the log line is)."""
        if self.writer is None:
            return
        step = int(record["iteration"])
        for tag, value in scalars(record, self.names, self.k_cpt).items():
            self.writer.add_scalar(tag, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _writer(out_dir: Path, start: int) -> Any:
    """A SummaryWriter on ``out_dir``: past the checkpoint's step purged on a resume, the
    files of an attempt that never checkpointed removed on a fresh start."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise RunError(f"TensorBoard logging needs the tensorboard package ({err})",
                       hint="pip install tensorboard, or train with --no-tensorboard") from None
    if start == 0:
        for old in Path(out_dir).glob(EVENT_FILES):
            old.unlink()
    try:
        return SummaryWriter(log_dir=str(out_dir), purge_step=start + 1 if start else None)
    except OSError as err:
        raise RunError(f"{out_dir}: cannot write TensorBoard events ({err.strerror or err})",
                       hint="train with --no-tensorboard to skip them") from None
