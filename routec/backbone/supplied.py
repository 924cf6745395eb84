"""Models supplied to this process, and the layer kind each one becomes in a spec.

``supply("backbone", model)`` traces the model once and defines the layer kind
``backbone(from = "cut", to = "cut")``: the piece of the model between two cut
points (from the input when ``from`` is absent, through the model's own output
when ``to`` is absent). Its shape, parameters and MACs come from the trace (meta
tensors under torch's FLOP counter); its module is that piece, a copy of the
model's own submodules with their weights, so two networks built from one
supplied model never share parameters.

Shapes inside routec are C×H×W maps. A piece that outputs a token sequence T×D
(a ViT's blocks) is carried between nodes as a D×T×1 map, a view with no copy:
routers and exits then read it like any map (``pooled = 1`` averages the tokens),
and the next piece gets its T×D sequence back. A vector of K (the model's
logits) is a K×1×1 map.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn

from routec.backbone.cut import (CutError, CutPoint, on_meta_else_cpu, piece_stats,
                                 resolve_cut, split, trace)
from routec.graph.arguments import Param
from routec.graph.registry import LAYERS, LayerKind, Level, Make, Pyramid, ShapeError


@dataclass
class Supplied:
    """One supplied model: the module, its trace, and how to rebuild it (``origin``)."""

    name: str
    model: nn.Module
    leaves: tuple[str, ...]
    origin: dict[str, Any] = field(default_factory=dict)
    # the input of the network that routes it (set by routec.graph.build from the spec)
    input_shape: tuple[int, ...] | None = None
    _shapes: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = field(default_factory=dict)
    _stats: dict[tuple[Any, ...], tuple[tuple[int, ...], tuple[int, ...], int, int]] = field(
        default_factory=dict)

    _traced: fx.GraphModule | None = None

    @property
    def traced(self) -> fx.GraphModule:
        """The model traced with its leaves, once, when first needed: a spec's
        ``model NAME(leaves = [...])`` can still name the leaves after --model supplied it."""
        if self._traced is None:
            self._traced = trace(self.model, self.leaves, name=self.name)
        return self._traced

    def cut(self, name: str | None) -> CutPoint | None:
        return None if name is None else resolve_cut(self.traced, name, model=self.name)

    def node_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Every traced node's output shape (no batch axis) for one input, on meta tensors."""
        if input_shape not in self._shapes:
            from torch.fx.passes.shape_prop import ShapeProp

            def propagate(device: str) -> fx.GraphModule:
                gm = copy.deepcopy(self.traced).to(device).eval()
                with torch.no_grad():
                    ShapeProp(gm).propagate(_example(input_shape, device))
                return gm

            try:
                gm = on_meta_else_cpu(propagate)
            except Exception as err:  # noqa: BLE001 - the user's model on the wrong input
                raise ShapeError(f"model '{self.name}' does not run on a "
                                 f"{'x'.join(map(str, input_shape))} input "
                                 f"({type(err).__name__}: {_first_line(err)})") from None
            self._shapes[input_shape] = {
                n.name: tuple(n.meta["tensor_meta"].shape[1:]) for n in gm.graph.nodes
                if isinstance(n.meta.get("tensor_meta"), torch.fx.passes.shape_prop.TensorMetadata)}
        return self._shapes[input_shape]

    def piece(self, start: str | None, stop: str | None) -> fx.GraphModule:
        """The piece between two cuts, as a GraphModule sharing the model's parameters."""
        cuts = [c for c in (self.cut(start), self.cut(stop)) if c is not None]
        pieces = split(self.traced, cuts)
        return pieces[1] if start is not None else pieces[0]

    def piece_stats(self, start: str | None, stop: str | None, input_shape: tuple[int, ...]
                    ) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
        """(real input shape, real output shape, MACs, parameters) of a piece, cached."""
        key = (start, stop, input_shape)
        if key not in self._stats:
            shapes = self.node_shapes(input_shape)
            real_in = input_shape if start is None else shapes[self.cut(start).node]
            (stats,) = piece_stats([self.piece(start, stop)], real_in)
            if stats["shape"] is None:
                raise ShapeError(f"model '{self.name}' piece ends in something other than "
                                 "one tensor; cut it earlier")
            self._stats[key] = (real_in, stats["shape"], stats["macs"], stats["params"])
        return self._stats[key]


