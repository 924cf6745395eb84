"""Measured time of every node: ``routec profile`` and the cost tables it writes.

A cost table gives each node of a network (stem, columns, routers, exits) its
measured seconds per example in one engine at one or more batch sizes. Each node
is timed by :func:`routec.engine.bench.node_times` (the fused or onnx engine with
one segment per node) with *every* row of the batch sent through it: routing is
forced to one exit at a time, so a pass times the whole path to that exit, and
every node is timed on the passes of the exits below it. A round times every
exit's path once and then the static chain whole; the rounds repeat (``repeats``)
and each node keeps the median of all its passes, so a change in the machine's
load over the minutes a profile takes touches every node alike.

``routec train --cost latency --cost-table FILE`` prices computation with the
table's first batch size (:func:`load_cost_table`, :func:`node_seconds`).

The check that the split adds up: the static chain (the spec's deepest static
prefix) is timed whole in the same engine with its segments merged, once a round,
and compared with the sum of its nodes' times in the same round (stem and columns
on the routed path with the chain's MACs, and the exit there); medians over rounds.
"""
from __future__ import annotations

import platform
import statistics
from collections.abc import Sequence
from typing import Any

from routec.errors import RoutecError
from routec.train.cost_table import (FORMAT, VERSION, CostTableError,  # noqa: F401
                                     load_cost_table, node_seconds, path_seconds)


def profile(routed: Any, static: Any, *, batches: Sequence[int] = (256,),
            engine: str | None = None, repeats: int = 5, images: int | None = None,
            min_seconds: float = 1.0, seed: int = 0, label: str = "",
            progress: Any = None, device: str = "cpu") -> dict[str, Any]:
    """The cost table of ``routed`` (a built network, weights irrelevant to time) as a
    plain dict; ``static`` is its static chain, timed whole for the sum check.
    ``engine`` supports :data:`routec.engine.registry.PROFILE` (default:
    :func:`routec.engine.registry.profile_default`); ``device`` is where the networks
    and images live (each timing waits for the device)."""
    import torch

    from routec.tree import RoutingTree
    from routec.engine.bench import Workload, _synced, node_times
    from routec.engine.timing import round_robin
    from routec.train.machine import cpu_model
    from routec.engine import registry
    from routec.engine.engines import optimize_for_inference

    engine = registry.profile_default() if engine is None else engine
    profilers = registry.supporting(registry.PROFILE)
    if engine not in profilers:
        default = registry.get(registry.profile_default())
        raise RoutecError(f"routec profile times nodes in the {' or '.join(profilers)} "
                          f"engine (one segment per node), not {engine!r}",
                          hint=f"--engine {default.name} is {default.summary}")
    registry.get(engine).check()  # the engine's own one-line error
    if any(b < 1 for b in batches):
        raise RoutecError("--batch values must be at least 1")
    say = progress or (lambda s: None)
    dev = torch.device(device)
    routed.to(dev).eval()
    static.to(dev).eval()
    topo = RoutingTree.of(routed)
    stopo = RoutingTree.of(static)
    k = 0.0 if topo.dynamic_kcpt else None
    gen = torch.Generator().manual_seed(seed)
    by_batch: dict[int, dict[str, float]] = {}
    chain: dict[str, Any] = {}
    for batch in batches:
        n = max(batch, images or 0, 32)
        n -= n % batch
        x = torch.rand(n, *topo.input_shape, generator=gen).to(dev)
        samples: dict[int, list[float]] = {i: [] for i in range(len(topo.nodes))}
        works = [Workload(routed, static, x, torch.full((n,), li, dtype=torch.long, device=dev),
                          k_cpt=k)
                 for li in range(len(topo.leaves))]
        chain_nodes = _chain_path(topo, stopo)
        chain_leaf = topo.leaves.index(chain_nodes[-1])
        whole_eng = optimize_for_inference(static, engine)
        chunks = [x[s:s + batch] for s in range(0, n, batch)]
        sums, wholes = [], []
        # round-robin: each round times every exit's path once, then the static chain
        # whole, so a change in the machine's load touches every node and the check alike
        for rnd in range(max(1, repeats)):
            say(f"batch {batch}: round {rnd + 1}/{max(1, repeats)}")
            for li, leaf in enumerate(topo.leaves):
                rows = node_times(works[li], batch, n, repeats=1, engine=engine)
                by_name = {r["node"]: r["routed_s"] / r["batch"] for r in rows
                           if r["routed_s"] is not None}
                for i in topo.path(leaf):
                    samples[i].append(by_name[topo.nodes[i]])
                if li == chain_leaf:
                    sums.append(sum(by_name[topo.nodes[i]] for i in chain_nodes))
            t = round_robin({"whole": _synced(lambda: [whole_eng.route(c) for c in chunks],
                                              dev)}, 1,
                            min_seconds / max(1, repeats), warmup=1)
            wholes.append(statistics.median(t["whole"]) / n)
        by_batch[batch] = {topo.nodes[i]: statistics.median(v) for i, v in samples.items()}
        chain[str(batch)] = {
            "measured_s": statistics.median(wholes), "sum_of_nodes_s": statistics.median(sums),
            "table_sum_s": sum(by_batch[batch][topo.nodes[i]] for i in chain_nodes),
            "nodes": [topo.nodes[i] for i in chain_nodes], "rounds": len(sums),
            "ratios": [a / b for a, b in zip(sums, wholes)]}
    first = batches[0]
    nodes = []
    for i, name in enumerate(topo.nodes):
        nodes.append({"node": name, "kind": topo.kinds[i], "macs": topo.macs[i],
                      "seconds": by_batch[first][name],
                      "by_batch": {str(b): by_batch[b][name] for b in batches}})
    return {
        "format": FORMAT, "version": VERSION, "network": topo.name, "label": label,
        "unit": "seconds per example", "engine": engine, "batch": first,
        "batches": list(batches), "machine": cpu_model(), "platform": platform.platform(),
        "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(dev),
        "repeats": repeats, "nodes": nodes,
        "static_chain": {"network": stopo.name, "nodes": list(stopo.nodes), "by_batch": chain},
    }


