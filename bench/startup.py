"""How fast the command line starts: light commands, and `routec train` to its first step.

    python bench/startup.py [--repeats 5]

Light commands (`--help`, `compile`, `compile --report`, `draw SPEC`) are timed from
launch to exit. `routec train` is timed from launch until its first training step
is logged (metrics.jsonl gains its first `train_loss` line, written after step 1
with --log-every 1). Medians over the repeats, each a fresh process, as a user
would run them. Results: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUTEC = [sys.executable, "-m", "routec"]
LIGHT = {
    "routec --help": ["--help"],
    "routec compile paper_chain": ["compile", "paper_chain"],
    "routec compile paper_chain --report": ["compile", "paper_chain", "--report"],
    "routec draw paper_tree -o tree.svg": ["draw", "paper_tree", "-o", "{tmp}/tree.svg"],
}


def time_light(argv: list[str], tmp: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(ROUTEC + [a.replace("{tmp}", tmp) for a in argv], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def time_to_first_step(tmp: str, i: int) -> float:
    out = Path(tmp) / f"run{i}"
    metrics = out / "metrics.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.Popen(ROUTEC + ["train", "tiny", "--data", "synthetic", "--iterations",
                                      "1000", "--log-every", "1", "--no-progress",
                                      "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if metrics.exists() and any("train_loss" in json.loads(l)
                                        for l in metrics.read_text().splitlines() if l):
                return time.perf_counter() - t0
            if proc.poll() is not None:
                raise RuntimeError("routec train exited before its first step")
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, argv in LIGHT.items():
            times = [time_light(argv, tmp) for _ in range(args.repeats)]
            rows.append((name, statistics.median(times), max(times)))
        times = [time_to_first_step(tmp, i) for i in range(args.repeats)]
        rows.append(("routec train tiny: launch to first step", statistics.median(times),
                     max(times)))
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
          f"{args.repeats} fresh processes each")
    print("| command | median (s) | slowest (s) |\n| --- | ---: | ---: |")
    for name, med, worst in rows:
        print(f"| `{name}` | {med:.2f} | {worst:.2f} |")


if __name__ == "__main__":
    main()
