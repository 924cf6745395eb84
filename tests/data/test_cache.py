"""The decoded-array cache: round trip, keys, corruption, atomic replacement."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from routec.data import cache


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "images": rng.random((50, 3, 8, 8), dtype=np.float32),
        "labels": rng.integers(0, 10, 50),
        "origin": rng.integers(0, 2, 50).astype(np.uint8),
    }


def _replace_bytes(path: Path, data: bytes) -> None:
    """Write a new file over ``path`` (never truncating a file that may be memory-mapped)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_round_trip(tmp_path: Path) -> None:
    arrays = _arrays()
    path = cache.entry_path(tmp_path, "thing", "ab" * 32)
    assert cache.save(path, "ab" * 32, arrays)
    back = cache.load(path, "ab" * 32)
    assert back is not None and set(back) == set(arrays)
    for name, arr in arrays.items():
        np.testing.assert_array_equal(back[name], arr)
        assert back[name].dtype == arr.dtype
    only = cache.load(path, "ab" * 32, only=["labels"])
    assert only is not None and list(only) == ["labels"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_loaded_arrays_are_private(tmp_path: Path) -> None:
    key = "cd" * 32
    path = cache.entry_path(tmp_path, "thing", key)
    cache.save(path, key, _arrays())
    first = cache.load(path, key)
    assert first is not None
    first["images"][:] = -1.0  # a caller scribbling on its copy must not change the file
    second = cache.load(path, key)
    assert second is not None
    np.testing.assert_array_equal(second["images"], _arrays()["images"])


def test_key_depends_on_parts_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    k1 = cache.cache_key("raw", {"files": [["a", 1, 2]]})
    assert k1 == cache.cache_key("raw", {"files": [["a", 1, 2]]})
    assert k1 != cache.cache_key("raw", {"files": [["a", 1, 3]]})
    assert k1 != cache.cache_key("other", {"files": [["a", 1, 2]]})
    monkeypatch.setattr(cache, "PREPROCESS_VERSION", cache.PREPROCESS_VERSION + 1)
    assert k1 != cache.cache_key("raw", {"files": [["a", 1, 2]]})


def test_fingerprint_changes_with_content_and_mtime(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    first = cache.fingerprint([f])
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    second = cache.fingerprint([f])
    f.write_bytes(b"abcd")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    third = cache.fingerprint([f])
    assert len({str(first), str(second), str(third)}) == 3


def test_cached_builds_once(tmp_path: Path) -> None:
    calls = []

    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return _arrays()

    first = cache.cached(tmp_path, "thing", "ef" * 32, build)
    second = cache.cached(tmp_path, "thing", "ef" * 32, build)
    assert (first.hit, second.hit, len(calls)) == (False, True, 1)
    third = cache.cached(tmp_path, "thing", "12" * 32, build)  # a new key: rebuilt, old entry pruned
    assert not third.hit and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [third.path.name]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "swap_key"])
def test_corrupt_entry_is_rebuilt(tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = "34" * 32
    result = cache.cached(tmp_path, "thing", key, _arrays)
    data = bytearray(result.path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        # Flip a byte inside the image payload: only the checksum can notice.
        images = _arrays()["images"].tobytes()
        at = bytes(data).find(images[:64])
        assert at > 0
        data[at + 1000] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    del result
    if damage == "swap_key":
        other = cache.entry_path(tmp_path, "thing", "56" * 32)
        cache.save(other, "56" * 32, _arrays(1))
        os.replace(other, cache.entry_path(tmp_path, "thing", key))
    else:
        _replace_bytes(cache.entry_path(tmp_path, "thing", key), bytes(data))
    capsys.readouterr()
    again = cache.cached(tmp_path, "thing", key, _arrays)
    assert not again.hit
    assert "is corrupt" in capsys.readouterr().err
    np.testing.assert_array_equal(again.arrays["images"], _arrays()["images"])
    assert cache.cached(tmp_path, "thing", key, _arrays).hit


def test_unwritable_cache_dir_still_returns_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = cache.cached(blocker / "sub", "thing", "78" * 32, _arrays)
    assert not result.hit
    np.testing.assert_array_equal(result.arrays["labels"], _arrays()["labels"])
    assert "could not write cache file" in capsys.readouterr().err
