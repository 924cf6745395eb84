"""Image folders as datasets: layouts, hold-out, pixels, modes, cache invalidation, errors.

Images are written here with PIL; expected values come from the pixel rule in
docs/data.md applied to the written arrays, and split counts from counting files.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from routec.data import load_dataset
from routec.data.augmentation import Augmenter, draw_params, shift_range
from routec.data.folders import file_list
from routec.errors import DataError


def write(folder: Path, counts: dict[str, int], size: tuple[int, int] = (8, 8), mode: str = "L",
          seed: int = 0) -> dict[Path, np.ndarray]:
    """Random images per class folder; returns what each file holds."""
    rng = np.random.default_rng(seed)
    written = {}
    for cls, n in counts.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (*size, 3) if mode == "RGB" else size
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            path = folder / cls / f"{i:03d}.png"
            Image.fromarray(arr, mode).save(path)
            written[path] = arr
    return written


def by_file(data, root: Path) -> dict[Path, tuple[str, torch.Tensor, int]]:  # type: ignore[no-untyped-def]
    """file -> (split, image, label), traced back through source_index."""
    files = file_list(root)
    out = {}
    for split in ("train", "val", "test"):
        part = data.split(split)
        for row, index in enumerate(part.source_index.tolist()):
            out[files[index]] = (split, part.images[row], int(part.labels[row]))
    return out


def test_stratified_holdout_by_independent_counting(tmp_path: Path) -> None:
    counts = {"ant": 40, "bee": 25, "cow": 13, "dog": 7}
    written = write(tmp_path / "d", counts)
    data = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", val_fraction=0.2, test_fraction=0.15)
    seen = by_file(data, tmp_path / "d")
    assert set(seen) == set(written)  # every file in exactly one split
    assert sum(len(data.split(s)) for s in ("train", "val", "test")) == len(written)
    for path, (_, _, label) in seen.items():
        assert data.classes[label] == path.parent.name
    for cls, n in counts.items():
        in_split = {s: sum(1 for p, (sp, _, _) in seen.items() if p.parent.name == cls and sp == s)
                    for s in ("train", "val", "test")}
        test, val = math.floor(n * 0.15 + 0.5), math.floor(n * 0.2 + 0.5)
        assert in_split == {"train": n - val - test, "val": val, "test": test}
    assert data.info.sizes == {s: len(data.split(s)) for s in ("train", "val", "test")}


def test_holdout_is_seeded_and_per_class(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root, {"a": 30, "b": 30})

    def held(seed: int) -> set[Path]:
        data = load_dataset(str(root), cache_dir=tmp_path / "c", seed=seed)
        return {p for p, (s, _, _) in by_file(data, root).items() if s != "train"}

    first = held(0)
    assert held(0) == first and held(1) != first
    write(root, {"b": 33}, seed=5)  # rewrites b/000..032: b changes, a must not
    again = held(0)
    assert {p for p in again if p.parent.name == "a"} == {p for p in first if p.parent.name == "a"}


def test_pixels_linear_and_unit(tmp_path: Path) -> None:
    written = write(tmp_path / "d", {"a": 6, "b": 6}, mode="RGB")
    linear = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c")
    unit = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", pixels="unit")
    assert linear.info.shape == (3, 8, 8) and linear.info.pixels == "linear" and unit.info.pixels == "unit"
    lin, uni = by_file(linear, tmp_path / "d"), by_file(unit, tmp_path / "d")
    for path, arr in written.items():
        v = arr.transpose(2, 0, 1).astype(np.float64) / 255.0
        np.testing.assert_allclose(uni[path][1].numpy(), v, atol=1e-6)
        np.testing.assert_allclose(lin[path][1].numpy(), v ** 2.2, atol=1e-6)


def test_modes_grayscale_palette_alpha_and_16_bit(tmp_path: Path) -> None:
    gray = tmp_path / "gray"
    (gray / "a").mkdir(parents=True)
    (gray / "b").mkdir()
    g8 = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(g8, "L").save(gray / "a" / "l.png")
    Image.fromarray(g8, "L").convert("P").save(gray / "a" / "p.png")  # grey palette
    g16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(g16).save(gray / "b" / "i16.png")
    Image.fromarray(np.dstack([g8, g8]), "LA").save(gray / "b" / "la.png")
    write(gray, {"a": 3, "b": 3})  # fillers, so that every split has images
    data = load_dataset(str(gray), cache_dir=tmp_path / "c", pixels="unit")
    assert data.info.shape == (1, 8, 8)  # every file is grey: one channel
    seen = by_file(data, gray)
    for name in ("a/l.png", "a/p.png", "b/la.png"):
        np.testing.assert_allclose(seen[gray / name][1][0].numpy(), g8 / 255.0, atol=1e-6)
    np.testing.assert_allclose(seen[gray / "b" / "i16.png"][1][0].numpy(), g16 / 65535.0, atol=1e-6)

    mixed = tmp_path / "mixed"
    (mixed / "a").mkdir(parents=True)
    (mixed / "b").mkdir()
    rgba = np.dstack([g8, 255 - g8, g8 // 2, np.full_like(g8, 7)])
    Image.fromarray(rgba, "RGBA").save(mixed / "a" / "rgba.png")
    Image.fromarray(g8, "L").save(mixed / "b" / "l.png")
    write(mixed, {"a": 4, "b": 4})  # grey fillers
    data = load_dataset(str(mixed), cache_dir=tmp_path / "c", pixels="unit")
    assert data.info.shape == (3, 8, 8)  # one colour file makes the folder RGB
    seen = by_file(data, mixed)
    np.testing.assert_allclose(seen[mixed / "a" / "rgba.png"][1].numpy(),
                               rgba[:, :, :3].transpose(2, 0, 1) / 255.0, atol=1e-6)  # alpha dropped
    np.testing.assert_allclose(seen[mixed / "b" / "l.png"][1].numpy(), np.stack([g8] * 3) / 255.0, atol=1e-6)


def test_cache_is_reused_and_rebuilt_when_the_folder_changes(tmp_path: Path) -> None:
    root, cache = tmp_path / "d", tmp_path / "c"
    written = write(root, {"a": 10, "b": 10})
    first = load_dataset(str(root), cache_dir=cache)
    assert not first.cache_hit
    assert load_dataset(str(root), cache_dir=cache).cache_hit

    path = next(iter(written))
    new = np.full((8, 8), 123, np.uint8)
    Image.fromarray(new, "L").save(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = load_dataset(str(root), cache_dir=cache)
    assert not changed.cache_hit
    np.testing.assert_allclose(by_file(changed, root)[path][1][0].numpy(), (123 / 255) ** 2.2, atol=1e-6)
    assert len(list(cache.glob("*.pt"))) == 1  # the stale entry is gone

    Image.fromarray(new, "L").save(root / "b" / "extra.png")  # an added file
    added = load_dataset(str(root), cache_dir=cache)
    assert not added.cache_hit and sum(added.info.sizes.values()) == 21
    (root / "b" / "extra.png").unlink()  # and removed again
    removed = load_dataset(str(root), cache_dir=cache)
    assert not removed.cache_hit and sum(removed.info.sizes.values()) == 20


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    root, cache = tmp_path / "d", tmp_path / "c"
    write(root, {"a": 5, "b": 5})
    first = load_dataset(str(root), cache_dir=cache)
    assert first.cache_path is not None
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:200])
    again = load_dataset(str(root), cache_dir=cache)
    assert not again.cache_hit and torch.equal(again.train.images[:], first.train.images[:])


def test_normalize_uses_training_statistics(tmp_path: Path) -> None:
    write(tmp_path / "d", {"a": 10, "b": 10}, mode="RGB")
    plain = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c")
    norm = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", normalize=True)
    x = plain.train.images[:].double()  # [:]: every image as a float32 tensor
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3), unbiased=False)
    assert norm.info.normalization is not None
    np.testing.assert_allclose(norm.info.normalization[0], mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(norm.info.normalization[1], std.numpy(), rtol=1e-6)
    want = (plain.val.images[:].double() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    np.testing.assert_allclose(norm.val.images[:].numpy(), want.numpy(), atol=1e-5)


def test_split_tree_with_own_val_and_test(tmp_path: Path) -> None:
    root = tmp_path / "d"
    write(root / "train", {"a": 6, "b": 5})
    write(root / "val", {"a": 2, "b": 1})
    write(root / "test", {"b": 3})  # a class may be missing from test
    data = load_dataset(str(root), cache_dir=tmp_path / "c")
    assert data.classes == ("a", "b")
    assert [data.split(s).class_counts(2) for s in ("train", "val", "test")] == [[6, 5], [2, 1], [0, 3]]
    with pytest.raises(DataError, match="has its own val/ folder"):
        load_dataset(str(root), cache_dir=tmp_path / "c", val_fraction=0.2)


@pytest.mark.parametrize("make,message", [
    (lambda r: write(r, {"only": 3}), "at least two"),
    (lambda r: (write(r, {"a": 3, "b": 3}), (r / "c").mkdir()), "no images"),
    (lambda r: (write(r, {"a": 3, "b": 3}), Image.new("L", (8, 8)).save(r / "loose.png")), "loose.png"),
    (lambda r: (write(r, {"a": 3, "b": 3}), (r / "b" / "bad.png").write_bytes(b"not a png")),
     "bad.png: not a readable image"),
    (lambda r: (write(r / "train", {"a": 3, "b": 3}), write(r / "test", {"zebra": 1})), "zebra"),
    (lambda r: (write(r / "train", {"a": 3, "b": 3}), Image.new("L", (8, 8)).save(r / "stray.png")), "stray.png"),
    (lambda r: write(r, {"a": 2, "b": 3}), "too few"),
])
def test_bad_folders_are_one_line_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "d"
    root.mkdir()
    make(root)
    with pytest.raises(DataError) as err:
        load_dataset(str(root), cache_dir=tmp_path / "c", val_fraction=0.4, test_fraction=0.4)
    assert message in err.value.message and "\n" not in err.value.render()


def test_sizes_must_agree_without_a_target(tmp_path: Path) -> None:
    write(tmp_path / "d", {"a": 5, "b": 5})
    odd = tmp_path / "d" / "b" / "odd.png"
    Image.new("L", (9, 8)).save(odd)
    with pytest.raises(DataError, match=f"{odd}: 8×9 image"):
        load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c")
    data = load_dataset(str(tmp_path / "d"), cache_dir=tmp_path / "c", shape=(1, 8, 8), resize=True)
    assert data.train.images.shape[1:] == (1, 8, 8)


def test_unknown_name_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*folder"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(str(tmp_path / "nowhere"))


def test_shift_scales_with_image_size_and_flips_can_be_off() -> None:
    assert shift_range(0.125, 32, 32) == (4, 4)  # the paper's ±4 px
    assert shift_range(0.125, 48, 28) == (6, 4)  # 3.5 rounds up
    gen = torch.Generator().manual_seed(0)
    origin = torch.ones(4000, dtype=torch.uint8)
    p = draw_params(origin, gen, (6, 2), 0.5)
    assert p.dy.abs().max() == 6 and p.dx.abs().max() == 2 and p.flip.any()
    x = torch.rand(64, 1, 12, 12)
    off = Augmenter.for_images(3, 12, 12, shift=0.0, flip=False)(x, torch.ones(64, dtype=torch.uint8))
    assert torch.equal(off, x)  # no shift, no flip: the images pass unchanged
    flips = Augmenter.for_images(3, 12, 12, shift=0.0, flip=True)(x, torch.ones(64, dtype=torch.uint8))
    mirrored = (flips == x.flip(3)).flatten(1).all(1)
    assert mirrored.any() and ((flips == x).flatten(1).all(1) | mirrored).all()
