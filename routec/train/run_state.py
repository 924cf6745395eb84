"""A training run's pieces: set up from the config, restored from and saved to the
checkpoint.

Everything that decides what happens next (weights, optimizer momentum, the
batch order, augmentation and k_cpt draws, the torch RNG, the log window) is in
the checkpoint, and the pieces are built in one fixed order, so a resumed run
continues exactly where an uninterrupted one would be.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from routec.data.load import split_table
from routec.errors import RoutecError, RunError, TrainingDiverged
from routec.files import atomic_write_text
from routec.parse import parse_spec
from routec.runtime.routing import RoutedNetwork
from routec.train import distributed as D
from routec.train.backbone import FeatureCache, freeze, own_head_leaves
from routec.train.checkpoint import load_checkpoint, save_checkpoint
from routec.train.config import RunConfig, changed_settings, flag_name, saved_config
from routec.train.costs import node_params
from routec.train.machine import describe
from routec.train.metrics import METRICS, MetricsWindow, append_jsonl, truncate_metrics
from routec.train.model import build_network, digest, spec_text, to_device
from routec.train.precision import check_precision, grad_scaler
from routec.train.run_dir import load_data
from routec.train.runs import make_augmenter
from routec.train.sgd import SGD
from routec.train.run_files import CHECKPOINT, CONFIG, COST_TABLE, SPEC



class BatchOrder:
    """Shuffled epochs from one generator; resumable mid-epoch from (state, position)."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch = n, batch
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch_state = self.gen.get_state()
        self.order = torch.randperm(n, generator=self.gen)
        self.pos = 0

    def next(self) -> Tensor:
        if self.pos + self.batch > self.n:  # drop the ragged end: every batch is full
            self.epoch_state = self.gen.get_state()
            self.order = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return idx

    def state(self) -> dict[str, Any]:
        return {"epoch_state": self.epoch_state, "pos": self.pos}

    def restore(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["epoch_state"])
        self.epoch_state = state["epoch_state"]
        self.order = torch.randperm(self.n, generator=self.gen)
        self.pos = state["pos"]


@dataclass
class Run:
    """What the loop works on: the network, its optimizer and the generators of
    every random draw (each its own, so each is saved and restored on its own)."""
    cfg: RunConfig
    out_dir: Path
    device: torch.device
    dist: D.Dist
    label: str
    text: str
    graph: Any
    data: Any
    net: RoutedNetwork
    model: torch.nn.Module  # the DDP wrapper of ``net`` (``net`` itself on one process)
    opt: SGD
    order: BatchOrder
    augmenter: Any
    kgen: torch.Generator  # k_cpt draws
    sgen: torch.Generator  # the sampled critic's draws
    node_cost: Tensor | None  # --cost latency: ms per example of each node, on the device
    table: dict[str, Any] | None  # the cost table it came from
    frozen: list[str]
    head: int | None  # the --distill teacher exit
    params: list[list[Tensor]]  # per node, for TALR
    grid: Tensor  # the k_cpt values a dynamic run trains at
    cache: FeatureCache | None = None  # built after the restore (see loop._feature_cache)
    scaler: torch.amp.GradScaler | None = None  # --precision fp16's loss scaler
    untrainable_noted: bool = False  # said once that nothing on the trained path learns
    compiled_step: Any = None  # --compile: strategy_step compiled (steps.compile_step)
    compiled_update: Any = None  # --compile: TALR, clipping, SGD (compiled_update.py)

    @property
    def leader(self) -> bool:
        return self.dist.rank == 0

    @property
    def ckpt_path(self) -> Path:
        return self.out_dir / CHECKPOINT


def read_checkpoint(cfg: RunConfig, out_dir: Path, resume: bool, start_if_missing: bool
                    ) -> tuple[dict[str, Any] | None, str, str]:
    """(checkpoint or None, spec label, spec text): a resumed run keeps the spec it was
    trained with, and is refused when it would not simply continue."""
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise RunError(f"{out_dir} already holds a run; pass --resume to continue it, or "
                       "choose another --out")
    if resume and not ckpt_path.exists() and not start_if_missing:
        raise RunError(missing_checkpoint_message(out_dir))
    state = load_checkpoint(ckpt_path) if (resume and ckpt_path.exists()) else None
    if state is None:
        return None, *spec_text(cfg.spec)
    try:
        label, now = spec_text(cfg.spec)
    except RoutecError:  # the file moved: resume the network that was trained
        label, now = state.get("spec_label", cfg.spec), None
    resume_checks(state, cfg, label, now)
    return state, label, state["spec_text"]


