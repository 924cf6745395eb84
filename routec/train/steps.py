"""One training step: a batch → the strategy's loss → TALR → SGD.

Each random draw comes from its own generator in the run (batch order,
augmentation, k_cpt, the sampled critic), so a resumed run redraws the same.
"""
from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from typing import Callable

import torch
from torch import Tensor

from routec.errors import RunError, TrainingDiverged
from routec.runtime.routing import RoutedNetwork
from routec.train import distributed as D
from routec.train.actor import actor_loss
from routec.train.backbone import distill_loss
from routec.train.config import RunConfig
from routec.train.costs import StepResult
from routec.train.critic import critic_loss
from routec.train.machine import cxx_compiler
from routec.train.precision import autocast, in_fp32
from routec.train.run_state import Run, last_good
from routec.train.sampled import sampled_critic_loss
from routec.train.schedules import halving, learning_rate
from routec.train.static import multi_exit_loss, static_loss
from routec.train.talr import apply_talr


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
        distill = cfg.distill * distill_loss(res.leaf_logits, distill_head)
        res.loss = res.loss + distill
        res.parts["distill"] = distill.detach()
    return res


def _strategy_step(cfg: RunConfig, net: RoutedNetwork, model: torch.nn.Module, x: Tensor,
                   y: Tensor, k: Tensor | float, tau: float, gen: torch.Generator,
                   node_cost: Tensor | None = None) -> StepResult:
    k_in = k * (cfg.router_k_cpt(1.0)) if cfg.dynamic else None
    if cfg.strategy == "critic" and cfg.critic_mode == "sampled":
        with autocast(cfg.precision, x.device):  # its forward and loss are one function
            return sampled_critic_loss(net, x, y, k, tau, utility=cfg.utility,
                                       error=cfg.critic_error, k_ure=cfg.k_ure, k_l2=cfg.k_l2,
                                       epsilon=cfg.epsilon, generator=gen,
                                       k_cpt_input=k_in, node_cost=node_cost)
    # --precision: the network's forward under autocast, the losses in fp32 (MAC counts
    # and cost sums overflow fp16)
    with autocast(cfg.precision, x.device):
        out = model(x, k_cpt=k_in)
    out = in_fp32(out)
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


def check_compile(cfg: RunConfig, device: torch.device) -> None:
    """--compile on a CPU needs a C++ compiler for inductor's kernels: said before a run
    directory is made, not as a compiler's traceback at the first step."""
    if cfg.compile and device.type == "cpu" and cxx_compiler() is None:
        raise RunError("--compile needs a C++ compiler for torch.compile's CPU kernels and "
                       "none was found (c++, g++ or clang++ on PATH)",
                       hint="install one, e.g. `apt-get install g++`, or train without "
                            "--compile")


def compile_step() -> Callable[..., StepResult]:
    """:func:`strategy_step` compiled by torch.compile (inductor), for --compile.

    Why: with small heads (a frozen backbone whose features are cached) an eager step
    is mostly the per-op cost of the routing loss and its backward, some 150 small ops;
    compiled, the forward pass, the loss and its backward are a few fused kernels
    (docs/benchmarks.md, "Training on a frozen backbone"). TALR, clipping and SGD are
    compiled apart (:mod:`routec.train.compiled_update`).

    The temperature and a constant k_cpt enter as 0-d tensors: a number would be
    compiled in as a constant, and a decaying temperature (or the next run of a sweep
    in the same process) would compile the step again."""
    compiled = torch.compile(strategy_step)

    def step(cfg: RunConfig, net: RoutedNetwork, model: torch.nn.Module, x: Tensor,
             y: Tensor, k: Tensor | float, tau: float, gen: torch.Generator,
             node_cost: Tensor | None = None, distill_head: int | None = None
             ) -> StepResult:
        def number(v: Tensor | float) -> Tensor:
            return v if isinstance(v, Tensor) else torch.tensor(v, dtype=torch.float64,
                                                                device=x.device)
        return compiled(cfg, net, model, x, y, number(k), number(tau), gen, node_cost,
                        distill_head)

    return step


def schedule(cfg: RunConfig, it: int) -> tuple[float, float]:
    """(learning rate, temperature) at iteration ``it``: functions of ``it`` alone, so
    a resume needs no state for them."""
    return (learning_rate(cfg.lr, cfg.lr_halflife, cfg.warmup or 0, it),
            halving(cfg.effective_tau, cfg.tau_halflife, it))


