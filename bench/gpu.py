"""Routed networks on a GPU: the measurements of bench/gpu.sh, written as JSON and markdown.

inference: `routec bench` of paper_chain and resnet_chain (bundled specs) at batch 1
           and 256 under the fixed exit mix 50/10/10/10/5/5/5/5 % (paper_chain; equal
           shares for resnet_chain's three exits), routed against the static chain, each
           side in every engine that runs here (eager, fused, compiled, cudagraphs, and
           onnx where onnxruntime is installed); the best engine per side is chosen from
           the timings.
training:  an actor run of paper_chain (the hybrid set, or synthetic data where the
           data is absent: --data) against the full static chain, fp32 and bf16; time
           per iteration from the runs' own logs, after the first logged window
           (warm-up excluded).

Targets (docs/benchmarks.md, "GPU"):
  * paper_chain at batch 256: routed speed ≥ 0.6 × the MAC ratio over static, each in
    its fastest engine (bench's "realised" share);
  * batch 1 through every column (the deepest exit): routed ≤ 1.3 × static, engine by
    engine;
  * training: an actor iteration ≤ 1.5 × a static iteration of the full chain.

Run: bench/gpu.sh OUTDIR [--device cuda|cpu] [--quick] [--data synthetic|hybrid]
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from routec.engine import bench, registry
from routec.train.config import make_config
from routec.train.device import resolve_device
from routec.train.run_dir import RunDir
from routec.train.machine import cpu_model
from routec.train.loop import train

SPECS = ("paper_chain", "resnet_chain")
MIX = [50, 10, 10, 10, 5, 5, 5, 5]


def engines_here(device: torch.device, asked: str | None) -> list[str]:
    """The engines to time: those asked for, else every one whose requirements are met
    (compiled only on a GPU: on a CPU it compiles for minutes)."""
    if asked:
        return registry.parse_names(asked) or []
    out = []
    for name in registry.names():
        entry = registry.get(name)
        if not entry.available:
            continue
        if name == "compiled" and device.type != "cuda":
            continue
        out.append(name)
    return out


def inference(spec: str, batch: int, device: torch.device, engines: list[str],
              quick: bool) -> dict[str, Any]:
    mix = MIX if spec == "paper_chain" else None
    work = bench.spec_workload(spec, mix, batch=batch, images=batch if quick else 2048)
    r = bench.compare(work, batch=batch, engines=engines,
                      repeats=1 if quick else 7, min_seconds=0.0 if quick else 3.0,
                      latency_images=2 if quick else 100, per_node=False,
                      device=str(device))
    return {"spec": spec, "batch": batch, "engines": engines, "macs": r["macs"],
            "exit_mix": r["exit_mix"], "throughput": r["throughput"],
            "latency": r["latency"], "best": r["best"], "deepest": r["deepest"]}


def training(spec: str, strategy: str, precision: str, device: torch.device, data: str,
             iterations: int, batch: int, out: Path) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "spec": spec, "data": data, "strategy": strategy, "iterations": iterations,
        "batch": batch, "device": str(device), "precision": precision,
        "log_every": max(1, iterations // 10), "eval_every": 10 * iterations,
        "checkpoint_every": 10 * iterations, "checkpoint_seconds": 0, "seed": 0,
        "tensorboard": False}  # timing the step, not the event writer
    if strategy == "actor":
        settings["k_cpt"] = 4e-9
    else:
        settings["static_columns"] = 8 if spec == "paper_chain" else None
    run = out / "runs" / f"{spec}-{strategy}-{precision}"
    shutil.rmtree(run, ignore_errors=True)
    train(make_config(settings), run, progress=False)
    logged = [r for r in RunDir(run).metric_lines() if "seconds" in r and "iteration" in r]
    first, last = logged[0], logged[-1]
    steps = last["iteration"] - first["iteration"]
    per = ((last["seconds"] - first["seconds"]) / steps if steps
           else last["seconds"] / max(1, last["iteration"]))
    return {"spec": spec, "strategy": strategy, "precision": precision, "data": data,
            "iterations": iterations, "batch": batch, "seconds_per_iteration": per,
            "timed_iterations": steps or last["iteration"]}


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    big = [r for r in result["inference"] if r["spec"] == "paper_chain" and r["batch"] > 1]
    for r in big:
        out.append({"target": f"paper_chain batch {r['batch']}: realised share of the MAC "
                              "ratio >= 0.6", "value": r["best"]["realised"],
                    "met": r["best"]["realised"] >= 0.6})
    for r in result["inference"]:
        if r["batch"] != 1:
            continue
        for e, ratio in r["deepest"]["vs_static"].items():
            out.append({"target": f"{r['spec']} batch 1, deepest exit, {e}: routed <= 1.3x "
                                  "static", "value": ratio, "met": ratio <= 1.3})
    per = {(t["strategy"], t["precision"]): t["seconds_per_iteration"]
           for t in result["training"]}
    for p in result["precisions"]:
        if ("actor", p) in per and ("static", p) in per:
            ratio = per[("actor", p)] / per[("static", p)]
            out.append({"target": f"training {p}: actor iteration <= 1.5x static",
                        "value": ratio, "met": ratio <= 1.5})
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# routec on {result['device']}", "",
             f"torch {result['torch']}, {result['machine']}; "
             f"{'quick dry run (tiny counts: not a measurement)' if result['quick'] else 'full run'}"
             f"; {result['seconds']:.0f} s in all.", "", "## Inference (routec bench)", "",
             "| spec | batch | engine | routed images/s | static images/s | MAC ratio | "
             "batch-1 deepest / static |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["inference"]:
        for e in r["engines"]:
            deep = r["deepest"]["vs_static"].get(e)
            lines.append(f"| {r['spec']} | {r['batch']} | {e} | "
                         f"{r['throughput'][f'routed/{e}']:,.0f} | "
                         f"{r['throughput'][f'static/{e}']:,.0f} | {r['macs']['ratio']:.2f} | "
                         f"{'' if deep is None else f'{deep:.2f}'} |")
    lines += ["", "| spec | batch | fastest routed | fastest static | speed ratio | realised |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in result["inference"]:
        b = r["best"]
        lines.append(f"| {r['spec']} | {r['batch']} | {b['routed_engine']} | "
                     f"{b['static_engine']} | {b['speed_ratio']:.2f} | {b['realised']:.2f} |")
    lines += ["", "## Training (time per iteration)", "",
              "| spec | strategy | precision | data | batch | ms per iteration |",
              "| --- | --- | --- | --- | --- | --- |"]
    for t in result["training"]:
        lines.append(f"| {t['spec']} | {t['strategy']} | {t['precision']} | {t['data']} | "
                     f"{t['batch']} | {t['seconds_per_iteration'] * 1e3:.2f} |")
    lines += ["", "## Targets", "", "| target | value | met |", "| --- | --- | --- |"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['value']:.2f} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for gpu.json and gpu.md")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true",
                    help="tiny counts: checks the script end to end (a CPU dry run)")
    ap.add_argument("--data", default="synthetic",
                    help="training data: synthetic (default, runs anywhere) or hybrid")
    ap.add_argument("--iterations", type=int, default=None,
                    help="training iterations per run (default 1000; --quick 4)")
    ap.add_argument("--engines", help="comma-separated engines (default: all that run here)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engines = engines_here(device, args.engines)
    big = 16 if args.quick else 256
    iterations = args.iterations or (4 if args.quick else 1000)
    precisions = ["fp32", "bf16"]
    result: dict[str, Any] = {
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})"
                                 if device.type == "cuda" else ""),
        "torch": torch.__version__, "machine": f"{cpu_model()}, {platform.platform()}",
        "quick": args.quick, "engines": engines, "precisions": precisions,
        "inference": [], "training": []}
    for spec in SPECS:
        for batch in (1, big):
            print(f"... bench {spec} at batch {batch} ({', '.join(engines)})", file=sys.stderr)
            result["inference"].append(inference(spec, batch, device, engines, args.quick))
    for precision in precisions:
        for strategy in ("actor", "static"):
            print(f"... train paper_chain {strategy} {precision}, {iterations} iterations",
                  file=sys.stderr)
            result["training"].append(training("paper_chain", strategy, precision, device,
                                               args.data, iterations, 8 if args.quick else 128,
                                               out))
    result["targets"] = targets(result)
    result["seconds"] = time.perf_counter() - t0
    (out / "gpu.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "gpu.md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {out / 'gpu.json'} and {out / 'gpu.md'} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
