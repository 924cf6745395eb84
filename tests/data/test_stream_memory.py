"""Training on an image folder takes memory bounded by the batch, not by the folder.

Two folders of 224×224 JPEGs, 500 and 2,000 images (the smaller one hard links to a
quarter of the larger), are each decoded into an empty cache and trained on for a few
iterations by `routec train` in a fresh process, which reports its peak resident size
(VmHWM). Kept whole as float32, the 1,500 extra images alone would take
1,500 × 3 × 224 × 224 × 4 bytes ≈ 903 MB; the peaks may differ by MARGIN at most.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MARGIN = 100 * 2**20
SIZE = 224
SPEC = """network big (input = 3x224x224) {
    router default = linear(pooled = 7)
    exit default = linear(pooled = 1)
    column a = conv(8, stride = 4) -> bn -> relu -> pool(2)
    column b = conv(16, stride = 2) -> bn -> relu
    route a -> either { exit | b -> exit }
}
"""
# routec train in this process, then its peak resident size (Linux reports it in kB)
CHILD = """import sys
from routec.cli import main
rc = main(sys.argv[1:])
peak = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))
print('PEAK_KB', int(peak.split()[1]))
sys.exit(rc)
"""


def write_jpegs(root: Path, n: int) -> list[Path]:
    """``n`` JPEGs in two classes: smooth colour ramps plus noise (so they compress as photos do)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    paths = []
    for i in range(n):
        folder = root / ("ab"[i % 2])
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.random(3)
        base = np.stack([a * xx + (1 - a) * yy, b * yy, c * xx * yy], axis=2) * 220
        img = np.clip(base + rng.normal(0, 10, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:05d}.jpg")
        Image.fromarray(img).save(paths[-1], quality=85)
    return paths


def peak_of_training(tmp_path: Path, data: Path, name: str) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_CACHE": str(tmp_path / f"cache-{name}")}
    args = ["train", str(tmp_path / "big.route"), "--data", str(data), "--out", str(tmp_path / f"run-{name}"),
            "--iterations", "4", "--batch", "16", "--eval-every", "2", "--log-every", "2", "--no-progress"]
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decoding" in done.stderr  # an empty cache: the build's memory is measured too
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("PEAK_KB"))
    return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux's /proc/self/status")
def test_peak_memory_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    (tmp_path / "big.route").write_text(SPEC)
    large = tmp_path / "large"
    paths = write_jpegs(large, 2000)
    small = tmp_path / "small"
    for p in paths[:500]:
        (small / p.parent.name).mkdir(parents=True, exist_ok=True)
        os.link(p, small / p.parent.name / p.name)
    peak_small = peak_of_training(tmp_path, small, "small")
    peak_large = peak_of_training(tmp_path, large, "large")
    print(f"peak resident MB: {peak_small / 2**20:.0f} (500 images), {peak_large / 2**20:.0f} (2,000 images)")
    assert peak_large - peak_small < MARGIN, (peak_small / 2**20, peak_large / 2**20)
