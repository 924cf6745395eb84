"""The routing tree as plain tables, and its division into segments.

Torch-free: the deployment runner and the inference engines share it. A *segment*
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
class Topology:
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
    children: tuple[tuple[int, ...], ...] = field(init=False)
    leaf_macs: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        kids: list[list[int]] = [[] for _ in self.nodes]
        for i, p in enumerate(self.parent):
            if p >= 0:
                kids[p].append(i)
        object.__setattr__(self, "children",
                           tuple(tuple(sorted(k, key=lambda c: self.way[c])) for k in kids))
        sums = []
        for leaf in self.leaves:
            total, i = 0, leaf
            while i >= 0:
                total += self.macs[i]
                i = self.parent[i]
            sums.append(total)
        object.__setattr__(self, "leaf_macs", tuple(sums))

    @classmethod
    def of(cls, net: Any) -> "Topology":
        """From a generated network's class tables (or anything with the same names)."""
        return cls(name=str(net.NAME), nodes=tuple(net.NODES), kinds=tuple(net.KINDS),
                   parent=tuple(int(v) for v in net.PARENT), way=tuple(int(v) for v in net.WAY),
                   macs=tuple(int(v) for v in net.MACS), leaves=tuple(net.LEAVES),
                   junctions=tuple(net.JUNCTIONS), ways=tuple(net.WAYS),
                   classes=int(net.CLASSES),
                   input_shape=tuple(net.INPUT_SHAPE),  # type: ignore[arg-type]
                   dynamic_kcpt=bool(net.DYNAMIC_KCPT))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "nodes": list(self.nodes), "kinds": list(self.kinds),
                "parent": list(self.parent), "way": list(self.way), "macs": list(self.macs),
                "leaves": list(self.leaves), "junctions": list(self.junctions),
                "ways": list(self.ways), "classes": self.classes,
                "input_shape": list(self.input_shape), "dynamic_kcpt": self.dynamic_kcpt}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Topology":
        return cls(name=d["name"], nodes=tuple(d["nodes"]), kinds=tuple(d["kinds"]),
                   parent=tuple(d["parent"]), way=tuple(d["way"]), macs=tuple(d["macs"]),
                   leaves=tuple(d["leaves"]), junctions=tuple(d["junctions"]),
                   ways=tuple(d["ways"]), classes=int(d["classes"]),
                   input_shape=tuple(d["input_shape"]),  # type: ignore[arg-type]
                   dynamic_kcpt=bool(d["dynamic_kcpt"]))

    @property
    def root(self) -> int:
        return self.parent.index(-1)

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