def _example(shape: tuple[int, ...], device: str) -> Tensor:
    return torch.zeros((1, *shape), device=device)


_SUPPLIED: dict[str, Supplied] = {}


def supply(name: str, model: nn.Module, *, leaves: tuple[str, ...] = (),
           origin: dict[str, Any] | None = None) -> Supplied:
    """Make ``model`` the one a spec's ``model NAME`` means, in this process."""
    if name in LAYERS and LAYERS[name].builtin:
        raise CutError(f"a model cannot be named '{name}': that is a built-in layer")
    model = model.eval()  # traced in eval mode; pieces follow the network's train/eval
    entry = Supplied(name, model, tuple(leaves), dict(origin or {}))
    _SUPPLIED[name] = entry
    LAYERS[name] = LayerKind(
        name, (Param("from", "name"), Param("to", "name")), _shape_rule(name),
        _make_rule(name), f"a piece of the supplied model '{name}'", builtin=False)
    return entry


def supplied(name: str) -> Supplied | None:
    """The model ``name`` supplied to this process; one whose source was noted (a saved
    run's settings, --model) or registered (routec.register_model) is built now."""
    if name in _SUPPLIED:
        return _SUPPLIED[name]
    from routec.backbone.registry import _REGISTRY, build_model, noted_source

    source = noted_source(name)
    if source is None and name not in _REGISTRY:
        return None
    target, kwargs = source if source is not None else (None, {})
    return supply(name, build_model(name, target, kwargs),
                  origin={"target": target, "kwargs": kwargs})


def supply_sources(sources: dict[str, Any], *, weights: bool) -> None:
    """Build and supply every model of a run's settings (``RunConfig.models``), with the
    weights each started from when ``weights`` (a new run; a resumed or evaluated one
    takes its weights from the checkpoint)."""
    from routec.backbone.registry import build_model, load_weights, note_source

    for name, src in sources.items():
        get = src.get if isinstance(src, dict) else (lambda k, s=src: getattr(s, k, None))
        target, kwargs, path = get("target"), dict(get("kwargs") or {}), get("weights")
        note_source(name, target, kwargs)
        model = build_model(name, target, kwargs)
        if weights and path:
            load_weights(model, path, name=name)
        supply(name, model, origin={"target": target, "kwargs": kwargs,
                                    "weights": path if weights else None})


def withdraw(name: str) -> None:
    """Forget a supplied model (tests; a process that routes several models in turn)."""
    if _SUPPLIED.pop(name, None) is not None and not LAYERS[name].builtin:
        del LAYERS[name]


def withdraw_all() -> None:
    """Forget every supplied model and every noted source (a clean process, for tests)."""
    from routec.backbone.registry import _SOURCES

    for name in list(_SUPPLIED):
        withdraw(name)
    _SOURCES.clear()


def to_level(shape: tuple[int, ...]) -> Level:
    """A piece's real output shape as the C×H×W map routec carries (see module doc)."""
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2])
    if len(shape) == 2:  # T×D tokens -> D×T×1
        return (shape[1], shape[0], 1)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    raise ShapeError(f"a piece must output C×H×W, T×D or a vector, not "
                     f"{'x'.join(map(str, shape)) or 'a scalar'}")


def _shape_rule(name: str):
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        entry = _SUPPLIED[name]
        network_input = entry.input_shape
        if network_input is None:
            raise ShapeError(f"model '{name}' was supplied without the network's input shape")
        start, stop = a.get("from"), a.get("to")
        try:
            real_in, real_out, macs, params = entry.piece_stats(start, stop,
                                                                tuple(network_input))
        except CutError as err:
            raise ShapeError(err.message, err.hint) from None
        if to_level(real_in) != inp[-1] or len(inp) != 1:
            where = f'after "{start}"' if start else "at the input"
            raise ShapeError(f"{name}(from = {_q(start)}) expects the model's tensor {where}, "
                             f"{'x'.join(map(str, real_in))}, but is given "
                             f"{'x'.join(map(str, inp[-1]))}",
                             hint=f"follow a column that ends with {name}(to = {_q(start)})"
                             if start else "start the route with this piece")
        return (to_level(real_out),), macs, params
    return shape


