"""Measuring routed inference: what ``routec bench``, ``routec profile``, the results
page's throughput table and its clock section share.

* :class:`FixedExits`: a routing policy that sends each example to a chosen exit, so
  a network with untrained (or any) weights runs exactly the paths a mix of exits
  asks for, its routers still evaluated;
* :func:`sample_exits`: that choice for ``n`` examples in given proportions;
* :func:`round_robin`: the timer. Contenders run in turn, pass after pass, in one
  process, so a change in the machine's load touches them alike; callers keep the
  medians;
* :func:`measure_throughput`: images per second of several networks or engines
  over one image set in batches, timed by :func:`round_robin`.

The machine the numbers come from is described by :mod:`routec.train.machine`.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from routec.tree import RoutingTree
from routec.runtime.routing import Policy, argmax_policy

MAX_PASSES_PER_REPEAT = 50  # a timer stops after this many times the passes asked for


class FixedExits:
    """Route each example towards a chosen exit: ``target[row]`` is its leaf index.

    Each junction takes the way towards that exit, so routed inference runs exactly
    the nodes of that exit's path, with the routers still evaluated as usual.
    ``net`` is a routed network, an engine or its :class:`RoutingTree`.
    """

    def __init__(self, net: Any, target: Tensor) -> None:
        topo = RoutingTree.of(net)
        self.table = torch.tensor(topo.way_to_leaf(), dtype=torch.long, device=target.device)
        self.target = target

    def __call__(self, j: int, scores: Tensor, rows: Tensor, features: Any) -> Tensor:
        if self.table.device != rows.device:  # follow the rows to the GPU, once
            self.table, self.target = self.table.to(rows.device), self.target.to(rows.device)
        return self.table[j].index_select(0, self.target.index_select(0, rows))

    def rows(self, start: int, stop: int) -> "FixedExits":
        """The same policy for the batch of examples ``start:stop``."""
        part = FixedExits.__new__(FixedExits)
        part.table, part.target = self.table, self.target[start:stop]
        return part

    def as_array_policy(self) -> Callable[..., Any]:
        """The same policy on numpy arrays, for engines that route on arrays (no
        tensors are made from the pyramid at each junction)."""
        table, target = self.table.cpu().numpy(), self.target.cpu().numpy()
        return lambda j, scores, rows, levels: table[j][target[rows]]


def sample_exits(weights: Sequence[float], n: int, seed: int = 0) -> Tensor:
    """``n`` leaf indices in the proportions of ``weights`` (percentages, fractions or
    counts of examples per exit), each exit within one example of its share (largest
    remainder), shuffled with a fixed seed so every batch carries a similar mix."""
    total = float(sum(weights))
    exact = [w * n / total for w in weights]
    counts = [int(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[:n - sum(counts)]:
        counts[i] += 1
    leaves = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return leaves[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]


def round_robin(fns: Mapping[str, Callable[[], object]], repeats: int, min_seconds: float,
                *, warmup: int = 2, max_passes: int | None = None) -> dict[str, list[float]]:
    """Seconds of each call of each contender, called in turn after ``warmup`` untimed
    rounds (allocators, oneDNN kernels, ONNX Runtime's shapes), until each has
    ``repeats`` passes and at least ``min_seconds`` of timing (on a noisy machine a
    handful of short passes leaves a median at its mercy), or ``max_passes`` passes
    (default :data:`MAX_PASSES_PER_REPEAT` × ``repeats``)."""
    cap = MAX_PASSES_PER_REPEAT * repeats if max_passes is None else max_passes
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    while True:
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
        done = min(len(v) for v in times.values())
        if done >= cap or (done >= repeats
                           and min(sum(v) for v in times.values()) >= min_seconds):
            return times


def batch_calls(runner: Any, images: Tensor, batch: int, *, k_cpt: float | None = None,
                target: Tensor | None = None) -> Callable[[], None]:
    """One pass of ``runner.route`` over ``images`` in batches of ``batch`` (the last
    may be smaller), each example sent to exit ``target[i]`` (argmax when None); the
    batches and their policies are cut once, outside the timing."""
    fixed = None if target is None else FixedExits(runner, target)
    calls: list[tuple[Tensor, Policy]] = [
        (images[s:s + batch], argmax_policy if fixed is None else fixed.rows(s, s + batch))
        for s in range(0, len(images), batch)]

    def run() -> None:
        for xb, policy in calls:
            runner.route(xb, k_cpt=k_cpt, policy=policy)
        synchronize(images.device)
    return run


def synchronize(device: torch.device) -> None:
    """Wait for ``device`` to finish its queued work, so a timer around a call times the
    work and not only its launch (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Throughput:
    images_per_second: float
    passes: list[float]  # seconds per pass over the images
    threads: int
    batch: int


def measure_throughput(nets: Mapping[str, tuple[Any, float | None]], images: Tensor, *,
                       batch: int = 256, repeats: int = 5, min_seconds: float = 0.0,
                       max_repeats: int | None = None,
                       exits: Mapping[str, Tensor] | None = None) -> dict[str, Throughput]:
    """Images per second of routed inference for each (network or engine, k_cpt),
    round-robin over whole passes of ``images``; ``exits`` gives a network the exit of
    each image (:class:`FixedExits`) instead of its own argmax decisions."""
    exits = exits or {}
    for net, _ in nets.values():
        net.eval()
    fns = {name: batch_calls(net, images, batch, k_cpt=k, target=exits.get(name))
           for name, (net, k) in nets.items()}
    with torch.inference_mode():
        seconds = round_robin(fns, repeats, min_seconds, max_passes=max_repeats)
    threads = torch.get_num_threads()
    return {name: Throughput(len(images) / statistics.median(s), s, threads, batch)
            for name, s in seconds.items()}
