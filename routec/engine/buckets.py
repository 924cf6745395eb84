"""Bucket sizes and row padding: what lets a GPU engine replay a captured graph.

A CUDA graph replays one fixed shape, but a segment sees whatever number of rows its
junction routed to it. Padding each segment's rows up to the next of a few bucket
sizes bounds the shapes (and so the graphs) to a handful per segment. This module is
the device-independent part: which buckets, which bucket a count falls in, and the
padding itself, so the CPU tests exercise exactly what a GPU runs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from routec.errors import RoutecError


def bucket_sizes(batch: int, sizes: Sequence[int] | None = None) -> tuple[int, ...]:
    """The buckets for batches up to ``batch``: the powers of two below it and ``batch``
    itself, or the configured ``sizes`` (sorted, each at least 1)."""
    if sizes is not None:
        picked = sorted({int(s) for s in sizes})
        if not picked or picked[0] < 1:
            raise RoutecError(f"bucket sizes must be positive integers, got {list(sizes)}")
        return tuple(picked)
    if batch < 1:
        raise RoutecError(f"the batch for bucket sizes must be at least 1, got {batch}")
    out = []
    b = 1
    while b < batch:
        out.append(b)
        b *= 2
    return (*out, batch)


def bucket_for(m: int, sizes: Sequence[int]) -> int:
    """The smallest bucket holding ``m`` rows; past the largest, the next power of two
    (a larger batch than the engine was set up for gets its own buckets)."""
    for b in sizes:
        if b >= m:
            return b
    return 1 << (m - 1).bit_length()


def pad_rows(a: Tensor, b: int) -> Tensor:
    """``a`` with zero rows appended up to ``b`` rows, in ``a``'s memory format.

    Zero rows are harmless in inference: every layer works row by row (batch-norm
    uses its running statistics), and the caller keeps only the first rows."""
    m = a.shape[0]
    if m == b:
        return a
    out = a.new_zeros((b, *a.shape[1:]))
    if a.ndim == 4 and a.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    out[:m] = a
    return out