def _make_rule(name: str):
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        entry = _SUPPLIED[name]
        real_in, real_out, _, _ = entry.piece_stats(a.get("from"), a.get("to"),
                                                    tuple(entry.input_shape or ()))
        return Make("model_piece", (name, a.get("from"), a.get("to"), real_in, real_out))
    return make


def _q(v: str | None) -> str:
    return "none" if v is None else f'"{v}"'


class ModelPiece(nn.Module):
    """A piece of a supplied model between two cuts, reading and giving C×H×W maps."""

    def __init__(self, piece: fx.GraphModule, in_shape: tuple[int, ...],
                 out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.piece = piece
        self.tokens_in = len(in_shape) == 2
        self.out_rank = len(out_shape)
        self.out_shape = tuple(out_shape)
        self.frozen = False
        # a frozen piece's outputs for every training example (routec.train.backbone):
        # while ``rows`` is set, the piece returns those rows instead of computing them
        self.cached: Tensor | None = None
        self.rows: Tensor | None = None
        self._rows_buffer: Tensor | None = None
        # a cached piece whose output only other cached pieces would read keeps no rows:
        # while ``rows`` is set it gives a zero-stride placeholder of its output's shape
        self.unread_shape: tuple[int, ...] | None = None

    def freeze(self) -> None:
        """Keep this piece as trained: no gradients, and eval mode (batch-norm statistics
        kept) even while the network around it trains."""
        self.frozen = True
        self.piece.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> ModelPiece:
        super().train(mode)
        if self.frozen:
            self.piece.eval()
        return self

    def cached_rows(self) -> Tensor:
        """The cached outputs of ``rows``, gathered into one buffer that the next step
        reuses. A fresh tensor per step is a fresh block from the allocator, whose
        pages fault in every time: for a batch of large maps that made the gather cost
        several times the heads it feeds. Reuse is safe: a step's graph is consumed by
        its backward before the next gather, and autograd's version counter refuses a
        backward through a buffer overwritten since."""
        assert self.rows is not None and self.cached is not None
        shape = (self.rows.numel(), *self.cached.shape[1:])
        buf = self._rows_buffer
        if buf is None or buf.shape != shape or buf.device != self.cached.device \
                or buf.dtype != self.cached.dtype:
            buf = self._rows_buffer = self.cached.new_empty(shape)
        return torch.index_select(self.cached, 0, self.rows, out=buf)

    def forward(self, x: Tensor) -> Tensor:
        if self.rows is not None:
            if self.unread_shape is not None:
                return x.new_zeros(()).expand(self.rows.numel(), *self.unread_shape)
            if self.cached is not None:
                return self.cached_rows().to(x.device)
        if self.tokens_in:  # N×D×T×1 -> N×T×D, the sequence the piece was cut from
            x = x.squeeze(-1).transpose(1, 2)
        y = self.piece(x)
        if self.out_rank == 2:  # N×T×D -> N×D×T×1
            return y.transpose(1, 2).unsqueeze(-1)
        if self.out_rank == 1:
            return y[:, :, None, None]
        return y


def build_piece(name: str, start: str | None, stop: str | None,
                in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> ModelPiece:
    """The runtime module of ``name(from = start, to = stop)``: an own copy of the piece."""
    entry = _SUPPLIED.get(name)
    if entry is None:
        raise RuntimeError(f"model '{name}' is not supplied in this process; pass --model "
                           f"{name}=MODULE:CALLABLE, or call routec.supply_model first")
    return ModelPiece(copy.deepcopy(entry.piece(start, stop)), tuple(in_shape),
                      tuple(out_shape))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__
