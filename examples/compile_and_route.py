"""Compile a bundled spec in memory and compare routed inference with the dense pass.

Run: python examples/compile_and_route.py [SPEC]
"""
from __future__ import annotations

import sys

import torch

from routec.codegen import build_class
from routec.graph import build_graph
from routec.parse import load_spec


def main(name: str = "tiny") -> dict[str, float]:
    g = build_graph(load_spec(name))
    net = build_class(g)().eval()
    x = torch.rand(32, *g.input_shape)
    with torch.no_grad():
        dense = net(x)
        routed = net.route(x)
    picked = dense.leaf_logits[routed.leaf, torch.arange(x.shape[0])]
    gap = float((picked - routed.logits).abs().max())
    counts = torch.bincount(routed.leaf, minlength=len(g.leaves)).tolist()
    print(f"{g.name}: {len(g.nodes)} nodes; examples per exit {counts}")
    print(f"mean MACs routed {float(routed.macs.mean()):,.0f} of at most {max(g.path_macs()):,}")
    print(f"largest gap between routed and dense logits on the taken path: {gap:.2e}")
    return {"gap": gap, "mean_macs": float(routed.macs.mean())}


if __name__ == "__main__":
    main(*sys.argv[1:])
