"""The routing tree: routec's one description of a network's nodes and their ways.

Torch-free, at the bottom of the package, so every stage reads the same type: the
graph builds it (:meth:`routec.graph.build.RoutingGraph.tree`), every generated
class carries it as ``TREE``, training indexes it (:mod:`routec.train.tree` adds
only tensors), and the engines and the torch-free runner divide it into segments.
Nodes are in depth-first order, so a parent always comes before its children.

A *segment*
is what one compiled graph computes: an optional run of pyramid transforms (the
stem and columns) followed by an optional head (a junction's router or an exit's
classifier). With ``merge=True`` a segment runs from a junction's child (or the
stem) through every column up to the next junction or exit, so a static chain is
a single segment; with ``merge=False`` every node is its own segment, which is
how ``routec export`` writes one file per node.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Segment:
    index: int
    transforms: tuple[int, ...]   # stem/column node indices, in order
    head: int                     # junction or exit node index; -1 if none
    end: str                      # "exit", "junction" or "column"
    leaf: int = -1                # leaf index when end == "exit"
    junction: int = -1            # junction index when end == "junction"
    next: tuple[int, ...] = ()    # child segment per way (junction) or the one that follows

    @property
    def nodes(self) -> tuple[int, ...]:
        return self.transforms + ((self.head,) if self.head >= 0 else ())

    @property
    def emits_levels(self) -> bool:
        """Whether the segment outputs a pyramid (its children read it)."""
        return bool(self.transforms) and self.end != "exit"


@dataclass(frozen=True)
class RoutingTree:
    """Nodes (stem, columns, junctions, exits) with their parents, ways and MACs.

    ``leaves`` are the exit nodes in leaf order (``leaf`` k is node ``leaves[k]``),
    ``junctions`` the junction nodes in junction order, ``ways[j]`` junction j's
    number of ways; ``way[i]`` is which way of its parent junction node i hangs on.
    """

    name: str
    nodes: tuple[str, ...]
    kinds: tuple[str, ...]
    parent: tuple[int, ...]
    way: tuple[int, ...]
    macs: tuple[int, ...]
    leaves: tuple[int, ...]
    junctions: tuple[int, ...]
    ways: tuple[int, ...]
    classes: int
    input_shape: tuple[int, int, int]
    dynamic_kcpt: bool
    children: tuple[tuple[int, ...], ...] = field(init=False)  # per node, ordered by way
    cumulative_macs: tuple[int, ...] = field(init=False)  # root to each node, inclusive
    leaf_macs: tuple[int, ...] = field(init=False)  # the path to each leaf, in leaf order
    leaves_under: tuple[int, ...] = field(init=False)  # per node

    def __post_init__(self) -> None:
        kids: list[list[int]] = [[] for _ in self.nodes]
        for i, p in enumerate(self.parent):
            if p >= 0:
                kids[p].append(i)
        object.__setattr__(self, "children",
                           tuple(tuple(sorted(k, key=lambda c: self.way[c])) for k in kids))
        cum: list[int] = []
        for i, p in enumerate(self.parent):  # parents come before children
            cum.append(self.macs[i] + (cum[p] if p >= 0 else 0))
        object.__setattr__(self, "cumulative_macs", tuple(cum))
        object.__setattr__(self, "leaf_macs", tuple(cum[leaf] for leaf in self.leaves))
        under = [0] * len(self.nodes)
        for i in reversed(range(len(self.nodes))):
            under[i] = 1 if self.kinds[i] == "exit" else sum(under[c] for c in self.children[i])
        object.__setattr__(self, "leaves_under", tuple(under))

    @classmethod
    def of(cls, net: Any) -> "RoutingTree":
        """The tree of a generated network (its class's ``TREE``), of an inference
        engine (its network's), or the tree itself."""
        if isinstance(net, RoutingTree):
            return net
        tree = getattr(net, "TREE", None)
        if tree is None and getattr(net, "net", None) is not None:
            tree = getattr(net.net, "TREE", None)  # an inference engine wrapping the network
        if not isinstance(tree, RoutingTree):
            raise TypeError(f"{type(net).__name__} carries no routing tree (TREE)")
        return tree

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "nodes": list(self.nodes), "kinds": list(self.kinds),
                "parent": list(self.parent), "way": list(self.way), "macs": list(self.macs),
                "leaves": list(self.leaves), "junctions": list(self.junctions),
                "ways": list(self.ways), "classes": self.classes,
                "input_shape": list(self.input_shape), "dynamic_kcpt": self.dynamic_kcpt}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RoutingTree":
        return cls(name=d["name"], nodes=tuple(d["nodes"]), kinds=tuple(d["kinds"]),
                   parent=tuple(d["parent"]), way=tuple(d["way"]), macs=tuple(d["macs"]),
                   leaves=tuple(d["leaves"]), junctions=tuple(d["junctions"]),
                   ways=tuple(d["ways"]), classes=int(d["classes"]),
                   input_shape=tuple(d["input_shape"]),  # type: ignore[arg-type]
                   dynamic_kcpt=bool(d["dynamic_kcpt"]))

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def root(self) -> int:
        return self.parent.index(-1)

    def path(self, node: int) -> list[int]:
        """Node indices from the root to ``node``."""
        out = [node]
        while self.parent[out[-1]] >= 0:
            out.append(self.parent[out[-1]])
        return out[::-1]

    def path_macs(self) -> list[int]:
        """MACs of every root-to-leaf path, in leaf order."""
        return list(self.leaf_macs)

    def mean_macs(self, leaf_fractions: "list[float]") -> float:
        """Expected MACs per example when fraction f_k of examples leaves at leaf k."""
        return sum(f * m for f, m in zip(leaf_fractions, self.leaf_macs))

    def floors(self, junction: int, epsilon: float) -> list[float]:
        """Per-way probability floors at ``junction`` (a node index): ε times the share
        of the tree's leaves under each way, so every path keeps a gradient."""
        total = self.leaves_under[self.root]
        return [epsilon * self.leaves_under[c] / total for c in self.children[junction]]

    def anchor(self, i: int) -> int:
        """The nearest ancestor-or-self whose output is a pyramid (stem or column)."""
        while self.kinds[i] not in ("stem", "column"):
            i = self.parent[i]
        return i

    def segments(self, merge: bool = True) -> list[Segment]:
        """Segments in depth-first order; segment 0 starts at the stem."""
        out: list[Segment | None] = []
        leaf_of = {n: k for k, n in enumerate(self.leaves)}
        junction_of = {n: k for k, n in enumerate(self.junctions)}

        def build(start: int) -> int:
            index = len(out)
            out.append(None)
            transforms: list[int] = []
            i = start
            while self.kinds[i] in ("stem", "column"):
                transforms.append(i)
                (nxt,) = self.children[i]
                if not merge:
                    seg = Segment(index, tuple(transforms), -1, "column")
                    out[index] = Segment(index, seg.transforms, -1, "column", next=(build(nxt),))
                    return index
                i = nxt
            if self.kinds[i] == "exit":
                out[index] = Segment(index, tuple(transforms), i, "exit", leaf=leaf_of[i])
            else:
                kids = tuple(build(c) for c in self.children[i])
                out[index] = Segment(index, tuple(transforms), i, "junction",
                                     junction=junction_of[i], next=kids)
            return index

        build(self.root)
        return [s for s in out if s is not None]

    def way_to_leaf(self) -> list[list[int]]:
        """table[j][leaf] = the way junction j takes towards that leaf (-1: not below j)."""
        table = [[-1] * len(self.leaves) for _ in self.junctions]
        for k, leaf in enumerate(self.leaves):
            child, i = leaf, self.parent[leaf]
            while i >= 0:
                if self.kinds[i] == "junction":
                    table[self.junctions.index(i)][k] = self.way[child]
                child, i = i, self.parent[i]
        return table


def level_needs(segments: list[Segment], reads: dict[int, "set[int] | None"]
                ) -> tuple[dict[int, "tuple[int, ...] | None"], dict[int, "set[int] | None"]]:
    """(keep, needs) from what each segment's graph reads of its input pyramid.

    ``needs[s]``: the levels segment ``s`` and everything it passes its input on to
    read (a segment without transforms passes its input to its children); None means
    all. ``keep[s]``: the levels a segment that emits a pyramid must output.
    """
    memo: dict[int, set[int] | None] = {}

    def needs(s: int) -> set[int] | None:
        if s in memo:
            return memo[s]
        seg = segments[s]
        own = reads.get(s)
        out: set[int] | None = None if own is None else set(own)
        if out is not None and not seg.transforms:
            for c in seg.next:
                more = needs(c)
                if more is None:
                    out = None
                    break
                out |= more
        memo[s] = out
        return out

    keep: dict[int, tuple[int, ...] | None] = {}
    for seg in segments:
        if not seg.emits_levels:
            continue
        union: set[int] | None = set()
        for c in seg.next:
            more = needs(c)
            union = None if more is None or union is None else union | more
        keep[seg.index] = None if union is None else tuple(sorted(union))
    for seg in segments:
        needs(seg.index)
    return keep, memo
