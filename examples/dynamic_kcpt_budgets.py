"""One network for every budget: train with dynamic k_cpt, then sweep k_cpt at test time.

k_cpt is the price of one MAC in the training loss. With `k_cpt = "dynamic"` every
training example draws its own k_cpt from a grid, and every router reads it as an
extra input (k_cpt · 1e7), so a single trained network can be told at inference time
how much computation is worth. This example trains one such network briefly on the
synthetic dataset, evaluates it with routed inference at several k_cpt values, and
plots accuracy against the mean MACs actually spent.

The paper's grid, (0, 1, 2, ..., 64)·1e-9, suits its 2·10^7-MAC chain; the small
network here (at most 385,440 MACs a path) needs prices about 50 times higher for
its choices to matter, so the grid is scaled up.

Run:  python examples/dynamic_kcpt_budgets.py budgets.png [--fast] [--iterations N]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

import routec  # noqa: E402

SPEC = Path(__file__).resolve().with_name("four_way.route")
GRID = (0.0, 0.25e-6, 0.5e-6, 1e-6, 2e-6, 4e-6)


def main(png: str | Path, *, spec: str | Path = SPEC, iterations: int = 600, batch: int = 64,
         grid: tuple[float, ...] = GRID, ks: tuple[float, ...] | None = None, seed: int = 0,
         fast: bool = False) -> dict:
    """Train a dynamic-k_cpt network, evaluate it at each of ``ks`` and plot to ``png``."""
    if fast:
        iterations = min(iterations, 300)
    ks = tuple(ks if ks is not None else grid)
    cfg = routec.make_config({
        "spec": str(spec), "strategy": "actor", "data": "synthetic", "seed": seed,
        "iterations": iterations, "batch": batch, "k_cpt": "dynamic", "k_cpt_grid": grid,
        "log_every": iterations, "eval_every": iterations, "checkpoint_every": iterations,
        "val_examples": 200,
    })
    with tempfile.TemporaryDirectory() as tmp:
        routec.train_run(cfg, Path(tmp) / "run", progress=False)
        _, net, data, _ = routec.load_run(Path(tmp) / "run")
    assert net.DYNAMIC_KCPT  # k_cpt = "dynamic" compiles the routers with a k_cpt input

    curve = []
    for k in ks:
        r = routec.evaluate(net, data.test.images, data.test.labels, k_cpt=k)
        curve.append((k, r.accuracy, r.mean_macs))
        print(f"k_cpt {k:8.2e}: accuracy {r.accuracy:.3f}, mean MACs {r.mean_macs:>9,.0f}  "
              "exits " + " ".join(f"{f:4.0%}" for f in r.exit_fraction))

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    macs = [m for _, _, m in curve]
    acc = [a for _, a, _ in curve]
    ax.plot(macs, acc, "o-", color="tab:blue", label=f"{net.NAME}, dynamic k_cpt")
    labels: dict[tuple[float, float], list[str]] = {}  # k_cpt values that land on one point
    for k, a, m in curve:
        labels.setdefault((m, a), []).append(f"{k:g}")
    for (m, a), ks_here in labels.items():
        ax.annotate("k_cpt " + ", ".join(ks_here), (m, a), textcoords="offset points",
                    xytext=(-4, 6), ha="right", fontsize=7)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    for i, m in enumerate(net.path_macs()):
        ax.axvline(m, color="0.85", lw=0.8, zorder=0, label="MACs of each path" if i == 0 else None)
    ax.set_xlabel("mean MACs per example (routed inference)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"one network, {len(ks)} budgets ({iterations} iterations, synthetic data)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    print(f"wrote {png}")
    return {"k_cpt": [k for k, _, _ in curve], "accuracy": acc, "mean_macs": macs,
            "path_macs": net.path_macs(), "png": str(png), "iterations": iterations}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("png", help="where to write the plot (a .png file)")
    p.add_argument("--spec", default=str(SPEC), help="a .route file (default: four_way.route)")
    p.add_argument("--iterations", type=int, default=600)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--k-cpt", type=float, nargs="+", help="values to evaluate (default: the grid)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="at most 300 iterations (fewer leave the routers undecided)")
    a = p.parse_args()
    main(a.png, spec=a.spec, iterations=a.iterations, batch=a.batch,
         ks=tuple(a.k_cpt) if a.k_cpt else None, seed=a.seed, fast=a.fast)
