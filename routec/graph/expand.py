"""Expanding a spec's route into a tree of *uses*: macros inlined, references resolved.

Every use of a column template becomes its own node with its own weights, which
is how the paper's tree (eight copies of columns 4-8) stays a few lines long.
Faults found here: unknown names, template arity, defs that use themselves
(found with networkx), steps after a junction or exit, paths that end in a
column instead of a classifier, and declarations the route never reaches.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import networkx as nx

from routec import spec as S
from routec.errors import SpecError

MAX_NODES = 5_000  # a tree larger than this is surely a runaway def
MAX_DEPTH = 64  # junctions on one path; the generated code nests one block per junction


@dataclass
class ColumnUse:
    template: S.ColumnTemplate
    env: dict[str, S.Value]
    at: S.Reference


@dataclass
class LeafUse:
    head: str
    at: S.Leaf


@dataclass
class JunctionUse:
    router: str
    at: S.Junction
    branches: list["Segment"] = field(default_factory=list)


@dataclass
class Segment:
    """A run of columns ending in a junction or a leaf."""

    columns: list[ColumnUse]
    end: JunctionUse | LeafUse


@dataclass
class Expansion:
    root: Segment
    used_columns: set[str]
    used_routers: set[str]
    used_exits: set[str]


def _suggest(name: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(name, options, n=1)
    return f"did you mean '{close[0]}'?" if close else None


def _macro_refs(chain: S.Chain, macros: dict[str, S.Macro]) -> list[S.Reference]:
    refs: list[S.Reference] = []
    for step in chain.steps:
        if isinstance(step, S.Reference) and step.name in macros:
            refs.append(step)
        elif isinstance(step, S.Junction):
            for b in step.branches:
                refs += _macro_refs(b, macros)
    return refs


def check_macro_cycles(spec: S.NetworkSpec) -> None:
    """A def that uses itself, directly or through others, would expand forever."""
    g = nx.DiGraph()
    where: dict[tuple[str, str], S.Reference] = {}
    for name, macro in spec.macros.items():
        g.add_node(name)
        for ref in _macro_refs(macro.chain, spec.macros):
            g.add_edge(name, ref.name)
            where.setdefault((name, ref.name), ref)
    try:
        cycle = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return
    names = [a for a, _ in cycle] + [cycle[0][0]]
    first = cycle[0]
    raise spec.error(
        f"cycle: def '{first[0]}' uses itself ({' -> '.join(names)})",
        where[(first[0], first[1])], kind="cycle",
        hint="a route is a tree; a def cannot contain itself",
    )


class _Expander:
    def __init__(self, spec: S.NetworkSpec) -> None:
        self.spec = spec
        self.count = 0
        self.depth = 0
        self.used_columns: set[str] = set()
        self.used_macros: set[str] = set()
        self.used_routers: set[str] = set()
        self.used_exits: set[str] = set()

    def _grow(self, at: S.Node) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.spec.error(f"the expanded network has more than {MAX_NODES} nodes", at,
                                  kind="too-large",
                                  hint="defs used inside defs multiply; check for runaway reuse")

    def steps(self, chain: S.Chain) -> list[S.Step]:
        """The chain's steps with defs inlined (recursively)."""
        out: list[S.Step] = []
        for step in chain.steps:
            if isinstance(step, S.Reference) and step.name in self.spec.macros:
                if step.args:
                    raise self.spec.error(f"def '{step.name}' takes no arguments", step.args[0],
                                          kind="arity",
                                          hint="only column templates have parameters")
                self.used_macros.add(step.name)
                out += self.steps(self.spec.macros[step.name].chain)
                if len(out) > MAX_NODES:  # defs of defs double: stop before memory runs out
                    raise self.spec.error(
                        f"the expanded network has more than {MAX_NODES} nodes", step,
                        kind="too-large",
                        hint="defs used inside defs multiply; check for runaway reuse")
            else:
                out.append(step)
        return out

    def segment(self, chain: S.Chain) -> Segment:
        steps = self.steps(chain)
        columns: list[ColumnUse] = []
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            if isinstance(step, S.Reference):
                columns.append(self.column(step))
                if last:
                    raise self.spec.error(
                        f"this path ends at column '{step.name}', which is not a classifier",
                        step, kind="leaf-not-classifier",
                        hint=f"end every path with an exit: {step.name} -> exit",
                    )
                continue
            if not last:
                nxt = steps[i + 1]
                what = "an exit" if isinstance(step, S.Leaf) else "a junction"
                raise self.spec.error(
                    f"nothing can follow {what} in a chain", nxt, kind="after-end",
                    hint="an exit ends a path; after a junction, continue inside its branches",
                )
            if isinstance(step, S.Leaf):
                return Segment(columns, self.leaf(step))
            return Segment(columns, self.junction(step))
        raise AssertionError("the grammar never yields an empty chain")

    def column(self, ref: S.Reference) -> ColumnUse:
        template = self.spec.columns.get(ref.name)
        if template is None:
            known = sorted([*self.spec.columns, *self.spec.macros])
            raise self.spec.error(f"unknown column or def '{ref.name}'", ref,
                                  kind="unknown-name",
                                  hint=_suggest(ref.name, known)
                                  or f"known: {', '.join(known) or 'none defined'}")
        if len(ref.args) != len(template.params):
            raise self.spec.error(
                f"column '{template.name}' takes {len(template.params)} argument"
                f"{'s' if len(template.params) != 1 else ''}, got {len(ref.args)}",
                ref, kind="arity",
                hint=f"it is declared at line {template.line} as "
                     f"{template.name}({', '.join(template.params)})",
            )
        env: dict[str, S.Value] = {}
        positional = [a for a in ref.args if a.keyword is None]
        bound: dict[str, S.Argument] = dict(zip(template.params, positional))
        for arg in ref.args[len(positional):]:  # keywords, in any order (the parser
            if arg.keyword not in template.params:  # put positionals first)
                raise self.spec.error(f"column '{template.name}' has no parameter "
                                      f"'{arg.keyword}'", arg, kind="bad-argument",
                                      hint=f"its parameters: {', '.join(template.params)}")
            if arg.keyword in bound:
                raise self.spec.error(f"parameter '{arg.keyword}' of column '{template.name}' "
                                      "given twice", arg, kind="duplicate",
                                      hint=f"{template.name}({', '.join(template.params)})")
            bound[arg.keyword] = arg
        for param in template.params:
            arg = bound[param]  # the count matched, and no name repeats, so all are bound
            if isinstance(arg.value, S.Name):
                raise self.spec.error(f"'{arg.value.value}' is not a value", arg.value,
                                      kind="unknown-name",
                                      hint="template arguments in a route are numbers or lists")
            env[param] = arg.value
        self.used_columns.add(template.name)
        self._grow(ref)
        return ColumnUse(template, env, ref)

    def leaf(self, leaf: S.Leaf) -> LeafUse:
        if leaf.head != "default" and leaf.head not in self.spec.exits:
            raise self.spec.error(f"unknown exit head '{leaf.head}'", leaf, kind="unknown-name",
                                  hint=_suggest(leaf.head, list(self.spec.exits))
                                  or "declare it: exit NAME = linear")
        self.used_exits.add(leaf.head)
        self._grow(leaf)
        return LeafUse(leaf.head, leaf)

    def junction(self, j: S.Junction) -> JunctionUse:
        if len(j.branches) < 2:
            raise self.spec.error(f"a junction needs at least 2 branches, got {len(j.branches)}",
                                  j, kind="arity",
                                  hint="write either { exit | c2 -> exit }, or drop 'either'")
        if j.router != "default" and j.router not in self.spec.routers:
            raise self.spec.error(f"unknown router '{j.router}'", j, kind="unknown-name",
                                  hint=_suggest(j.router, list(self.spec.routers))
                                  or "declare it: router NAME = mlp(hidden = [16, 16])")
        self.used_routers.add(j.router)
        self._grow(j)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.spec.error(f"more than {MAX_DEPTH} junctions on one path", j,
                                  kind="too-deep",
                                  hint="a path of the routed network may pass at most "
                                       f"{MAX_DEPTH} junctions")
        if len(j.branches) > MAX_NODES:  # say which limit, where, before expanding them
            raise self.spec.error(f"this junction has {len(j.branches):,} branches, but the "
                                  f"expanded network may have at most {MAX_NODES:,} nodes", j,
                                  kind="too-large",
                                  hint=f"a junction's branches are nodes of the network; use "
                                       f"fewer than {MAX_NODES:,} in all")
        use = JunctionUse(j.router, j)
        use.branches = [self.segment(b) for b in j.branches]
        self.depth -= 1
        return use


