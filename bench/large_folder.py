"""An image folder larger than memory: decode it once, then train on it from disk.

    python bench/large_folder.py --images 50000 [--batch 64] [--iterations 60] [--workdir DIR]

Writes ``--images`` JPEGs of 224×224 in two classes (smooth colour ramps plus noise,
so they compress like photographs) into a temporary folder, then runs three fresh
processes, each reporting its peak resident size (VmHWM):

1. ``load_dataset`` on an empty cache: the decode into the uint8 cache (images/s);
2. ``routec train`` of a small spec with a strided first layer on the folder, now
   cached: images/s trained, taken from the run's log between two log lines (a
   step includes drawing its batch from disk);
3. the loader alone: shuffled, augmented, normalised batches of the training split
   (images/s loaded), to compare with (2).

Everything is deleted afterwards unless ``--workdir`` names a folder to keep.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SIZE = 224
SPEC = """network strided (input = 3x224x224) {
    router default = linear(pooled = 7)
    exit default = linear(pooled = 1)
    column a = conv(8, stride = 4) -> bn -> relu -> pool(2)
    column b = conv(16, stride = 2) -> bn -> relu
    route a -> either { exit | b -> exit }
}
"""
PEAK = ("peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
        "print('PEAK_KB', int(peak.split()[1]), flush=True)\n")
DECODE = """import sys, time
from routec.data import load_dataset
t0 = time.perf_counter()
data = load_dataset(sys.argv[1], cache_dir=sys.argv[2], shape=(3, 224, 224))
print('SECONDS', time.perf_counter() - t0)
""" + PEAK
TRAIN = """import sys
from routec.cli import main
rc = main(sys.argv[1:])
""" + PEAK + "sys.exit(rc)\n"
LOADER = """import sys, time, torch
from routec.data import Augmenter, batches, load_dataset
torch.set_num_threads(1)
data = load_dataset(sys.argv[1], cache_dir=sys.argv[2], shape=(3, 224, 224), normalize=True)
b, n = int(sys.argv[3]), int(sys.argv[4])
gen, aug = torch.Generator().manual_seed(0), Augmenter.for_images(0, 224, 224)
t0, seen = time.perf_counter(), 0
for k, batch in enumerate(batches(data.train, b, generator=gen, augmenter=aug)):
    seen += len(batch.labels)
    if k + 1 == n:
        break
print('LOADED', seen, time.perf_counter() - t0)
""" + PEAK


def _write_some(args: tuple[str, int, int]) -> int:
    """JPEGs ``start`` … ``stop - 1`` (a worker process's share); bytes written."""
    import numpy as np
    from PIL import Image

    root, start, stop = Path(args[0]), args[1], args[2]
    rng = np.random.default_rng(start)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    total = 0
    for i in range(start, stop):
        a, b, c = rng.random(3)
        base = np.stack([a * xx + (1 - a) * yy, b * yy, c * xx * yy], axis=2) * 220
        img = np.clip(base + rng.normal(0, 10, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        path = root / ("ab"[i % 2]) / f"{i:06d}.jpg"
        Image.fromarray(img).save(path, quality=85)
        total += path.stat().st_size
    return total


def generate(root: Path, n: int) -> tuple[float, int]:
    for cls in "ab":
        (root / cls).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    step = 500
    jobs = [(str(root), s, min(s + step, n)) for s in range(0, n, step)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        size = sum(pool.map(_write_some, jobs))
    return time.perf_counter() - t0, size


def child(code: str, *args: str) -> dict[str, str]:
    """Run ``code`` in a fresh interpreter (one torch thread); its KEY value lines."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"child failed:\n{done.stderr[-3000:]}")
    out = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key.isupper():
            out[key] = value
    return out


def train_rate(run: Path, batch: int) -> float:
    """Images per second trained between the first log line and the last one before validation."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "seconds" in r and "val_accuracy" not in r]
    first, last = steps[0], steps[-1]
    return (last["iteration"] - first["iteration"]) * batch / (last["seconds"] - first["seconds"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--loader-batches", type=int, default=100)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the folder, cache and run here")
    args = ap.parse_args()
    if not Path("/proc/self/status").is_file():
        sys.exit("this benchmark reads peak memory from /proc/self/status (Linux)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="routec-large-folder-"))
    folder, cache, run = work / "images", work / "cache", work / "run"
    try:
        print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
        seconds, size = generate(folder, args.images)
        print(f"wrote {args.images:,} JPEGs of {SIZE}x{SIZE} ({size / 2**20:,.0f} MiB) in {seconds:.0f} s")

        dec = child(DECODE, str(folder), str(cache))
        npy = sum(p.stat().st_size for p in cache.glob("*.npy"))
        s = float(dec["SECONDS"])
        print(f"decode into the cache: {s:.0f} s = {args.images / s:,.0f} images/s, cache {npy / 2**30:.2f} GiB "
              f"(float32 would be {args.images * 3 * SIZE * SIZE * 4 / 2**30:.1f} GiB); "
              f"peak resident {int(dec['PEAK_KB']) / 2**20:.2f} GiB")

        (work / "strided.route").write_text(SPEC)
        tr = child(TRAIN, "train", str(work / "strided.route"), "--data", str(folder), "--cache-dir", str(cache),
                   "--out", str(run), "--iterations", str(args.iterations), "--batch", str(args.batch),
                   "--eval-every", str(args.iterations), "--log-every", str(args.log_every), "--no-progress")
        trained = train_rate(run, args.batch)
        print(f"routec train, batch {args.batch}, {args.iterations} iterations and validation on every "
              f"held-out image: {trained:,.0f} images/s trained; peak resident "
              f"{int(tr['PEAK_KB']) / 2**20:.2f} GiB")

        ld = child(LOADER, str(folder), str(cache), str(args.batch), str(args.loader_batches))
        n, s = ld["LOADED"].split()
        loaded = int(n) / float(s)
        print(f"loader alone (read, convert, normalise, augment; one thread): {loaded:,.0f} images/s, "
              f"{loaded / trained:.1f}x the training rate; peak resident {int(ld['PEAK_KB']) / 2**20:.2f} GiB")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
