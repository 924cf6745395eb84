"""Node-link diagrams of routing trees, optionally with measured dataflow (Figs. 6, 7).

Layout choices, so that a tree as large as the paper's (134 nodes, 47 exits)
stays readable: left-to-right ranks, columns as compact two-line boxes (name,
MACs), junctions as small diamonds showing their arity with the router's MACs
beside them, exits as circles on the same rank as their junction so each chain
reads as one row with its exits hanging under it.

With a :class:`~routec.report.dataflow.Dataflow`, an exit's circle *area* is
proportional to the fraction of examples classified there (diameter ∝ √f) and
an edge's width is proportional to the examples flowing along it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import graphviz

from routec.errors import RoutecError
from routec.files import atomic_write_bytes

if TYPE_CHECKING:  # dataflow imports torch; drawing a spec must not
    from routec.graph.build import RoutingGraph
    from routec.report.dataflow import Dataflow

FORMATS = ("svg", "png", "pdf", "dot")
COLOUR_BY = ("accuracy", "origin", "class")
DIAMETER = 1.1  # inches: the circle of an exit that classifies every example
EDGE_PEN = 10.0  # points: the width of an edge that carries every example
EMPTY_EXIT = 0.12  # inches: marker for an exit that classifies nothing (dashed)
SPEC_EXIT = 0.22  # inches: exit circles in a plain spec diagram
ORIGIN_COLOURS = ("#e66101", "#5e3c99")  # origin 0 (MNIST), origin 1 (CIFAR)
FONT = "Helvetica"


def fmt_macs(m: float) -> str:
    """Compact MAC count: 950, 4.4k, 1.36M."""
    if m < 1e3:
        return f"{m:.0f}"
    if m < 1e6:
        return f"{m / 1e3:.3g}k"
    return f"{m / 1e6:.3g}M"


def node_id(i: int) -> str:
    """The DOT name of tree node ``i`` (legend nodes use other names)."""
    return f"n{i}"


def exit_diameter(fraction: float) -> float:
    """Circle diameter in inches, so that area ∝ fraction."""
    return DIAMETER * math.sqrt(fraction)


def edge_penwidth(count: int, total: int) -> float:
    """Edge width in points, proportional to the examples on the edge."""
    return EDGE_PEN * count / total


# -- colours ----------------------------------------------------------------------------
def _cmap_hex(name: str, value: float) -> str:
    import matplotlib
    from matplotlib.colors import to_hex

    return to_hex(matplotlib.colormaps[name](min(max(value, 0.0), 1.0)))


def accuracy_colour(acc: float) -> str:
    return _cmap_hex("viridis", acc)


def class_colour(c: int, n_classes: int) -> str:
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps["tab10" if n_classes <= 10 else "tab20"]
    return to_hex(cmap(c % cmap.N))


def origin_names(data: str) -> tuple[str, str]:
    if data == "synthetic":
        return "easy (origin 0)", "hard (origin 1)"
    if data not in ("hybrid", "mnist", "mnist28", "cifar2", "cifar5", "cifar10"):
        return "origin 0", "origin 1"  # an image folder: every image has origin 1
    return "MNIST", "CIFAR-10"


# -- the diagram --------------------------------------------------------------------------
@dataclass
class _Style:
    flow: Dataflow | None
    by: str


def diagram(g: RoutingGraph, flow: Dataflow | None = None, by: str = "accuracy",
            title: str | None = None) -> graphviz.Digraph:
    """The routing tree of ``g``; with ``flow``, sized and coloured by measured dataflow."""
    if by not in COLOUR_BY:
        raise RoutecError(f"unknown colouring '{by}'", hint="use " + ", ".join(COLOUR_BY))
    if flow is not None and flow.nodes != [n.id for n in g.nodes]:
        raise RoutecError("the dataflow was measured on another network")
    d = graphviz.Digraph(g.name)
    d.attr(rankdir="LR", nodesep="0.08", ranksep="0.3", fontname=FONT, fontsize="12",
           labelloc="t", labeljust="l", forcelabels="true", newrank="true",
           label=title if title is not None else _title(g, flow))
    d.attr("node", fontname=FONT, fontsize="9")
    d.attr("edge", fontname=FONT, fontsize="7", arrowsize="0.4", color="#555555")
    style = _Style(flow, by)
    path_macs = dict(zip(g.leaves, g.path_macs()))
    for i, n in enumerate(g.nodes):
        if n.kind in ("stem", "column"):
            _add_node(d, g, i, style, path_macs)
        elif n.kind == "exit" and g.nodes[n.parent].kind != "junction":
            with d.subgraph() as same:  # an exit that ends a chain: circle above its text
                same.attr(rank="same")
                _add_node(same, g, i, style, path_macs)
    for j in g.junctions:
        with d.subgraph() as same:  # a junction, then each exit circle above its text
            same.attr(rank="same")
            _add_node(same, g, j, style, path_macs)
            for c in _children(g, j):
                if g.nodes[c].kind == "exit":
                    _add_node(same, g, c, style, path_macs)
    for i, n in enumerate(g.nodes):
        if n.parent >= 0:
            _add_edge(d, g, n.parent, i, style)
    if flow is not None:
        _legend(d, flow, by)
    return d


def _children(g: RoutingGraph, i: int) -> list[int]:
    return sorted((c for c, n in enumerate(g.nodes) if n.parent == i),
                  key=lambda c: g.nodes[c].way)


def _title(g: RoutingGraph, flow: Dataflow | None) -> str:
    macs = g.path_macs()
    span = fmt_macs(min(macs)) + ("" if min(macs) == max(macs) else f"–{fmt_macs(max(macs))}")
    head = (f"{g.name}: {_count(len(g.nodes), 'node')}, {_count(len(g.leaves), 'exit')}, "
            f"{_count(len(g.junctions), 'junction')}; MACs per path {span}")
    if flow is None:
        return (head + "\\lboxes: columns (MACs); diamonds: junctions (ways; router MACs "
                "beside); circles: exits (exit MACs; Σ = MACs of the whole path)\\l")
    k = f", k_cpt {flow.k_cpt:g}" if flow.k_cpt is not None else ""
    data = f"{flow.data} " if flow.data else ""
    split = f"{flow.split} split, " if flow.split else ""
    note = "synthetic data: an illustration of the picture, not a result of the paper" \
        if flow.data == "synthetic" else ""
    src = f"run {flow.source}\\l" if flow.source else ""
    return (f"{head}\\l{src}measured dataflow (routed inference, argmax) on the {data}"
            f"{split}{flow.examples} examples{k}: accuracy {flow.accuracy:.3f}, "
            f"mean MACs {fmt_macs(flow.mean_macs)} per example\\l"
            f"circle area ∝ fraction classified at the exit; edge width ∝ examples on the edge"
            f"\\l{note.strip()}" + ("\\l" if note else ""))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _add_node(d: graphviz.Digraph, g: RoutingGraph, i: int, style: _Style,
              path_macs: dict[int, int]) -> None:
    n = g.nodes[i]
    name = node_id(i)
    if n.kind == "stem":
        shape = "×".join(map(str, g.input_shape))
        d.node(name, f"{n.template}\n{shape}", shape="box", style="rounded", margin="0.05,0.02",
               height="0.3", tooltip=f"stem {n.template}, input {shape}")
    elif n.kind == "column":
        d.node(name, f"{n.id}\n{fmt_macs(n.macs)}", shape="box", style="rounded,filled",
               fillcolor="#dde8f4", color="#4a6fa5", margin="0.05,0.02", height="0.3",
               width="0.5", tooltip=f"column {n.id} ({n.template}): {n.macs:,} MACs, "
                                    f"{n.params:,} parameters")
    elif n.kind == "junction":
        d.node(name, str(n.ways), shape="diamond", style="filled", fillcolor="#f6d7a7",
               color="#a0702a", width="0.28", height="0.28", fixedsize="true", fontsize="8",
               xlabel=fmt_macs(n.macs),
               tooltip=f"junction {n.id}: {n.ways}-way, router '{n.template}' "
                       f"{n.macs:,} MACs")
    else:
        _add_exit(d, g, i, style, path_macs[i])


def _add_exit(d: graphviz.Digraph, g: RoutingGraph, i: int, style: _Style,
              path_macs: int) -> None:
    n = g.nodes[i]
    text = f"{n.id} {fmt_macs(n.macs)}\nΣ {fmt_macs(path_macs)}"
    tip = f"exit {n.id}: {n.macs:,} MACs; path {path_macs:,} MACs"
    attrs = {"shape": "circle", "fixedsize": "true", "label": "", "fontsize": "8"}
    flow = style.flow
    if flow is None:
        attrs.update(width=f"{SPEC_EXIT:.4f}", style="filled", fillcolor="#a5d6a7",
                     color="#2e7d32")
        _exit_nodes(d, i, text, tip, attrs)
        return
    e = flow.leaves.index(i)
    frac, count = flow.exit_fraction[e], flow.exit_count[e]
    text = _exit_text(n.id, flow, e, style.by, path_macs)
    tip += f"; {count} of {flow.examples} examples"
    if count == 0:
        attrs.update(width=f"{EMPTY_EXIT:.4f}", style="filled", fillcolor="white",
                     color="#999999", penwidth="0.8")
    else:
        attrs.update(width=f"{exit_diameter(frac):.6f}", color="#333333", penwidth="0.6",
                     **_exit_fill(flow, e, style.by))
    _exit_nodes(d, i, text, tip, attrs)


def _exit_text(name: str, flow: Dataflow, e: int, by: str, path_macs: int) -> str:
    """The lines under a measured exit: share, accuracy, path MACs, colouring note."""
    frac, acc = flow.exit_fraction[e], flow.exit_accuracy[e]
    text = f"{name}: {100 * frac:.1f}%" + ("" if acc is None else f", acc {acc:.2f}") + \
        f"\nΣ {fmt_macs(path_macs)}"
    return text + (_exit_note(flow, e, by) if flow.exit_count[e] else "")


def text_id(i: int) -> str:
    """The DOT name of the text node set under exit ``i``."""
    return f"n{i}_text"


def _exit_nodes(d: graphviz.Digraph, i: int, text: str, tip: str, attrs: dict[str, str]
                ) -> None:
    """The circle, and its text as a plaintext node held just below it (same rank, flat
    invisible edge), so labels never drift onto a neighbouring row as xlabels do."""
    d.node(node_id(i), tooltip=tip, **attrs)
    d.node(text_id(i), text, shape="plaintext", fontsize="8", height="0.2", margin="0")
    d.edge(node_id(i), text_id(i), style="invis", minlen="0")


def _exit_fill(flow: Dataflow, e: int, by: str) -> dict[str, str]:
    if by == "accuracy":
        acc = flow.exit_accuracy[e]
        return {"style": "filled", "fillcolor": accuracy_colour(acc or 0.0)}
    if by == "origin":
        share = flow.exit_cifar_share[e] or 0.0
        if share <= 0.0 or share >= 1.0:
            return {"style": "filled", "fillcolor": ORIGIN_COLOURS[int(share >= 1.0)]}
        return {"style": "wedged",
                "fillcolor": f"{ORIGIN_COLOURS[0]};{1 - share:.4f}:{ORIGIN_COLOURS[1]}"}
    dom = flow.exit_dominant_class()[e]
    c = dom[0] if dom else 0
    return {"style": "filled", "fillcolor": class_colour(c, len(flow.exit_class[e]))}


def _exit_note(flow: Dataflow, e: int, by: str) -> str:
    if by == "origin":
        share = flow.exit_cifar_share[e] or 0.0
        return f"\n{origin_names(flow.data)[1].split(' ')[0]} {100 * share:.0f}%"
    if by == "class":
        dom = flow.exit_dominant_class()[e]
        if dom:
            name = flow.classes[dom[0]] if dom[0] < len(flow.classes) else str(dom[0])
            return f"\n{name} {100 * dom[1]:.0f}%"
    return ""


def _add_edge(d: graphviz.Digraph, g: RoutingGraph, p: int, c: int, style: _Style) -> None:
    flow = style.flow
    junction = g.nodes[p].kind == "junction"
    attrs: dict[str, str] = {}
    if g.nodes[c].kind == "exit" and junction:
        attrs["minlen"] = "0"  # same rank as its junction
    if flow is None:
        d.edge(node_id(p), node_id(c), **attrs)
        return
    count = flow.node_count[c]
    if count == 0:
        attrs.update(style="dashed", penwidth="0.5", color="#aaaaaa")
    else:
        attrs["penwidth"] = f"{edge_penwidth(count, flow.examples):.6f}"
    attrs["arrowhead"] = "none"  # heads grow with penwidth; ranks already read left to right
    if junction:
        attrs["label"] = str(count)
    d.edge(node_id(p), node_id(c), tooltip=f"{count} examples", **attrs)


def _legend(d: graphviz.Digraph, flow: Dataflow, by: str) -> None:
    """A colour bar (accuracy) or swatches (origin, class) as an HTML-label node."""
    if by == "accuracy":
        steps = 10
        cells = "".join(
            f'<TD BGCOLOR="{accuracy_colour(k / steps)}" WIDTH="14" HEIGHT="10"></TD>'
            for k in range(steps + 1))
        rows = (f'<TR><TD COLSPAN="{steps + 1}">exit accuracy</TD></TR><TR>{cells}</TR>'
                f'<TR><TD COLSPAN="{steps // 2}" ALIGN="LEFT">0</TD><TD>0.5</TD>'
                f'<TD COLSPAN="{steps // 2}" ALIGN="RIGHT">1</TD></TR>')
    elif by == "origin":
        names = origin_names(flow.data)
        rows = "<TR><TD COLSPAN=\"2\">examples classified at the exit</TD></TR>" + "".join(
            f'<TR><TD BGCOLOR="{ORIGIN_COLOURS[k]}" WIDTH="14"></TD>'
            f'<TD ALIGN="LEFT">{_html(names[k])}</TD></TR>' for k in range(2))
    else:
        n_classes = len(flow.exit_class[0]) if flow.exit_class else 0
        names = flow.classes or [str(c) for c in range(n_classes)]
        rows = "<TR><TD COLSPAN=\"2\">dominant true class</TD></TR>" + "".join(
            f'<TR><TD BGCOLOR="{class_colour(c, n_classes)}" WIDTH="14"></TD>'
            f'<TD ALIGN="LEFT">{_html(names[c])}</TD></TR>' for c in range(n_classes))
    label = f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="1">{rows}</TABLE>>'
    d.node("legend", label, shape="plaintext", fontsize="8")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- rendering ----------------------------------------------------------------------------
def output_format(path: Path) -> str:
    """The format named by a file's suffix; an unknown suffix is a user error."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gv":
        fmt = "dot"
    if fmt not in FORMATS:
        raise RoutecError(f"{path}: unknown picture format '{path.suffix or '(none)'}'",
                          hint="end the file name in " + ", ".join("." + f for f in FORMATS))
    return fmt


