"""Structural checks of an export's manifest, made before any of it is used.

The loader walks parent links, indexes tables by the numbers it finds and opens the
files named in it; a manifest edited by hand (or damaged) must fail here with one
line naming the fault, never hang on a parent cycle, index out of range or read a
file outside the export directory.
"""
from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from routec.errors import RoutecError

FORMAT = "routec-routed-onnx"
VERSION = 2
MANIFEST = "manifest.json"
KINDS = ("stem", "column", "junction", "exit")
HEADS = {"junction": "scores", "exit": "logits"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LEVEL = re.compile(r"[oh](0|[1-9][0-9]*)")


class ManifestError(RoutecError):
    """An export directory whose manifest is malformed or disagrees with its files."""


def need(cond: bool, where: Path | str, message: str) -> None:
    """Raise a one-line ManifestError about ``where`` unless ``cond``."""
    if not cond:
        raise ManifestError(f"{where}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(net: dict[str, Any], key: str, where: Path) -> list[int]:
    """``net[key]`` as a list of integers, or a ManifestError naming the key."""
    v = net.get(key)
    need(isinstance(v, list) and all(_is_int(x) for x in v), where,
         f"network.{key} must be a list of integers")
    return v  # type: ignore[return-value]


def _str_list(v: Any, where: Path, what: str) -> list[str]:
    need(isinstance(v, list) and all(isinstance(x, str) for x in v), where,
         f"{what} must be a list of strings")
    return v  # type: ignore[no-any-return]


def check_network(net: Any, where: Path) -> None:
    """The routing tree: tables of one length, indices in range, one root, no cycle."""
    need(isinstance(net, dict), where, "'network' must be an object")
    need(isinstance(net.get("name"), str), where, "network.name must be a string")
    nodes = _str_list(net.get("nodes"), where, "network.nodes")
    kinds = _str_list(net.get("kinds"), where, "network.kinds")
    n = len(nodes)
    need(n > 0 and len(set(nodes)) == n, where, "network.nodes must be non-empty and unique")
    parent, way, macs = (_int_list(net, k, where) for k in ("parent", "way", "macs"))
    for key, table in (("kinds", kinds), ("parent", parent), ("way", way), ("macs", macs)):
        need(len(table) == n, where, f"network.{key} has {len(table)} entries for {n} nodes")
    for k in kinds:
        need(k in KINDS, where, f"unknown node kind {k!r} (expected one of {', '.join(KINDS)})")
    for i, v in enumerate(macs):
        need(v >= 0, where, f"node {i} ('{nodes[i]}') has negative MACs ({v})")
    for i, p in enumerate(parent):
        need(-1 <= p < n and p != i, where,
             f"node {i} ('{nodes[i]}') has parent {p}, not another node's index in [-1, {n})")
    roots = [i for i, p in enumerate(parent) if p == -1]
    need(len(roots) == 1 and kinds[roots[0]] == "stem" and kinds.count("stem") == 1, where,
         "the network needs exactly one stem, at the root (parent -1)")
    _check_acyclic(parent, where)
    _check_children(net, kinds, parent, way, where)


def _check_acyclic(parent: list[int], where: Path) -> None:
    """Every parent chain reaches the root: a cycle would make path walks loop forever."""
    state = [0] * len(parent)  # 0 unseen, 1 on the current chain, 2 reaches the root
    for start in range(len(parent)):
        chain, i = [], start
        while i >= 0 and state[i] == 0:
            state[i] = 1
            chain.append(i)
            i = parent[i]
        need(i < 0 or state[i] == 2, where,
             f"parent links form a cycle through node {i}: the tree has no path from it to the stem")
        for j in chain:
            state[j] = 2


def _check_children(net: dict[str, Any], kinds: list[str], parent: list[int], way: list[int],
                    where: Path) -> None:
    """Stems and columns have one child, junctions one per way, exits none; tables agree."""
    n = len(kinds)
    kids: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent):
        if p >= 0:
            kids[p].append(i)
    leaves, junctions, ways = (_int_list(net, k, where) for k in ("leaves", "junctions", "ways"))
    need(sorted(leaves) == [i for i in range(n) if kinds[i] == "exit"] and
         len(set(leaves)) == len(leaves), where, "network.leaves must list every exit node once")
    need(sorted(junctions) == [i for i in range(n) if kinds[i] == "junction"] and
         len(set(junctions)) == len(junctions), where,
         "network.junctions must list every junction node once")
    need(len(ways) == len(junctions), where,
         f"network.ways has {len(ways)} entries for {len(junctions)} junctions")
    for j, node in enumerate(junctions):
        got = sorted(way[c] for c in kids[node])
        need(2 <= ways[j] <= n and got == list(range(ways[j])), where,
             f"junction {node} has {ways[j]} ways but children on ways {got}")
    for i, k in enumerate(kinds):
        if k in ("stem", "column"):
            need(len(kids[i]) == 1, where, f"{k} node {i} has {len(kids[i])} children, not 1")
        elif k == "exit":
            need(not kids[i], where, f"exit node {i} has children")
    classes, shape = net.get("classes"), net.get("input_shape")
    need(_is_int(classes) and classes >= 1, where, "network.classes must be a positive integer")
    need(isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v >= 1 for v in shape),
         where, "network.input_shape must be three positive integers (C, H, W)")
    need(isinstance(net.get("dynamic_kcpt"), bool), where, "network.dynamic_kcpt must be true or false")


