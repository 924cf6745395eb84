"""Named-dataset logic on small fabricated sources, and load_dataset's error paths.

These need no real files: the selection, relabelling and pixel pipeline of the
named datasets run on tiny arrays whose right answers are computed here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from routec.data import DataNotFound, load_dataset
from routec.data.derive import materialise, relabel, select
from routec.data.named import NAMED
from routec.data.sources import RawSource, SourceFiles
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN, VAL_DIVISOR, holdout_mask
from routec.errors import DataError


def _raw(source: str, n_train: int, n_test: int, seed: int) -> RawSource:
    rng = np.random.default_rng(seed)
    shape = (28, 28) if source == "mnist" else (3, 32, 32)
    arrays: dict[str, np.ndarray] = {
        "train_x": rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        "train_y": rng.permutation(np.arange(n_train) % 10).astype(np.int64),
        "test_x": rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        "test_y": (np.arange(n_test) % 10).astype(np.int64),
    }
    files = SourceFiles(source, "idx" if source == "mnist" else "python", Path("/nowhere"), ())
    return RawSource(files, tuple(str(i) for i in range(10)), arrays, Path("/nowhere/cache.pt"), False)


@pytest.fixture(scope="module")
def raws() -> dict[str, RawSource]:
    return {"mnist": _raw("mnist", 400, 60, 0), "cifar10": _raw("cifar10", 300, 40, 1)}


def test_unknown_name() -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar100'; known datasets: hybrid, cifar2"):
        load_dataset("cifar100")


def test_missing_files_raise_with_hint(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as err:
        load_dataset("mnist", tmp_path, tmp_path / "c")
    assert str(tmp_path) in err.value.message and err.value.hint and "--download" in err.value.hint


def test_fallback_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_dataset("hybrid", tmp_path, tmp_path / "c", fallback_to_synthetic=True)
    err = capsys.readouterr().err
    assert data.info.name == "synthetic" and "synthetic" in data.info.source
    assert "using the built-in synthetic dataset instead of 'hybrid'" in err
    assert f"no MNIST found under {tmp_path}" in err


def test_holdout_is_stratified_and_seeded() -> None:
    labels = np.random.default_rng(0).integers(0, 7, 1000)
    mask = holdout_mask(labels, 0, "x")
    for c in range(7):
        assert mask[labels == c].sum() == (labels == c).sum() // VAL_DIVISOR
    assert np.array_equal(mask, holdout_mask(labels, 0, "x"))
    assert not np.array_equal(mask, holdout_mask(labels, 1, "x"))
    assert not np.array_equal(mask, holdout_mask(labels, 0, "y"))


def test_hybrid_selection(raws: dict[str, RawSource]) -> None:
    spec = NAMED["hybrid"]
    labels = {s: {f: raws[s].labels(f) for f in ("train", "test")} for s in raws}
    chosen = select(spec, labels, seed=0)
    mnist_train, cifar_train = chosen["train"]
    mnist_val, cifar_val = chosen["val"]
    # MNIST part: digits 0-4 keep their labels; nothing else gets in.
    assert set(mnist_train.labels.tolist()) == {0, 1, 2, 3, 4}
    assert np.array_equal(mnist_train.labels, labels["mnist"]["train"][mnist_train.index])
    # CIFAR part: airplane, automobile, deer, frog, horse → 5..9 in that order.
    want = {0: 5, 1: 6, 4: 7, 6: 8, 7: 9}
    assert [want[int(c)] for c in labels["cifar10"]["train"][cifar_train.index]] == cifar_train.labels.tolist()
    # Train + val = every kept training example exactly once, val = 1/10 per class.
    for tr, va, src, kept in ((mnist_train, mnist_val, "mnist", range(5)), (cifar_train, cifar_val, "cifar10", want)):
        y = labels[src]["train"]
        both = np.concatenate([tr.index, va.index])
        assert sorted(both.tolist()) == np.flatnonzero(np.isin(y, list(kept))).tolist()
        for c in kept:
            assert (y[va.index] == c).sum() == (y == c).sum() // VAL_DIVISOR
    assert chosen["test"][0].index.tolist() == np.flatnonzero(labels["mnist"]["test"] < 5).tolist()


def test_materialised_pixels(raws: dict[str, RawSource]) -> None:
    spec = NAMED["hybrid"]
    arrays = materialise(spec, raws, seed=0)
    images, origin, index = arrays["test_images"], arrays["test_origin"], arrays["test_source_index"]
    cifar_rows = np.flatnonzero(origin == CIFAR_ORIGIN)
    expect = (raws["cifar10"].images("test")[index[cifar_rows]].astype(np.float64) / 255.0) ** 2.2
    np.testing.assert_allclose(images[cifar_rows], expect, atol=1e-6)
    mnist_rows = np.flatnonzero(origin == MNIST_ORIGIN)
    v = torch.nn.functional.interpolate(
        torch.from_numpy(raws["mnist"].images("test")[index[mnist_rows]] / 255.0).unsqueeze(1),
        size=(32, 32), mode="bilinear", align_corners=False,
    )[:, 0].numpy()
    for k, row in enumerate(mnist_rows):
        flat_v = v[k].reshape(-1)
        lo, hi = flat_v.argmin(), flat_v.argmax()
        pix = images[row].reshape(3, -1)
        slope = (pix[:, hi] - pix[:, lo]) / (flat_v[hi] - flat_v[lo])  # c1 − c0
        c0 = pix[:, lo] - slope * flat_v[lo]
        recon = c0[:, None] + slope[:, None] * flat_v[None, :]
        np.testing.assert_allclose(pix, recon, atol=1e-5)
        assert np.linalg.norm(slope) >= 0.3 - 1e-5  # |c1 − c0| ≥ 0.3
    again = materialise(spec, raws, seed=0)
    other = materialise(spec, raws, seed=1)
    assert np.array_equal(again["test_images"], images)
    assert not np.array_equal(other["test_images"][mnist_rows], images[mnist_rows])
    assert np.array_equal(other["test_images"][cifar_rows], images[cifar_rows])  # CIFAR has no colours to draw


def test_cifar_variants_share_images_and_relabel(raws: dict[str, RawSource]) -> None:
    only_cifar = {"cifar10": raws["cifar10"]}
    tags = {NAMED[n].members[0].tag for n in ("cifar2", "cifar5", "cifar10")}
    assert tags == {"cifar10-all"}  # one cache entry serves all three
    arrays = materialise(NAMED["cifar10"], only_cifar, seed=0)
    src, origin = arrays["train_source_labels"], arrays["train_origin"]
    assert np.array_equal(relabel(NAMED["cifar10"], src, origin), src)
    two = relabel(NAMED["cifar2"], src, origin)
    assert np.array_equal(two, np.where(src == 7, 0, 1))
    five = relabel(NAMED["cifar5"], src, origin)
    assert np.array_equal(five, np.select([src == 3, src == 4, src == 5, src == 7], [0, 1, 2, 3], 4))


def test_mnist28_is_mnist_as_distributed(raws: dict[str, RawSource]) -> None:
    native = materialise(NAMED["mnist28"], {"mnist": raws["mnist"]}, seed=0)
    paper = materialise(NAMED["mnist"], {"mnist": raws["mnist"]}, seed=0)
    for split in ("train", "val", "test"):
        index = native[f"{split}_source_index"]
        file = "test" if split == "test" else "train"
        assert native[f"{split}_images"].shape == (len(index), 1, 28, 28)
        want = raws["mnist"].images(file)[index].astype(np.float64)[:, None] / 255.0
        np.testing.assert_allclose(native[f"{split}_images"], want, atol=1e-7)
        assert np.array_equal(index, paper[f"{split}_source_index"])  # the same hold-out as mnist
    assert NAMED["mnist28"].cache_tag != NAMED["mnist"].cache_tag  # each form has its own cache entry
    assert NAMED["mnist"].cache_tag == "mnist-all"  # the paper's entries keep their names


def test_shape_is_checked_before_files_are_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="takes 1×28×28 images, but dataset 'cifar10' has 3×32×32.*mnist28"):
        load_dataset("cifar10", tmp_path, tmp_path / "c", shape=(1, 28, 28))
    with pytest.raises(DataNotFound):  # the right shape goes on to look for the files
        load_dataset("mnist28", tmp_path, tmp_path / "c", shape=(1, 28, 28))
