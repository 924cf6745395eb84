"""The synthetic dataset and the minibatch iterator built on a split."""
from __future__ import annotations

import torch

from routec.data import Augmenter, batches, synthetic
from routec.data.splits import CIFAR_ORIGIN, MNIST_ORIGIN, SPLIT_NAMES


def test_synthetic_shapes_balance_and_origin() -> None:
    data = synthetic(seed=0, n_train=600, n_val=100, n_test=200)
    assert data.num_classes == 10
    for name, n in (("train", 600), ("val", 100), ("test", 200)):
        split = data.split(name)
        assert split.images.shape == (n, 3, 32, 32) and split.images.dtype == torch.float32
        assert split.images.min() >= 0 and split.images.max() <= 1
        assert split.class_counts(10) == [n // 10] * 10
        want_origin = torch.where(split.labels < 5, MNIST_ORIGIN, CIFAR_ORIGIN)
        assert torch.equal(split.origin.long(), want_origin)
    assert "synthetic" in data.info.source and "no files" in data.info.source


def test_synthetic_seeded() -> None:
    a, b, c = synthetic(seed=1, n_train=100), synthetic(seed=1, n_train=100), synthetic(seed=2, n_train=100)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(a.train.images, c.train.images)
    assert not torch.equal(a.train.images[:100], a.val.images[:100])  # splits are separate draws


def _contrast(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: |top half − bottom half| and |left half − right half| of mean intensity."""
    grey = images.mean(dim=1)
    vertical = (grey[:, :16].mean(dim=(1, 2)) - grey[:, 16:].mean(dim=(1, 2))).abs()
    horizontal = (grey[:, :, :16].mean(dim=(1, 2)) - grey[:, :, 16:].mean(dim=(1, 2))).abs()
    return vertical, horizontal


def test_synthetic_easy_classes_carry_a_coarse_signal() -> None:
    data = synthetic(seed=0, n_train=2000)
    v, h = _contrast(data.train.images)
    y = data.train.labels
    top_bottom = (y == 0) | (y == 1)
    left_right = (y == 2) | (y == 3)
    assert (v[top_bottom] > h[top_bottom]).float().mean() > 0.9
    assert (h[left_right] > v[left_right]).float().mean() > 0.9
    # The hard classes are small shapes: a much weaker half-image contrast than the easy halves.
    hard = y >= 5
    assert v[hard].mean() < 0.5 * v[top_bottom].mean()


def test_batches_cover_epoch_once_and_are_seeded() -> None:
    split = synthetic(seed=0, n_train=300).train
    seen = torch.cat([b.indices for b in batches(split, 128, generator=torch.Generator().manual_seed(5))])
    assert sorted(seen.tolist()) == list(range(300))
    again = torch.cat([b.indices for b in batches(split, 128, generator=torch.Generator().manual_seed(5))])
    other = torch.cat([b.indices for b in batches(split, 128, generator=torch.Generator().manual_seed(6))])
    assert torch.equal(seen, again) and not torch.equal(seen, other)
    sizes = [len(b.labels) for b in batches(split, 128, drop_last=True)]
    assert sizes == [128, 128]
    first = next(batches(split, 50, shuffle=False))
    assert torch.equal(first.images, split.images[:50]) and torch.equal(first.labels, split.labels[:50])


def test_batches_with_augmenter_keep_labels() -> None:
    split = synthetic(seed=0, n_train=256).train
    plain = list(batches(split, 64, generator=torch.Generator().manual_seed(0)))
    augmented = list(batches(split, 64, generator=torch.Generator().manual_seed(0), augmenter=Augmenter(1)))
    for p, a in zip(plain, augmented, strict=True):
        assert torch.equal(p.labels, a.labels) and torch.equal(p.indices, a.indices)
        assert not torch.equal(p.images, a.images)


def test_split_names() -> None:
    data = synthetic(n_train=10, n_val=10, n_test=10)
    assert [len(data.split(s)) for s in SPLIT_NAMES] == [10, 10, 10]
