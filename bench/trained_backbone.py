"""Accuracy against measured time for a routed model routec did not build.

The runs of the suites ``cifar10-r20-static`` (the model's prefixes with their exit;
``n4`` is the model alone), ``cifar10-r20-actor`` (learned routing over k_cpt),
``cifar10-r20-finetune`` and ``cifar10-r20-multiexit`` (the same exits routed by a
confidence threshold, one network per threshold) route the same test images in every
engine given. Every (network, engine) pair is timed round-robin in one process, and each
network is placed at its fastest engine's median time per image: no side is handicapped.
Accuracy and mean MACs are each network's test evaluation from its record (what the
results page shows). Weights are needed: run where the runs were trained.

Run from the repository root (the model is ``examples.cifar_resnet:resnet20``):

  python bench/trained_backbone.py --runs runs/exp --records results/records \\
      -o results/records/time-trained.json [--images 1024] [--engines eager,fused,onnx]

``routec report results results/records`` then plots accuracy against time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SUITES = ("cifar10-r20-static", "cifar10-r20-actor", "cifar10-r20-finetune",
          "cifar10-r20-multiexit")
THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999)  # of the record's thresholds


def _networks(runs: Path, records: Path) -> list[tuple[str, str, Path, float | None]]:
    """(curve, label, run directory, threshold) of every recorded run of the suites."""
    out = []
    for suite in SUITES:
        for run_dir in sorted((runs / suite).glob("*/checkpoint.pt")):
            d = run_dir.parent
            if not (records / suite / d.name / "record.json").is_file():
                print(f"{d}: no record in {records} yet, left out", file=sys.stderr)
                continue
            if suite.endswith("multiexit"):
                out += [("multi-exit + confidence", f"{t:g}", d, t) for t in THRESHOLDS]
            else:
                curve = {"cifar10-r20-static": "static", "cifar10-r20-actor": "actor",
                         "cifar10-r20-finetune": "actor, backbone fine-tuned"}[suite]
                out.append((curve, d.name, d, None))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/exp"))
    ap.add_argument("--records", type=Path, default=Path("results/records"))
    ap.add_argument("--images", type=int, default=1024, help="test images per pass")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--engines", default="eager,fused,onnx")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--out", type=Path, default=Path("results/records/time-trained.json"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path.cwd()))  # the model's module, as `routec` commands do
    torch.set_num_threads(args.threads)

    from routec.engine import optimize_for_inference
    from routec.engine.timing import round_robin
    from routec.train.machine import cpu_model
    from routec.train.evaluate import ConfidencePolicy
    from routec.train.run_dir import RunDir

    nets = _networks(args.runs, args.records)
    if not nets:
        print(f"no finished runs of {', '.join(SUITES)} under {args.runs}", file=sys.stderr)
        return 2
    engines = [e for e in args.engines.split(",") if e]
    loaded: dict[Path, Any] = {}
    images = None
    fns: dict[tuple[int, str], Callable[[], object]] = {}
    points: list[dict[str, Any]] = []
    for i, (curve, label, run_dir, threshold) in enumerate(nets):
        if run_dir not in loaded:
            cfg, net, data, _ = RunDir.open(run_dir).load()
            loaded[run_dir] = (net, {e: optimize_for_inference(net, e) for e in engines})
            if images is None:
                images = data.test.images[:args.images]
        net, built = loaded[run_dir]
        assert images is not None
        record = json.loads((args.records / run_dir.parent.name / run_dir.name /
                             "record.json").read_text(encoding="utf-8"))
        if threshold is None:
            result = record["evaluations"][0]["result"]
        else:
            result = next(c["result"] for c in record["confidence"]
                          if c["threshold"] == threshold)
        points.append({"curve": curve, "label": label, "run": str(run_dir),
                       "threshold": threshold, "accuracy": result["accuracy"],
                       "mean_macs": result["mean_macs"], "seconds": {}})
        for name, engine in built.items():
            def route_all(engine: Any = engine, t: float | None = threshold) -> None:
                for s in range(0, len(images), args.batch):
                    x = images[s:s + args.batch]
                    if t is None:
                        engine.route(x)
                    else:
                        pol = ConfidencePolicy(net, t)
                        pol.start(len(x))
                        engine.route(x, policy=pol)
            try:
                with torch.no_grad():
                    route_all()
            except Exception as err:  # an engine that cannot take this policy
                print(f"{curve} {label}: engine {name} skipped ({type(err).__name__}: "
                      f"{str(err).splitlines()[0][:120]})", file=sys.stderr)
                continue
            fns[(i, name)] = route_all
    print(f"timing {len(fns)} (network, engine) pairs round-robin on {len(images)} test "
          f"images at batch {args.batch}, {args.threads} thread(s)", file=sys.stderr)
    with torch.no_grad():
        times = round_robin({f"{i}/{e}": fn for (i, e), fn in fns.items()},
                            repeats=args.repeats, min_seconds=0.0, warmup=1)
    for key, values in times.items():
        i, name = key.split("/", 1)
        points[int(i)]["seconds"][name] = statistics.median(values) / len(images)
    for p in points:
        if p["seconds"]:
            p["engine"] = min(p["seconds"], key=p["seconds"].get)
            p["seconds_per_image"] = p["seconds"][p["engine"]]
    record = {"what": "accuracy against measured time, each network in its fastest engine",
              "command": "python " + " ".join(sys.argv), "machine": cpu_model(),
              "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
              "images": len(images), "repeats": args.repeats, "engines": engines,
              "points": points}
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    for p in points:
        print(f"{p['curve']:28s} {p['label']:8s} acc {p['accuracy']:.4f} "
              f"MACs {p['mean_macs'] / 1e6:6.2f} M  {p.get('seconds_per_image', 0) * 1e6:8.1f} "
              f"µs/image ({p.get('engine')})")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
