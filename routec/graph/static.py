"""Static baselines: the first n columns of a routed network, with one classifier.

The paper compares every routed network with "networks composed of the first n
columns of the architecture"; this derives them from the routed spec itself so
baselines can never drift from the network they are compared with.
"""
from __future__ import annotations

from routec import spec as S
from routec.graph.expand import ColumnUse, JunctionUse, LeafUse, Segment, expand


def _depth(seg: Segment) -> int:
    if isinstance(seg.end, JunctionUse):
        return len(seg.columns) + max(_depth(b) for b in seg.end.branches)
    return len(seg.columns)


def _spine(seg: Segment) -> list[tuple[ColumnUse, str | None]]:
    """Columns along the deepest path (leftmost on ties), each with the exit head that
    the routed network offers right after it (None when it offers none)."""
    out: list[tuple[ColumnUse, str | None]] = []
    while True:
        out += [(c, None) for c in seg.columns]
        end = seg.end
        if isinstance(end, LeafUse):
            if out:
                out[-1] = (out[-1][0], end.head)
            return out
        leaves = [b.end.head for b in end.branches
                  if not b.columns and isinstance(b.end, LeafUse)]
        if out and leaves:
            out[-1] = (out[-1][0], leaves[0])
        seg = max(end.branches, key=_depth)


def static_depth(spec: S.NetworkSpec) -> int:
    """How many columns the deepest path of ``spec`` has (the largest valid n)."""
    return len(_spine(expand(spec).root))


def static_prefix(spec: S.NetworkSpec, n: int) -> S.NetworkSpec:
    """A spec of the first ``n`` columns of ``spec``'s deepest path and one exit."""
    spine = _spine(expand(spec).root)
    if not 1 <= n <= len(spine):
        raise spec.error(f"--static {n}: the deepest path of '{spec.name}' has "
                         f"{len(spine)} column{'s' if len(spine) != 1 else ''}", spec.route,
                         kind="static",
                         hint=f"choose n from 1 to {len(spine)}")
    chosen = spine[:n]
    head = chosen[-1][1] or "default"
    at = chosen[-1][0].at
    steps: list[S.Step] = [c.at for c, _ in chosen]
    steps.append(S.Leaf(line=at.line, column=at.column, head=head))
    route = S.Chain(line=spec.route.line, column=spec.route.column, steps=tuple(steps))
    used = {c.template.name for c, _ in chosen}
    return spec.model_copy(update={
        "name": f"{spec.name}_static{n}",
        "route": route,
        "macros": {},
        "routers": {},
        "columns": {k: v for k, v in spec.columns.items() if k in used},
        "exits": {k: v for k, v in spec.exits.items() if k == head},
    })
