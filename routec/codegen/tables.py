"""The ``routec compile --report`` tables: nodes, parameters and MACs, per node and per path."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from routec.graph.build import RoutingGraph
from routec.graph.catalogue import fmt_pyramid


def node_table(g: RoutingGraph) -> Table:
    t = Table(title=f"{g.name}: nodes", title_justify="left")
    for col, just in [("#", "right"), ("node", "left"), ("kind", "left"), ("from", "left"),
                      ("output", "left"), ("params", "right"), ("MACs", "right")]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for i, n in enumerate(g.nodes):
        src = "" if n.parent < 0 else g.nodes[n.parent].id + (f" [{n.way}]" if n.way >= 0 else "")
        kind = f"junction/{n.ways}" if n.kind == "junction" else n.kind
        out = fmt_pyramid(n.out_shape) if n.kind in ("stem", "column") else (
            f"{n.ways} scores" if n.kind == "junction" else f"{g.classes} logits")
        t.add_row(str(i), n.id, kind, src, out, f"{n.params:,}", f"{n.macs:,}")
    t.add_section()
    t.add_row("", "total", "", "", "", f"{g.total_params:,}",
              f"{g.total_macs:,}")
    return t


def path_table(g: RoutingGraph) -> Table:
    t = Table(title=f"{g.name}: root-to-leaf paths", title_justify="left")
    for col, just in [("leaf", "right"), ("exit", "left"), ("columns on the path", "left"),
                      ("MACs", "right"), ("× deepest", "right")]:
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    macs = g.path_macs()
    top = max(macs)
    for k, (leaf, m) in enumerate(zip(g.leaves, macs)):
        cols = [g.nodes[i].id for i in g.path(leaf) if g.nodes[i].kind == "column"]
        t.add_row(str(k), g.nodes[leaf].id, " → ".join(cols) or "(none)", f"{m:,}",
                  f"{m / top:.3f}")
    return t


def print_report(g: RoutingGraph, console: Console | None = None) -> None:
    console = console or Console(width=120)
    console.print(node_table(g))
    console.print(path_table(g))
    console.print(
        "mean MACs per example = Σ_leaf f(leaf) · MACs(leaf), where f(leaf) is the fraction of "
        "examples classified at that leaf (path MACs above). "
        f"Router inputs {'include' if g.dynamic_kcpt else 'exclude'} the k_cpt feature"
        + (f" (log1p(k_cpt / {g.kcpt_unit:g}) at every router layer)." if g.kcpt_unit
           else ".")
    )
