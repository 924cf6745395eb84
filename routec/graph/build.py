"""The graph stage: the expanded route → a networkx tree with shapes, MACs and parameters.

Nodes (in depth-first order, branches left to right):
  * ``stem``: the initial transform (no MACs);
  * ``column``: one use of a column template;
  * ``junction``: an n-way decision; its MACs are its router's;
  * ``exit``: a classifier head, a leaf of the tree.
Edges from a junction carry ``way``, the branch index its router scores.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx

from routec import spec as S
from routec.errors import RunError, SourcePos, SpecError
from routec.graph import catalogue as C
from routec.graph import registry as R
from routec.graph.arguments import BindError, Param, bind
from routec.graph.expand import ColumnUse, JunctionUse, LeafUse, Segment, expand
from routec.tree import RoutingTree


@dataclass(frozen=True)
class HeadConfig:
    """A router or classifier: an MLP on the flattened coarsest level."""

    kind: str  # "router" | "exit"
    template: str
    in_features: int
    hidden: tuple[int, ...]
    out_features: int
    k_cpt_input: bool = False
    pooled: int = 0  # average-pool the coarsest level to pooled x pooled first (0: no)
    # every-layer k_cpt conditioning: log1p(k_cpt / k_cpt_unit) beside every linear
    # layer's input (runtime/layers.py Head); None: the paper's single first-layer input
    k_cpt_unit: float | None = None
    logits: bool = False  # an exit that reads its column's output as the logits

    def cost(self) -> tuple[int, int]:
        """(MACs, params), counting the k_cpt column every layer reads when it does."""
        if self.logits:
            return 0, 0
        macs, params = C.mlp_cost(self.in_features, self.hidden, self.out_features)
        if self.k_cpt_unit is not None:
            extra = sum((*self.hidden, self.out_features)[1:])  # a weight per later unit
            macs, params = macs + extra, params + extra
        return macs, params


@dataclass
class NodeInfo:
    id: str
    kind: str  # "stem" | "column" | "junction" | "exit"
    template: str
    pos: SourcePos | None
    in_shape: C.Pyramid
    out_shape: C.Pyramid
    macs: int
    params: int
    parent: int = -1
    way: int = -1
    ways: int = 0
    leaf: int = -1
    layers: tuple[C.LayerConfig, ...] = ()
    layer_shapes: tuple[C.Pyramid, ...] = ()
    stem: tuple[str, dict[str, Any]] | None = None
    head: HeadConfig | None = None


@dataclass
class RoutingGraph:
    """A validated network: the tree, per-node costs and per-path costs."""

    name: str
    file: str
    source: str
    input_shape: tuple[int, int, int]
    classes: int
    dynamic_kcpt: bool
    graph: nx.DiGraph
    nodes: list[NodeInfo] = field(default_factory=list)
    kcpt_unit: float | None = None  # set: routers read k_cpt at every layer (HeadConfig)

    @property
    def leaves(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.kind == "exit"]

    @property
    def junctions(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.kind == "junction"]

    @cached_property
    def tree(self) -> RoutingTree:
        """The routing tree of this validated graph: code generation writes it into the
        generated class, and every later stage reads it from there."""
        return RoutingTree(
            name=self.name, nodes=tuple(n.id for n in self.nodes),
            kinds=tuple(n.kind for n in self.nodes), parent=tuple(n.parent for n in self.nodes),
            way=tuple(n.way for n in self.nodes), macs=tuple(int(n.macs) for n in self.nodes),
            leaves=tuple(self.leaves), junctions=tuple(self.junctions),
            ways=tuple(self.nodes[j].ways for j in self.junctions), classes=int(self.classes),
            input_shape=tuple(int(v) for v in self.input_shape),  # type: ignore[arg-type]
            dynamic_kcpt=bool(self.dynamic_kcpt))

    def path(self, node: int) -> list[int]:
        """Node indices from the root to ``node``."""
        return self.tree.path(node)

    def path_macs(self) -> list[int]:
        """MACs of every root-to-leaf path, in leaf order."""
        return self.tree.path_macs()

    def mean_macs(self, leaf_fractions: list[float]) -> float:
        """Expected MACs per example when fraction f_i of examples leaves at leaf i."""
        return self.tree.mean_macs(leaf_fractions)

    @property
    def total_macs(self) -> int:
        """MACs of every node: what evaluating the whole tree costs per example."""
        return sum(n.macs for n in self.nodes)

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)


class _Builder:
    def __init__(self, spec: S.NetworkSpec, classes: int, dynamic_kcpt: bool,
                 counts: Counter[str], kcpt_unit: float | None = None) -> None:
        self.spec = spec
        self.classes = classes
        self.dynamic = dynamic_kcpt
        self.kcpt_unit = kcpt_unit
        self.counts = counts
        self.seen: Counter[str] = Counter()
        self.ids: set[str] = set()
        self.nodes: list[NodeInfo] = []
        self.g = nx.DiGraph()

    def pos(self, at: S.Node | None) -> SourcePos | None:
        return SourcePos(self.spec.file, at.line, at.column) if at is not None else None

    def fail(self, message: str, at: S.Node | None, hint: str | None = None,
             kind: str = "spec") -> SpecError:
        return self.spec.error(message, at, hint=hint, kind=kind)

    def unique(self, base: str) -> str:
        name, k = base, 2
        while name in self.ids:
            name, k = f"{base}_{k}", k + 1
        self.ids.add(name)
        return name

    def add(self, info: NodeInfo) -> int:
        index = len(self.nodes)
        self.nodes.append(info)
        self.g.add_node(index, id=info.id, kind=info.kind, macs=info.macs)
        if info.parent >= 0:
            self.g.add_edge(info.parent, index, way=info.way)
        return index

    # ----------------------------------------------------------------------------------
    def stem(self) -> int:
        call = self.spec.stem
        if call is None:
            kind, args = "identity", {}
        else:
            kind = call.name
            if kind not in C.STEM_SIGNATURES:
                raise self.fail(f"unknown stem '{kind}'", call, kind="unknown-name",
                                hint="stems: " + ", ".join(C.STEM_SIGNATURES))
            args = self.bind(call, C.STEM_SIGNATURES[kind])
        try:
            out = C.stem_shape(kind, args, self.spec.input_shape)
        except C.ShapeError as err:
            raise self.fail(f"shape mismatch: {err.message}", call, err.hint,
                            kind="shape") from None
        inp: C.Pyramid = (self.spec.input_shape,)
        return self.add(NodeInfo("stem", "stem", kind, self.pos(call), inp, out, 0, 0,
                                 stem=(kind, args)))

    def bind(self, call: S.Call, signature: tuple, env: dict[str, S.Value] | None = None
             ) -> dict[str, Any]:
        try:
            return bind(call, signature, env or {})
        except BindError as err:
            raise self.fail(err.message, err.at, err.hint, kind=err.kind) from None

    def models(self) -> None:
        """Each ``model NAME`` must be supplied to this process; pieces are then layers."""
        if not self.spec.models:
            return
        from routec.backbone.cut import CutError
        from routec.backbone.supplied import supplied, supply

        for name, call in self.spec.models.items():
            args = self.bind(call, (Param("leaves", "names", ()),))
            entry = supplied(name)
            if entry is None:
                raise self.fail(f"model '{name}' is not supplied", call, kind="unknown-name",
                                hint=f"pass --model {name}=MODULE:CALLABLE, or call "
                                     f"routec.supply_model({name!r}, model) first")
            if tuple(args["leaves"]) != entry.leaves:  # the spec says what to keep whole
                entry = supply(name, entry.model, leaves=tuple(args["leaves"]),
                               origin=entry.origin)
            try:
                entry.traced  # noqa: B018 - traced here, so a failure points at `model`
            except CutError as err:
                raise self.fail(err.message, call, err.hint, kind="bad-argument") from None
            entry.input_shape = tuple(self.spec.input_shape)

    def layer(self, call: S.Call, env: dict[str, S.Value]) -> C.LayerConfig:
        """Bind one layer call (and the layers of chain arguments, recursively)."""
        kind = C.LAYERS.get(call.name)
        if kind is not None and not kind.builtin and kind.module is None \
                and call.name not in self.spec.models:  # a model supplied for another spec
            kind = None
        if kind is None:
            raise self.fail(f"unknown layer '{call.name}'", call, kind="unknown-name",
                            hint="layers: " + ", ".join(
                                k for k, v in C.LAYERS.items() if v.builtin or v.module))
        args = self.bind(call, kind.params, env)
        for param in kind.params:
            if param.kind == "layers":
                args[param.name] = tuple(self.layer(c, env) for c in args[param.name])
        return C.LayerConfig(call.name, args, at=(call.line, call.column))

    def column(self, use: ColumnUse, parent: int, way: int) -> int:
        t = use.template
        base = t.name if self.counts[t.name] == 1 else f"{t.name}_{self.seen[t.name] + 1}"
        self.seen[t.name] += 1
        inp = self.nodes[parent].out_shape
        layers = [self.layer(call, use.env) for call in t.layers]
        self.check_pieces(layers, self.ends_at(parent), t)
        try:
            shapes, macs, params = R.chain_shape(layers, inp)
        except C.ShapeError as err:
            where = (f" (in column '{t.name}' used at line {use.at.line})"
                     if t.params or self.counts[t.name] > 1 else "")
            at = S.Node(line=err.at[0], column=err.at[1]) if err.at else None
            raise self.fail(f"shape mismatch: {err.message}{where}", at, err.hint,
                            kind="shape") from None
        return self.add(NodeInfo(self.unique(base), "column", t.name, self.pos(use.at),
                                 inp, shapes[-1], macs, params,
                                 parent=parent, way=way, layers=tuple(layers),
                                 layer_shapes=tuple(shapes)))

    def ends_at(self, node: int) -> tuple[str, str | None] | None:
        """Where the tensor leaving ``node`` is in a supplied model: (model, cut), with
        cut None at the network's input; None after any other layer."""
        while self.nodes[node].kind == "junction":
            node = self.nodes[node].parent
        n = self.nodes[node]
        if n.kind == "stem":
            return ("", None) if n.template == "identity" else None
        last = n.layers[-1] if n.layers else None
        if last is not None and last.kind in self.spec.models:
            return (last.kind, last.args.get("to"))
        return None

    def check_pieces(self, layers: list[C.LayerConfig], before: tuple[str, str | None] | None,
                     t: S.ColumnTemplate) -> None:
        """Pieces of a supplied model follow each other in the model's own order: a
        piece's ``from`` is the cut the tensor it reads was taken at."""
        for layer in layers:
            if layer.kind in self.spec.models:
                start = layer.args.get("from")
                expected = (layer.kind, start) if start is not None else ("", None)
                if before != expected and not (start is None and before == ("", None)):
                    here = ('the network\'s input' if before == ("", None) else
                            f'the output of {before[0]}(to = "{before[1]}")' if before
                            else "the output of a layer of its own")
                    at = S.Node(line=layer.at[0], column=layer.at[1]) if layer.at else t
                    want = f'"{start}"' if start is not None else "the input"
                    raise self.fail(
                        f"{layer.kind}(from = {want if start else 'none'}) must read the model's "
                        f"tensor at {want}, but here it reads {here}", at, kind="shape",
                        hint="pieces of a model follow one another: to = X, then from = X")
                stop = layer.args.get("to")
                before = (layer.kind, stop) if stop is not None else None
            else:
                before = None

    def head(self, kind: str, name: str, at: S.Node, inp: C.Pyramid, ways: int) -> HeadConfig:
        table = self.spec.routers if kind == "router" else self.spec.exits
        sigs = C.ROUTER_SIGNATURES if kind == "router" else C.EXIT_SIGNATURES
        call = table.get(name)
        if call is None:  # only "default" can be undeclared (expand checked the rest)
            hkind, args = C.PAPER_ROUTER if kind == "router" else C.PAPER_EXIT
        else:
            hkind = call.name
            if hkind not in sigs:
                raise self.fail(f"unknown {kind} kind '{hkind}'", call, kind="unknown-name",
                                hint=f"{kind}s: " + ", ".join(sigs))
            args = self.bind(call, sigs[hkind])
        if kind == "router" and args.get("ways") not in (None, ways):
            raise self.fail(
                f"arity mismatch: router '{name}' has {args['ways']} ways but this junction "
                f"has {ways} branches", at, kind="arity",
                hint=f"router '{name}' is declared at line {call.line if call else 0}",
            )
        extra = 1 if (kind == "router" and self.dynamic) else 0
        if kind == "exit" and hkind == "logits":
            c, h, w = inp[-1]
            if (h, w) != (1, 1) or c != self.classes:
                raise self.fail(
                    f"shape mismatch: exit '{name}' = logits reads its column's output as "
                    f"the logits of {self.classes} classes, but the column gives "
                    f"{c}x{h}x{w}", call or at, kind="shape",
                    hint="end the path with the model's own head (its last piece), built "
                         f"for {self.classes} classes")
            return HeadConfig(kind, name, c, (), self.classes, logits=True)
        try:
            features = C.head_features(inp, args.get("pooled"))
        except C.ShapeError as err:
            raise self.fail(f"shape mismatch: {err.message}", call or at, err.hint,
                            kind="shape") from None
        return HeadConfig(kind, name, features + extra, tuple(args.get("hidden", ())),
                          ways if kind == "router" else self.classes, bool(extra),
                          args.get("pooled") or 0, self.kcpt_unit if extra else None)

    def segment(self, seg: Segment, parent: int, way: int) -> None:
        for use in seg.columns:
            parent = self.column(use, parent, way)
            way = -1
        inp = self.nodes[parent].out_shape
        anchor = parent  # name leaves and junctions after the column they follow
        while self.nodes[anchor].kind == "junction":
            anchor = self.nodes[anchor].parent
        after = self.nodes[anchor].id
        end = seg.end
        if isinstance(end, LeafUse):
            head = self.head("exit", end.head, end.at, inp, 0)
            macs, params = head.cost()
            base = f"exit_{after}"
            self.add(NodeInfo(self.unique(base), "exit", end.head, self.pos(end.at), inp,
                              ((self.classes, 1, 1),), macs, params, parent=parent, way=way,
                              head=head))
            return
        assert isinstance(end, JunctionUse)
        ways = len(end.branches)
        head = self.head("router", end.router, end.at, inp, ways)
        macs, params = head.cost()
        base = f"j_{after}"
        j = self.add(NodeInfo(self.unique(base), "junction", end.router, self.pos(end.at), inp,
                              inp, macs, params, parent=parent, way=way, ways=ways, head=head))
        for w, branch in enumerate(end.branches):
            self.segment(branch, j, w)


