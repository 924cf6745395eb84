"""Routed against static inference, each in its fastest engine: ``routec bench``.

Both sides get every engine (the static baseline is never handicapped) and are
timed round-robin in one process, so drift in the machine's load touches them
alike; the medians of the passes are kept. Three measurements:

* throughput at a large batch (default 256): images per second;
* latency at batch 1: p50/p95/mean per image, routed at the mix and routed through
  the deepest path, against the static network in the same engine;
* where the time goes: each node's time per pass on the rows that reach it, routed
  and static, in the fused engine with one segment per node.

A *mix* forces fractions of the examples to leave at each exit (in leaf order), so
a freshly built network can be timed as a trained one would route; a trained run is
timed on its own test images with its own decisions.
"""
from __future__ import annotations

import dataclasses

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from routec.tree import RoutingTree
from routec.engine import registry
from routec.engine.engines import InferenceEngine, optimize_for_inference
from routec.engine.timing import FixedExits, batch_calls, measure_throughput, sample_exits
from routec.errors import RoutecError
from routec.runtime.routing import Policy, RoutedNetwork, argmax_policy
from routec.train.machine import cpu_model

DEFAULT_MIX = (50, 10, 10, 10, 5, 5, 5, 5)
LATENCY_REPEATS = 5  # calls per image per network at batch 1


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


@dataclass
class Workload:
    """What to time: the routed and static networks, images, and how routing decides."""

    routed: RoutedNetwork
    static: RoutedNetwork
    images: Tensor                       # at least one batch
    target: Tensor | None                # leaf per image under a forced mix; None: argmax
    k_cpt: float | None = None
    label: str = ""
    static_label: str = ""
    mix: Sequence[float] | None = None  # the forced mix, when there is one

    def policy(self, rows_target: Tensor | None) -> Policy:
        if rows_target is None:
            return argmax_policy
        return FixedExits(RoutingTree.of(self.routed), rows_target)


def spec_workload(spec: str, mix: Sequence[float] | None = None, batch: int = 256,
                  images: int | None = None, seed: int = 0) -> Workload:
    """Routed network of ``spec`` at a forced mix against its deepest static prefix."""
    from routec.api import compile_network
    from routec.graph import static_depth
    from routec.parse import load_spec

    from routec.graph.memory import check_inference_fits

    torch.manual_seed(seed)
    parsed = load_spec(spec)
    compiled = compile_network(parsed)
    check_inference_fits(compiled.graph, batch, "routec bench", images=max(batch, images or 0))
    routed = compiled.build().eval()
    static = compile_network(parsed, static=static_depth(parsed)).build().eval()
    leaves = len(routed.LEAVES)
    if mix is None:
        mix = DEFAULT_MIX if leaves == len(DEFAULT_MIX) else [1.0] * leaves
    if len(mix) != leaves:
        raise RoutecError(f"--mix needs {leaves} values (one per exit of '{routed.NAME}'), "
                          f"got {len(mix)}")
    if any(m < 0 for m in mix) or sum(mix) <= 0:
        raise RoutecError("--mix values must be non-negative and not all zero")
    n = max(batch, images or 0)
    x = torch.rand(n, *routed.INPUT_SHAPE, generator=torch.Generator().manual_seed(seed))
    return Workload(routed, static, x, sample_exits(mix, n, seed), label=f"{routed.NAME} (routed)",
                    static_label=f"{static.NAME} static, {static_depth(parsed)} columns",
                    mix=list(mix))


def _engines(net: RoutedNetwork, names: Sequence[str], precision: str = "fp32"
             ) -> dict[str, InferenceEngine]:
    return {name: optimize_for_inference(net, name, precision=precision) for name in names}


def on_device(work: Workload, device: torch.device) -> Workload:
    """``work`` with its networks, images and targets on ``device`` (a GPU run keeps
    decisions, gathers and scatters there)."""
    if device.type == "cpu":
        return work
    work.routed.to(device)
    work.static.to(device)
    return dataclasses.replace(
        work, images=work.images.to(device),
        target=None if work.target is None else work.target.to(device))