def check_summary(m: dict[str, Any], where: Path) -> None:
    """The manifest's derived lists (exit names, path MACs, class names) match its network."""
    net = m["network"]
    exits = [net["nodes"][i] for i in net["leaves"]]
    need(m.get("exits") == exits, where, f"'exits' is {m.get('exits')!r}; the network's exits are {exits}")
    names = m.get("class_names")
    need(isinstance(names, list) and all(isinstance(c, str) for c in names), where,
         "'class_names' must be a list of strings")
    need(len(names) == net["classes"], where,
         f"{len(names)} class names for a network with {net['classes']} classes")
    sums = []
    for leaf in net["leaves"]:
        total, i = 0, leaf
        while i >= 0:
            total += net["macs"][i]
            i = net["parent"][i]
        sums.append(total)
    pm = m.get("path_macs")
    need(isinstance(pm, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) and v >= 0 for v in pm), where,
         "'path_macs' must be a list of non-negative finite numbers")
    need(pm == sums, where, f"'path_macs' {pm} differ from the sums of node MACs {sums}")


def safe_file(directory: Path, rel: Any, where: Path) -> Path:
    """The node file ``rel`` names, refused unless it lies inside ``directory``.

    A relative POSIX path without ``..``; after resolving symlinks it must still be
    below the export directory.
    """
    need(isinstance(rel, str) and rel != "", where, f"node file {rel!r} is not a path")
    p = PurePosixPath(rel)
    need(not p.is_absolute() and not PureWindowsPath(rel).anchor and "\\" not in rel, where,
         f"node file {rel!r} is not a relative path inside the export directory")
    need(".." not in p.parts, where, f"node file {rel!r} leaves the export directory ('..')")
    f = directory / p
    try:
        inside = f.resolve().is_relative_to(directory.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        raise ManifestError(f"{where}: node file {rel!r} cannot be resolved (a symlink loop)") \
            from None
    need(inside, where, f"node file {rel!r} resolves outside the export directory (a symlink)")
    return f


def check_node_records(m: dict[str, Any], directory: Path, where: Path
                       ) -> tuple[dict[int, dict[str, Any]], dict[int, Path]]:
    """The 'nodes' list: one well-formed record per network node, by index, and the
    file each names (checked to lie inside ``directory``)."""
    net = m["network"]
    recs = m.get("nodes")
    need(isinstance(recs, list) and all(isinstance(r, dict) for r in recs), where,
         "'nodes' must be a list of objects")
    idx = [r.get("index") for r in recs]
    n = len(net["nodes"])
    need(all(_is_int(i) for i in idx) and sorted(idx) == list(range(n)), where,
         f"lists nodes {sorted(idx, key=str)}, the network has {n}")
    records = {int(r["index"]): r for r in recs}
    paths = {}
    for i, r in records.items():
        need(r.get("id") == net["nodes"][i] and r.get("kind") == net["kinds"][i], where,
             f"node {i} is {r.get('id')!r} ({r.get('kind')}) in 'nodes' but "
             f"{net['nodes'][i]!r} ({net['kinds'][i]}) in 'network'")
        need(r.get("macs") == net["macs"][i], where,
             f"node {i} has {r.get('macs')!r} MACs in 'nodes' but {net['macs'][i]} in 'network'")
        need(isinstance(r.get("sha256"), str) and bool(_SHA256.fullmatch(r["sha256"])), where,
             f"node {i} has no sha256 (64 lowercase hex digits)")
        paths[i] = safe_file(directory, r.get("file"), where)
        _check_names(net, i, _str_list(r.get("inputs"), where, f"node {i}'s inputs"),
                     _str_list(r.get("outputs"), where, f"node {i}'s outputs"), where)
    _check_levels(net, records, where)
    return records, paths


def _check_names(net: dict[str, Any], i: int, inputs: list[str], outputs: list[str],
                 where: Path) -> None:
    """Input/output names of the form the runner feeds and splits."""
    kind = net["kinds"][i]
    if kind == "stem":
        need(inputs == ["x"], where, f"the stem must read 'x', not {inputs}")
    else:
        levels = inputs[:-1] if inputs[-1:] == ["k_cpt"] else inputs
        need(all(_LEVEL.fullmatch(s) and s[0] == "h" for s in levels), where,
             f"node {i} reads {inputs}; expected h<level> inputs (and k_cpt last)")
        need("k_cpt" not in inputs or (kind == "junction" and net["dynamic_kcpt"]), where,
             f"node {i} ({kind}) reads k_cpt, which only a dynamic network's junctions do")
    head = HEADS.get(kind)
    body = outputs[:-1] if head else outputs
    need(head is None or outputs[-1:] == [head], where,
         f"node {i} ({kind}) must output {head!r} last, not {outputs}")
    need(all(_LEVEL.fullmatch(s) and s[0] == "o" for s in body), where,
         f"node {i} outputs {outputs}; expected o<level> outputs")
    need(kind in ("stem", "column") or not body, where,
         f"node {i} ({kind}) outputs pyramid levels; only stems and columns do")


def _check_levels(net: dict[str, Any], records: dict[int, dict[str, Any]], where: Path) -> None:
    """Each node reads only pyramid levels that its nearest stem or column outputs."""
    kinds, parent = net["kinds"], net["parent"]
    for i, r in records.items():
        if kinds[i] == "stem":
            continue
        a = parent[i]
        while kinds[a] not in ("stem", "column"):
            a = parent[a]
        given = {int(s[1:]) for s in records[a]["outputs"] if s.startswith("o")}
        read = {int(s[1:]) for s in r["inputs"] if s.startswith("h")}
        need(read <= given, where, f"node {i} reads levels {sorted(read - given)} that node {a} "
                                   f"does not output")


def check_head_shapes(net: dict[str, Any], i: int, sess: Any, where: Path) -> None:
    """An exit's logits have one column per class, a junction's scores one per way; the
    stem takes the recorded image shape."""
    kind = net["kinds"][i]
    if kind == "stem":
        (x,) = sess.get_inputs()
        want: list[Any] = [None, *net["input_shape"]]
        _need_dims(x.shape, want, where, "input image")
    head = HEADS.get(kind)
    if head is None:
        return
    out = sess.get_outputs()[-1]
    cols = (net["classes"] if kind == "exit"
            else net["ways"][net["junctions"].index(i)])
    _need_dims(out.shape, [None, cols], where,
               "logits (one per class)" if kind == "exit" else "scores (one per way)")


def _need_dims(got: Any, want: list[Any], where: Path, what: str) -> None:
    """A graph's declared shape agrees with ``want`` (None: any size, e.g. the batch axis)."""
    ok = isinstance(got, list) and len(got) == len(want) and all(
        w is None or g == w for g, w in zip(got, want))
    shown = "×".join("N" if w is None else str(w) for w in want)
    need(ok, where, f"{what}: the graph declares shape {got}, the manifest implies {shown}")