def _count_uses(seg: Segment, counts: Counter[str]) -> None:
    for use in seg.columns:
        counts[use.template.name] += 1
    if isinstance(seg.end, JunctionUse):
        for b in seg.end.branches:
            _count_uses(b, counts)


def validate(g: RoutingGraph) -> None:
    """Structural invariants, checked with networkx (a failure here is a routec bug)."""
    t = g.graph
    assert nx.is_arborescence(t), "routing graph is not a tree"
    assert set(nx.descendants(t, 0)) | {0} == set(t.nodes), "unreachable node"
    for i, n in enumerate(g.nodes):
        deg = t.out_degree(i)
        if n.kind == "exit":
            assert deg == 0
        elif n.kind == "junction":
            assert deg == n.ways and sorted(t.edges[i, c]["way"] for c in t.successors(i)) \
                == list(range(n.ways))
        else:
            assert deg == 1
    assert all(g.nodes[i].kind == "exit" for i in t.nodes if t.out_degree(i) == 0)


def build_graph(spec: S.NetworkSpec, classes: int | None = None,
                dynamic_kcpt: bool = False, kcpt_unit: float | None = None) -> RoutingGraph:
    """Validate ``spec`` and count its MACs; raises SpecError for any semantic fault.

    ``dynamic_kcpt`` gives every router a k_cpt input, read the paper's way; with
    ``kcpt_unit`` (> 0) too, routers read ``log1p(k_cpt / kcpt_unit)`` at every layer.
    """
    if kcpt_unit is not None and not (dynamic_kcpt and kcpt_unit > 0):
        raise RunError("every-layer k_cpt conditioning needs a dynamic k_cpt and a "
                       f"positive unit, got dynamic_kcpt={dynamic_kcpt}, unit={kcpt_unit}")
    n_classes = classes if classes is not None else spec.classes
    if n_classes is None:
        raise spec.error(f"network '{spec.name}' does not say how many classes it has",
                         S.Node(line=spec.line, column=spec.column), kind="missing-classes",
                         hint="add classes = N to the header, or pass --classes N")
    if not 2 <= n_classes <= 100_000:
        raise SpecError(f"classes must be from 2 to 100000, got {n_classes}", None)
    expansion = expand(spec)
    counts: Counter[str] = Counter()
    _count_uses(expansion.root, counts)
    b = _Builder(spec, n_classes, dynamic_kcpt, counts, kcpt_unit)
    b.models()
    root = b.stem()
    b.segment(expansion.root, root, -1)
    g = RoutingGraph(spec.name, spec.file, spec.source, spec.input_shape, n_classes,
                     dynamic_kcpt, b.g, b.nodes, kcpt_unit)
    validate(g)
    return g