def render(d: graphviz.Digraph, path: Path, dpi: int = 96) -> Path:
    """Render ``d`` with Graphviz ``dot`` into ``path`` (format from its suffix)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == "dot":
        data = d.source.encode("utf-8")
    else:
        if fmt == "png":
            d = d.copy()
            d.attr(dpi=str(dpi))
        data = _pipe(d, fmt)
    write_bytes(path, data)
    return path


def _pipe(d: graphviz.Digraph, fmt: str) -> bytes:
    try:
        return d.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise RoutecError("cannot draw: the Graphviz 'dot' program is not installed "
                          "(not found on PATH)",
                          hint="install Graphviz (apt-get install graphviz, brew install "
                               "graphviz, conda install graphviz), or write the DOT source "
                               "with -o FILE.dot") from None
    except graphviz.CalledProcessError as err:
        detail = (err.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise RoutecError(f"Graphviz 'dot' failed to render {fmt}"
                          + (f": {detail[-1]}" if detail else "")) from None


def write_bytes(path: Path, data: bytes) -> None:
    """Write atomically; an unwritable place is a one-line user error."""
    atomic_write_bytes(path, data)



# -- without Graphviz: the same picture drawn by matplotlib ---------------------------------
def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH (the graphviz package calls it so)."""
    import shutil

    return shutil.which("dot") is not None


