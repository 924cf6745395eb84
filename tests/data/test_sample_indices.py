"""Samples of a split come from all of it, since splits are stored class by class."""
from __future__ import annotations

import torch

from routec.data.splits import sample_indices


def test_a_sample_of_an_ordered_split_draws_every_class_in_its_share() -> None:
    labels = torch.arange(10).repeat_interleave(1000)  # ordered, like hybrid's test split
    idx = sample_indices(len(labels), 2048)
    assert len(idx) == 2048 and len(set(idx.tolist())) == 2048
    counts = torch.bincount(labels[idx], minlength=10)
    assert counts.min() > 150 and counts.max() < 260  # each class ~205
    assert torch.equal(idx, sample_indices(len(labels), 2048))  # the same images every time
    assert not torch.equal(idx, sample_indices(len(labels), 2048, seed=1))
    assert sorted(sample_indices(100, 2048).tolist()) == list(range(100))
