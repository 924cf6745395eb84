"""``routec draw``: spec diagrams, measured dataflow and the numbers behind the pictures.

Dataflow numbers are checked against an independent computation: a dense pass
(every node for every example), argmax routing re-walked through the tree by hand.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import graphviz
import pytest
import torch
from matplotlib import colormaps
from matplotlib.colors import to_hex
from PIL import Image, ImageChops

from routec.errors import RoutecError, RunError
from routec.graph import build_graph
from routec.parse import load_spec
from routec.report import cli as report_cli
from routec.report import draw
from routec.report.dataflow import measure, measure_run
from routec.train.checkpoint import load_checkpoint, save_checkpoint
from routec.train.config import make_config
from routec.train.evaluate import evaluate
from routec.train.loop import train
from routec.train.runs import load_run

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz 'dot' is not installed")
SVG = "{http://www.w3.org/2000/svg}"


# -- fixtures -------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="routec")
    report_cli.add_commands(p.add_subparsers(dest="command", required=True))
    return p


def cli(*argv: str) -> int:
    args = _parser().parse_args([str(a) for a in argv])
    return int(args.func(args) or 0)


def _randomise(net: torch.nn.Module, seed: int, x: torch.Tensor) -> None:
    """Random weights, batch-norm statistics from ``x``: routers then spread examples
    over every exit, which a 20-iteration run does not."""
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                               / m.weight[0].numel() ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative: one pass sets the statistics of x
        net.train()
        net(x)
        net.eval()
        for m in bns:
            m.momentum = 0.1


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short tiny run whose checkpoint is then given spread-out random routing."""
    out = tmp_path_factory.mktemp("draw") / "run"
    cfg = make_config({"spec": "tiny", "data": "synthetic", "iterations": 20, "batch": 16,
                       "k_cpt": 1e-6, "log_every": 5, "eval_every": 10, "val_examples": 64})
    train(cfg, out, progress=False)
    _, net, data, _ = load_run(out)
    _randomise(net, 5, data.train.images[:256])
    state = load_checkpoint(out / "checkpoint.pt")
    state["model"] = net.state_dict()
    state.pop("format")
    save_checkpoint(out / "checkpoint.pt", state)
    return out


@pytest.fixture(scope="module")
def loaded(run_dir: Path):
    return load_run(run_dir)


def dense_walk(net, images: torch.Tensor) -> tuple[list[int], list[list[int]], torch.Tensor]:
    """(leaf index, nodes visited, predicted class) per example, from a dense pass."""
    with torch.no_grad():
        out = net(images)
    kids: dict[int, dict[int, int]] = {}
    for c, p in enumerate(net.PARENT):
        if p >= 0:
            kids.setdefault(p, {})[net.WAY[c]] = c
    jpos = {node: j for j, node in enumerate(net.JUNCTIONS)}
    leaves, paths, preds = [], [], []
    for n in range(len(images)):
        node, seen = 0, [0]
        while net.KINDS[node] != "exit":
            if net.KINDS[node] == "junction":
                node = kids[node][int(out.scores[jpos[node]][n].argmax())]
            else:
                node = next(iter(kids[node].values()))
            seen.append(node)
        leaf = list(net.LEAVES).index(node)
        leaves.append(leaf)
        paths.append(seen)
        preds.append(int(out.leaf_logits[leaf, n].argmax()))
    return leaves, paths, torch.tensor(preds)


_STMT = re.compile(r'^\t+("?[\w.]+"?)(?: -> ("?[\w.]+"?))?'
                   r'(?: \[((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\])?$', re.M | re.S)
_ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"\]]+)')


