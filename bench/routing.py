"""Does routed inference turn saved MACs into saved time — against the static network
in its *fastest* engine?

A thin wrapper around ``routec bench`` (routec.engine.bench.compare): paper_chain with
a forced exit mix (default 50/10/10/10/5/5/5/5 %), routed and static each timed in
every engine (eager, fused, onnx; ``--engines`` adds compiled), round-robin in one
process, medians. Prints throughput at --batch, batch-1 latency (at the mix and
through the deepest path), MAC ratio, speed ratio, the share of the MAC saving
realised, and time per node; ``--json FILE`` also saves every number.

Run: OMP_NUM_THREADS=1 python bench/routing.py [--batch 256] [--mix 50,10,10,10,5,5,5,5]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from routec.engine import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="paper_chain")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--images", type=int, default=2048, help="images per throughput pass")
    ap.add_argument("--mix", default="50,10,10,10,5,5,5,5",
                    help="percent of examples leaving at each exit, in order")
    ap.add_argument("--engines", default=None, help="comma-separated (default eager,fused,onnx)")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--latency-images", type=int, default=200)
    ap.add_argument("--json", help="also write every number to this file")
    args = ap.parse_args()
    if "OMP_NUM_THREADS" not in os.environ:
        print("note: OMP_NUM_THREADS is not set; on a shared machine set it to 1",
              file=sys.stderr)
    work = bench.spec_workload(args.spec, [float(v) for v in args.mix.split(",")],
                               batch=args.batch, images=args.images)
    result = bench.compare(work, batch=args.batch,
                           engines=args.engines.split(",") if args.engines else None,
                           repeats=args.repeats, min_seconds=args.seconds,
                           latency_images=args.latency_images,
                           progress=lambda s: print(f"... {s}", file=sys.stderr))
    print(bench.format_report(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
