"""The stable Python API: the pipeline as a handful of calls, for notebooks and loops.

    import routec
    net_def = routec.compile_network("paper_chain")        # spec → validated graph → class
    net = net_def.build()                                   # a fresh nn.Module
    res = routec.actor_loss(net, net(x), y, k_cpt=4e-9, tau=1.0)
    res.loss.backward(); routec.apply_talr(routec.node_params(net), routec.talr_scales(res.reach))
    routec.evaluate(net, images, labels)                    # routed inference: accuracy, MACs
"""
from __future__ import annotations

from dataclasses import dataclass

from routec.codegen import build_class, emit_module
from routec.graph import RoutingGraph, build_graph, static_prefix
from routec.parse import load_spec, parse_spec
from routec.runtime.routing import RoutedNetwork
from routec.spec import NetworkSpec


@dataclass(frozen=True)
class CompiledNetwork:
    """A validated network: its graph (MACs per node and path), its source, its class."""

    graph: RoutingGraph
    source: str
    network_class: type[RoutedNetwork]

    def build(self) -> RoutedNetwork:
        """A new instance with freshly initialised weights."""
        return self.network_class()


def compile_network(spec: str | NetworkSpec, *, text: str | None = None,
                    classes: int | None = None, dynamic_kcpt: bool = False,
                    static: int | None = None,
                    kcpt_unit: float | None = None) -> CompiledNetwork:
    """Compile a spec given as a path, a bundled name, a parsed spec, or ``text=``.

    ``classes`` overrides the spec's class count; ``dynamic_kcpt`` gives every router
    a k_cpt input (with ``kcpt_unit`` too, read as log1p(k_cpt / kcpt_unit) at every
    router layer); ``static=N`` compiles the first N columns as a static baseline.
    """
    if text is not None:
        parsed = parse_spec(text, spec if isinstance(spec, str) else "<string>")
    elif isinstance(spec, NetworkSpec):
        parsed = spec
    else:
        parsed = load_spec(spec)
    if static is not None:
        parsed = static_prefix(parsed, static)
    g = build_graph(parsed, classes=classes, dynamic_kcpt=dynamic_kcpt, kcpt_unit=kcpt_unit)
    return CompiledNetwork(g, emit_module(g), build_class(g))
