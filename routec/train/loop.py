"""The training loop: batches → strategy loss → TALR → SGD, with logs and checkpoints.

Everything that decides what happens next (weights, optimizer momentum, the
batch order, augmentation and k_cpt draws) is in the checkpoint, so a run killed
at any moment and resumed ends exactly where an uninterrupted run would.

The pieces: :mod:`routec.train.run_state` sets a run up, restores and saves it;
:mod:`routec.train.steps` takes one step; :mod:`routec.train.metrics` keeps the
log. This module puts them in order.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from routec.errors import RunError
from routec.runtime.routing import RoutedNetwork
from routec.train import distributed as D
from routec.train.backbone import FeatureCache, cache_bytes_estimate
from routec.train.compiled_update import CompiledUpdate
from routec.train.config import RunConfig
from routec.train.device import resolve_device
from routec.train.interrupt import Interrupted, StopOnSignal
from routec.train.lock import RunLock, remove_stale_temporaries
from routec.train.metrics import (METRICS, MetricsWindow, Progress, Validation, append_jsonl,
                                  last_validation)
from routec.train.run_state import (CHECKPOINT, CONFIG, COST_TABLE, BatchOrder, Run,
                                    missing_checkpoint_message, open_run_dir, read_checkpoint,
                                    restore, run_cost_table, save, setup)
from routec.train.steps import check_compile, compile_step, one_step, schedule, strategy_step
from routec.train.tensorboard import Board
from routec.train.tree import Tree

__all__ = ["CHECKPOINT", "CONFIG", "COST_TABLE", "METRICS", "BatchOrder", "RunResult",
           "last_validation", "missing_checkpoint_message", "run_cost_table",
           "strategy_step", "train"]


@dataclass
class RunResult:
    out_dir: Path
    iteration: int
    finished: bool
    val: dict[str, Any] | None


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
    # a device that is not there, or --compile without a compiler, creates no run directory
    check_compile(cfg, resolve_device(cfg.device))
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


def _train(cfg: RunConfig, out_dir: Path, *, resume: bool, progress: bool,
           stop_after: int | None, start_if_missing: bool,
           stop: StopOnSignal | None = None) -> RunResult:
    """Set up, restore, open the run directory, then loop (in this order: each step
    draws from the random state the one before left)."""
    device = D.process_device(resolve_device(cfg.device))  # before any data is decoded
    dist = D.setup(device)
    torch.manual_seed(cfg.seed)
    state, label, text = read_checkpoint(cfg, out_dir, resume, start_if_missing)
    if state is not None and int(state["iteration"]) == cfg.iterations and state.get("finished"):
        print(f"{out_dir} is already complete at iteration {cfg.iterations}; nothing to "
              "train (raise --iterations to train on)", file=sys.stderr)
        return RunResult(out_dir, cfg.iterations, True, last_validation(out_dir / METRICS))
    run = setup(cfg, out_dir, state, label, text, device, dist)
    start, saved_window = restore(run, state)
    if run.leader:
        open_run_dir(run, start)
    tree = Tree.of(run.net)
    validation = Validation(cfg, run.data, _path_seconds(run, tree))
    window = MetricsWindow(tree.path_macs(), saved_window)
    run.cache = _feature_cache(cfg, run.net, run.data, device, run.frozen, run.leader)
    if cfg.compile:
        run.compiled_step = compile_step()
        run.compiled_update = CompiledUpdate(run.params, run.opt, cfg.clip_grad_norm)
    return _loop(run, start, window, validation, stop=stop, stop_after=stop_after,
                 progress=progress)


def _loop(run: Run, start: int, window: MetricsWindow, validation: Validation, *,
          stop: StopOnSignal | None, stop_after: int | None, progress: bool) -> RunResult:
    """Step, log and checkpoint from ``start`` to --iterations; a signal ends it at an
    iteration boundary with the work since the last checkpoint saved."""
    cfg = run.cfg
    last_save = time.monotonic()
    board = Board.open(run, start)
    bar = Progress(cfg.iterations, start, enabled=progress and run.leader)
    window.t0 = time.perf_counter()  # the log's seconds count training, not the setup
    val: dict[str, Any] | None = None
    run.net.train()
    try:
        for it in range(start, cfg.iterations):
            if stop is not None and stop.requested:
                if it > start:  # the work since the last checkpoint is kept
                    save(run, it, False, window)
                raise Interrupted(stop.requested, iteration=it, out_dir=run.out_dir)
            if stop_after is not None and it >= stop_after:
                return RunResult(run.out_dir, it, False, val)
            lr, tau = schedule(cfg, it)
            res, y = one_step(run, it, lr, tau)
            window.add(res, y)
            done = it + 1
            bar.update(done, window.sums)
            val = _log(run, window, validation, board, done, lr, tau) or val
            timed = (cfg.checkpoint_seconds > 0
                     and time.monotonic() - last_save >= cfg.checkpoint_seconds)
            if done % cfg.checkpoint_every == 0 or done == cfg.iterations or timed:
                save(run, done, done == cfg.iterations, window)
                last_save = time.monotonic()
    finally:
        bar.close()
        board.close()
        D.teardown(run.dist)
    return RunResult(run.out_dir, cfg.iterations, True, val)


def _log(run: Run, window: MetricsWindow, validation: Validation, board: Board, done: int,
         lr: float, tau: float) -> dict[str, Any] | None:
    """At a log or validation boundary, one metrics line (and its TensorBoard scalars)
    and a fresh window; the validation result when one ran (every rank evaluates; the
    leader writes)."""
    cfg = run.cfg
    evaluates = done % cfg.eval_every == 0 or done == cfg.iterations
    if not (done % cfg.log_every == 0 or evaluates):
        return None
    record = window.record(done, lr, tau)
    val = None
    if evaluates:
        val = validation.run(run.net)
        validation.add_to(record, val)
    if run.leader:
        append_jsonl(run.out_dir / METRICS, record)
        board.add(record)
    window.reset()
    return val


def _path_seconds(run: Run, tree: Tree) -> list[float] | None:
    """Measured seconds of every root-to-exit path, with a cost table; else None."""
    if run.table is None:
        return None
    from routec.train.cost_table import path_seconds

    return path_seconds(run.table, tree.routing)


def _feature_cache(cfg: RunConfig, net: RoutedNetwork, data: Any, device: torch.device,
                   frozen: list[str], leader: bool) -> FeatureCache | None:
    """The frozen pieces' outputs for the training split, when no augmentation changes
    their input and they fit in half the free memory; says which, either way."""
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
    if free is not None and need > free[0] // 2:
        say(f"frozen pieces are computed at every step: caching their outputs would take "
            f"{need / 2**30:.1f} GiB of {free[0] / 2**30:.1f} GiB free")
        return None
    t0 = time.perf_counter()
    cache = FeatureCache.build(net, data.train.images, device)
    say(f"cached the frozen pieces' outputs for {len(data.train):,} training images "
        f"({cache.nbytes / 2**20:,.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    return cache
