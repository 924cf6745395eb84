"""Image folders kept as integers on disk: per-batch conversion against the float path,
reading rows in any order, and cache entries of the old format or incomplete.

The reference for every value is the whole-image float32 decoder
(``routec.data.folders.decode_image``, the path folders used before they were
stored as integers) followed by ``(x - mean) / std`` on the whole split.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from routec.data import batches, load_dataset
from routec.data import folder_cache
from routec.data.augmentation import apply, apply_by_copy, apply_by_gather, draw_params
from routec.data.folders import decode_image, scan_folder
from routec.data.stored import NpyRows, StoredImages


def write_folder(root: Path, mode: str, n: int = 6, size: int = 16) -> None:
    """``n`` images per class: PNGs and JPEGs of noise, plus one PNG holding every 8-bit value."""
    rng = np.random.default_rng(3)
    for k, cls in enumerate(("a", "b")):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(arr, mode).save(root / cls / f"{i}.{'jpg' if i % 2 else 'png'}")
        ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
        every = np.stack([ramp, ramp[::-1], ramp.T], axis=2) if mode == "RGB" else ramp.T
        Image.fromarray(np.ascontiguousarray(every), mode).save(root / cls / f"every{k}.png")


@pytest.mark.parametrize("pixels", ["linear", "unit"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_batches_are_the_float_path_bit_for_bit(tmp_path: Path, pixels: str, mode: str) -> None:
    root = tmp_path / "d"
    write_folder(root, mode)
    c = 3 if mode == "RGB" else 1
    plain = load_dataset(str(root), cache_dir=tmp_path / "c", pixels=pixels)
    norm = load_dataset(str(root), cache_dir=tmp_path / "c", pixels=pixels, normalize=True)
    assert isinstance(norm.train.images, StoredImages) and norm.train.images.rows.dtype == np.uint8
    files = scan_folder(root).files
    old = {s: torch.from_numpy(np.stack([decode_image(files[i], (c, 16, 16), pixels, False)
                                         for i in plain.split(s).source_index.tolist()]))
           for s in ("train", "val", "test")}
    # the statistics: float64 sums over the float32 images, as the whole-split path computes them
    x = old["train"].double()
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)
    assert norm.info.normalization is not None
    np.testing.assert_allclose(norm.info.normalization[0], mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(norm.info.normalization[1], std.numpy(), rtol=1e-12)
    m = torch.tensor(norm.info.normalization[0]).to(torch.float32).view(1, c, 1, 1)
    s = torch.tensor(norm.info.normalization[1]).to(torch.float32).view(1, c, 1, 1)
    gen = torch.Generator().manual_seed(0)
    for split in ("train", "val", "test"):
        want = (old[split] - m) / s  # the whole split at once, as before
        idx = torch.randperm(len(want), generator=gen)[:5]
        assert torch.equal(plain.split(split).images.index_select(0, idx), old[split][idx])
        assert torch.equal(norm.split(split).images.index_select(0, idx), want[idx])
        assert torch.equal(norm.split(split).images[:], want)
    seen = torch.cat([b.images for b in batches(norm.train, 4, shuffle=False)])
    assert torch.equal(seen, (old["train"] - m) / s)


def _npy(tmp_path: Path, rng: np.random.Generator, n: int = 37) -> tuple[Path, np.ndarray]:
    arr = rng.integers(0, 256, size=(n, 3, 9, 8), dtype=np.uint8)
    path = tmp_path / "x.npy"
    folder_cache.write_npy(path, arr.shape, np.dtype(np.uint8), (arr[i:i + 8] for i in range(0, n, 8)))
    return path, arr


def test_rows_are_read_in_any_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path, arr = _npy(tmp_path, rng)
    assert np.array_equal(np.load(path), arr)  # a plain .npy, as numpy writes it
    images = StoredImages(NpyRows(path), "unit")
    ref = torch.from_numpy(arr.astype(np.float32) / 255.0)
    idx = torch.from_numpy(rng.integers(0, len(arr), size=60))  # repeats, any order
    assert torch.equal(images.index_select(0, idx), ref[idx])
    assert torch.equal(images[torch.tensor([-1, 0, -37, 5, 6, 7, 5])], ref[[-1, 0, -37, 5, 6, 7, 5]])
    assert torch.equal(images[3:30:4], ref[3:30:4]) and torch.equal(images[7], ref[7])
    mask = torch.from_numpy(rng.random(len(arr)) < 0.5)
    assert torch.equal(images[mask], ref[mask])
    assert images.shape == ref.shape and len(images) == len(ref)
    with pytest.raises(IndexError):
        images[torch.tensor([37])]
    sample = images.select(idx)  # a sample that stays on disk: read as the split is
    assert len(sample) == len(idx) and torch.equal(sample[5:9], ref[idx[5:9]])
    assert torch.equal(sample.select(torch.tensor([3, 0]))[:], ref[idx[[3, 0]]])
    again = pickle.loads(pickle.dumps(images))  # to another process: the file, not its contents
    assert len(pickle.dumps(images)) < arr.nbytes // 4
    assert torch.equal(again[idx], ref[idx])


def test_a_truncated_image_file_is_refused(tmp_path: Path) -> None:
    path, _ = _npy(tmp_path, np.random.default_rng(1))
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="header says"):
        NpyRows(path)


def test_old_format_and_incomplete_entries_are_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, cache = tmp_path / "d", tmp_path / "c"
    write_folder(root, "L", n=8)
    monkeypatch.setattr(folder_cache, "FOLDER_FORMAT", 1)
    old = load_dataset(str(root), cache_dir=cache)
    monkeypatch.undo()
    new = load_dataset(str(root), cache_dir=cache)
    assert not new.cache_hit and new.cache_path != old.cache_path
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [new.cache_path.name] + [folder_cache.images_path(new.cache_path, s).name for s in ("train", "val", "test")])
    assert load_dataset(str(root), cache_dir=cache).cache_hit
    before = new.val.images[:]
    folder_cache.images_path(new.cache_path, "val").unlink()  # a file lost: the entry is rebuilt
    again = load_dataset(str(root), cache_dir=cache)
    assert not again.cache_hit and torch.equal(again.val.images[:], before)


@pytest.mark.parametrize(("h", "w", "shift"), [(224, 224, (28, 28)), (64, 80, (8, 10)), (12, 10, (15, 3))])
def test_block_copy_augmentation_is_the_gather(h: int, w: int, shift: tuple[int, int]) -> None:
    """Large images are shifted by copying blocks; every value equals the one-gather path's
    (flips, shifts past the border, mean fill)."""
    gen = torch.Generator().manual_seed(h)
    x = torch.rand(16, 3, h, w, generator=gen)
    params = draw_params(torch.randint(0, 2, (16,), generator=gen).to(torch.uint8), gen, shift)
    assert params.flip.any() and (~params.flip).any()
    want = apply_by_gather(x, params)
    assert torch.equal(apply_by_copy(x, params), want) and torch.equal(apply(x, params), want)