def _synced(fn: Callable[..., object], device: torch.device) -> Callable[..., object]:
    """``fn`` that returns when the device has finished its work, so a timer around it
    times the work and not only its launch."""
    if device.type != "cuda":
        return fn

    def call(*args: Any) -> None:
        fn(*args)
        torch.cuda.synchronize(device)
    return call


def compare(work: Workload, *, batch: int = 256, engines: Sequence[str] | None = None,
            repeats: int = 7, min_seconds: float = 3.0, latency_images: int = 100,
            per_node: bool = True, progress: Callable[[str], None] | None = None,
            device: str = "cpu", precision: str = "fp32") -> dict[str, Any]:
    """Time routed against static, each in every engine; returns plain numbers.

    Keys: ``throughput`` (images/s per side and engine at ``batch``), ``latency``
    (batch-1 seconds: p50/p95/mean per side and engine), ``best`` (fastest engine per
    side and the ratios), ``macs`` (mean MACs per example each side), ``nodes`` (time
    per node, fused engine), and the machine, threads and torch version. ``device``
    moves both networks and the images there (timings wait for the device);
    ``precision`` runs every engine under autocast (see routec.train.precision).
    """
    say = progress or (lambda s: None)
    dev = torch.device(device)
    work = on_device(work, dev)
    # engines not supporting BENCH are timed on request only (compiling takes minutes here)
    names = list(engines or registry.timed_by_default())
    topo = RoutingTree.of(work.routed)
    static_topo = RoutingTree.of(work.static)
    k = work.k_cpt
    say(f"building engines: {', '.join(names)}")
    routed = _engines(work.routed, names, precision)
    static = _engines(work.static, names, precision)

    # decisions and MACs actually taken (the mix, or the run's own routing)
    x = work.images
    n_full = (len(x) // batch) * batch or len(x)
    ref = routed[names[0]].route(x[:n_full], k_cpt=k, policy=work.policy(
        None if work.target is None else work.target[:n_full]))
    counts = torch.bincount(ref.leaf, minlength=len(topo.leaves))
    mix = (counts.double() / counts.sum()).tolist()
    routed_macs = float(ref.macs.mean())
    static_macs = float(static_topo.leaf_macs[0])

    say(f"throughput at batch {batch}")
    nets: dict[str, tuple[Any, float | None]] = {}
    exits: dict[str, Tensor] = {}
    for e in names:
        nets[f"routed/{e}"] = (routed[e], k)
        if work.target is not None:
            exits[f"routed/{e}"] = work.target[:n_full]
        nets[f"static/{e}"] = (static[e], None)
    timed = measure_throughput(nets, x[:n_full], batch=batch, repeats=repeats,
                               min_seconds=min_seconds, exits=exits)
    thr = {key: t.images_per_second for key, t in timed.items()}

    say("latency at batch 1")
    m = min(latency_images, len(x))
    deepest = max(range(len(topo.leaves)), key=lambda i: topo.leaf_macs[i])
    one_fns: dict[str, Callable[[int], object]] = {}
    for e in names:
        if work.target is not None:
            # the batch-1 images follow the mix exactly, as the batches do
            one_target = (sample_exits(work.mix, m, seed=1) if work.mix is not None
                          else work.target[:m]).to(x.device)
            fixed = FixedExits(topo, one_target)
            pols = [fixed.rows(i, i + 1) for i in range(m)]
            one_fns[f"routed/{e}"] = (lambda i, e=e, pols=pols: routed[e].route(
                x[i:i + 1], k_cpt=k, policy=pols[i]))
        else:
            one_fns[f"routed/{e}"] = lambda i, e=e: routed[e].route(x[i:i + 1], k_cpt=k)
        deep = FixedExits(topo, torch.tensor([deepest], device=x.device))
        one_fns[f"routed-deepest/{e}"] = (lambda i, e=e, deep=deep: routed[e].route(
            x[i:i + 1], k_cpt=k, policy=deep))
        one_fns[f"static/{e}"] = lambda i, e=e: static[e].route(x[i:i + 1])
    one_fns = {key: _synced(fn, dev) for key, fn in one_fns.items()}
    for fn in one_fns.values():  # warm-up
        for i in range(min(3, m)):
            fn(i)
    per_image: dict[str, list[list[float]]] = {key: [[] for _ in range(m)] for key in one_fns}
    # engine by engine (calls of another engine in between evict a small model's weights
    # from the caches, which a deployed model does not suffer); within an engine the
    # routed and static networks alternate in blocks of all the images, repeatedly
    for e in names:
        keys = [k for k in one_fns if k.endswith(f"/{e}")]
        for _ in range(LATENCY_REPEATS):
            for key in keys:
                fn, times = one_fns[key], per_image[key]
                for i in range(m):
                    t0 = time.perf_counter()
                    fn(i)
                    times[i].append(time.perf_counter() - t0)
    # p50/p95 over every call; the mean is over images of each image's median call, so a
    # stall of the machine during one call does not move it
    latency = {}
    for key, v in per_image.items():
        flat = [t for calls in v for t in calls]
        latency[key] = {"p50": statistics.median(flat), "p95": _pct(flat, 0.95),
                        "mean": statistics.fmean(statistics.median(c) for c in v)}

    best_r = max(names, key=lambda e: thr[f"routed/{e}"])
    best_s = max(names, key=lambda e: thr[f"static/{e}"])
    lat_r = min(names, key=lambda e: latency[f"routed/{e}"]["mean"])
    lat_s = min(names, key=lambda e: latency[f"static/{e}"]["mean"])
    speed = thr[f"routed/{best_r}"] / thr[f"static/{best_s}"]
    mac_ratio = static_macs / routed_macs
    junctions_deep = sum(1 for i in topo.path(topo.leaves[deepest])
                         if topo.kinds[i] == "junction")
    deep_vs_static = {e: latency[f"routed-deepest/{e}"]["p50"] / latency[f"static/{e}"]["p50"]
                      for e in names}
    per_junction = {e: (latency[f"routed-deepest/{e}"]["p50"] - latency[f"static/{e}"]["p50"])
                    / max(1, junctions_deep) for e in names}
    result: dict[str, Any] = {
        "network": work.label or topo.name, "static": work.static_label or static_topo.name,
        "batch": batch, "images": n_full, "exit_mix": mix,
        "exits": [topo.nodes[i] for i in topo.leaves],
        "machine": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda"
                              else ""),
        "precision": precision,
        "engines": names,
        "macs": {"routed": routed_macs, "static": static_macs, "ratio": mac_ratio},
        "throughput": thr,
        "latency": latency,
        "best": {
            "routed_engine": best_r, "static_engine": best_s,
            "routed_images_per_s": thr[f"routed/{best_r}"],
            "static_images_per_s": thr[f"static/{best_s}"],
            "speed_ratio": speed, "mac_ratio": mac_ratio,
            "realised": speed / mac_ratio,
            "latency_routed_engine": lat_r, "latency_static_engine": lat_s,
            "latency_routed_mean": latency[f"routed/{lat_r}"]["mean"],
            "latency_static_mean": latency[f"static/{lat_s}"]["mean"],
            "latency_ratio": latency[f"routed/{lat_r}"]["mean"]
            / latency[f"static/{lat_s}"]["mean"],
        },
        "deepest": {"exit": topo.nodes[topo.leaves[deepest]], "junctions": junctions_deep,
                    "vs_static": deep_vs_static, "per_junction_s": per_junction},
    }
    if per_node:
        say("time per node")
        node_engine = (best_r if best_r in registry.supporting(registry.PROFILE)
                       else registry.profile_default())
        result["nodes_engine"] = node_engine
        result["nodes"] = node_times(work, batch, n_full, repeats=max(3, repeats // 2),
                                     engine=node_engine)
    return result


def node_times(work: Workload, batch: int, n: int, repeats: int = 5,
               engine: str | None = None) -> list[dict[str, Any]]:
    """Seconds per pass of each node, routed (rows that reach it) and static (all rows),
    in ``engine`` (one supporting :data:`routec.engine.registry.PROFILE`; default
    :func:`routec.engine.registry.profile_default`) with one segment per node; the last
    row is what is left: routing itself (and, in an engine of sessions, the cost of
    crossing session boundaries)."""
    topo = RoutingTree.of(work.routed)
    stopo = RoutingTree.of(work.static)
    name = registry.profile_default() if engine is None else engine
    if name not in registry.supporting(registry.PROFILE):
        name = registry.profile_default()
    make = registry.get(name)
    r_eng = make.build(work.routed, merge=False)
    s_eng = make.build(work.static, merge=False)
    x = work.images[:n]
    r_run = batch_calls(r_eng, x, batch, k_cpt=work.k_cpt,
                        target=None if work.target is None else work.target[:n])
    s_run = batch_calls(s_eng, x, batch)
    r_run(), s_run()  # warm-up
    rows: dict[int, int] = {}
    ref = r_eng.route(x[:batch], k_cpt=work.k_cpt, policy=work.policy(
        None if work.target is None else work.target[:batch]))
    for k_leaf in ref.leaf.tolist():
        for i in topo.path(topo.leaves[k_leaf]):
            rows[i] = rows.get(i, 0) + 1
    r_prof: list[dict[int, float]] = []
    s_prof: list[dict[int, float]] = []
    r_total: list[float] = []
    s_total: list[float] = []
    for _ in range(repeats):
        for eng, run, prof, total in ((r_eng, r_run, r_prof, r_total),
                                      (s_eng, s_run, s_prof, s_total)):
            eng.profile = {}
            t0 = time.perf_counter()
            run()
            total.append(time.perf_counter() - t0)
            prof.append(eng.profile)
            eng.profile = None
    passes = n // batch or 1

    def med(profs: list[dict[int, float]], s: int) -> float:
        return statistics.median(p.get(s, 0.0) for p in profs) / passes

    static_by_id = {stopo.nodes[seg.nodes[0]]: seg.index for seg in s_eng.segments}
    out = []
    for seg in r_eng.segments:
        (node,) = seg.nodes
        name = topo.nodes[node]
        s_seg = static_by_id.get(name) if topo.kinds[node] in ("stem", "column") else None
        out.append({"node": name, "kind": topo.kinds[node], "macs": topo.macs[node],
                    "rows": rows.get(node, 0), "batch": min(batch, n),
                    "routed_s": med(r_prof, seg.index),
                    "static_s": None if s_seg is None else med(s_prof, s_seg)})
    for seg in s_eng.segments:  # the static network's own classifier
        (node,) = seg.nodes
        if stopo.kinds[node] == "exit":
            out.append({"node": f"static {stopo.nodes[node]}", "kind": "exit",
                        "macs": stopo.macs[node], "rows": 0, "batch": min(batch, n),
                        "routed_s": None, "static_s": med(s_prof, seg.index)})
    r_nodes = sum(o["routed_s"] or 0.0 for o in out)
    s_nodes = sum(o["static_s"] or 0.0 for o in out)
    out.append({"node": "routing (between nodes)", "kind": "routing", "macs": 0, "rows": 0,
                "batch": min(batch, n),
                "routed_s": statistics.median(r_total) / passes - r_nodes,
                "static_s": statistics.median(s_total) / passes - s_nodes})
    return out


def format_report(r: dict[str, Any]) -> str:
    """The human-readable report ``routec bench`` prints."""
    b = r["best"]
    lines = [
        f"machine: {r['machine']}, {r['threads']} torch thread(s), torch {r['torch']}",
        f"routed: {r['network']}   static: {r['static']}",
        "exit mix: " + ", ".join(f"{name} {f * 100:.1f}%" for name, f in
                                 zip(r["exits"], r["exit_mix"])),
        f"engines timed: {', '.join(r['engines'])} (round-robin in one process, medians)",
        "",
        f"MACs per example: routed {r['macs']['routed']:,.0f}, static {r['macs']['static']:,.0f}"
        f"  -> MAC ratio {r['macs']['ratio']:.2f}x",
        "",
        f"throughput at batch {r['batch']} (images/s):",
        "  engine      routed      static",
    ]
    for e in r["engines"]:
        lines.append(f"  {e:<9} {r['throughput'][f'routed/{e}']:>8,.0f}    "
                     f"{r['throughput'][f'static/{e}']:>8,.0f}")
    lines += [
        f"  best: routed {b['routed_images_per_s']:,.0f} ({b['routed_engine']}) vs static "
        f"{b['static_images_per_s']:,.0f} ({b['static_engine']})",
        f"  speed ratio {b['speed_ratio']:.2f}x; MAC saving realised "
        f"{b['realised'] * 100:.0f}% (speed ratio / MAC ratio)",
        "",
        "latency at batch 1 (ms): p50 / p95 over all calls / mean over images of each "
        "image's median call",
        "  engine      routed (mix)          routed (deepest path)   static",
    ]
    for e in r["engines"]:
        cells = []
        for key in (f"routed/{e}", f"routed-deepest/{e}", f"static/{e}"):
            v = r["latency"][key]
            cells.append(f"{v['p50'] * 1e3:5.2f} / {v['p95'] * 1e3:5.2f} / {v['mean'] * 1e3:5.2f}")
        lines.append(f"  {e:<9} " + "   ".join(cells))
    d = r["deepest"]
    lines += [
        f"  best mean: routed {b['latency_routed_mean'] * 1e3:.2f} ms "
        f"({b['latency_routed_engine']})"
        f" vs static {b['latency_static_mean'] * 1e3:.2f} ms ({b['latency_static_engine']})"
        f" -> {b['latency_ratio']:.2f}x",
        f"  deepest path ({d['exit']}, {d['junctions']} junctions) / static, same engine (p50): "
        + ", ".join(f"{e} {v:.2f}x" for e, v in d["vs_static"].items()),
        "  cost per junction on that path (router + routing, p50): "
        + ", ".join(f"{e} {v * 1e6:.0f} us" for e, v in d["per_junction_s"].items()),
    ]
    if r.get("nodes"):
        lines += ["", f"time per node at batch {r['batch']} ({r.get('nodes_engine', registry.profile_default())} "
                  "engine, one node at a time; ms per batch):",
                  f"  {'node':<24} kind          MACs/ex   rows   routed ms   static ms"]
        for o in r["nodes"]:
            rs = "-" if o["routed_s"] is None else f"{o['routed_s'] * 1e3:9.2f}"
            ss = "-" if o["static_s"] is None else f"{o['static_s'] * 1e3:9.2f}"
            lines.append(f"  {o['node'][:24]:<24} {o['kind']:<8} {o['macs']:>12,} "
                         f"{o['rows']:>6} {rs:>11} {ss:>11}")
        cols = [o for o in r["nodes"] if o["kind"] in ("stem", "column")
                and o["static_s"] is not None]
        routed_cols = sum(o["routed_s"] for o in cols)
        ideal = sum(o["static_s"] * o["rows"] / o["batch"] for o in cols)
        routing = r["nodes"][-1]
        lines += [
            f"  columns: routed {routed_cols * 1e3:.2f} ms; at the static network's cost per row "
            f"they would take {ideal * 1e3:.2f} ms (static node time x share of rows reaching "
            "each node)",
            f"  routing between nodes: routed {routing['routed_s'] * 1e3:.2f} ms, static "
            f"{routing['static_s'] * 1e3:.2f} ms",
        ]
    return "\n".join(lines)


def compare_spec(spec: str = "paper_chain", mix: Sequence[float] | None = None, *,
                 batch: int = 256, images: int = 1024, seconds: float = 2.0,
                 engines: Sequence[str] | None = None, per_node: bool = False
                 ) -> dict[str, Any]:
    """``spec`` routed at ``mix`` against its deepest static prefix, each side in its
    fastest available engine: the numbers of :func:`compare` (plain floats, strings
    and dicts). ``result["best"]`` has the engines, images/s, speed and MAC ratios."""
    work = spec_workload(spec, mix, batch=batch, images=images)
    return compare(work, batch=batch, engines=engines, repeats=5, min_seconds=seconds,
                   latency_images=100, per_node=per_node)
