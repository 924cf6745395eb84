"""Every layer kind: its shape, MACs (against torch.utils.flop_counter), parameters
(against the built module) and its errors (at the right line and column).

The expected values come from torch, never from routec's own rules: the output
shape is the tensor's, MACs are FlopCounterMode's FLOPs / 2 (it counts convolutions
and matrix products; pooling, batch-norm, dropout and additions count 0, which is
routec's rule too), parameters are the module's.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import routec
from routec.errors import SpecError
from routec.graph.arguments import Param
from routec.graph.registry import BUILTIN_LAYERS, LAYERS, register_layer, unregister_layer

MARK = "⟨here⟩"


def one_column(layers: str, shape: str = "8x16x16") -> str:
    return (f"network t (input = {shape}, classes = 4) {{\n"
            f"    column c = {layers}\n"
            f"    route c -> exit\n}}\n")


def measure(layers: str, shape: str = "8x16x16", batch: int = 2):
    """(graph node, flop-counter MACs per example, module parameters, output shape)."""
    net = routec.compile_network("t.route", text=one_column(layers, shape))
    node = next(n for n in net.graph.nodes if n.kind == "column")
    module = net.build().c.eval()
    x = torch.randn(batch, *net.graph.input_shape)
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            (y,) = module((x,))
    macs = counter.get_total_flops() // 2
    assert macs % batch == 0
    params = sum(p.numel() for p in module.parameters())
    return node, macs // batch, params, tuple(y.shape[1:])


LAYER_CASES = [
    # strided, dilated, grouped, depthwise and 1x1 convs; odd maps check the rounding
    ("conv(16, stride = 2)", "8x16x16"),
    ("conv(16, stride = 2)", "8x15x15"),
    ("conv(12, kernel = 5, stride = 3)", "8x17x16"),
    ("conv(16, dilation = 2)", "8x16x16"),
    ("conv(16, kernel = 3, dilation = 3, stride = 2)", "8x16x13"),
    ("conv(16, groups = 4)", "8x16x16"),
    ("conv(8, groups = 8, stride = 2)", "8x16x16"),
    ("depthwise", "8x16x16"),
    ("depthwise(kernel = 5, stride = 2, dilation = 2)", "8x15x15"),
    ("conv(16, kernel = 1)", "8x16x16"),
    ("conv(16, kernel = 1, stride = 2)", "8x15x15"),
    ("depthwise -> conv(32, kernel = 1)", "8x16x16"),
    # pooling, global average pooling, dropout
    ("avgpool", "8x16x16"),
    ("avgpool(3)", "8x16x16"),
    ("gap", "8x16x16"),
    ("conv(4) -> gap -> linear(6)", "8x7x9"),
    ("dropout(0.3)", "8x16x16"),
    ("dropout", "8x16x16"),
    # residual blocks: identity shortcut, and projections for channels and strides
    ("residual(conv(8) -> bn -> relu -> conv(8) -> bn) -> relu", "8x16x16"),
    ("residual(conv(16, stride = 2) -> bn -> relu -> conv(16) -> bn) -> relu", "8x16x16"),
    ("residual(conv(16, stride = 2) -> bn -> relu -> conv(16) -> bn)", "8x15x15"),
    ("residual(conv(16) -> bn)", "8x16x16"),
    ("residual(conv(24, kernel = 1, stride = 3) -> bn -> relu)", "8x16x16"),
    ("residual(relu)", "8x16x16"),
    ("residual(residual(conv(8) -> bn) -> relu -> conv(12, stride = 2))", "8x16x16"),
    ("residual(depthwise -> bn -> relu -> conv(8, kernel = 1) -> dropout(0.1))", "8x16x16"),
    # the layers that were there before
    ("conv(16) -> bn -> relu -> pool(2) -> linear(10)", "8x16x16"),
    ("multiscale[8]", "8x16x16"),
]


@pytest.mark.parametrize("layers, shape", LAYER_CASES, ids=[f"{a} @ {b}" for a, b in LAYER_CASES])
def test_shape_macs_and_parameters(layers: str, shape: str) -> None:
    node, macs, params, out = measure(layers, shape)
    assert node.out_shape == (out,)
    assert node.macs == macs
    assert node.params == params


def test_every_builtin_layer_is_covered() -> None:
    used = {name for layers, _ in LAYER_CASES for name in BUILTIN_LAYERS
            if f"{name}(" in layers or f"{name}[" in layers or layers.startswith(name)
            or f"> {name}" in layers or f"({name}" in layers}
    assert used == set(BUILTIN_LAYERS)


def test_macs_grow_with_stride_and_groups_as_torch_says() -> None:
    """The counts differ between configurations (so equality above is not vacuous)."""
    base = measure("conv(16)")[1]
    assert measure("conv(16, stride = 2)")[1] * 4 == base
    assert measure("conv(16, groups = 4)")[1] * 4 == base
    assert measure("conv(16, dilation = 2)")[1] == base


def test_residual_adds_its_input() -> None:
    """With the body's last batch-norm zeroed, a block is its shortcut: x, or the projection."""
    net = routec.compile_network("t.route", text=one_column(
        "residual(conv(8) -> bn) -> residual(conv(16, stride = 2) -> bn)"))
    col = net.build().c.eval()
    same, down = col[0], col[1]
    with torch.no_grad():
        for block in (same, down):
            bn = block.body[-1].layer
            bn.weight.zero_()
            bn.bias.zero_()
        x = torch.randn(3, 8, 16, 16)
        assert torch.equal(same((x,))[0], x)
        conv, norm = down.shortcut
        assert conv.stride == (2, 2) and conv.kernel_size == (1, 1)
        expected = F.batch_norm(F.conv2d(x, conv.weight, stride=2), norm.running_mean,
                                norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
        torch.testing.assert_close(down((x,))[0], expected)


def test_dropout_acts_only_in_training() -> None:
    col = routec.compile_network("t.route", text=one_column("dropout(0.5)")).build().c
    x = torch.ones(4, 8, 16, 16)
    col.eval()
    assert torch.equal(col((x,))[0], x)
    col.train()
    y = col((x,))[0]
    assert set(y.unique().tolist()) == {0.0, 2.0}


# --- malformed use: the error, and where it points --------------------------------------------

ERROR_CASES = [
    ("groups-not-dividing", f"conv(16) -> {MARK}conv(32, groups = 3)",
     "conv needs input and output channels divisible by groups = 3, got 16 in and 32 out"),
    ("groups-not-dividing-input", f"{MARK}conv(16, groups = 16)",
     "conv needs input and output channels divisible by groups = 16, got 8 in and 16 out"),
    ("stride-0", f"conv(8, stride = {MARK}0)", "'stride' of conv must be between 1 and 65536"),
    ("dilation-0", f"conv(8, dilation = {MARK}0)",
     "'dilation' of conv must be between 1 and 65536"),
    ("stride-decimal", f"depthwise(stride = {MARK}1.5)",
     "'stride' of depthwise must be a whole number"),
    ("even-depthwise", f"{MARK}depthwise(kernel = 4)", "kernel size 4 is even"),
    ("avgpool-too-big", f"conv(8, stride = 4) -> {MARK}avgpool(5)",
     "avgpool(5) needs a map of at least 5x5, got 4x4"),
    ("dropout-one", f"dropout({MARK}1)", "'p' of dropout must be at least 0 and less than 1"),
    ("dropout-negative", f"dropout(p = {MARK}-0.1)",
     "'p' of dropout must be at least 0 and less than 1"),
    ("gap-args", f"gap({MARK}2)", "gap takes at most 0 arguments, got 1"),
    ("residual-pools-to-odd-size", f"{MARK}residual(conv(8) -> pool(3))",
     "residual body maps 8x16x16 to 8x5x5, which no strided 1x1 shortcut can match"),
    ("residual-uneven-strides", f"{MARK}residual(conv(8) -> avgpool(2) -> conv(8, stride = 1))"
                                " -> relu",
     None),  # 16 -> 8 is a stride of 2: allowed (no error), checked below
    ("residual-number", f"residual({MARK}8)", "'body' of residual must be a chain of layers"),
    ("inside-residual-even-kernel", f"residual(conv(8) -> bn -> {MARK}conv(8, kernel = 2))",
     "kernel size 2 is even"),
    ("inside-residual-groups", f"residual(conv(8) -> {MARK}conv(6, groups = 4))",
     "conv needs input and output channels divisible by groups = 4, got 8 in and 6 out"),
    ("inside-residual-unknown", f"residual(conv(8) -> {MARK}ReLU)", "unknown layer 'ReLU'"),
    ("inside-residual-bad-arg", f"residual(conv(8, {MARK}strid = 2))",
     "conv has no argument 'strid'"),
    ("missing-body", f"{MARK}residual", "residual needs the argument 'body'"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_malformed_use_points_at_the_fault(case) -> None:
    _, layers, fragment = case
    marked = one_column(layers)
    i = marked.index(MARK)
    line = marked.count("\n", 0, i) + 1
    column = i - (marked.rfind("\n", 0, i) + 1) + 1
    text = marked.replace(MARK, "")
    if fragment is None:
        routec.compile_network("case.route", text=text)
        return
    with pytest.raises(SpecError) as info:
        routec.compile_network("case.route", text=text)
    err = info.value
    assert fragment in err.message, err.render()
    assert (err.pos.line, err.pos.column) == (line, column), err.render()
    assert err.render().startswith(f"case.route:{line}:{column}: error: ")


# --- layers defined in Python -------------------------------------------------------------

@pytest.fixture
def scaled_conv():
    """A registered kind: a 1x1 conv to `width` channels, then a fixed scale, stride 2."""

    def shape(args, inp):
        c, h, w = inp
        if h % 2 or w % 2:
            raise ValueError(f"needs an even map, got {h}x{w}")
        return (args["width"], h // 2, w // 2), (h // 2) * (w // 2) * c * args["width"], \
            c * args["width"]

    def module(args, inp):
        class Scaled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = torch.nn.Conv2d(inp[0], args["width"], 1, stride=2, bias=False)

            def forward(self, x):
                return self.conv(x) * args["scale"]

        return Scaled()

    register_layer("scaled", params=(Param("width", "count", required=True),
                                      Param("scale", "number", 1.0)),
                   shape=shape, module=module)
    yield
    unregister_layer("scaled")
    assert "scaled" not in LAYERS


def test_registered_layer_compiles_counts_and_runs(scaled_conv) -> None:
    node, macs, params, out = measure("conv(8) -> scaled(12, scale = 0.5) -> relu")
    assert node.out_shape == (out,) == ((12, 8, 8),)
    assert (node.macs, node.params) == (macs, params)
    source = routec.compile_network("t.route", text=one_column("scaled(12)")).source
    assert "L.registered('scaled', (8, 16, 16), scale=1.0, width=12)" in source


def test_registered_layer_errors_point_at_it(scaled_conv) -> None:
    text = one_column("conv(8) -> avgpool(3) -> scaled(4)")
    with pytest.raises(SpecError) as info:
        routec.compile_network("case.route", text=text)
    assert info.value.message == "shape mismatch: scaled: needs an even map, got 5x5"
    line = text.split("\n")[1]
    assert (info.value.pos.line, info.value.pos.column) == (2, line.index("scaled") + 1)
    with pytest.raises(SpecError, match="'scale' of scaled must be a number"):
        routec.compile_network("case.route", text=one_column("scaled(4, scale = [1])"))


def test_builtin_kinds_cannot_be_replaced() -> None:
    with pytest.raises(ValueError):
        register_layer("conv", shape=lambda a, i: (i, 0, 0), module=lambda a, i: None)
    assert LAYERS["conv"].builtin


def test_public_registration_api() -> None:
    assert routec.register_layer is register_layer
    assert routec.LayerParam is Param
