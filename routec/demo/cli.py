"""``routec demo``: train a routed network and its static baseline, compare them."""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="train a routed network and its static baseline, and compare them",
        description="The first minute with routec: train the bundled 'demo' chain as a "
                    "static network and as a routed one on the data at hand, then compare "
                    "test accuracy, mean MACs and measured speed, show which inputs leave "
                    "early, and draw the dataflow.")
    p.add_argument("--data", default="auto",
                   help="auto (default: hybrid MNIST/CIFAR-10 when $ROUTEC_DATA has it, "
                        "else the built-in synthetic set), hybrid or synthetic")
    p.add_argument("--data-root", help="dataset folder (default: $ROUTEC_DATA)")
    p.add_argument("--out", default="runs/demo", help="folder for both runs and the picture")
    p.add_argument("--fresh", action="store_true", help="train again even if --out has runs")
    p.add_argument("--fast", action="store_true",
                   help="a tenth of the iterations: checks the plumbing, proves nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    import torch

    # One thread: for networks this small it is as fast as two here, and training is
    # then the same on any machine's core count (summation order changes with threads,
    # and with it a short run's outcome).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _demo(args)
    finally:
        torch.set_num_threads(threads)


def _demo(args: argparse.Namespace) -> int:
    import torch

    from routec.data import load_dataset
    from routec.data.splits import sample_indices
    from routec.demo.run import COLUMNS, Side, accuracy_difference, draw_dataflow, \
        evaluate_side, settings_for, time_sides, train_side
    from routec.train.cli import _resolve_data

    t_start = time.perf_counter()
    data_name = _resolve_data(args.data, args.data_root)
    if data_name not in ("hybrid", "synthetic"):
        from routec.errors import RunError
        raise RunError(f"routec demo runs on hybrid or synthetic data, not '{data_name}'; "
                       "use routec train for other datasets")
    settings = settings_for(data_name, args.fast)
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    values = settings.run_values()
    if args.data_root:
        values["data_root"] = args.data_root
    static = Side("static baseline", out / "static")
    routed = Side("routed network", out / "routed")
    progress = not args.no_progress
    train_side(static, {**values, "strategy": "static", "static_columns": COLUMNS}, progress)
    train_side(routed, {**values, "strategy": "actor", "k_cpt": settings.k_cpt}, progress)

    data = load_dataset(data_name, args.data_root, seed=settings.seed)
    nets = {"static": evaluate_side(static, data), "routed": evaluate_side(routed, data)}
    print("timing both networks on the test images, each in its fastest engine ...",
          file=sys.stderr)
    sample = sample_indices(len(data.test.images), 4096)  # a mix of every kind of image
    time_sides(nets, {"static": static, "routed": routed}, data.test.images[sample])
    with torch.inference_mode():
        routes = {k: net.route(data.test.images) for k, net in nets.items()}
    leaf = routes["routed"].leaf
    right = {k: r.logits.argmax(1) == data.test.labels for k, r in routes.items()}
    difference = accuracy_difference(right["routed"], right["static"])
    picture = draw_dataflow(routed.run, out / "dataflow.png")

    _print_comparison(data_name, settings, static, routed, difference)
    _print_exits(routed, data, leaf)
    print(f"\ndataflow picture: {picture}")
    print(f"runs: {static.run}, {routed.run}  (routec eval RUN, routec draw RUN)")
    print(f"total time {time.perf_counter() - t_start:.0f} s")
    return 0


def _fmt_macs(v: float) -> str:
    return f"{v / 1e6:.2f} M"


def _print_comparison(data: str, settings: Any, static: Any, routed: Any,
                      difference: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from routec.report.summary import ratio_text

    console = Console(width=100, highlight=False)
    console.print(f"\n[bold]routed vs static[/bold] on the {data} set, "
                  f"test split, {settings.iterations} training iterations each "
                  f"(batch {settings.batch}, lr {settings.lr:g} after {settings.warmup} warm-up; "
                  f"routed: actor, "
                  f"k_cpt {settings.k_cpt:g})")
    t = Table("", "static baseline", "routed network", "routed vs static")
    s, r = static.eval, routed.eval
    t.add_row("test accuracy", f"{s['accuracy']:.3f}", f"{r['accuracy']:.3f}",
              f"{(r['accuracy'] - s['accuracy']) * 100:+.1f} pp")
    t.add_row("mean MACs per image", _fmt_macs(s["mean_macs"]), _fmt_macs(r["mean_macs"]),
              ratio_text(s["mean_macs"] / r["mean_macs"], "fewer", "more"))
    t.add_row("images per second", f"{static.images_per_second:,.0f} ({static.engine})",
              f"{routed.images_per_second:,.0f} ({routed.engine})",
              ratio_text(routed.images_per_second / static.images_per_second,
                         "faster", "slower"))
    if static.train_seconds or routed.train_seconds:
        t.add_row("training time", f"{static.train_seconds:.0f} s", f"{routed.train_seconds:.0f} s",
                  "")
    console.print(t)
    console.print("speed: batches of 256 test images, one torch thread, round-robin "
                  "medians; each side in its fastest of: " + ", ".join(sorted(static.speeds)))
    if difference is not None:
        console.print(f"accuracy: {difference.verdict()}")


def _print_exits(routed: Any, data: Any, leaf: Any) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(width=100, highlight=False)
    names = [n.removeprefix("exit_") for n in routed.eval["exit_names"]]
    classes = routed.eval["classes"]
    labels, origin = data.test.labels, data.test.origin
    console.print("\n[bold]where the routed network classifies each test image[/bold] "
                  "(share of the row leaving at each exit; earlier exits cost less)")
    t = Table("class", "kind", *[f"exit {n}" for n in names])
    kinds = {0: "easy", 1: "hard"}
    for c, cname in enumerate(classes):
        rows = labels == c
        counts = torch.bincount(leaf[rows], minlength=len(names)).float()
        kind = origin[rows].float().mean()
        label = kinds[int(kind.round())] if kind in (0.0, 1.0) else "mixed"
        t.add_row(cname, label, *[f"{v:.2f}" for v in (counts / max(counts.sum(), 1)).tolist()])
    for o, kind in kinds.items():
        rows = origin == o
        if rows.any():
            counts = torch.bincount(leaf[rows], minlength=len(names)).float()
            t.add_row(f"all {kind}", "", *[f"{v:.2f}" for v in (counts / counts.sum()).tolist()],
                      style="bold")
    console.print(t)
    console.print("easy: " + ("digits (MNIST)" if data.info.name == "hybrid" else
                              "bright halves and blobs") + "; hard: "
                  + ("natural images (CIFAR-10)" if data.info.name == "hybrid" else
                     "small shapes under noise"))
