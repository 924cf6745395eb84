"""What every stem, layer, router and classifier does to shapes, MACs and parameters.

Shapes are *pyramids*: tuples of (channels, height, width), finest level first.
MAC rules (DESIGN.md): conv = H_out·W_out·k_h·k_w·C_in·C_out with the kernel
clipped to the map size; linear = in·out; pooling, batch-norm, ReLU, resizing = 0.
The configs here are plain numbers, so code generation can render them without
touching the spec's text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routec.graph.arguments import Param

Level = tuple[int, int, int]
Pyramid = tuple[Level, ...]


class ShapeError(Exception):
    """A layer cannot take the pyramid it is given; the caller adds the position."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def conv_macs(h: int, w: int, k: int, c_in: int, c_out: int) -> int:
    """A 'same'-padded stride-1 conv: H·W·min(k,H)·min(k,W)·C_in·C_out."""
    return h * w * min(k, h) * min(k, w) * c_in * c_out


def fmt_pyramid(p: Pyramid) -> str:
    return "[" + ", ".join(f"{c}x{h}x{w}" for c, h, w in p) + "]"


@dataclass(frozen=True)
class LayerConfig:
    """One layer of a column, fully resolved: ``kind`` and plain-number ``args``."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:  # dict field: hash by content
        return hash((self.kind, tuple(sorted(self.args.items()))))


# --- layers --------------------------------------------------------------------------

LAYER_SIGNATURES: dict[str, tuple[Param, ...]] = {
    "multiscale": (Param("channels", "counts", required=True), Param("kernel", "size", 3)),
    "conv": (Param("channels", "count", required=True), Param("kernel", "size", 3)),
    "bn": (),
    "relu": (),
    "pool": (Param("size", "size", 2),),
    "linear": (Param("features", "count", required=True),),
}


def layer_shape(layer: LayerConfig, inp: Pyramid) -> tuple[Pyramid, int, int]:
    """(output pyramid, MACs per example, parameter count) of one layer."""
    a = layer.args
    if layer.kind == "multiscale":
        chans: tuple[int, ...] = a["channels"]
        k: int = a["kernel"]
        _odd(k)
        m = len(chans)
        if m > len(inp):
            raise ShapeError(
                f"multiscale with {m} levels needs an input pyramid of at least {m} levels, "
                f"got {len(inp)} {fmt_pyramid(inp)}",
                hint="a multiscale column consumes the last (coarsest) levels of its input; "
                     "use fewer channels entries or more stem scales",
            )
        levels = inp[len(inp) - m:]
        out: list[Level] = []
        macs = params = 0
        for i, ((c_in, h, w), c) in enumerate(zip(levels, chans)):
            macs += conv_macs(h, w, k, c_in, c)
            params += k * k * c_in * c + 2 * c  # conv weights (no bias: BN follows) + BN
            if i > 0:
                pc, ph, pw = out[i - 1]
                if (ph // 2, pw // 2) != (h, w):
                    raise ShapeError(
                        f"multiscale level {i + 1} is {h}x{w} but the pooled level {i} is "
                        f"{ph // 2}x{pw // 2}",
                        hint="each input level must be half the size of the one before it",
                    )
                macs += conv_macs(h, w, k, pc, c)
                params += k * k * pc * c
            out.append((c, h, w))
        return tuple(out), macs, params
    c_in, h, w = inp[-1]
    if layer.kind == "conv":
        k = a["kernel"]
        _odd(k)
        c = a["channels"]
        return ((c, h, w),), conv_macs(h, w, k, c_in, c), k * k * c_in * c + c
    if layer.kind == "bn":
        return ((c_in, h, w),), 0, 2 * c_in
    if layer.kind == "relu":
        return ((c_in, h, w),), 0, 0
    if layer.kind == "pool":
        s = a["size"]
        if h < s or w < s:
            raise ShapeError(f"pool({s}) needs a map of at least {s}x{s}, got {h}x{w}",
                             hint="use a smaller pool size, or fewer pools in this path")
        return ((c_in, h // s, w // s),), 0, 0
    if layer.kind == "linear":
        n_in, n_out = c_in * h * w, a["features"]
        return ((n_out, 1, 1),), n_in * n_out, n_in * n_out + n_out
    raise AssertionError(f"unknown layer kind {layer.kind}")  # catalogue and bind disagree


def _odd(k: int) -> None:
    if k % 2 == 0:
        raise ShapeError(f"kernel size {k} is even; 'same' padding needs an odd kernel",
                         hint="use kernel = 1, 3, 5, ...")


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

ROUTER_SIGNATURES: dict[str, tuple[Param, ...]] = {
    "mlp": (Param("hidden", "counts0", ()), Param("ways", "count", None)),
    "linear": (Param("ways", "count", None),),
}
EXIT_SIGNATURES: dict[str, tuple[Param, ...]] = {
    "linear": (),
    "mlp": (Param("hidden", "counts0", ()),),
}
PAPER_ROUTER = ("mlp", {"hidden": (16, 16), "ways": None})
PAPER_EXIT = ("linear", {})


def head_features(inp: Pyramid) -> int:
    """Heads read the flattened coarsest level (the paper's global descriptor)."""
    c, h, w = inp[-1]
    return c * h * w


def mlp_cost(n_in: int, hidden: tuple[int, ...], n_out: int) -> tuple[int, int]:
    """(MACs, params) of linear→BN→ReLU per hidden width, then a final linear."""
    macs = params = 0
    for width in (*hidden, n_out):
        macs += n_in * width
        params += n_in * width + width
        n_in = width
    params += 2 * sum(hidden)  # batch-norm scale and shift
    return macs, params