_DX = 0.85  # inches between ranks
_BOX = (0.62, 0.36)  # inches: a column's box
_DIAMOND = 0.3  # inches: a junction's diamond, corner to corner
_HANG = 0.3  # inches between a junction's centre and the top of its exit circles
_TEXT_LINE = 0.16  # inches per line of 8-point text
_SWATCH = 1.3  # inches per legend entry


def _mpl_places(g: RoutingGraph) -> tuple[dict[int, tuple[int, int]], set[int]]:
    """(rank, row) of every node, and the exits that hang under their junction.

    As in the Graphviz layout: ranks run left to right, a chain stays on one row, an
    exit sits under its junction; a junction's second and later subtrees open new rows
    below everything drawn before them.
    """
    place: dict[int, tuple[int, int]] = {}
    hanging: set[int] = set()
    rows = [0]

    def visit(i: int, rank: int, row: int) -> None:
        place[i] = (rank, row)
        first = True
        for c in _children(g, i):
            if g.nodes[c].kind == "exit" and g.nodes[i].kind == "junction":
                place[c] = (rank, row)
                hanging.add(c)
                continue
            if first:
                visit(c, rank + 1, row)
                first = False
            else:
                rows[0] += 1
                visit(c, rank + 1, rows[0])

    visit(0, 0, 0)
    return place, hanging