def draw_batch(run: Run) -> tuple[Tensor, Tensor, Tensor, Tensor | float]:
    """(indices, images, labels, k_cpt) of the next global batch, this process's slice
    of it on the device; every rank draws the same batch from the same generators."""
    cfg, data, dist, device = run.cfg, run.data, run.dist, run.device
    idx = run.order.next()
    images = data.train.images
    if run.cache is not None:  # cached pieces stand for what reads the images: no gather
        x: Tensor | None = run.cache.inputs(images, idx)
    else:
        x = images.index_select(0, idx)
    y = data.train.labels.index_select(0, idx)
    if cfg.augment:  # (never with a cache: augmented images change the pieces' outputs)
        x = run.augmenter(x, data.train.origin.index_select(0, idx))
    if cfg.dynamic:
        k: Tensor | float = run.grid[torch.randint(len(run.grid), (len(idx),),
                                                   generator=run.kgen)]
    else:
        k = float(cfg.k_cpt)
    y = D.shard(y, dist).to(device)
    x = (run.cache.placeholder(images, len(y), device) if x is None
         else D.shard(x, dist).to(device))
    if isinstance(k, Tensor):
        k = D.shard(k, dist).to(device)
    return idx, x, y, k


def with_grads(params_per_node: list[list[Tensor]]) -> list[Tensor]:
    """The nodes' parameters that have a gradient, each once, in the network's order."""
    seen: set[int] = set()
    out = []
    for params in params_per_node:
        for p in params:
            if p.grad is not None and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def one_step(run: Run, it: int, lr: float, tau: float) -> tuple[StepResult, Tensor]:
    """Train on the next batch at ``lr`` and ``tau``; (the step's result, the labels it
    saw) for the log. A non-finite loss stops the run before it reaches the weights."""
    cfg, net, opt = run.cfg, run.net, run.opt
    idx, x, y, k = draw_batch(run)
    for group in opt.param_groups:
        group["lr"] = lr
    with (run.cache.rows(D.shard(idx, run.dist)) if run.cache is not None else nullcontext()):
        res = (run.compiled_step or strategy_step)(cfg, net, run.model, x, y, k, tau,
                                                   run.sgen, run.node_cost,
                                                   distill_head=run.head)
    loss = float(res.loss.detach())
    if not math.isfinite(loss):
        raise TrainingDiverged(f"loss became {loss} at iteration {it}", iteration=it,
                               last_good=last_good(run.ckpt_path),
                               hint="lower --lr, or check the data for NaN/inf values")
    opt.zero_grad(set_to_none=True)
    if not res.loss.requires_grad:
        # every parameter on the trained path is frozen (a static run through a frozen
        # model, the model alone): nothing learns, and the run's record is the network
        # as it is, a baseline beside the routed runs
        if run.leader and not run.untrainable_noted:
            print("nothing on the trained path has a trainable parameter (all frozen): "
                  "the run evaluates the network as it is", file=sys.stderr)
            run.untrainable_noted = True
        return res, y
    scaler = run.scaler
    if scaler is None:
        res.loss.backward()
    else:  # fp16: scaled so small gradients survive, unscaled before TALR and clipping
        scaler.scale(res.loss).backward()
        scaler.unscale_(opt)
    if cfg.talr and cfg.strategy in ("actor", "critic"):
        res.talr = D.global_talr_scales(res.reach, run.dist)
    if scaler is None and run.compiled_update is not None and run.compiled_update(res.talr):
        return res, y  # --compile: TALR, clipping and SGD in one compiled pass
    if res.talr is not None:
        apply_talr(run.params, res.talr)
    if cfg.clip_grad_norm:  # after TALR, on the gradient SGD will take
        # over the nodes' parameters as TALR holds them: net.parameters() would walk
        # every module of a frozen backbone each step for gradients it does not have
        torch.nn.utils.clip_grad_norm_(with_grads(run.params), cfg.clip_grad_norm)
    if scaler is None:
        opt.step()
    else:  # skips the step when a gradient overflowed, and adapts the scale
        scaler.step(opt)
        scaler.update()
    return res, y
