"""Compile and train a routing tree of your own design, then evaluate it with routed inference.

The tree is ``examples/four_way.route``: a trunk of plain convolutions followed by a
4-way junction (classify now, or one of three deeper branches). It is trained briefly
with the actor strategy on the built-in synthetic dataset (no downloads), then
evaluated on the test split with routed inference: each example runs only the
columns on its own path, and the MACs it costs are counted as they are spent.

Run:  python examples/custom_tree.py [--fast] [--iterations N] [--k-cpt X] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import routec

SPEC = Path(__file__).resolve().with_name("four_way.route")


def main(spec: str | Path = SPEC, *, iterations: int = 400, batch: int = 64,
         k_cpt: float = 1e-6, seed: int = 0, out: str | Path | None = None,
         fast: bool = False) -> dict:
    """Train ``spec`` briefly on synthetic data; returns the tree's shape and its results."""
    if fast:
        iterations = min(iterations, 200)
    compiled = routec.compile_network(str(spec))
    g = compiled.graph
    ways = [g.nodes[j].ways for j in g.junctions]
    print(f"{g.name}: {len(g.nodes)} nodes, junctions of {ways} ways, "
          f"{g.total_params:,} parameters")
    for leaf, macs in zip(g.leaves, g.path_macs()):
        path = " -> ".join(g.nodes[i].id for i in g.path(leaf)[1:])
        print(f"  {macs:>9,} MACs  {path}")

    cfg = routec.make_config({
        "spec": str(spec), "strategy": "actor", "data": "synthetic", "seed": seed,
        "iterations": iterations, "batch": batch, "k_cpt": k_cpt,
        "log_every": max(iterations // 4, 1), "eval_every": iterations,
        "checkpoint_every": iterations, "val_examples": 500,
    })
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(out) if out is not None else Path(tmp) / "run"
        routec.train_run(cfg, run_dir, progress=False)
        _, net, data, _ = routec.load_run(run_dir)
        result = routec.evaluate(net, data.test.images, data.test.labels)

    chance = 1 / data.num_classes
    print(f"after {iterations} iterations (k_cpt {k_cpt:g}): test accuracy "
          f"{result.accuracy:.3f} (chance {chance:.2f}), mean MACs {result.mean_macs:,.0f} "
          f"of at most {max(g.path_macs()):,}")
    for name, frac, acc in zip(result.exit_names, result.exit_fraction, result.exit_accuracy):
        shown = "-" if acc is None else f"{acc:.3f}"
        print(f"  {name:<14} {frac:6.1%} of examples, accuracy {shown}")
    return {
        "network": g.name,
        "junction_ways": ways,
        "path_macs": g.path_macs(),
        "accuracy": result.accuracy,
        "chance": chance,
        "mean_macs": result.mean_macs,
        "exit_names": result.exit_names,
        "exit_fraction": result.exit_fraction,
        "iterations": iterations,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(SPEC), help="a .route file (default: four_way.route)")
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--k-cpt", type=float, default=1e-6, help="cost per MAC in the loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="keep the run in this directory (default: a temporary one)")
    p.add_argument("--fast", action="store_true", help="at most 200 iterations")
    a = p.parse_args()
    main(a.spec, iterations=a.iterations, batch=a.batch, k_cpt=a.k_cpt, seed=a.seed,
         out=a.out, fast=a.fast)
