"""Does routed inference turn saved MACs into saved time?

On the paper chain with a fixed routing mix (by default 50/10/10/10/5/5/5/5 % of
examples leaving at exits 1..8), batch 256, this measures:

* routed throughput (examples/s) of the generated module's ``route``;
* static full-chain throughput of the 8-column static baseline;
* their ratio, and the ratio of mean MACs (routed ÷ full chain);
* routing efficiency = Σ_columns (column time on the full batch × fraction of
  examples reaching it) ÷ measured routed time. 1.0 means routing adds no
  overhead beyond the columns' own work on the examples that reach them.

Run: python bench/routing.py [--batch 256] [--repeats 20] [--mix 50,10,10,10,5,5,5,5]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from routec.codegen import build_class
from routec.graph import build_graph, static_prefix
from routec.parse import load_spec


def timed_together(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3
                   ) -> dict[str, float]:
    """Median wall time of each function in seconds, measured round-robin.

    Interleaving the measurements means drift in the machine's speed (frequency
    scaling, other processes) touches every quantity alike, so their ratios hold.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="paper_chain")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--mix", default="50,10,10,10,5,5,5,5",
                    help="percent of examples leaving at each exit, in order")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    spec = load_spec(args.spec)
    g = build_graph(spec)
    net = build_class(g)().eval()
    static_g = build_graph(static_prefix(spec, len([n for n in g.nodes if n.kind == "column"])))
    static_net = build_class(static_g)().eval()

    mix = [float(v) for v in args.mix.split(",")]
    assert len(mix) == len(g.leaves), f"--mix needs {len(g.leaves)} values"
    counts = [round(args.batch * m / sum(mix)) for m in mix]
    counts[0] += args.batch - sum(counts)
    target = torch.repeat_interleave(torch.arange(len(mix)), torch.tensor(counts))
    target = target[torch.randperm(args.batch)]
    # In the chain, junction j (0-based) offers exit j as way 0 and continues as way 1.
    def fixed_mix(j: int, scores: torch.Tensor, rows: torch.Tensor, h: object) -> torch.Tensor:
        return (target[rows] != j).long()

    x = torch.rand(args.batch, *g.input_shape)
    with torch.inference_mode():
        routed_out = net.route(x, policy=fixed_mix)
        assert torch.equal(routed_out.leaf, target), "policy did not produce the mix"
        fns: dict[str, Callable[[], object]] = {
            "routed": lambda: net.route(x, policy=fixed_mix),
            "static": lambda: static_net(x),
        }
        # each column on the full batch, from its real input pyramid
        columns = [i for i, n in enumerate(g.nodes) if n.kind == "column"]
        h = net.stem(x)
        for i in columns:
            module = getattr(net, g.nodes[i].id)
            fns[f"col{i}"] = lambda module=module, inp=h: module(inp)
            h = module(h)
        t = timed_together(fns, args.repeats)
        t_routed, t_static = t["routed"], t["static"]
        col_time = {i: t[f"col{i}"] for i in columns}

    reach = {i: 0.0 for i in columns}
    for k, leaf in enumerate(g.leaves):
        frac = counts[k] / args.batch
        for i in g.path(leaf):
            if i in reach:
                reach[i] += frac
    ideal = sum(col_time[i] * reach[i] for i in columns)
    mean_macs = float(routed_out.macs.mean())
    full_macs = static_g.path_macs()[0]

    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"spec: {g.name}, batch {args.batch}, mix {args.mix} (% per exit), "
          f"median of {args.repeats}")
    print(f"routed throughput        {args.batch / t_routed:10.1f} examples/s")
    print(f"static full-chain        {args.batch / t_static:10.1f} examples/s")
    print(f"speed ratio routed/static {t_static / t_routed:9.3f}x")
    print(f"MAC ratio routed/static  {mean_macs / full_macs:10.3f} "
          f"({mean_macs:,.0f} / {full_macs:,} MACs per example)")
    print(f"routing efficiency       {ideal / t_routed:10.3f} "
          f"(Σ column time × reach = {ideal * 1e3:.2f} ms; routed {t_routed * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
