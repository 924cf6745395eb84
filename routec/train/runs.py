"""Saved runs: loading a run directory or checkpoint back into a network and its data."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routec.errors import RunError
from routec.train.config import RunConfig, saved_config
from routec.train.run_files import CHECKPOINT, CONFIG, ROLES

if TYPE_CHECKING:
    from routec.runtime.routing import RoutedNetwork


def checkpoint_path(run: str | Path) -> Path:
    """The checkpoint of a run directory (or a checkpoint file itself), or a one-line
    error that says what the path is instead."""
    p = Path(run)
    if p.is_dir():
        ckpt = p / CHECKPOINT
        if ckpt.is_file():
            return ckpt
        if (p / CONFIG).exists():
            raise RunError(f"{p}: this run has no checkpoint yet (it stopped before its first "
                           "one); resume it with: routec train --out "
                           f"{p} --resume --start-if-missing")
        raise RunError(f"{p}: not a run directory (no {CHECKPOINT} in it)")
    if p.is_file():
        if p.name in ROLES:
            raise RunError(f"{p} is a run's {ROLES[p.name]} file, not a checkpoint; pass "
                           f"the run directory {p.parent} instead")
        return p
    raise RunError(f"{p}: no such run directory or checkpoint file")


def load_data(cfg: RunConfig, shape: tuple[int, int, int], data_root: str | None = None,
              cache_dir: str | None = None, classes: list[str] | None = None) -> Any:
    """The dataset of ``cfg`` for a network taking ``shape`` images.

    Shape (and, with ``classes``, the class names a run was trained on) are checked
    before anything is decoded: a folder's tree and file headers, a named dataset's
    description.
    """
    from routec.data.load import dataset_meta, load_dataset
    from routec.errors import DataError

    root, cache = data_root or cfg.data_root, cache_dir or cfg.cache_dir
    opts = {"resize": cfg.resize, "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction, "pixels": cfg.pixels}
    meta = dataset_meta(cfg.data, cache, cfg.seed, shape=shape, **opts)
    if classes is not None and list(meta.classes) != list(classes):
        raise DataError(f"dataset '{cfg.data}' now has classes {', '.join(meta.classes)}; the run "
                        f"was trained on {', '.join(classes)}")
    return load_dataset(cfg.data, root, cache, seed=cfg.seed, shape=shape,
                        normalize=cfg.normalize, **opts)


def make_augmenter(cfg: RunConfig, data: Any) -> Any:
    """Training augmentation for ``data``: the dataset's shift and flip unless the run sets them."""
    from routec.data.augmentation import Augmenter

    _, height, width = data.info.shape
    shift = data.info.shift if cfg.shift is None else cfg.shift
    flip = data.info.flip if cfg.flip is None else cfg.flip
    return Augmenter.for_images(cfg.seed + 1, height, width, shift, flip)


def load_run(run: str | Path, data_root: str | None = None, cache_dir: str | None = None
             ) -> tuple[RunConfig, Any, Any, dict[str, Any]]:
    """(config, network, dataset, checkpoint) of a saved run, weights loaded."""
    from routec.parse import parse_spec
    from routec.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint_path(run))
    cfg = saved_config(state["config"])
    shape = parse_spec(state["spec_text"], state["spec_label"]).input_shape
    data = load_data(cfg, shape, data_root, cache_dir, classes=list(state["classes"]))
    trained_on = state.get("data_files")
    if trained_on and data.info.files_digest and data.info.files_digest != trained_on:
        print(f"warning: {cfg.data} has other files than when this run was trained; the "
              "splits held out of it are drawn anew and may hold images it trained on",
              file=sys.stderr)
    return cfg, trained_network(state, cfg), data, state


def trained_network(state: dict[str, Any], cfg: RunConfig) -> RoutedNetwork:
    """A checkpoint's network with its weights, on the CPU, in eval mode."""
    import torch

    from routec.train.model import build_network, to_device

    _, net = build_network(state["spec_label"], state["spec_text"],
                           classes=len(state["classes"]), dynamic=cfg.dynamic,
                           static_columns=cfg.static_columns, strategy=cfg.strategy,
                           kcpt_unit=cfg.router_kcpt_unit)
    net.load_state_dict(state["model"])
    to_device(net, torch.device("cpu"))
    return net.eval()
