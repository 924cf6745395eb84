"""Fixtures for the data tests: where the real files are, and one cache per test run.

Real MNIST/CIFAR-10 come from ``$ROUTEC_DATA`` or, failing that, the shared
``datasets`` folder beside the repository checkout; tests that need them skip
cleanly when neither exists. The decoded cache lives in a per-run temporary
folder so that CIFAR-10 is decoded at most once per run and ~/.cache is untouched.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from routec.data import load_dataset
from routec.data.splits import DatasetSplits


def _real_root() -> Path | None:
    env = os.environ.get("ROUTEC_DATA")
    if env:
        return Path(env)
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    return shared if shared.is_dir() else None


@pytest.fixture(scope="session")
def real_root() -> Path:
    root = _real_root()
    has_mnist = root is not None and (root / "MNIST" / "raw").is_dir()
    has_cifar = root is not None and any(
        (root / n).exists() for n in ("cifar-10-batches-py", "cifar-10-jpeg", "cifar-10-jpeg.tar.gz")
    )
    if not (has_mnist and has_cifar):
        pytest.skip("real MNIST/CIFAR-10 not found (set ROUTEC_DATA)")
    assert root is not None
    return root


@pytest.fixture(scope="session")
def run_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for the run (a few GB with every dataset built); removed afterwards."""
    path = tmp_path_factory.mktemp("routec-cache")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def real_dataset(real_root: Path, run_cache: Path) -> Iterator[Callable[[str], DatasetSplits]]:
    """Loads named datasets through the per-run cache, once each."""
    loaded: dict[str, DatasetSplits] = {}

    def get(name: str) -> DatasetSplits:
        if name not in loaded:
            start = time.perf_counter()
            loaded[name] = load_dataset(name, real_root, run_cache, seed=0)
            print(f"\nloading {name}: {time.perf_counter() - start:.1f} s (cache hit: {loaded[name].cache_hit})")
        return loaded[name]

    yield get
    loaded.clear()


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read or write the user's cache, whatever the environment says."""
    monkeypatch.setenv("ROUTEC_CACHE", str(tmp_path / "default-cache"))


# ----------------------------------------------------------- small fake files


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file as the format defines it: magic, big-endian dims, then bytes."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_fake_mnist(
    root: Path, n_train: int = 30, n_test: int = 10, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """A tiny MNIST tree under ``root``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
        for name, arr, magic in ((f"{prefix}-images-idx3-ubyte", x, 2051), (f"{prefix}-labels-idx1-ubyte", y, 2049)):
            data = _idx_bytes(arr, magic)
            if gz:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return arrays


@pytest.fixture
def idx_bytes() -> Callable[[np.ndarray, int], bytes]:
    return _idx_bytes


@pytest.fixture
def fake_mnist() -> Callable[..., dict[str, np.ndarray]]:
    return _write_fake_mnist