def render_matplotlib(g: RoutingGraph, path: Path, flow: Dataflow | None = None,
                      by: str = "accuracy", title: str | None = None, dpi: int = 110) -> Path:
    """Draw what :func:`diagram` describes with matplotlib alone, for machines without
    Graphviz: boxes (columns, MACs), diamonds (junctions), exit circles of area ∝ share
    of examples, edges of width ∝ examples on them. Format from the suffix (png, svg, pdf).
    """
    import io

    path = Path(path)
    fmt = output_format(path)
    if fmt == "dot":
        raise RoutecError("matplotlib draws pictures, not DOT source",
                          hint="end the file name in .png, .svg or .pdf")
    fig = figure(g, flow, by, title, dpi)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, facecolor="white")
    write_bytes(path, buf.getvalue())
    return path


def figure(g: RoutingGraph, flow: Dataflow | None = None, by: str = "accuracy",
           title: str | None = None, dpi: int = 110):
    """The matplotlib Figure of :func:`render_matplotlib`; one data unit is one inch, so
    exit circles and edge widths keep the Graphviz picture's sizes. Each node's patch
    carries its DOT name as its ``gid``, each edge's line ``parent->child``."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon, Rectangle, Wedge

    if by not in COLOUR_BY:
        raise RoutecError(f"unknown colouring '{by}'", hint="use " + ", ".join(COLOUR_BY))
    if flow is not None and flow.nodes != [n.id for n in g.nodes]:
        raise RoutecError("the dataflow was measured on another network")
    path_macs = dict(zip(g.leaves, g.path_macs()))
    place, hanging = _mpl_places(g)

    def diameter(i: int) -> float:
        if flow is None:
            return SPEC_EXIT
        f = flow.exit_fraction[flow.leaves.index(i)]
        return exit_diameter(f) if f > 0 else EMPTY_EXIT

    def text_of(i: int) -> str:
        n = g.nodes[i]
        if flow is None:
            return f"{n.id} {fmt_macs(n.macs)}\nΣ {fmt_macs(path_macs[i])}"
        return _exit_text(n.id, flow, flow.leaves.index(i), by, path_macs[i])

    exits = [i for i, n in enumerate(g.nodes) if n.kind == "exit"]
    lines_under = max((text_of(i).count("\n") + 1 for i in exits), default=0)
    drop = max((diameter(i) for i in hanging), default=0.0)
    row_h = max(_BOX[1] + lines_under * _TEXT_LINE + 0.5,
                _HANG + drop + lines_under * _TEXT_LINE + 0.45)
    n_rows = 1 + max(r for _, r in place.values())
    n_ranks = 1 + max(k for k, _ in place.values())
    width = max(6.0, n_ranks * _DX + 1.0)
    head = title if title is not None else _title(g, flow)
    chars = int(width * 14)  # about 14 nine-point characters to the inch
    head_lines = [w for line in head.replace("\\l", "\n").strip().split("\n")
                  for w in (textwrap.wrap(line, chars) or [""])]
    head_h = 0.2 + 0.17 * len(head_lines)
    per_row = max(1, int((width - 0.3) / _SWATCH))
    swatches = 0 if flow is None or by == "accuracy" else \
        2 if by == "origin" else len(flow.exit_class[0]) if flow.exit_class else 0
    legend_h = 0.0 if flow is None else 0.55 + 0.22 * max(1, -(-swatches // per_row))
    height = head_h + n_rows * row_h + legend_h + 0.1

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(-height, 0)  # one data unit is one inch, y down from the top
    ax.set_aspect("equal")
    ax.axis("off")
    ax.text(0.1, -0.12, "\n".join(head_lines), va="top", ha="left", fontsize=9,
            linespacing=1.3)

    def xy(i: int) -> tuple[float, float]:
        rank, row = place[i]
        x, y = 0.5 + rank * _DX, -(head_h + row * row_h + _BOX[1] / 2 + 0.1)
        if i in hanging:
            y -= _HANG + diameter(i) / 2
        return x, y

    # edges first, under the nodes
    for i, n in enumerate(g.nodes):
        if n.parent < 0:
            continue
        (x0, y0), (x1, y1) = xy(n.parent), xy(i)
        xs, ys = [x0, x1], [y0, y1]
        if i not in hanging and y1 != y0:  # a branch to a lower row: an elbow, clear of
            bend = x1 - _BOX[0] / 2 - 0.1  # the exits hanging under the junction
            xs, ys = [x0, bend, bend, x1], [y0, y0, y1, y1]
        gid = f"{node_id(n.parent)}->{node_id(i)}"
        if flow is None:
            ax.plot(xs, ys, color="#555555", lw=0.8, zorder=1, gid=gid)
            continue
        count = flow.node_count[i]
        if count == 0:
            ax.plot(xs, ys, color="#aaaaaa", lw=0.5, ls="--", zorder=1, gid=gid)
        else:
            ax.plot(xs, ys, color="#555555", zorder=1, solid_capstyle="butt", gid=gid,
                    solid_joinstyle="miter", lw=edge_penwidth(count, flow.examples))
        if g.nodes[n.parent].kind == "junction":
            clear = edge_penwidth(count, flow.examples) / 144 + 0.03  # half the line, inches
            if i in hanging:
                at, ha, va = (x0 + clear, y0 - _DIAMOND / 2 - 0.02), "left", "top"
            else:
                at, ha, va = (x0 + _DIAMOND / 2 + 0.05, y0 + clear), "left", "bottom"
            ax.text(*at, str(count), fontsize=7, ha=ha, va=va, color="#333333", zorder=3)

    for i, n in enumerate(g.nodes):
        x, y = xy(i)
        if n.kind in ("stem", "column"):
            column = n.kind == "column"
            label = (f"{n.id}\n{fmt_macs(n.macs)}" if column
                     else f"{n.template}\n" + "×".join(map(str, g.input_shape)))
            w = max(_BOX[0], 0.075 * max(map(len, label.split("\n"))) + 0.1)
            h = _BOX[1]
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                        boxstyle="round,pad=0,rounding_size=0.06",
                                        fc="#dde8f4" if column else "white",
                                        ec="#4a6fa5" if column else "black", lw=0.8, zorder=2,
                                        gid=node_id(i)))
            ax.text(x, y, label, ha="center", va="center", fontsize=8, zorder=3)
        elif n.kind == "junction":
            r = _DIAMOND / 2
            ax.add_patch(Polygon([(x - r, y), (x, y + r), (x + r, y), (x, y - r)],
                                 fc="#f6d7a7", ec="#a0702a", lw=0.8, zorder=2, gid=node_id(i)))
            ax.text(x, y, str(n.ways), ha="center", va="center", fontsize=7, zorder=3)
            ax.text(x, y + r + 0.03, fmt_macs(n.macs), ha="center", va="bottom", fontsize=7,
                    color="#555555", zorder=3)
        else:
            _mpl_exit(ax, g, i, (x, y), diameter(i), flow, by, (Circle, Wedge))
            ax.text(x, y - diameter(i) / 2 - 0.05, text_of(i), ha="center", va="top",
                    fontsize=8, linespacing=1.15, zorder=3)
    if flow is not None:
        _mpl_legend(ax, flow, by, -(height - legend_h + 0.05), per_row, Rectangle)
    return fig


def _mpl_exit(ax, g: RoutingGraph, i: int, at: tuple[float, float], d: float,
              flow: Dataflow | None, by: str, patches: tuple) -> None:
    """An exit's circle: filled as in the Graphviz picture, wedged by origin share."""
    Circle, Wedge = patches
    r, gid = d / 2, node_id(i)
    if flow is None:
        ax.add_patch(Circle(at, r, fc="#a5d6a7", ec="#2e7d32", lw=0.8, zorder=2, gid=gid))
        return
    e = flow.leaves.index(i)
    if flow.exit_count[e] == 0:
        ax.add_patch(Circle(at, r, fc="white", ec="#999999", lw=0.8, zorder=2, gid=gid))
        return
    if by == "origin":
        share = flow.exit_cifar_share[e] or 0.0
        # origin 0 from twelve o'clock anticlockwise, origin 1 the rest
        split = 90.0 + 360.0 * (1.0 - share)
        if share < 1.0:
            ax.add_patch(Wedge(at, r, 90.0, split, fc=ORIGIN_COLOURS[0], lw=0, zorder=2,
                               gid=f"{gid}:0"))
        if share > 0.0:
            ax.add_patch(Wedge(at, r, split, 450.0, fc=ORIGIN_COLOURS[1], lw=0, zorder=2,
                               gid=f"{gid}:1"))
        ax.add_patch(Circle(at, r, fill=False, ec="#333333", lw=0.6, zorder=2, gid=gid))
        return
    ax.add_patch(Circle(at, r, fc=_exit_fill(flow, e, by)["fillcolor"], ec="#333333",
                        lw=0.6, zorder=2, gid=gid))


