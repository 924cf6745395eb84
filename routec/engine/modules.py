"""Segments of a generated network as standalone modules, and batch-norm folding.

``segment_module`` wraps the stem/columns and head of one segment in a module
with a flat signature (one tensor per pyramid level, then k_cpt when the head
reads it), which torch.fx traces, torch.compile compiles and the ONNX exporter
exports. ``fold_batchnorm`` works on the traced graph, so it needs no knowledge
of layer kinds: an eval-mode batch-norm whose input is a conv/linear — or a sum of
convs/linears, as in a multiscale column — that nothing else reads is folded into
their weights and biases.
"""
from __future__ import annotations

import copy
import operator

import torch
from torch import Tensor, fx, nn

from routec.tree import RoutingTree, Segment, level_needs


class SegmentModule(nn.Module):
    """One segment: ``forward(*levels[, k]) -> (*levels_out, head_out)``.

    Outputs: the pyramid when the segment has transforms and does not end in an
    exit (children read it), then the head's output when it has a head.
    """

    def __init__(self, net: nn.Module, topo: RoutingTree, seg: Segment, n_in: int,
                 keep: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.n_in = n_in
        self.keep = keep  # levels of the output pyramid to emit (None: all)
        ts = seg.transforms
        self.stem = getattr(net, topo.nodes[ts[0]]) if ts and topo.kinds[ts[0]] == "stem" else None
        self.columns = nn.ModuleList(getattr(net, topo.nodes[i]) for i in ts
                                     if topo.kinds[i] == "column")
        self.head = getattr(net, topo.nodes[seg.head]) if seg.head >= 0 else None
        self.head_k = seg.end == "junction" and topo.dynamic_kcpt
        self.emit_levels = seg.emits_levels

    def run(self, h: tuple[Tensor, ...], k: Tensor | None) -> tuple[Tensor, ...]:
        if self.stem is not None:
            h = self.stem(h[0])
        for col in self.columns:
            h = col(h)
        outs: tuple[Tensor, ...] = ()
        if self.emit_levels:
            outs = tuple(h) if self.keep is None else tuple(h[i] for i in self.keep)
        if self.head is not None:
            y = self.head(h, k) if self.head_k else self.head(h)
            outs = outs + (y,)
        return outs

    def input_names(self) -> list[str]:
        names = ["x"] if self.stem is not None else [f"h{i}" for i in range(self.n_in)]
        return names + (["k_cpt"] if self.head_k else [])


def segment_module(net: nn.Module, topo: RoutingTree, seg: Segment, n_in: int,
                   keep: tuple[int, ...] | None = None) -> SegmentModule:
    """A SegmentModule whose class has an explicit ``forward(x0, .., [k])``."""
    args = [f"x{i}" for i in range(n_in)]
    with_k = seg.end == "junction" and topo.dynamic_kcpt
    params = ", ".join(args + (["k"] if with_k else []))
    tup = "(" + ", ".join(args) + ("," if len(args) == 1 else "") + ")"
    src = (f"def forward(self, {params}):\n"
           f"    return self.run({tup}, {'k' if with_k else 'None'})\n")
    scope: dict = {}
    exec(src, scope)  # noqa: S102 - a fixed template over integer arities
    cls = type(f"Segment{n_in}{'K' if with_k else ''}", (SegmentModule,),
               {"forward": scope["forward"]})
    return cls(net, topo, seg, n_in, keep)


def segment_reads(net: nn.Module, topo: RoutingTree, segments: list[Segment],
                  arity: dict[int, int]) -> dict[int, set[int] | None]:
    """The input levels each segment's traced graph reads (None: untraceable, all)."""
    reads: dict[int, set[int] | None] = {}
    for seg in segments:
        n_in = segment_inputs(topo, seg, arity)
        try:
            gm = trace(segment_module(net, topo, seg, n_in))
            reads[seg.index] = {int(str(n.target)[1:]) for n in gm.graph.nodes
                                if n.op == "placeholder" and n.users and str(n.target) != "k"}
        except Exception:  # untraceable: assume it reads everything
            reads[seg.index] = None
    return reads


def levels_kept(net: nn.Module, topo: RoutingTree, segments: list[Segment],
                arity: dict[int, int]
                ) -> tuple[dict[int, tuple[int, ...] | None], dict[int, set[int] | None]]:
    """(keep, needs): the levels each segment must output, and the levels each segment
    (with what it passes its input on to) reads; see ``routec.tree.level_needs``."""
    return level_needs(segments, segment_reads(net, topo, segments, arity))


def pyramid_arity(net: nn.Module, topo: RoutingTree) -> dict[int, int]:
    """Levels of the pyramid each stem/column outputs, from one example's pass."""
    x = torch.zeros(1, *topo.input_shape)
    arity: dict[int, int] = {}
    levels: dict[int, tuple[Tensor, ...]] = {}
    was = net.training
    net.eval()
    with torch.inference_mode():
        for i, kind in enumerate(topo.kinds):  # parents come before children
            if kind == "stem":
                levels[i] = tuple(getattr(net, topo.nodes[i])(x))
            elif kind == "column":
                levels[i] = tuple(getattr(net, topo.nodes[i])(levels[topo.anchor(topo.parent[i])]))
            if i in levels:
                arity[i] = len(levels[i])
    net.train(was)
    return arity


def segment_inputs(topo: RoutingTree, seg: Segment, arity: dict[int, int]) -> int:
    """Number of input tensors of a segment (the stem reads the image alone)."""
    first = seg.transforms[0] if seg.transforms else seg.head
    if topo.kinds[first] == "stem":
        return 1
    return arity[topo.anchor(topo.parent[first])]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return True
        return super().is_leaf_module(m, qualname)


def trace(module: nn.Module) -> fx.GraphModule:
    graph = _Tracer().trace(module)
    return fx.GraphModule(module, graph, module.__class__.__name__)


_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def fold_batchnorm(gm: fx.GraphModule) -> int:
    """Fold eval-mode batch-norms into the convs/linears that feed them; returns how many."""
    modules = dict(gm.named_modules())
    uses: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            uses[node.target] = uses.get(node.target, 0) + 1

    def producers(node: fx.Node) -> list[fx.Node] | None:
        if len(node.users) != 1:
            return None
        if node.op == "call_module" and isinstance(modules.get(node.target), _FOLDABLE):
            return [node] if uses[node.target] == 1 else None
        if node.op == "call_function" and node.target in (operator.add, torch.add) \
                and len(node.args) == 2 and not node.kwargs \
                and all(isinstance(a, fx.Node) for a in node.args):
            a, b = (producers(arg) for arg in node.args)
            return None if a is None or b is None else a + b
        return None

    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = modules.get(node.target)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.training \
                or bn.running_mean is None or len(node.args) != 1 or node.kwargs:
            continue
        src = node.args[0]
        found = producers(src) if isinstance(src, fx.Node) else None
        if not found:
            continue
        with torch.no_grad():
            scale = (bn.running_var + bn.eps).rsqrt()
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale
            if bn.bias is not None:
                shift = shift + bn.bias
            for n_i, p in enumerate(found):
                m = modules[p.target]
                w = m.weight
                m.weight = nn.Parameter(w * scale.reshape(-1, *[1] * (w.ndim - 1)),
                                        requires_grad=False)
                b = m.bias if m.bias is not None else torch.zeros_like(scale)
                b = b * scale + (shift if n_i == 0 else 0.0)
                m.bias = nn.Parameter(b, requires_grad=False)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return folded


def fused_segment(net: nn.Module, topo: RoutingTree, seg: Segment, n_in: int,
                  keep: tuple[int, ...] | None = None) -> tuple[nn.Module, int]:
    """An inference-only copy of a segment: batch-norm folded, channels-last weights.

    Returns the module and the number of batch-norms folded. A segment that torch.fx
    cannot trace is copied as it is (still eval-mode, channels-last), unfolded.
    """
    mod = copy.deepcopy(segment_module(net, topo, seg, n_in, keep)).eval()
    try:
        gm: nn.Module = trace(mod)
        folded = fold_batchnorm(gm)  # type: ignore[arg-type]
    except Exception:  # an untraceable layer: keep the eager copy
        gm, folded = mod, 0
    for p in gm.parameters():
        p.requires_grad_(False)
    gm.eval()
    return gm.to(memory_format=torch.channels_last), folded