def resume_checks(state: dict[str, Any], cfg: RunConfig, spec_label: str | None,
                  spec_now: str | None) -> None:
    """Refuse a resume that would silently do something else than continue the run."""
    changed = changed_settings(saved_config(state["config"]), cfg)
    if changed:
        raise RunError("the checkpoint was written with another configuration: " + "; ".join(
            f"{flag_name(k)} was {a!r}, now {b!r}" for k, a, b in changed)
            + " (a resume may change only --iterations, where the data lives and "
              "--[no-]tensorboard)")
    at = int(state["iteration"])
    if cfg.iterations < at:
        raise RunError(f"--iterations {cfg.iterations} is below the checkpoint's iteration "
                       f"{at}; a resume can only go on (pass --iterations {at} or more)")
    if spec_now is not None and digest(spec_now) != state["spec_sha256"]:
        raise RunError(f"the spec {spec_label} changed since the run started (sha256 "
                       f"{state['spec_sha256'][:12]} in the checkpoint, "
                       f"{digest(spec_now)[:12]} now); a resume continues the network "
                       "that was trained", hint="restore the spec file, or start a new run "
                       "with another --out")


def setup(cfg: RunConfig, out_dir: Path, state: dict[str, Any] | None, label: str, text: str,
          device: torch.device, dist: D.Dist) -> Run:
    """Data, network, optimizer and generators, freshly seeded; the order of the steps
    fixes the weights' initial draws, so it does not change."""
    check_precision(cfg.precision, device)  # before any data is decoded
    if cfg.models:  # a new run starts from the weights given; a resumed one from its own
        from routec.backbone.supplied import supply_sources

        supply_sources(cfg.models, weights=state is None)
    # the spec's input shape is checked against the dataset before anything is decoded
    data = load_data(cfg, parse_spec(text, label).input_shape)
    classes = len(data.info.classes)
    g, net = build_network(label, text, classes=classes, dynamic=cfg.dynamic,
                           static_columns=cfg.static_columns, strategy=cfg.strategy,
                           batch=cfg.batch, device=str(device),  # refuses what cannot fit
                           kcpt_unit=cfg.router_kcpt_unit)
    if dist.rank == 0:
        _describe_data(cfg, data, g.name, parse_spec(text, label).classes)
    if tuple(net.INPUT_SHAPE) != tuple(data.train.images.shape[1:]):
        raise RunError(f"network '{g.name}' takes {net.INPUT_SHAPE} images but dataset "
                       f"'{cfg.data}' has {tuple(data.train.images.shape[1:])}")
    node_cost, table = run_cost_table(cfg, net, out_dir if state is not None else None)
    frozen = freeze(net, cfg.freeze)
    if frozen and dist.rank == 0:
        print(f"frozen: {', '.join(frozen)} (no gradients, batch-norm statistics kept)",
              file=sys.stderr)
    head = _distill_head(cfg, net)
    to_device(net, device)
    model = D.wrap(net, dist, device)
    return Run(cfg=cfg, out_dir=out_dir, device=device, dist=dist, label=label, text=text,
               graph=g, data=data, net=net, model=model,
               opt=SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum),
               order=BatchOrder(len(data.train), cfg.batch, cfg.seed),
               augmenter=make_augmenter(cfg, data),
               kgen=torch.Generator().manual_seed(cfg.seed + 2),
               sgen=torch.Generator().manual_seed(cfg.seed + 3),
               node_cost=None if node_cost is None else node_cost.to(device), table=table,
               frozen=frozen, head=head, params=node_params(net),
               grid=torch.tensor(cfg.k_cpt_grid, dtype=torch.float32),
               scaler=grad_scaler(cfg.precision, device))


def _describe_data(cfg: RunConfig, data: Any, name: str, declared: int | None) -> None:
    """Say on stderr which data the run trains on, its splits and normalisation."""
    classes = len(data.info.classes)
    print(f"data: {cfg.data}: {data.info.source}", file=sys.stderr)
    print(split_table(data), file=sys.stderr)
    if data.info.normalization is not None:
        mean, std = data.info.normalization
        print(f"normalised per channel with the training split's mean "
              f"{', '.join(f'{v:.4f}' for v in mean)} and std "
              f"{', '.join(f'{v:.4f}' for v in std)}", file=sys.stderr)
    if declared is not None and declared != classes:
        print(f"note: spec '{name}' declares {declared} classes; dataset '{cfg.data}' has "
              f"{classes}, so its classifiers get {classes} outputs", file=sys.stderr)


def _distill_head(cfg: RunConfig, net: RoutedNetwork) -> int | None:
    """The exit whose logits --distill pulls the others towards; None without --distill."""
    if not cfg.distill:
        return None
    heads = own_head_leaves(net)
    if len(heads) != 1 or (cfg.strategy == "critic" and cfg.critic_mode == "sampled"):
        raise RunError("--distill needs one exit that reads a supplied model's own head "
                       "(`exit NAME = logits`) and a strategy with a dense pass "
                       f"(this network has {len(heads)} such exits)")
    return heads[0]


def restore(run: Run, state: dict[str, Any] | None) -> tuple[int, dict[str, Any] | None]:
    """Put back every state that decides what happens next; (the iteration to go on
    from, the log window saved with it). A fresh run starts at 0 with no window."""
    if state is None:
        return 0, None
    if state["spec_sha256"] != digest(run.text):
        raise RunError("the checkpoint's spec does not match")
    run.net.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.order.restore(state["order"])
    run.augmenter.restore(state["augment_rng"])
    run.kgen.set_state(state["kcpt_rng"])
    run.sgen.set_state(state["sample_rng"])
    torch.set_rng_state(state["torch_rng"])
    if run.scaler is not None and "scaler" in state:
        run.scaler.load_state_dict(state["scaler"])
    return state["iteration"], state.get("window")


