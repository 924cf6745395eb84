"""Saved runs: the names callers have long imported from here, and training's augmenter.

A run directory is opened through :class:`routec.train.run_dir.RunDir`; ``load_run``
and ``load_data`` are its, kept importable from here.
"""
from __future__ import annotations

from typing import Any

from routec.train.config import RunConfig
from routec.train.run_dir import load_data, load_run  # noqa: F401


def make_augmenter(cfg: RunConfig, data: Any) -> Any:
    """Training augmentation for ``data``: the dataset's shift and flip unless the run sets them."""
    from routec.data.augmentation import Augmenter

    _, height, width = data.info.shape
    shift = data.info.shift if cfg.shift is None else cfg.shift
    flip = data.info.flip if cfg.flip is None else cfg.flip
    return Augmenter.for_images(cfg.seed + 1, height, width, shift, flip)
