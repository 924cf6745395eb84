"""From a run config to a network: parse, (static prefix), graph, generated class."""
from __future__ import annotations

import hashlib

import torch

from routec.codegen import build_class
from routec.errors import RunError
from routec.graph import RoutingGraph, build_graph, static_prefix
from routec.graph.memory import check_fits
from routec.parse import parse_spec, resolve_spec_path
from routec.runtime.routing import RoutedNetwork


def spec_text(spec: str) -> tuple[str, str]:
    """(label, text) of a spec path or bundled name."""
    return resolve_spec_path(spec)


def build_network(label: str, text: str, *, classes: int | None, dynamic: bool,
                  static_columns: int | None, strategy: str, batch: int | None = None,
                  device: str = "cpu", kcpt_unit: float | None = None
                  ) -> tuple[RoutingGraph, RoutedNetwork]:
    """The graph and a fresh network; with ``batch``, first refuse (RunError) a network
    that cannot be trained at that batch in the memory ``device`` has. ``kcpt_unit``
    (RunConfig.router_kcpt_unit) selects every-layer k_cpt conditioning."""
    spec = parse_spec(text, label)
    if static_columns is not None:
        spec = static_prefix(spec, static_columns)
    g = build_graph(spec, classes=classes, dynamic_kcpt=dynamic, kcpt_unit=kcpt_unit)
    if strategy == "static" and len(g.leaves) != 1:
        raise RunError(f"--strategy static trains a network with one exit; '{g.name}' has "
                       f"{len(g.leaves)}", hint="add --static-columns N (the first N columns)")
    if strategy in ("actor", "critic") and not g.junctions:
        raise RunError(f"--strategy {strategy} needs junctions to route; '{g.name}' has none",
                       hint="use --strategy static for a network with one path")
    if batch is not None:
        check_fits(g, batch, device)
    return g, build_class(g)()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_device(net: RoutedNetwork, device: torch.device) -> RoutedNetwork:
    """Move ``net`` to ``device``; on CPU also store conv weights channels-last.

    oneDNN's convolutions run about 1.35x faster on channels-last weights (their
    outputs follow the weights, so inputs need no conversion); the maths is the same.
    """
    net.to(device)
    if device.type == "cpu":
        net.to(memory_format=torch.channels_last)
    return net
