"""Cost tables: the measured seconds per example of every node of a network, which
``routec train --cost latency --cost-table FILE`` prices computation with.

``routec profile`` (:mod:`routec.engine.profile`) measures and writes them; this
module is the format it writes and training reads: :func:`load_cost_table`,
:func:`node_seconds`, :func:`path_seconds`.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from routec.errors import RoutecError
from routec.tree import RoutingTree

FORMAT = "routec-cost-table"
VERSION = 1


class CostTableError(RoutecError):
    """A cost table that is missing, unreadable or for another network."""


def load_cost_table(path: str | Path) -> dict[str, Any]:
    """A cost table from a file (one-line errors for a missing or malformed file)."""
    p = Path(path)
    try:
        t = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CostTableError(f"{p}: cost table not found",
                             hint="write one with `routec profile SPEC -o FILE`") from None
    except (OSError, ValueError) as err:
        raise CostTableError(f"{p}: not a readable cost table ({err})") from None
    nodes = t.get("nodes") if isinstance(t, dict) else None
    if (not isinstance(nodes, list) or not nodes
            or not all(isinstance(o, dict) and isinstance(o.get("node"), str)
                       and isinstance(o.get("seconds"), (int, float)) and o["seconds"] >= 0
                       for o in nodes)):
        raise CostTableError(f"{p}: not a cost table (needs \"nodes\": a list of "
                             "{\"node\": NAME, \"seconds\": SECONDS PER EXAMPLE})")
    return t


def node_seconds(table: dict[str, Any], nodes: Sequence[str], network: str = "",
                 source: str = "the cost table") -> list[float]:
    """The table's seconds per example for ``nodes``, in their order; a table for other
    nodes is a one-line error naming the difference."""
    have = [o["node"] for o in table["nodes"]]
    if have != list(nodes):
        missing = [n for n in nodes if n not in have]
        extra = [n for n in have if n not in nodes]
        what = (f"lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
                if missing else f"has nodes this network lacks: {', '.join(extra[:4])}"
                f"{' ...' if len(extra) > 4 else ''}" if extra else "lists the nodes in "
                "another order")
        raise CostTableError(
            f"{source} is for network '{table.get('network', '?')}' ({len(have)} nodes) and "
            f"does not match '{network}' ({len(nodes)} nodes): it {what}",
            hint="profile this network with `routec profile SPEC -o FILE`")
    return [float(o["seconds"]) for o in table["nodes"]]


def path_seconds(table: dict[str, Any], net: Any) -> list[float]:
    """Seconds per example of the path to each leaf of ``net`` (a network or its
    routing tree): every node evaluated on it, the table's nodes in the tree's order."""
    tree = RoutingTree.of(net)
    secs = [float(o["seconds"]) for o in table["nodes"]]
    return [sum(secs[i] for i in tree.path(leaf)) for leaf in tree.leaves]
