"""Saved runs: loading a run directory or checkpoint back into a network and its data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from routec.train.config import RunConfig


def checkpoint_path(run: str | Path) -> Path:
    p = Path(run)
    return p / "checkpoint.pt" if p.is_dir() else p


def load_run(run: str | Path, data_root: str | None = None, cache_dir: str | None = None
             ) -> tuple[RunConfig, Any, Any, dict[str, Any]]:
    """(config, network, dataset, checkpoint) of a saved run, weights loaded."""
    import torch

    from routec.data import load_dataset
    from routec.train.checkpoint import load_checkpoint
    from routec.train.model import build_network, to_device

    state = load_checkpoint(checkpoint_path(run))
    cfg = RunConfig(**state["config"])
    data = load_dataset(cfg.data, data_root or cfg.data_root, cache_dir or cfg.cache_dir,
                        seed=cfg.seed)
    _, net = build_network(state["spec_label"], state["spec_text"],
                           classes=len(state["classes"]), dynamic=cfg.dynamic,
                           static_columns=cfg.static_columns, strategy=cfg.strategy)
    net.load_state_dict(state["model"])
    to_device(net, torch.device("cpu"))
    net.eval()
    return cfg, net, data, state
