"""The graph stage: validate a spec as a routing tree and count its MACs (networkx)."""
from routec.graph.build import HeadConfig, NodeInfo, RoutingGraph, build_graph
from routec.graph.static import static_depth, static_prefix

__all__ = ["HeadConfig", "NodeInfo", "RoutingGraph", "build_graph", "static_depth",
           "static_prefix"]