def _mpl_legend(ax, flow: Dataflow, by: str, y: float, per_row: int, Rectangle) -> None:
    """Swatches (origin, class) or a colour bar (accuracy) along the bottom."""
    x = 0.15
    if by == "accuracy":
        ax.text(x, y, "exit accuracy", fontsize=8, va="top")
        for k in range(11):
            ax.add_patch(Rectangle((x + 0.15 * k, y - 0.38), 0.15, 0.13,
                                   fc=accuracy_colour(k / 10), lw=0))
        for v, at in ((0, 0.0), (0.5, 0.75), (1, 1.5)):
            ax.text(x + at + 0.075, y - 0.42, f"{v:g}", fontsize=7, ha="center", va="top")
        return
    if by == "origin":
        names = list(origin_names(flow.data))
        colours = list(ORIGIN_COLOURS)
        head = "examples classified at the exit"
    else:
        n_classes = len(flow.exit_class[0]) if flow.exit_class else 0
        names = flow.classes or [str(c) for c in range(n_classes)]
        colours = [class_colour(c, n_classes) for c in range(n_classes)]
        head = "dominant true class"
    ax.text(x, y, head, fontsize=8, va="top")
    for k, (name, colour) in enumerate(zip(names, colours)):
        cx, cy = x + _SWATCH * (k % per_row), y - 0.4 - 0.22 * (k // per_row)
        ax.add_patch(Rectangle((cx, cy), 0.15, 0.15, fc=colour, lw=0))
        ax.text(cx + 0.2, cy + 0.075, name, fontsize=7, va="center")
