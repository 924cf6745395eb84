"""The training loop: batches → strategy loss → TALR → SGD, with logs and checkpoints.

Everything that decides what happens next (weights, optimizer momentum, the
batch order, augmentation and k_cpt draws) is in the checkpoint, so a run killed
at any moment and resumed ends exactly where an uninterrupted run would.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from routec.data.load import split_table
from routec.data.splits import sample_indices
from routec.errors import RoutecError, RunError, TrainingDiverged
from routec.files import atomic_write_text
from routec.parse import parse_spec
from routec.runtime.routing import RoutedNetwork
from routec.train import distributed as D
from routec.train.actor import actor_loss
from routec.train.checkpoint import load_checkpoint, save_checkpoint
from routec.train.config import RunConfig, changed_settings, flag_name, saved_config
from routec.train.device import resolve_device
from routec.train.costs import StepResult, node_params
from routec.train.critic import critic_loss
from routec.train.backbone import (FeatureCache, cache_bytes_estimate, distill_loss, freeze,
                                   own_head_leaves)
from routec.train.evaluate import evaluate
from routec.train.interrupt import Interrupted, StopOnSignal
from routec.train.lock import RunLock, remove_stale_temporaries
from routec.train.machine import describe
from routec.train.model import build_network, digest, spec_text, to_device
from routec.train.runs import load_data, make_augmenter
from routec.train.sampled import sampled_critic_loss
from routec.train.sgd import SGD
from routec.train.schedules import halving, learning_rate
from routec.train.static import multi_exit_loss, static_loss
from routec.train.talr import apply_talr, talr_scales
from routec.train.tree import Tree

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.json"
COST_TABLE = "cost_table.json"


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
class RunResult:
    out_dir: Path
    iteration: int
    finished: bool
    val: dict[str, Any] | None


def strategy_step(cfg: RunConfig, net: RoutedNetwork, model: torch.nn.Module, x: Tensor,
                  y: Tensor, k: Tensor | float, tau: float, gen: torch.Generator,
                  node_cost: Tensor | None = None, distill_head: int | None = None
                  ) -> StepResult:
    """One loss evaluation; ``model`` may be the DDP wrapper of ``net``; ``node_cost``
    prices the nodes (--cost latency: ms per example; None: MACs); with
    ``distill_head`` (a leaf index) the exits are also pulled towards that leaf's
    logits, weighted by --distill."""
    res = _strategy_step(cfg, net, model, x, y, k, tau, gen, node_cost)
    if distill_head is not None and res.leaf_logits is not None:
        res.loss = res.loss + cfg.distill * distill_loss(res.leaf_logits, distill_head)
    return res


def _strategy_step(cfg: RunConfig, net: RoutedNetwork, model: torch.nn.Module, x: Tensor,
                   y: Tensor, k: Tensor | float, tau: float, gen: torch.Generator,
                   node_cost: Tensor | None = None) -> StepResult:
    k_in = k * (cfg.router_k_cpt(1.0)) if cfg.dynamic else None
    if cfg.strategy == "critic" and cfg.critic_mode == "sampled":
        return sampled_critic_loss(net, x, y, k, tau, utility=cfg.utility,
                                   error=cfg.critic_error, k_ure=cfg.k_ure, k_l2=cfg.k_l2,
                                   epsilon=cfg.epsilon, generator=gen,
                                   k_cpt_input=k_in, node_cost=node_cost)
    out = model(x, k_cpt=k_in)
    if cfg.strategy == "actor":
        res = actor_loss(net, out, y, k, tau, k_dec=cfg.k_dec, k_l2=cfg.k_l2,
                         epsilon=cfg.epsilon, regularise_dhat=cfg.regularise_dhat,
                         node_cost=node_cost)
    elif cfg.strategy == "critic":
        res = critic_loss(net, out, y, k, tau, utility=cfg.utility, error=cfg.critic_error,
                          k_ure=cfg.k_ure, k_l2=cfg.k_l2, epsilon=cfg.epsilon,
                          node_cost=node_cost)
    elif cfg.strategy == "static":
        res = static_loss(net, out, y, k_l2=cfg.k_l2)
    else:
        res = multi_exit_loss(net, out, y, k_l2=cfg.k_l2)
    res.leaf_logits = out.leaf_logits
    return res


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
    except OSError as err:  # a full disk names no file: say which one
        raise RunError(f"{path}: cannot write ({err.strerror or err})") from None


def _truncate_metrics(path: Path, iteration: int) -> None:
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


def train(cfg: RunConfig, out_dir: Path, *, resume: bool = False, progress: bool = True,
          stop_after: int | None = None, start_if_missing: bool = False) -> RunResult:
    """Train ``cfg`` into ``out_dir``; ``stop_after`` ends early (for tests) as if killed.

    ``resume`` continues the checkpoint in ``out_dir``; when there is none it is an
    error unless ``start_if_missing`` (a run killed before its first checkpoint, or
    never started, then starts from iteration 0).

    The writing process holds the run directory's lock throughout (a second writer is
    refused with the holder's pid), and SIGINT or SIGTERM end the run at the next
    iteration boundary with a checkpoint written (:class:`Interrupted`).
    """
    out_dir = Path(out_dir)
    resolve_device(cfg.device)  # a device that is not there creates no run directory
    if int(os.environ.get("RANK", "0")) != 0:  # only the leader writes the run directory
        return _train(cfg, out_dir, resume=resume, progress=progress, stop_after=stop_after,
                      start_if_missing=start_if_missing)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"--out {out_dir} is a file; a run needs a folder")
    with RunLock(out_dir):
        remove_stale_temporaries(out_dir)
        with StopOnSignal() as stop:
            return _train(cfg, out_dir, resume=resume, progress=progress,
                          stop_after=stop_after, start_if_missing=start_if_missing, stop=stop)


def _resume_checks(state: dict[str, Any], cfg: RunConfig, spec_label: str | None,
                   spec_now: str | None) -> None:
    """Refuse a resume that would silently do something else than continue the run."""
    changed = changed_settings(saved_config(state["config"]), cfg)
    if changed:
        raise RunError("the checkpoint was written with another configuration: " + "; ".join(
            f"{flag_name(k)} was {a!r}, now {b!r}" for k, a, b in changed)
            + " (a resume may change only --iterations and where the data lives)")
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


def _train(cfg: RunConfig, out_dir: Path, *, resume: bool, progress: bool,
           stop_after: int | None, start_if_missing: bool,
           stop: StopOnSignal | None = None) -> RunResult:
    device = resolve_device(cfg.device)  # before any data is decoded
    dist = D.setup()
    torch.manual_seed(cfg.seed)
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise RunError(f"{out_dir} already holds a run; pass --resume to continue it, or "
                       "choose another --out")
    if resume and not ckpt_path.exists() and not start_if_missing:
        raise RunError(missing_checkpoint_message(out_dir))
    state = load_checkpoint(ckpt_path) if (resume and ckpt_path.exists()) else None
    if state is not None:
        try:
            label, now = spec_text(cfg.spec)
        except RoutecError:  # the file moved: resume the network that was trained
            label, now = state.get("spec_label", cfg.spec), None
        _resume_checks(state, cfg, label, now)
        if int(state["iteration"]) == cfg.iterations and state.get("finished"):
            print(f"{out_dir} is already complete at iteration {cfg.iterations}; nothing to "
                  "train (raise --iterations to train on)", file=sys.stderr)
            return RunResult(out_dir, cfg.iterations, True, last_validation(out_dir / METRICS))
        text = state["spec_text"]
    else:
        label, text = spec_text(cfg.spec)
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
        print(f"data: {cfg.data}: {data.info.source}", file=sys.stderr)
        print(split_table(data), file=sys.stderr)
        if data.info.normalization is not None:
            mean, std = data.info.normalization
            print(f"normalised per channel with the training split's mean "
                  f"{', '.join(f'{v:.4f}' for v in mean)} and std "
                  f"{', '.join(f'{v:.4f}' for v in std)}", file=sys.stderr)
        declared = parse_spec(text, label).classes
        if declared is not None and declared != classes:
            print(f"note: spec '{g.name}' declares {declared} classes; dataset '{cfg.data}' has "
                  f"{classes}, so its classifiers get {classes} outputs", file=sys.stderr)
    if tuple(net.INPUT_SHAPE) != tuple(data.train.images.shape[1:]):
        raise RunError(f"network '{g.name}' takes {net.INPUT_SHAPE} images but dataset "
                       f"'{cfg.data}' has {tuple(data.train.images.shape[1:])}")
    node_cost, table = run_cost_table(cfg, net, out_dir if state is not None else None)
    frozen = freeze(net, cfg.freeze)
    if frozen and dist.rank == 0:
        print(f"frozen: {', '.join(frozen)} (no gradients, batch-norm statistics kept)",
              file=sys.stderr)
    head = None
    if cfg.distill:
        heads = own_head_leaves(net)
        if len(heads) != 1 or (cfg.strategy == "critic" and cfg.critic_mode == "sampled"):
            raise RunError("--distill needs one exit that reads a supplied model's own head "
                           "(`exit NAME = logits`) and a strategy with a dense pass "
                           f"(this network has {len(heads)} such exits)")
        head = heads[0]
    to_device(net, device)
    model = D.wrap(net, dist, device)
    opt = SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    order = BatchOrder(len(data.train), cfg.batch, cfg.seed)
    augmenter = make_augmenter(cfg, data)
    kgen = torch.Generator().manual_seed(cfg.seed + 2)
    sgen = torch.Generator().manual_seed(cfg.seed + 3)
    start = 0
    if state is not None:
        if state["spec_sha256"] != digest(text):
            raise RunError("the checkpoint's spec does not match")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        order.restore(state["order"])
        augmenter.restore(state["augment_rng"])
        kgen.set_state(state["kcpt_rng"])
        sgen.set_state(state["sample_rng"])
        torch.set_rng_state(state["torch_rng"])
        start = state["iteration"]
        window_state = state.get("window")
    leader = dist.rank == 0
    if leader:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / CONFIG, json.dumps(cfg.model_dump(), indent=2) + "\n")
        atomic_write_text(out_dir / "spec.route", text)
        if table is not None:
            atomic_write_text(out_dir / COST_TABLE, json.dumps(table, indent=2) + "\n")
        if start == 0:  # a fresh start (perhaps of a run killed before its first checkpoint)
            (out_dir / METRICS).unlink(missing_ok=True)
        else:
            _truncate_metrics(out_dir / METRICS, start)
        if start == 0:
            _append_jsonl(out_dir / METRICS, {
                "event": "start", "iteration": 0, "network": g.name, "data": cfg.data,
                "data_source": data.info.source, "strategy": cfg.strategy,
                "exits": [g.nodes[i].id for i in g.leaves], "path_macs": g.path_macs(),
                "world_size": dist.world_size, "machine": describe(device),
            })
        else:  # a resumed run may continue elsewhere: say where
            _append_jsonl(out_dir / METRICS, {"event": "resume", "iteration": start,
                                              "world_size": dist.world_size,
                                              "machine": describe(device)})
    tree = Tree.of(net)
    params = node_params(net)
    path_macs = tree.path_macs()
    grid = torch.tensor(cfg.k_cpt_grid, dtype=torch.float32)
    val_images, val_labels = data.val.images, data.val.labels
    if cfg.val_examples:  # a sample of the whole split: it is stored class by class
        keep = sample_indices(len(val_labels), cfg.val_examples)
        val_images, val_labels = val_images[keep], val_labels[keep]
    eval_k = (cfg.router_k_cpt(0.04 if cfg.cost == "latency" else 4e-9)
              if cfg.dynamic else None)
    node_cost_dev = None if node_cost is None else node_cost.to(device)
    path_seconds = None
    if table is not None:
        from routec.engine.profile import path_seconds as _path_seconds

        path_seconds = _path_seconds(table, tree.parent, tree.leaves)

    def save(iteration: int, finished: bool) -> None:
        if not leader:
            return
        bad = [k for k, v in net.state_dict().items()
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:  # e.g. a batch-norm running variance overflowed before the loss did
            good = _last_good(ckpt_path)
            raise TrainingDiverged(
                f"the network's state became non-finite by iteration {iteration} ({bad[0]}"
                f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''})",
                iteration=iteration, last_good=good,
                hint="lower --lr, or check the data for NaN/inf values")
        save_checkpoint(ckpt_path, {
            "iteration": iteration, "finished": finished, "config": cfg.model_dump(),
            "spec_text": text, "spec_sha256": digest(text), "spec_label": label,
            "classes": list(data.info.classes), "data_files": data.info.files_digest,
            "model": net.state_dict(),
            "optimizer": opt.state_dict(), "order": order.state(),
            "augment_rng": augmenter.state(), "kcpt_rng": kgen.get_state(),
            "sample_rng": sgen.get_state(), "torch_rng": torch.get_rng_state(),
            # the running log window, so a checkpoint between log lines resumes them exactly
            "window": {"sums": dict(window), "leaf_counts": leaf_counts.clone()},
        })

    window: dict[str, float] = {"loss": 0.0, "correct": 0.0, "macs": 0.0, "n": 0.0}
    leaf_counts = torch.zeros(len(tree.leaves))
    if state is not None and window_state is not None:
        window.update(window_state["sums"])
        leaf_counts = window_state["leaf_counts"].clone()
    cache = _feature_cache(cfg, net, data, device, frozen, leader)
    last_save = time.monotonic()
    bar = _Progress(cfg.iterations, start, enabled=progress and leader)
    t0 = time.perf_counter()
    val: dict[str, Any] | None = None
    net.train()
    try:
        for it in range(start, cfg.iterations):
            if stop is not None and stop.requested:
                if it > start:  # the work since the last checkpoint is kept
                    save(it, False)
                raise Interrupted(stop.requested, iteration=it, out_dir=out_dir)
            if stop_after is not None and it >= stop_after:
                return RunResult(out_dir, it, False, val)
            idx = order.next()
            x = data.train.images.index_select(0, idx)
            y = data.train.labels.index_select(0, idx)
            if cfg.augment:
                x = augmenter(x, data.train.origin.index_select(0, idx))
            if cfg.dynamic:
                k: Tensor | float = grid[torch.randint(len(grid), (len(idx),), generator=kgen)]
            else:
                k = float(cfg.k_cpt)
            x, y = D.shard(x, dist).to(device), D.shard(y, dist).to(device)
            if isinstance(k, Tensor):
                k = D.shard(k, dist).to(device)
            lr = learning_rate(cfg.lr, cfg.lr_halflife, cfg.warmup or 0, it)
            tau = halving(cfg.effective_tau, cfg.tau_halflife, it)
            for group in opt.param_groups:
                group["lr"] = lr
            with (cache.rows(D.shard(idx, dist)) if cache is not None else nullcontext()):
                res = strategy_step(cfg, net, model, x, y, k, tau, sgen, node_cost_dev,
                                    distill_head=head)
            if not math.isfinite(float(res.loss.detach())):
                good = _last_good(ckpt_path)
                raise TrainingDiverged(
                    f"loss became {float(res.loss.detach())} at iteration {it}",
                    iteration=it, last_good=good,
                    hint="lower --lr, or check the data for NaN/inf values")
            opt.zero_grad(set_to_none=True)
            res.loss.backward()
            if cfg.talr and cfg.strategy in ("actor", "critic"):
                apply_talr(params, D.global_talr_scales(res.reach, dist))
            if cfg.clip_grad_norm:  # after TALR, on the gradient SGD will take
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad_norm)
            opt.step()
            # running metrics under the inference policy
            window["loss"] += float(res.loss.detach()) * len(y)
            window["correct"] += float((res.logits.argmax(dim=1) == y).sum())
            window["macs"] += float(path_macs[res.leaf.cpu()].sum())
            window["n"] += len(y)
            leaf_counts += torch.bincount(res.leaf.cpu(), minlength=len(tree.leaves))
            done = it + 1
            bar.update(done, window)
            if done % cfg.log_every == 0 or done % cfg.eval_every == 0 or done == cfg.iterations:
                record: dict[str, Any] = {
                    "iteration": done, "lr": lr, "tau": tau,
                    "train_loss": window["loss"] / window["n"],
                    "train_accuracy": window["correct"] / window["n"],
                    "train_mean_macs": window["macs"] / window["n"],
                    "train_exit_fraction": (leaf_counts / leaf_counts.sum()).tolist(),
                    "seconds": time.perf_counter() - t0,
                }
                if done % cfg.eval_every == 0 or done == cfg.iterations:
                    r = evaluate(net, val_images, val_labels, k_cpt=eval_k)
                    val = {"accuracy": r.accuracy, "mean_macs": r.mean_macs,
                           "exit_fraction": r.exit_fraction}
                    if path_seconds is not None:  # measured time, from the cost table
                        val["mean_seconds"] = sum(f * t for f, t in
                                                  zip(r.exit_fraction, path_seconds))
                    record.update({f"val_{key}": v for key, v in val.items()})
                    if eval_k is not None:
                        record["val_k_cpt"] = eval_k / cfg.router_k_cpt(1.0)
                if leader:
                    _append_jsonl(out_dir / METRICS, record)
                window = {key: 0.0 for key in window}
                leaf_counts.zero_()
            timed = (cfg.checkpoint_seconds > 0
                     and time.monotonic() - last_save >= cfg.checkpoint_seconds)
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations or timed:
                save(done, done == cfg.iterations)
                last_save = time.monotonic()
    finally:
        bar.close()
        D.teardown(dist)
    return RunResult(out_dir, cfg.iterations, True, val)


def _feature_cache(cfg: RunConfig, net: RoutedNetwork, data: Any, device: torch.device,
                   frozen: list[str], leader: bool) -> FeatureCache | None:
    """The frozen pieces' outputs for the training split, when no augmentation changes
    their input and they fit in a quarter of the free memory; says which, either way."""
    if not frozen:
        return None
    say = (lambda m: print(m, file=sys.stderr)) if leader else (lambda m: None)
    if cfg.augment:
        say("frozen pieces are computed at every step: augmentation changes their input "
            "(--no-augment caches their outputs once)")
        return None
    if cfg.iterations * cfg.batch < len(data.train):
        say("frozen pieces are computed at every step: this run sees fewer examples than "
            "caching every training image would compute")
        return None
    from routec.graph.memory import available_memory

    need = cache_bytes_estimate(net, len(data.train))
    free = available_memory(str(device))
    if free is not None and need > free[0] // 4:
        say(f"frozen pieces are computed at every step: caching their outputs would take "
            f"{need / 2**30:.1f} GiB of {free[0] / 2**30:.1f} GiB free")
        return None
    t0 = time.perf_counter()
    cache = FeatureCache.build(net, data.train.images, device)
    say(f"cached the frozen pieces' outputs for {len(data.train):,} training images "
        f"({cache.nbytes / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    return cache


def run_cost_table(cfg: RunConfig, net: RoutedNetwork, run_dir: Path | None
                   ) -> tuple[Tensor | None, dict[str, Any] | None]:
    """(per-node cost vector, cost table) of a --cost latency run, else (None, None).

    A resumed run keeps the table it was started with (its run directory's copy);
    a table for other nodes than the network's is a one-line error."""
    if cfg.cost != "latency":
        return None, None
    from routec.engine.profile import load_cost_table, node_seconds
    from routec.train.costs import node_costs

    saved = None if run_dir is None else run_dir / COST_TABLE
    path = saved if saved is not None and saved.exists() else Path(str(cfg.cost_table))
    table = load_cost_table(path)
    seconds = node_seconds(table, list(net.NODES), str(net.NAME), source=f"cost table {path}")
    return node_costs(seconds), table


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


def _last_good(path: Path) -> int | None:
    """The iteration of the checkpoint at ``path``; None if there is none (or it is unreadable)."""
    if not path.exists():
        return None
    try:
        return int(load_checkpoint(path)["iteration"])
    except RunError:
        return None


class _Progress:
    """A rich progress bar showing iteration, loss, accuracy, mean MACs and it/s."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.enabled = enabled and os.environ.get("ROUTEC_NO_PROGRESS") is None
        if not self.enabled:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(
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
