"""The layer registry: every layer kind defined once, with all it means.

A :class:`LayerKind` gives a layer's signature (its arguments), its shape rule,
which also counts its MACs and parameters, and the runtime module that computes
it (as a :class:`Make`, a call of a factory in :mod:`routec.runtime.layers` that
code generation renders into the generated module). Validation, MAC counting and
code generation all read this table; nothing else knows the layer kinds.

Shapes are *pyramids*: tuples of (channels, height, width), finest level first.
Plain layers act on the coarsest level and give a one-level pyramid.
MAC rules (docs/design.md): conv = H_out·W_out·k_h·k_w·(C_in/groups)·C_out with the
kernel's taps clipped to the map (min(k, ⌊(H−1)/dilation⌋+1) per side);
linear = in·out; max/average pooling, global average pooling, batch-norm, ReLU,
dropout, resizing and a residual's addition = 0. These equal the counts of
``torch.utils.flop_counter`` (FLOPs / 2) whenever the kernel fits in the map.

Python code may add its own kinds with :func:`register_layer`; a ``.route`` file
stays data and only names them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from routec.graph.arguments import LIMIT, Param

Level = tuple[int, int, int]
Pyramid = tuple[Level, ...]


class ShapeError(Exception):
    """A layer cannot take the pyramid it is given; the caller adds the position.

    ``at`` (line, column) is set when the fault lies in a nested layer, such as a
    layer inside a residual block, so the message points at that layer."""

    def __init__(self, message: str, hint: str | None = None,
                 at: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.at = at


def fmt_pyramid(p: Pyramid) -> str:
    return "[" + ", ".join(f"{c}x{h}x{w}" for c, h, w in p) + "]"


@dataclass(frozen=True)
class LayerConfig:
    """One layer of a column, fully resolved: ``kind`` and plain-number ``args``.

    A chain-of-layers argument (a residual's body) is a tuple of LayerConfigs.
    ``at`` is the (line, column) of the layer in the spec; it takes no part in
    equality."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    at: tuple[int, int] | None = field(default=None, compare=False)

    def __hash__(self) -> int:  # dict field: hash by content
        return hash((self.kind, tuple(sorted(self.args.items()))))


@dataclass(frozen=True)
class Make:
    """``L.<factory>(*args, **kwargs)``: how the runtime module of a layer is built.

    Values are ints, floats, strings, tuples of them, or nested Makes; code
    generation renders them as Python source, so nothing from the spec's text is
    copied into generated code."""

    factory: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


ShapeRule = Callable[[dict[str, Any], Pyramid], tuple[Pyramid, int, int]]
MakeRule = Callable[[dict[str, Any], Pyramid], Make]


@dataclass(frozen=True)
class LayerKind:
    """A layer kind: signature, shape rule (→ output, MACs, parameters), module."""

    name: str
    params: tuple[Param, ...]
    shape: ShapeRule
    make: MakeRule
    summary: str = ""
    builtin: bool = True
    module: Callable[[dict[str, Any], Level], Any] | None = None  # registered kinds only


LAYERS: dict[str, LayerKind] = {}


def _define(name: str, params: tuple[Param, ...], summary: str
            ) -> Callable[[type], type]:
    """Class decorator for a built-in kind: the class holds ``shape`` and ``make``."""

    def wrap(cls: type) -> type:
        LAYERS[name] = LayerKind(name, params, cls.shape, cls.make, summary)  # type: ignore[attr-defined]
        return cls

    return wrap


def layer_shape(layer: LayerConfig, inp: Pyramid) -> tuple[Pyramid, int, int]:
    """(output pyramid, MACs per example, parameter count) of one layer."""
    return LAYERS[layer.kind].shape(layer.args, inp)


def layer_make(layer: LayerConfig, inp: Pyramid) -> Make:
    """The runtime module of one layer taking ``inp``, as a factory call."""
    return LAYERS[layer.kind].make(layer.args, inp)


def chain_shape(layers: Sequence[LayerConfig], inp: Pyramid
                ) -> tuple[list[Pyramid], int, int]:
    """Shapes after each layer, total MACs and parameters of a chain of layers.

    A fault in a layer without a position of its own is placed at that layer."""
    shapes: list[Pyramid] = []
    macs = params = 0
    shape = inp
    for layer in layers:
        try:
            shape, m, p = layer_shape(layer, shape)
        except ShapeError as err:
            if err.at is None:
                err.at = layer.at
            raise
        shapes.append(shape)
        macs, params = macs + m, params + p
    return shapes, macs, params


# --- shared rules -------------------------------------------------------------------------

def conv_taps(k: int, size: int, dilation: int = 1) -> int:
    """Kernel taps along one side that can meet the map: the kernel clipped to it."""
    return min(k, (size - 1) // dilation + 1)


def conv_macs(h: int, w: int, k: int, c_in: int, c_out: int, stride: int = 1,
              dilation: int = 1, groups: int = 1) -> int:
    """A 'same'-padded conv: H_out·W_out·taps_h·taps_w·(C_in/groups)·C_out."""
    h_out, w_out = strided(h, stride), strided(w, stride)
    return (h_out * w_out * conv_taps(k, h, dilation) * conv_taps(k, w, dilation)
            * (c_in // groups) * c_out)


def strided(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv with an odd kernel: ⌈size / stride⌉."""
    return (size - 1) // stride + 1


def _odd(k: int) -> None:
    if k % 2 == 0:
        raise ShapeError(f"kernel size {k} is even; 'same' padding needs an odd kernel",
                         hint="use kernel = 1, 3, 5, ...")


def _options(a: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Keyword arguments that differ from their defaults (the generated code stays short)."""
    return tuple((k, a[k]) for k, d in defaults.items() if a[k] != d)


def _one(inp: Pyramid) -> Level:
    return inp[-1]


# --- the built-in kinds -------------------------------------------------------------------

@_define("multiscale", (Param("channels", "counts", required=True), Param("kernel", "size", 3)),
         "the paper's multiscale column (Fig. 3) on the last len(channels) levels")
class _Multiscale:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
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

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        m = len(a["channels"])
        ins = tuple(lvl[0] for lvl in inp[len(inp) - m:])
        return Make("Multiscale", (), (("in_channels", ins), ("channels", tuple(a["channels"])),
                                       ("kernel", a["kernel"])))


_CONV_OPTIONS = {"stride": 1, "dilation": 1, "groups": 1}


def _conv_shape(c_in: int, h: int, w: int, c: int, k: int, stride: int, dilation: int,
                groups: int, what: str) -> tuple[Pyramid, int, int]:
    _odd(k)
    if c_in % groups or c % groups:
        raise ShapeError(
            f"{what} needs input and output channels divisible by groups = {groups}, "
            f"got {c_in} in and {c} out",
            hint="choose groups dividing both channel counts (groups = channels in and out "
                 "is a depthwise conv)")
    macs = conv_macs(h, w, k, c_in, c, stride, dilation, groups)
    params = k * k * (c_in // groups) * c + c
    return ((c, strided(h, stride), strided(w, stride)),), macs, params


@_define("conv", (Param("channels", "count", required=True), Param("kernel", "size", 3),
                  Param("stride", "size", 1), Param("dilation", "size", 1),
                  Param("groups", "size", 1)),
         "a 'same'-padded convolution (with bias) on the coarsest level")
class _Conv:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        c_in, h, w = _one(inp)
        return _conv_shape(c_in, h, w, a["channels"], a["kernel"], a["stride"], a["dilation"],
                           a["groups"], "conv")

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("conv", (_one(inp)[0], a["channels"]),
                    (("kernel", a["kernel"]), *_options(a, _CONV_OPTIONS)))


@_define("depthwise", (Param("kernel", "size", 3), Param("stride", "size", 1),
                       Param("dilation", "size", 1)),
         "a depthwise conv: one filter per channel (conv with groups = channels)")
class _Depthwise:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        c, h, w = _one(inp)
        return _conv_shape(c, h, w, c, a["kernel"], a["stride"], a["dilation"], c, "depthwise")

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        c = _one(inp)[0]
        opts = {**a, "groups": c}
        return Make("conv", (c, c), (("kernel", a["kernel"]), *_options(opts, _CONV_OPTIONS)))


@_define("bn", (), "batch-norm (ε = 1e-6, decay 0.9)")
class _BatchNorm:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        c, h, w = _one(inp)
        return ((c, h, w),), 0, 2 * c

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("bn", (_one(inp)[0],))


@_define("relu", (), "max(x, 0)")
class _Relu:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        return (_one(inp),), 0, 0

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("relu")


def _pool_shape(name: str, s: int, inp: Pyramid) -> tuple[Pyramid, int, int]:
    c, h, w = _one(inp)
    if h < s or w < s:
        raise ShapeError(f"{name}({s}) needs a map of at least {s}x{s}, got {h}x{w}",
                         hint="use a smaller pool size, or fewer pools in this path")
    return ((c, h // s, w // s),), 0, 0


@_define("pool", (Param("size", "size", 2),), "max-pooling, size × size windows, stride size")
class _Pool:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        return _pool_shape("pool", a["size"], inp)

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("pool", (a["size"],))


@_define("avgpool", (Param("size", "size", 2),),
         "average pooling, size × size windows, stride size")
class _AvgPool:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        return _pool_shape("avgpool", a["size"], inp)

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("avgpool", (a["size"],))


@_define("gap", (), "global average pooling: each channel's mean, a 1x1 map")
class _GlobalAvgPool:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        return ((_one(inp)[0], 1, 1),), 0, 0

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("gap")


@_define("dropout", (Param("p", "fraction", 0.5),),
         "zeroes each value with probability p while training (and rescales by 1/(1−p))")
class _Dropout:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        return (_one(inp),), 0, 0

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("dropout", (float(a["p"]),))


@_define("linear", (Param("features", "count", required=True),),
         "a fully connected layer on the flattened coarsest level (a 1x1 map out)")
class _Linear:
    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        c, h, w = _one(inp)
        n_in, n_out = c * h * w, a["features"]
        return ((n_out, 1, 1),), n_in * n_out, n_in * n_out + n_out

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        c, h, w = _one(inp)
        return Make("linear", (c * h * w, a["features"]))


def _shortcut_stride(inp: Level, out: Level) -> int | None:
    """The stride s of a 1x1 projection from ``inp``'s map to ``out``'s, if one exists."""
    _, h, w = inp
    _, h2, w2 = out
    for s in range(1, max(h, w) + 1):
        if strided(h, s) == h2 and strided(w, s) == w2:
            return s
    return None


@_define("residual", (Param("body", "layers", required=True),),
         "body(x) + x, or + a strided 1x1 projection (with batch-norm) when the shape changes")
class _Residual:
    @staticmethod
    def _plan(a: dict[str, Any], inp: Pyramid
              ) -> tuple[list[Pyramid], int, int, Level, Level, int | None]:
        x = _one(inp)
        shapes, macs, params = chain_shape(a["body"], (x,))
        out = shapes[-1][-1]
        if out == x:
            return shapes, macs, params, x, out, None
        s = _shortcut_stride(x, out)
        if s is None:
            raise ShapeError(
                f"residual body maps {x[0]}x{x[1]}x{x[2]} to {out[0]}x{out[1]}x{out[2]}, "
                "which no strided 1x1 shortcut can match",
                hint="the body may change the channels and divide the map by one stride "
                     "(conv(32, stride = 2)); it may not pool to another size")
        return shapes, macs, params, x, out, s

    @staticmethod
    def shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        _, macs, params, x, out, s = _Residual._plan(a, inp)
        if s is not None:  # projection: 1x1 conv (no bias: batch-norm follows) + batch-norm
            macs += conv_macs(x[1], x[2], 1, x[0], out[0], stride=s)
            params += x[0] * out[0] + 2 * out[0]
        return (out,), macs, params

    @staticmethod
    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        shapes, _, _, x, out, s = _Residual._plan(a, inp)
        body = []
        shape: Pyramid = (x,)
        for layer, after in zip(a["body"], shapes):
            body.append(layer_make(layer, shape))
            shape = after
        kwargs: tuple[tuple[str, Any], ...] = ()
        if s is not None:
            kwargs = (("shortcut", Make("projection", (x[0], out[0]), (("stride", s),))),)
        return Make("residual", tuple(body), kwargs)


BUILTIN_LAYERS = tuple(LAYERS)


# --- layers defined in Python -------------------------------------------------------------

def register_layer(name: str, *, shape: Callable[[dict[str, Any], Level], tuple[Level, int, int]],
                   module: Callable[[dict[str, Any], Level], Any],
                   params: Sequence[Param] = (), replace: bool = False) -> LayerKind:
    """Add a layer kind that specs can use by ``name``, defined by Python code.

    ``shape(args, (C, H, W))`` returns ``((C', H', W'), MACs, parameters)`` for one
    example, and raises ``ValueError`` with a message when it cannot take that input
    (the spec error then points at the layer). ``module(args, (C, H, W))`` returns the
    ``torch.nn.Module`` that computes it on an N×C×H×W tensor. Both act on the coarsest
    level, like ``conv``. ``params`` lists its arguments (:class:`routec.LayerParam`).
    A generated module that uses the kind needs it registered before it is loaded.
    """
    if not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"layer name {name!r} is not a plain identifier")
    old = LAYERS.get(name)
    if old is not None and (old.builtin or not replace):
        raise ValueError(f"layer kind {name!r} is already defined"
                         + ("" if old.builtin else "; pass replace=True to redefine it"))
    params = tuple(params)
    if any(not isinstance(p, Param) for p in params) or any(p.kind == "layers" for p in params):
        raise ValueError("params must be LayerParam objects of kind count, counts, counts0, "
                         "size, fraction or number")

    def checked_shape(a: dict[str, Any], inp: Pyramid) -> tuple[Pyramid, int, int]:
        try:
            out, macs, n = shape(dict(a), _one(inp))
        except ValueError as err:
            raise ShapeError(f"{name}: {err}") from None
        out = tuple(int(v) for v in out)
        if len(out) != 3 or not all(1 <= v <= LIMIT * LIMIT for v in out) \
                or int(macs) < 0 or int(n) < 0:
            raise TypeError(f"the shape rule of layer {name!r} returned {out, macs, n}; "
                            "expected ((C, H, W), MACs ≥ 0, parameters ≥ 0)")
        return (out,), int(macs), int(n)  # type: ignore[return-value]

    def make(a: dict[str, Any], inp: Pyramid) -> Make:
        return Make("registered", (name, _one(inp)), tuple(sorted(a.items())))

    kind = LayerKind(name, params, checked_shape, make, (module.__doc__ or "").strip(),
                     builtin=False, module=module)
    LAYERS[name] = kind
    return kind


def unregister_layer(name: str) -> None:
    """Remove a kind added by :func:`register_layer` (built-in kinds stay)."""
    kind = LAYERS.get(name)
    if kind is None or kind.builtin:
        raise ValueError(f"{name!r} is not a registered layer kind")
    del LAYERS[name]