def emitted(source: str) -> tuple[dict[str, dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
    """Node and edge attributes exactly as written in DOT source (before any layout)."""
    nodes: dict[str, dict[str, str]] = {}
    edges: dict[tuple[str, str], dict[str, str]] = {}
    for m in _STMT.finditer(source):
        attrs = {k: v.strip('"') for k, v in _ATTR.findall(m.group(3) or "")}
        if m.group(2):
            edges[(m.group(1), m.group(2))] = attrs
        else:
            nodes[m.group(1)] = attrs
    return nodes, edges


def layout(source: str) -> dict:
    """Node and edge attributes as the real ``dot`` program reads them (-Tjson)."""
    data = json.loads(graphviz.Source(source).pipe(format="json"))
    objs = {o["_gvid"]: o for o in data.get("objects", [])}
    nodes = {o["name"]: o for o in objs.values() if "nodes" not in o}  # not subgraphs
    edges = {(objs[e["tail"]]["name"], objs[e["head"]]["name"]): e
             for e in data.get("edges", [])}
    return {"graph": data, "nodes": nodes, "edges": edges}


# -- spec diagrams --------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_spec_diagram_files_are_valid(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"tiny.{fmt}"
    assert cli("draw", "tiny", "-o", out) == 0
    data = out.read_bytes()
    if fmt == "svg":
        root = ET.fromstring(data)
        titles = {t.text for t in root.iter(f"{SVG}title")}
        g = build_graph(load_spec("tiny"))
        assert {draw.node_id(i) for i in range(len(g.nodes))} <= titles
    elif fmt == "png":
        with Image.open(out) as im:
            im.load()
            assert im.format == "PNG"
            assert 300 <= im.size[0] <= 3000 and 80 <= im.size[1] <= 2000
    else:
        assert data.startswith(b"%PDF")


def test_spec_diagram_labels_names_and_macs() -> None:
    g = build_graph(load_spec("tiny"))
    src = draw.diagram(g).source
    assert "rankdir=LR" in src
    nodes, edges = emitted(src)
    for i, n in enumerate(g.nodes):
        attrs = nodes[draw.node_id(i)]
        if n.kind == "column":
            assert attrs["label"] == f"{n.id}\n{draw.fmt_macs(n.macs)}"
            assert attrs["shape"] == "box"
        elif n.kind == "junction":
            assert (attrs["shape"], attrs["label"]) == ("diamond", str(n.ways))
            assert attrs["xlabel"] == draw.fmt_macs(n.macs)  # the router's MACs
        elif n.kind == "exit":
            assert attrs["shape"] == "circle"
        if n.parent >= 0:
            assert (draw.node_id(n.parent), draw.node_id(i)) in edges
    for leaf, macs in zip(g.leaves, g.path_macs()):
        n = g.nodes[leaf]
        assert nodes[draw.text_id(leaf)]["label"] == \
            f"{n.id} {draw.fmt_macs(n.macs)}\nΣ {draw.fmt_macs(macs)}"
    assert draw.fmt_macs(1_361_664) == "1.36M" and draw.fmt_macs(4400) == "4.4k"
    assert draw.fmt_macs(384) == "384"


@needs_dot
def test_paper_tree_stays_readable(tmp_path: Path) -> None:
    """134 nodes, 47 exits: nothing overlaps, every exit's text sits just under its circle,
    and the picture is a sane size."""
    g = build_graph(load_spec("paper_tree"))
    assert (len(g.nodes), len(g.leaves)) == (134, 47)
    lay = layout(draw.diagram(g).source)
    nodes = lay["nodes"]
    boxes = []
    for name, o in nodes.items():
        if "pos" not in o:
            continue
        x, y = map(float, o["pos"].split(","))
        w, h = float(o["width"]) * 72, float(o["height"]) * 72
        boxes.append((name, x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    assert sum(1 for b in boxes if b[0].startswith("n") and b[0][1:].isdigit()) == 134
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            na, *ra = boxes[a]
            nb, *rb = boxes[b]
            overlap = min(ra[2], rb[2]) - max(ra[0], rb[0]) > 1 and \
                min(ra[3], rb[3]) - max(ra[1], rb[1]) > 1
            assert not overlap, (na, nb)
    for leaf in g.leaves:
        circle, text = nodes[draw.node_id(leaf)], nodes[draw.text_id(leaf)]
        cx, cy = map(float, circle["pos"].split(","))
        tx, ty = map(float, text["pos"].split(","))
        assert abs(cx - tx) < 2 and 0 < cy - ty < 60  # directly below, close by
    x0, y0, x1, y1 = map(float, lay["graph"]["bb"].split(","))
    assert (x1 - x0) / 72 < 25 and (y1 - y0) / 72 < 15
    out = tmp_path / "tree.png"
    draw.render(draw.diagram(g), out)
    assert out.stat().st_size < 300_000


# -- dataflow numbers ------------------------------------------------------------------------
def test_dataflow_matches_dense_pass(run_dir: Path, loaded) -> None:
    cfg, net, data, _ = loaded
    flow, g = measure_run(run_dir)
    test = data.test
    leaves, paths, preds = dense_walk(net, test.images)
    n = len(test.labels)
    assert flow.examples == n
    assert math.isclose(sum(flow.exit_fraction), 1.0)
    assert sum(1 for c in flow.exit_count if c) >= 3, "fixture should use most exits"
    want_exit = [leaves.count(e) for e in range(len(net.LEAVES))]
    assert flow.exit_count == want_exit
    want_node = [sum(1 for p in paths if i in p) for i in range(len(net.NODES))]
    assert flow.node_count == want_node
    hit = preds == test.labels
    for e in range(len(net.LEAVES)):
        at = torch.tensor(leaves) == e
        assert flow.exit_correct[e] == int((hit & at).sum())
        if want_exit[e]:
            assert flow.exit_accuracy[e] == pytest.approx(float(hit[at].float().mean()))
            assert flow.exit_cifar_share[e] == pytest.approx(
                float((test.origin[at] == 1).float().mean()))
        for c in range(net.CLASSES):
            assert flow.exit_class[e][c] == int((at & (test.labels == c)).sum())
    assert flow.accuracy == pytest.approx(float(hit.float().mean()))
    path_macs = net.path_macs()
    assert flow.mean_macs == pytest.approx(sum(path_macs[e] for e in leaves) / n)
    # flow is conserved: what enters a node leaves it along its out-edges
    for i in range(len(net.NODES)):
        out_edges = [c for p, c, _ in flow.edges() if p == i]
        if out_edges:
            assert flow.node_count[i] == sum(flow.node_count[c] for c in out_edges)
    # and the routed evaluator agrees
    r = evaluate(net, test.images, test.labels)
    assert flow.exit_fraction == pytest.approx(r.exit_fraction)
    assert flow.mean_macs == pytest.approx(r.mean_macs)
    assert [n.id for n in g.nodes] == list(net.NODES)


def test_measure_counts_batches_consistently(loaded) -> None:
    _, net, data, _ = loaded
    x, y, o = data.val.images[:300], data.val.labels[:300], data.val.origin[:300]
    whole = measure(net, x, y, o, batch=300)
    pieces = measure(net, x, y, o, batch=37)
    assert whole.as_dict() == pieces.as_dict()


# -- dataflow pictures ----------------------------------------------------------------------
@needs_dot
def test_dataflow_picture_sizes_and_colours(run_dir: Path, tmp_path: Path) -> None:
    dot_file, svg_file, js = tmp_path / "flow.dot", tmp_path / "flow.svg", tmp_path / "f.json"
    assert cli("draw", run_dir, "-o", dot_file, "--json", js) == 0
    assert cli("draw", run_dir, "-o", svg_file) == 0
    numbers = json.loads(js.read_text())
    fractions, counts = numbers["exit_fraction"], numbers["node_count"]
    source = dot_file.read_text()
    nodes, edges = emitted(source)
    lay = layout(source)  # what dot makes of it: sizes rounded to whole points
    # circle area ∝ fraction: width² / fraction is one constant
    ratios = []
    for e, leaf in enumerate(numbers["leaves"]):
        node = nodes[draw.node_id(leaf)]
        w = float(node["width"])
        assert node["fixedsize"] == "true" and node["shape"] == "circle"
        assert float(lay["nodes"][draw.node_id(leaf)]["width"]) == pytest.approx(w, abs=0.6 / 72)
        if fractions[e] > 0:
            ratios.append(w ** 2 / fractions[e])
            acc = numbers["exit_accuracy"][e]
            assert node["fillcolor"] == to_hex(colormaps["viridis"](acc))
        else:
            assert w == pytest.approx(draw.EMPTY_EXIT) and node["fillcolor"] == "white"
    assert len(ratios) >= 3
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-4)
    assert ratios[0] == pytest.approx(draw.DIAMETER ** 2, rel=1e-4)
    # edge width ∝ examples on the edge, and the junction edges say how many
    n = numbers["examples"]
    for i, p in enumerate(numbers["parent"]):
        if p < 0:
            continue
        edge = edges[(draw.node_id(p), draw.node_id(i))]
        assert lay["edges"][(draw.node_id(p), draw.node_id(i))]["penwidth"] == edge["penwidth"]
        if counts[i]:
            assert float(edge["penwidth"]) == pytest.approx(draw.EDGE_PEN * counts[i] / n,
                                                            rel=1e-5)
        else:
            assert edge["style"] == "dashed"
        if numbers["kinds"][p] == "junction":
            assert edge["label"] == str(counts[i])
    # the rendered SVG: ellipse radius² ∝ fraction too
    root = ET.fromstring(svg_file.read_bytes())
    rx = {}
    for grp in root.iter(f"{SVG}g"):
        title = grp.find(f"{SVG}title")
        ell = next(grp.iter(f"{SVG}ellipse"), None)
        if title is not None and ell is not None:
            rx[title.text] = float(ell.get("rx"))
    for leaf, f in zip(numbers["leaves"], fractions):  # radius in points, dot rounds to 1/2 pt
        if f > 0:
            assert rx[draw.node_id(leaf)] == pytest.approx(draw.DIAMETER * 72 / 2 * math.sqrt(f),
                                                           abs=0.55)
    assert "exit accuracy" in svg_file.read_text()  # the colour bar


@needs_dot
def test_dataflow_by_origin_and_class(run_dir: Path, loaded, tmp_path: Path) -> None:
    _, net, data, state = loaded
    leaves, _, _ = dense_walk(net, data.test.images)
    at = torch.tensor(leaves)
    origin = data.test.origin
    for by in ("origin", "class"):
        out = tmp_path / f"flow_{by}.dot"
        assert cli("draw", run_dir, "--by", by, "-o", out) == 0
        nodes = layout(out.read_text())["nodes"]
        for e, leaf in enumerate(net.LEAVES):
            sel = at == e
            if not sel.any():
                continue
            node = nodes[draw.node_id(leaf)]
            if by == "origin":
                share = float((origin[sel] == 1).float().mean())
                if 0 < share < 1:
                    assert node["style"] == "wedged"
                    mnist, cifar = node["fillcolor"].split(":")
                    assert mnist.startswith(draw.ORIGIN_COLOURS[0])
                    assert float(mnist.split(";")[1]) == pytest.approx(1 - share, abs=1e-4)
                    assert cifar == draw.ORIGIN_COLOURS[1]
            else:
                dominant = int(torch.bincount(data.test.labels[sel], minlength=10).argmax())
                assert node["fillcolor"] == to_hex(colormaps["tab10"](dominant))
                text = nodes[draw.text_id(leaf)]["label"]
                assert state["classes"][dominant] in text


@needs_dot
def test_dataflow_png_and_split(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "flow.png"
    js = tmp_path / "val.json"
    assert cli("draw", run_dir, "--split", "val", "-o", out, "--json", js) == 0
    with Image.open(out) as im:
        im.load()
        assert im.size[0] > 300
    assert json.loads(js.read_text())["examples"] == 500  # synthetic val split


# -- errors -------------------------------------------------------------------------------------
def test_no_dot_program_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    # Graphviz's renderer itself says what is missing (routec draw then uses matplotlib:
    # test_routec_draw_without_graphviz_draws_with_matplotlib)
    from routec.graph import build_graph
    from routec.parse import load_spec
    from routec.report.draw import diagram, render

    with pytest.raises(RoutecError, match="Graphviz 'dot' program is not installed") as err:
        render(diagram(build_graph(load_spec("tiny"))), tmp_path / "x.svg")
    assert "install Graphviz" in err.value.render()
    assert not (tmp_path / "x.svg").exists()
    # DOT source needs no dot program
    assert cli("draw", "tiny", "-o", tmp_path / "x.dot") == 0
    assert (tmp_path / "x.dot").read_text().startswith("digraph")


def test_bad_outputs_and_flags(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(RoutecError, match="unknown picture format '.jpgx'"):
        cli("draw", "tiny", "-o", tmp_path / "x.jpgx")
    with pytest.raises(RoutecError, match="cannot write"):
        cli("draw", "tiny", "-o", tmp_path / "missing" / "dir" / "x.dot")
    with pytest.raises(RoutecError, match="apply to a run directory"):
        cli("draw", "tiny", "--by", "origin", "-o", tmp_path / "x.dot")
    with pytest.raises(RoutecError, match="apply to a spec"):
        cli("draw", run_dir, "--classes", "3", "-o", tmp_path / "x.dot")
    with pytest.raises(RunError, match="fixed k_cpt"):
        cli("draw", run_dir, "--k-cpt", "1e-9", "-o", tmp_path / "x.dot")
    with pytest.raises(RoutecError, match="no spec file"):
        cli("draw", "no_such_spec", "-o", tmp_path / "x.dot")
    with pytest.raises(RunError, match="no checkpoint"):
        cli("draw", tmp_path, "-o", tmp_path / "x.dot")


@needs_dot
def test_wired_into_routec_cli(tmp_path: Path) -> None:
    from routec import cli as main_cli

    parser = main_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "draw" not in sub.choices:
        pytest.skip("routec draw is not registered in routec.cli yet")
    out = tmp_path / "chain.svg"
    assert main_cli.main(["draw", "paper_chain", "-o", str(out)]) == 0
    ET.fromstring(out.read_bytes())
    assert main_cli.main(["draw", "tiny", "-o", str(tmp_path / "x.bad")]) == 2


# -- without Graphviz -------------------------------------------------------------------------
def test_matplotlib_draws_the_dataflow_to_scale_without_dot(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh machine has no Graphviz; its picture, drawn by matplotlib, must still
    show the numbers: exit circle area ∝ share of examples, wedges ∝ origin mix, edge
    width ∝ examples on the edge, every column with its MACs."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert not draw.dot_available()
    test, g = measure_run(run_dir)
    val, _ = measure_run(run_dir, split="val")
    fig = draw.figure(g, test, by="origin")
    ax = fig.axes[0]
    patches = {p.get_gid(): p for p in ax.patches if p.get_gid()}
    lines = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    assert sum(1 for c in test.exit_count if c) >= 3, "fixture should use most exits"
    mixed = 0
    for e, leaf in enumerate(test.leaves):
        f, circle = test.exit_fraction[e], patches[draw.node_id(leaf)]
        assert circle.radius == pytest.approx((draw.exit_diameter(f) if f else draw.EMPTY_EXIT)
                                              / 2)
        share = test.exit_cifar_share[e]
        if f and 0 < share < 1:
            mixed += 1
            w0, w1 = patches[f"{draw.node_id(leaf)}:0"], patches[f"{draw.node_id(leaf)}:1"]
            assert (w0.theta2 - w0.theta1) / 360 == pytest.approx(1 - share)
            assert (w1.theta2 - w1.theta1) / 360 == pytest.approx(share)
    assert mixed, "fixture should mix origins at some exit"
    for p, c, count in test.edges():
        line = lines[f"{draw.node_id(p)}->{draw.node_id(c)}"]
        if count:
            assert line.get_linewidth() == pytest.approx(draw.EDGE_PEN * count / test.examples)
        else:
            assert line.get_linestyle() == "--"
    texts = {t.get_text() for t in ax.texts}
    for n in g.nodes:
        if n.kind == "column":
            assert f"{n.id}\n{draw.fmt_macs(n.macs)}" in texts
    # files: a PNG that changes with the flow, SVG and PDF too; no DOT from matplotlib
    a, b = tmp_path / "test.png", tmp_path / "val.png"
    draw.render_matplotlib(g, a, test, by="origin")
    draw.render_matplotlib(g, b, val, by="origin")
    with Image.open(a) as im_a, Image.open(b) as im_b:
        assert im_a.format == "PNG" and im_a.size[0] > 300
        assert im_a.size != im_b.size or \
            ImageChops.difference(im_a.convert("RGB"), im_b.convert("RGB")).getbbox()
    draw.render_matplotlib(g, tmp_path / "f.svg", test, by="class")
    ET.fromstring((tmp_path / "f.svg").read_bytes())
    draw.render_matplotlib(g, tmp_path / "f.pdf", test, by="accuracy")
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(RoutecError, match="not DOT source"):
        draw.render_matplotlib(g, tmp_path / "f.dot", test)
    # the spec alone, and a tree, draw too
    draw.render_matplotlib(build_graph(load_spec("tiny"), classes=10), tmp_path / "tiny.png")
    with Image.open(tmp_path / "tiny.png") as im:
        im.load()


def test_routec_draw_without_graphviz_draws_with_matplotlib(tmp_path, monkeypatch, capsys):
    """`routec draw` on a machine without `dot`: a real picture, and a note saying how."""
    from PIL import Image

    from routec.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    out = tmp_path / "tree.png"
    assert main(["draw", "paper_tree", "-o", str(out)]) == 0
    assert "drawn with matplotlib" in capsys.readouterr().err
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 600
    assert main(["draw", "tiny", "-o", str(tmp_path / "tiny.png")]) == 0
    assert (tmp_path / "tiny.png").read_bytes() != out.read_bytes()
