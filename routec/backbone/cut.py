"""Cut a trained PyTorch model into consecutive pieces at named points, weights kept.

The model is traced once with torch.fx (as torchvision's ``create_feature_extractor``
does). A *cut point* is a place in the traced program where exactly one tensor is
alive: everything after it reads that tensor and the model's own parameters, nothing
else. After a residual block that holds; inside one it does not (the block's input
is still waiting for the addition), and such a cut is refused with the list of the
cuts that are valid.

A cut is named like the module whose output it takes (``layer2``, ``blocks.5``),
or like a traced node (``add_3``): the point after the last operation that belongs
to it. Pieces are ``GraphModule``s that share the model's parameter objects, so
loading weights into the model (before or after cutting) loads them into the pieces.

Submodules that torch.fx cannot trace (data-dependent control flow, calls into
C extensions) are kept whole by naming them as ``leaves``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import fx, nn

from routec.errors import RoutecError


T = TypeVar("T")


class CutError(RoutecError):
    """A model that cannot be traced, or a cut that is not a cut point."""


class _LeafTracer(fx.Tracer):
    def __init__(self, leaves: frozenset[str]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, leaves: tuple[str, ...] = (), *, name: str = "model"
          ) -> fx.GraphModule:
    """``model`` as one fx GraphModule; a one-line error says how to get past a failure."""
    known = {n for n, _ in model.named_modules()}
    unknown = [leaf for leaf in leaves if leaf not in known]
    if unknown:
        raise CutError(f"{name}: no submodule named {', '.join(unknown)} to keep as a leaf")
    tracer = _LeafTracer(frozenset(leaves))
    try:
        graph = tracer.trace(model)
    except Exception as err:  # noqa: BLE001 - fx raises many kinds; all mean "untraceable"
        where = _failing_module(err, {id(m): n for n, m in model.named_modules() if n})
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CutError(
            f"{name} cannot be traced by torch.fx ({type(err).__name__}: {first[:160]})",
            hint="keep the untraceable submodule whole as a leaf: "
                 + (f"leaves = [\"{where}\"]" if where else "leaves = [\"NAME\", ...]")
                 + " (or --leaf NAME)") from None
    return fx.GraphModule(tracer.root, graph, model.__class__.__name__)


def _failing_module(err: BaseException, names: dict[int, str]) -> str | None:
    """The innermost named submodule being traced when ``err`` was raised."""
    tb = err.__traceback__
    found = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if tb.tb_frame.f_code.co_name == "forward" and id(owner) in names:
            found = names[id(owner)]
        tb = tb.tb_next
    return found


@dataclass(frozen=True)
class CutPoint:
    """A valid cut: its name, the traced node whose output crosses it, its position."""

    name: str
    node: str
    position: int


def _activations(gm: fx.GraphModule) -> list[fx.Node]:
    """The nodes that compute values (placeholders and operations), in program order."""
    return [n for n in gm.graph.nodes if n.op not in ("get_attr", "output")]


def _last_reads(nodes: list[fx.Node]) -> dict[fx.Node, int]:
    """For every value, the position of the last node that reads it (len: the output)."""
    position = {n: i for i, n in enumerate(nodes)}
    last: dict[fx.Node, int] = {}
    for n in nodes[0].graph.nodes:
        if n.op == "get_attr":
            continue
        at = position.get(n, len(nodes))  # the output node reads after everything
        for a in n.all_input_nodes:
            if a.op != "get_attr":
                last[a] = max(last.get(a, -1), at)
    return last


def _live_after(nodes: list[fx.Node], i: int,
                last: dict[fx.Node, int] | None = None) -> set[fx.Node]:
    """The values made at or before position ``i`` that something after it still reads."""
    last = _last_reads(nodes) if last is None else last
    return {n for n in nodes[:i + 1] if last.get(n, -1) > i}


def _owner_names(node: fx.Node) -> list[str]:
    """Module names this node belongs to (outermost first), and its own node name."""
    stack = node.meta.get("nn_module_stack") or {}
    names = [k.split("@")[0] for k in stack]
    if node.op == "call_module":
        names.append(str(node.target))
    return names + [node.name]


def cut_points(gm: fx.GraphModule) -> list[CutPoint]:
    """Every valid cut, named by the outermost module that ends there (else the node)."""
    nodes = _activations(gm)
    last = _last_reads(nodes)
    later_owners_at: list[set[str]] = [set() for _ in nodes]
    acc: set[str] = set()
    for i in range(len(nodes) - 1, -1, -1):
        later_owners_at[i] = set(acc)
        acc.update(_owner_names(nodes[i]))
    points = []
    for i, node in enumerate(nodes[1:-1], start=1):
        if _live_after(nodes, i, last) != {node}:
            continue
        later_owners = later_owners_at[i]
        ends_here = [m for m in _owner_names(node) if m not in later_owners]
        points.append(CutPoint(ends_here[0] if ends_here else node.name, node.name, i))
    return points


def resolve_cut(gm: fx.GraphModule, name: str, *, model: str = "model") -> CutPoint:
    """The cut named ``name``: after the last operation that belongs to it."""
    nodes = _activations(gm)
    owned = [i for i, n in enumerate(nodes) if name in _owner_names(n)]
    valid = cut_points(gm)
    listing = ", ".join(p.name for p in valid) or "none"
    if not owned:
        raise CutError(f"{model} has no module or traced node named '{name}'; "
                       f"valid cut points: {listing}")
    i = max(owned)
    if i >= len(nodes) - 1:
        raise CutError(f"'{name}' ends {model}: there is nothing after it to cut off")
    live = _live_after(nodes, i)
    if live != {nodes[i]}:
        alive = ", ".join(sorted(n.name for n in live))
        raise CutError(f"cannot cut {model} after '{name}': {len(live)} tensors are alive "
                       f"there ({alive}), as inside a residual block; valid cut points: "
                       f"{listing}")
    return CutPoint(name, nodes[i].name, i)


def split(gm: fx.GraphModule, cuts: list[CutPoint]) -> list[fx.GraphModule]:
    """``len(cuts) + 1`` consecutive pieces; piece k maps cut k-1's tensor to cut k's.

    The first piece takes the model's inputs, the last returns the model's output."""
    positions = [c.position for c in cuts]
    if positions != sorted(set(positions)):
        raise CutError("cut points must be distinct and in the order the model runs them: "
                       + ", ".join(c.name for c in cuts))
    nodes = _activations(gm)
    bounds = [-1, *positions, len(nodes) - 1]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    pieces = []
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        graph = fx.Graph()
        env: dict[fx.Node, fx.Node] = {}
        if k > 0:
            env[nodes[lo]] = graph.placeholder(nodes[lo].name)
        for n in gm.graph.nodes:
            if n.op == "get_attr":
                continue
            if n.op == "output":
                break
            idx = nodes.index(n)
            if not (lo < idx <= hi) or (k > 0 and n.op == "placeholder"):
                continue
            env[n] = graph.node_copy(n, lambda a: _lookup(a, env, graph, gm))
        if k == len(bounds) - 2:
            graph.output(fx.map_arg(output.args[0], lambda a: _lookup(a, env, graph, gm)))
        else:
            graph.output(env[nodes[hi]])
        graph.lint()
        pieces.append(fx.GraphModule(gm, graph, f"{type(gm).__name__}Piece{k}"))
    return pieces


def _lookup(a: fx.Node, env: dict[fx.Node, fx.Node], graph: fx.Graph,
            gm: fx.GraphModule) -> fx.Node:
    if a in env:
        return env[a]
    if a.op == "get_attr":  # a parameter or buffer read directly (a ViT's class token)
        env[a] = graph.get_attr(a.target)
        return env[a]
    raise CutError(f"internal: node {a.name} is read across a cut")  # cut_points prevents it


def piece_stats(pieces: list[fx.GraphModule], input_shape: tuple[int, ...]
                ) -> list[dict[str, object]]:
    """Per piece: output shape (without the batch; None if not one tensor), parameters,
    MACs per example, the pieces run one after another on one example.

    Run under torch's FLOP counter, so the counts are torch's own (MACs are FLOPs / 2),
    on meta tensors where the model allows it (:func:`on_meta_else_cpu`)."""
    return on_meta_else_cpu(lambda device: _count(pieces, input_shape, device))


def _count(pieces: list[fx.GraphModule], input_shape: tuple[int, ...], device: str
           ) -> list[dict[str, object]]:
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    stats = []
    x: object = torch.zeros((1, *input_shape), device=device)
    seen: set[int] = set()
    for piece in pieces:
        clone = copy.deepcopy(piece).to(device).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            y = clone(x)
        params = 0
        for p in piece.parameters():
            if id(p) not in seen:  # a parameter shared by two pieces counts once
                seen.add(id(p))
                params += p.numel()
        shape = tuple(y.shape[1:]) if isinstance(y, torch.Tensor) else None
        stats.append({"shape": shape, "params": params,
                      "macs": int(counter.get_total_flops() // 2)})
        x = y
    return stats


def on_meta_else_cpu(run: Callable[[str], T]) -> T:
    """``run("meta")`` (shapes and counts without memory or arithmetic); a model that
    reads a tensor's value (a kept-whole leaf with a Python branch) cannot run on meta
    tensors, and then runs once on one CPU example instead: the same counts."""
    try:
        return run("meta")
    except (RuntimeError, NotImplementedError) as err:
        if "meta" not in str(err).lower():
            raise
        return run("cpu")