def expand(spec: S.NetworkSpec) -> Expansion:
    """Resolve the route into a tree of uses; raises SpecError on any fault."""
    check_macro_cycles(spec)
    ex = _Expander(spec)
    try:
        root = ex.segment(spec.route)
    except RecursionError:
        raise spec.error("the route is nested too deeply", spec.route, kind="too-deep",
                         hint="nest fewer defs inside defs") from None
    unused = [
        *(c for n, c in spec.columns.items() if n not in ex.used_columns),
        *(m for n, m in spec.macros.items() if n not in ex.used_macros),
    ]
    unused_heads = [
        *(("router", n, c) for n, c in spec.routers.items()
          if n not in ex.used_routers and n != "default"),
        *(("exit", n, c) for n, c in spec.exits.items()
          if n not in ex.used_exits and n != "default"),
    ]
    if unused:
        first = min(unused, key=lambda d: (d.line, d.column))
        kind = "column" if isinstance(first, S.ColumnTemplate) else "def"
        raise spec.error(f"unreachable: {kind} '{first.name}' is never used by the route",
                         first, kind="unreachable",
                         hint="use it in the route or remove it")
    if unused_heads:
        what, name, call = min(unused_heads, key=lambda t: (t[2].line, t[2].column))
        raise spec.error(f"unreachable: {what} head '{name}' is never used by the route",
                         call, kind="unreachable", hint="use it in the route or remove it")
    return Expansion(root, ex.used_columns, ex.used_routers, ex.used_exits)
