"""The measured dataflow of a saved run, and the graph its network came from; the
measurement itself is :mod:`routec.train.dataflow`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from routec.errors import RunError
from routec.runtime.routing import RoutedNetwork
from routec.train.dataflow import (DEFAULT_DYNAMIC_KCPT, Dataflow, measure,  # noqa: F401
                                   resolve_kcpt)


def measure_run(run: str | Path, *, split: str = "test", k_cpt: float | None = None,
                data_root: str | None = None, cache_dir: str | None = None
                ) -> tuple[Dataflow, Any]:
    """Dataflow of a saved run (directory or checkpoint) over one split; also its graph."""
    from routec.train.run_dir import RunDir

    if split not in ("test", "val"):
        raise RunError(f"unknown split '{split}'", hint="use test or val")
    cfg, net, data, state = RunDir.open(run, data_root=data_root, cache_dir=cache_dir).load()
    part = data.test if split == "test" else data.val
    # a given k_cpt is in the run's unit (per ms with --cost latency); the default is
    # already what routers read (4e-9 per MAC, the same input as 0.04 per ms)
    k_in = resolve_kcpt(cfg.dynamic, k_cpt)
    flow = measure(net, part.images, part.labels, part.origin,
                   k_cpt=cfg.router_k_cpt(k_in) if k_cpt is not None else k_in)
    flow.classes = list(state["classes"])
    flow.split, flow.data, flow.source = split, cfg.data, str(run)
    return flow, run_graph(state, cfg, net)


def run_graph(state: dict[str, Any], cfg: Any, net: RoutedNetwork) -> Any:
    """The RoutingGraph a checkpoint's network was generated from (same node order)."""
    from routec.graph import build_graph, static_prefix
    from routec.parse import parse_spec

    spec = parse_spec(state["spec_text"], state["spec_label"])
    if cfg.static_columns is not None:
        spec = static_prefix(spec, cfg.static_columns)
    g = build_graph(spec, classes=len(state["classes"]), dynamic_kcpt=cfg.dynamic,
                    kcpt_unit=cfg.router_kcpt_unit)
    if [n.id for n in g.nodes] != list(net.NODES):
        raise RunError("the checkpoint's network does not match its spec",
                       hint="was the checkpoint written by another routec version?")
    return g
