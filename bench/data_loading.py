"""Data-stage throughput: load time from the cache and one epoch of augmented batches.

    python bench/data_loading.py [--dataset hybrid] [--data-root DIR] [--cache-dir DIR] [--cold]

``--cold`` times the first load too (decode + derive) in a throw-away cache dir.
:func:`time_epoch` is meant to be reused by the trainer benchmark, to compare the
data cost of an epoch with the model's.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from routec.data import Augmenter, DataNotFound, DatasetSplits, Split, batches, load_dataset, synthetic


@dataclass(frozen=True)
class EpochTiming:
    examples: int
    batches: int
    seconds: float

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.seconds


def time_epoch(split: Split, batch_size: int = 128, seed: int = 0, augment: bool = True) -> EpochTiming:
    """Produce one shuffled (and augmented) epoch of ``split`` and time it, touching every batch."""
    gen = torch.Generator().manual_seed(seed)
    augmenter = Augmenter(seed) if augment else None
    n_examples = n_batches = 0
    checksum = 0.0
    start = time.perf_counter()
    for batch in batches(split, batch_size, generator=gen, augmenter=augmenter):
        n_examples += len(batch.labels)
        n_batches += 1
        checksum += float(batch.images[:, 0, 0, 0].sum())  # make sure the batch is really materialised
    return EpochTiming(n_examples, n_batches, time.perf_counter() - start)


def time_actor_steps(batch_size: int = 128, steps: int = 5) -> float:
    """Seconds per actor training step of the generated paper chain (what the data feeds)."""
    from routec.codegen import build_class
    from routec.graph import build_graph
    from routec.parse import load_spec
    from routec.train.actor import actor_loss
    from routec.train.costs import node_params
    from routec.train.talr import apply_talr, talr_scales

    net = build_class(build_graph(load_spec("paper_chain")))()
    params = node_params(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.rand(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))

    def step() -> None:
        res = actor_loss(net, net(x), y, 4e-9, 1.0)
        opt.zero_grad()
        res.loss.backward()
        apply_talr(params, talr_scales(res.reach))
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def _load(name: str, root: str | None, cache_dir: str | None) -> tuple[DatasetSplits, float]:
    start = time.perf_counter()
    data = load_dataset(name, root, cache_dir)
    return data, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="hybrid")
    parser.add_argument("--data-root")
    parser.add_argument("--cache-dir")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="epochs to time; the best is reported")
    parser.add_argument("--cold", action="store_true", help="also time the first load, in a fresh cache dir")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--actor-steps", type=int, default=5,
                        help="actor training steps to time for the comparison (0: skip)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")

    scratch = Path(tempfile.mkdtemp(prefix="routec-bench-")) if args.cold else None
    cache_dir = str(scratch) if scratch else args.cache_dir
    try:
        try:
            if scratch:
                _, first = _load(args.dataset, args.data_root, cache_dir)
                print(f"first load of {args.dataset} (decode + derive + write cache): {first:.2f} s")
            else:
                _load(args.dataset, args.data_root, cache_dir)  # make sure the cache exists
            data, second = _load(args.dataset, args.data_root, cache_dir)
            print(f"cached load of {args.dataset}: {second:.2f} s")
        except DataNotFound as err:
            print(f"{err.message}\nno real data: timing the built-in synthetic dataset instead")
            data = synthetic()
        print(f"data: {data.info.name} — {data.info.source}")
        timings = [time_epoch(data.train, args.batch_size, seed=i) for i in range(args.repeats)]
        best = min(timings, key=lambda t: t.seconds)
        plain = time_epoch(data.train, args.batch_size, augment=False)
        print(
            f"one epoch of augmented training batches (batch {args.batch_size}): {best.examples} examples, "
            f"{best.batches} batches in {best.seconds:.2f} s = {best.examples_per_s:,.0f} examples/s, "
            f"{best.batches_per_s:,.0f} batches/s (best of {args.repeats})"
        )
        print(f"same epoch without augmentation: {plain.seconds:.2f} s = {plain.examples_per_s:,.0f} examples/s")
        if args.actor_steps:
            step = time_actor_steps(args.batch_size, args.actor_steps)
            data_per_batch = best.seconds / best.batches
            print(f"actor training step, paper chain, batch {args.batch_size}: {step * 1e3:.1f} ms; "
                  f"one augmented batch: {data_per_batch * 1e3:.2f} ms; "
                  f"data is {step / data_per_batch:,.0f}x faster than training (target >= 5x)")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
