"""What every stem, router and classifier does to shapes, MACs and parameters.

Layers are defined in :mod:`routec.graph.registry` (one entry per kind: signature,
shape and MAC rule, module); the names below re-export what other stages use.
Shapes are *pyramids*: tuples of (channels, height, width), finest level first.
The configs here are plain numbers, so code generation can render them without
touching the spec's text.
"""
from __future__ import annotations

from typing import Any

from routec.graph import registry as R
from routec.graph.arguments import Param
from routec.graph.registry import (LAYERS, LayerConfig, Level, Pyramid, ShapeError,
                                   fmt_pyramid, layer_shape)

__all__ = ["LAYERS", "LayerConfig", "Level", "Pyramid", "ShapeError", "fmt_pyramid",
           "layer_shape", "conv_macs", "STEM_SIGNATURES", "stem_shape", "ROUTER_SIGNATURES",
           "EXIT_SIGNATURES", "PAPER_ROUTER", "PAPER_EXIT", "head_features", "mlp_cost"]


def conv_macs(h: int, w: int, k: int, c_in: int, c_out: int) -> int:
    """A 'same'-padded stride-1 conv: H·W·min(k,H)·min(k,W)·C_in·C_out."""
    return R.conv_macs(h, w, k, c_in, c_out)


# --- stems ---------------------------------------------------------------------------

STEM_SIGNATURES: dict[str, tuple[Param, ...]] = {
    "to_pyramid": (Param("scales", "count", required=True),),
    "identity": (),
}


def stem_shape(kind: str, args: dict[str, Any], inp: Level) -> Pyramid:
    c, h, w = inp
    if kind == "identity":
        return (inp,)
    scales = args["scales"]
    f = 1 << (scales - 1)
    if h % f or w % f:
        raise ShapeError(
            f"to_pyramid(scales = {scales}) halves {h}x{w} {scales - 1} times, which needs "
            f"both sides divisible by {f if scales <= 64 else f'2^{scales - 1}'}",
            hint="use fewer scales or an input size divisible by 2^(scales-1)",
        )
    return tuple((c, h >> i, w >> i) for i in range(scales))


# --- heads: routers and classifiers ----------------------------------------------------

# pooled = N: average-pool the coarsest level to N×N before flattening (0 MACs, like
# every pooling), so a head on a large early map stays small.
_POOLED = Param("pooled", "size", None)
ROUTER_SIGNATURES: dict[str, tuple[Param, ...]] = {
    "mlp": (Param("hidden", "counts0", ()), Param("ways", "count", None), _POOLED),
    "linear": (Param("ways", "count", None), _POOLED),
}
EXIT_SIGNATURES: dict[str, tuple[Param, ...]] = {
    "linear": (_POOLED,),
    "mlp": (Param("hidden", "counts0", ()), _POOLED),
    # the column's output is already the logits (a supplied model's own head): 0 MACs
    "logits": (),
}
PAPER_ROUTER = ("mlp", {"hidden": (16, 16), "ways": None, "pooled": None})
PAPER_EXIT = ("linear", {"pooled": None})


def head_features(inp: Pyramid, pooled: int | None = None) -> int:
    """Heads read the flattened coarsest level (the paper's global descriptor), average-
    pooled to pooled × pooled first when ``pooled`` is given."""
    c, h, w = inp[-1]
    if pooled is None:
        return c * h * w
    if h % pooled or w % pooled:
        raise ShapeError(f"a head with pooled = {pooled} needs map sides divisible by "
                         f"{pooled}, got {h}x{w}",
                         hint="pool to a size that divides the map (pooled = 1 is global "
                              "average pooling)")
    return c * pooled * pooled


def mlp_cost(n_in: int, hidden: tuple[int, ...], n_out: int) -> tuple[int, int]:
    """(MACs, params) of linear→BN→ReLU per hidden width, then a final linear."""
    macs = params = 0
    for width in (*hidden, n_out):
        macs += n_in * width
        params += n_in * width + width
        n_in = width
    params += 2 * sum(hidden)  # batch-norm scale and shift
    return macs, params
