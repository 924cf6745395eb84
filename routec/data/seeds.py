"""Stable sub-seeds, so every random choice in the data stage is reproducible.

Python's ``hash`` is salted per process, so tags are hashed with SHA-256 instead.
"""
from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *tags: object) -> int:
    """A 63-bit seed that depends on ``seed`` and every tag (order matters)."""
    text = "\x1f".join([str(int(seed)), *(str(t) for t in tags)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def generator(seed: int, *tags: object) -> torch.Generator:
    """A CPU generator seeded from ``seed`` and ``tags``."""
    gen = torch.Generator()
    gen.manual_seed(derive_seed(seed, *tags))
    return gen