def open_run_dir(run: Run, start: int) -> None:
    """The leader's files before the first step: config, spec and cost table, and the
    metrics log cut back to the checkpoint with a start or resume line."""
    cfg, out_dir, metrics = run.cfg, run.out_dir, run.out_dir / METRICS
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / CONFIG, json.dumps(cfg.model_dump(), indent=2) + "\n")
    atomic_write_text(out_dir / SPEC, run.text)
    if run.table is not None:
        atomic_write_text(out_dir / COST_TABLE, json.dumps(run.table, indent=2) + "\n")
    if start == 0:  # a fresh start (perhaps of a run killed before its first checkpoint)
        metrics.unlink(missing_ok=True)
        g = run.graph
        append_jsonl(metrics, {
            "event": "start", "iteration": 0, "network": g.name, "data": cfg.data,
            "data_source": run.data.info.source, "strategy": cfg.strategy,
            "exits": [g.nodes[i].id for i in g.leaves], "path_macs": g.path_macs(),
            "world_size": run.dist.world_size, "machine": describe(run.device),
        })
    else:  # a resumed run may continue elsewhere: say where
        truncate_metrics(metrics, start)
        append_jsonl(metrics, {"event": "resume", "iteration": start,
                               "world_size": run.dist.world_size,
                               "machine": describe(run.device)})


def checkpoint_state(run: Run, iteration: int, finished: bool, window: MetricsWindow
                     ) -> dict[str, Any]:
    """The checkpoint's contents (existing checkpoints load by these keys: keep them)."""
    cfg, text = run.cfg, run.text
    return {
        "iteration": iteration, "finished": finished, "config": cfg.model_dump(),
        "spec_text": text, "spec_sha256": digest(text), "spec_label": run.label,
        "classes": list(run.data.info.classes), "data_files": run.data.info.files_digest,
        "model": run.net.state_dict(),
        "optimizer": run.opt.state_dict(), "order": run.order.state(),
        "augment_rng": run.augmenter.state(), "kcpt_rng": run.kgen.get_state(),
        "sample_rng": run.sgen.get_state(), "torch_rng": torch.get_rng_state(),
        # the running log window, so a checkpoint between log lines resumes them exactly
        "window": window.state(),
        # fp16's loss scale, so a resumed run goes on at the scale it had reached
        **({"scaler": run.scaler.state_dict()} if run.scaler is not None else {}),
    }


def save(run: Run, iteration: int, finished: bool, window: MetricsWindow) -> None:
    """Write the checkpoint (the leader only), refusing a network gone non-finite: the
    last good checkpoint is worth more than a broken one."""
    if not run.leader:
        return
    bad = [k for k, v in run.net.state_dict().items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # e.g. a batch-norm running variance overflowed before the loss did
        raise TrainingDiverged(
            f"the network's state became non-finite by iteration {iteration} ({bad[0]}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''})",
            iteration=iteration, last_good=last_good(run.ckpt_path),
            hint="lower --lr, or check the data for NaN/inf values")
    save_checkpoint(run.ckpt_path, checkpoint_state(run, iteration, finished, window))


def last_good(path: Path) -> int | None:
    """The iteration of the checkpoint at ``path``; None if there is none (or it is unreadable)."""
    if not path.exists():
        return None
    try:
        return int(load_checkpoint(path)["iteration"])
    except RunError:
        return None


def run_cost_table(cfg: RunConfig, net: RoutedNetwork, run_dir: Path | None
                   ) -> tuple[Tensor | None, dict[str, Any] | None]:
    """(per-node cost vector, cost table) of a --cost latency run, else (None, None).

    A resumed run keeps the table it was started with (its run directory's copy);
    a table for other nodes than the network's is a one-line error."""
    if cfg.cost != "latency":
        return None, None
    from routec.train.cost_table import load_cost_table, node_seconds
    from routec.train.costs import node_costs

    saved = None if run_dir is None else run_dir / COST_TABLE
    path = saved if saved is not None and saved.exists() else Path(str(cfg.cost_table))
    table = load_cost_table(path)
    seconds = node_seconds(table, list(net.NODES), str(net.NAME), source=f"cost table {path}")
    return node_costs(seconds), table


def missing_checkpoint_message(out_dir: Path) -> str:
    """Why there is nothing to resume in ``out_dir``, and how to start instead."""
    if not out_dir.exists():
        return f"--resume: {out_dir} does not exist, so there is no run to resume; " \
               "drop --resume to start a new run there"
    if (out_dir / CONFIG).exists():
        return (f"--resume: {out_dir} has no checkpoint (the run stopped before its first "
                "one); add --start-if-missing to start it again from iteration 0 with its "
                "saved settings")
    return (f"--resume: {out_dir} holds no run (no {CHECKPOINT}); drop --resume to start "
            "a new run there")