def _chain_path(topo: Any, stopo: Any) -> list[int]:
    """The routed nodes of the static chain: its stem and columns are, in order, those
    on a path of the routed network (the first whose columns have the chain's MACs, else
    the first as long); its classifier is that path's exit."""
    want = [m for kind, m in zip(stopo.kinds, stopo.macs) if kind in ("stem", "column")]
    best = same_length = None
    for leaf in topo.leaves:
        path = topo.path(leaf)
        cols = [i for i in path if topo.kinds[i] in ("stem", "column")]
        if [topo.macs[i] for i in cols] == want:
            best = cols + [leaf]
            break
        if len(cols) == len(want) and same_length is None:
            same_length = cols + [leaf]
    best = best or same_length
    if best is None:
        raise RoutecError(f"the static chain of '{topo.name}' is not a path of the routed "
                          "network")
    return best


def format_table(t: dict[str, Any]) -> str:
    """What ``routec profile`` prints."""
    bs = t["batches"]
    lines = [f"machine: {t['machine']}, {t['threads']} torch thread(s), torch {t['torch']}",
             f"network: {t['network']}   engine: {t['engine']} (one node at a time, every row "
             f"of the batch through it; medians of {t['repeats']}+ passes)",
             "",
             f"  {'node':<16} {'kind':<9} {'MACs/ex':>11} "
             + " ".join(f"{'us/ex @' + str(b):>11}" for b in bs)
             + f" {'ns/MAC @' + str(bs[0]):>11}"]
    for o in t["nodes"]:
        per_mac = (f"{o['seconds'] / o['macs'] * 1e9:11.3f}" if o["macs"] else f"{'-':>11}")
        lines.append(f"  {o['node'][:16]:<16} {o['kind']:<9} {o['macs']:>11,} "
                     + " ".join(f"{o['by_batch'][str(b)] * 1e6:11.2f}" for b in bs)
                     + f" {per_mac}")
    lines.append("")
    sc = t["static_chain"]
    for b in bs:
        c = sc["by_batch"][str(b)]
        lines.append(f"static chain '{sc['network']}' at batch {b}: measured "
                     f"{c['measured_s'] * 1e6:.1f} us/example whole; sum of its nodes "
                     f"{c['sum_of_nodes_s'] * 1e6:.1f} us/example "
                     f"({(c['sum_of_nodes_s'] / c['measured_s'] - 1) * 100:+.1f}%; per round "
                     + ", ".join(f"{(r - 1) * 100:+.0f}%" for r in c["ratios"])
                     + f"); the table's values of those nodes sum to "
                     f"{c['table_sum_s'] * 1e6:.1f} us/example")
    return "\n".join(lines)
