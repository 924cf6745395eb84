"""Wall-clock throughput of routed inference: do saved MACs show up as saved time?

Networks are timed round-robin in one process (so drift in machine load hits them
alike), each pass routing the whole image set in batches, and the median pass is
kept. Time is what ``net.route`` takes: argmax routing with gather/scatter of the
rows each branch receives.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from routec.runtime.routing import RoutedNetwork


@dataclass
class Throughput:
    images_per_second: float
    passes: list[float]  # seconds per pass over the images
    threads: int
    batch: int


def measure(nets: dict[str, tuple[RoutedNetwork, float | None]], images: Tensor, *,
            batch: int = 256, repeats: int = 5, min_seconds: float = 0.0,
            max_repeats: int = 200) -> dict[str, Throughput]:
    """Images per second of routed inference for each (network, k_cpt), round-robin.

    Passes go on until every network has ``repeats`` of them and at least
    ``min_seconds`` of timing: on a small test set a handful of short passes leaves
    the median at the mercy of a noisy virtual machine.
    """
    seconds: dict[str, list[float]] = {name: [] for name in nets}
    for net, _ in nets.values():
        net.eval()

    def enough() -> bool:
        done = min(len(s) for s in seconds.values())
        return done >= max_repeats or (
            done >= repeats and min(sum(s) for s in seconds.values()) >= min_seconds)

    with torch.inference_mode():
        for name, (net, k) in nets.items():  # warm-up: allocator, oneDNN kernels
            net.route(images[:batch], k_cpt=k)
        while not enough():
            for name, (net, k) in nets.items():
                t = time.perf_counter()
                for start in range(0, len(images), batch):
                    net.route(images[start:start + batch], k_cpt=k)
                seconds[name].append(time.perf_counter() - t)
    threads = torch.get_num_threads()
    return {name: Throughput(len(images) / statistics.median(s), s, threads, batch)
            for name, s in seconds.items()}
