"""A supplied model routed through the compiler: spec → graph → generated module → engines.

The models are written in tests/models.py (torchvision-style ResNet, timm-style
ViT). Independent checks: torch's FLOP counter on the whole model, the model's own
output, and ``net.route`` under a forced exit mix.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers import calibrate
from models import tiny_vit, tv_resnet
from routec.backbone.supplied import supply, withdraw
from routec.codegen import build_class, emit_module
from routec.errors import SpecError
from routec.graph import build_graph
from routec.parse import parse_spec

RESNET = '''network routed_resnet (input = 3x32x32, classes = 10) {
    model backbone
    exit own = logits
    exit default = linear(pooled = 1)
    router default = mlp(hidden = [16], pooled = 1)
    column c1 = backbone(to = "layer1")
    column c2 = backbone(from = "layer1", to = "layer3")
    column head = backbone(from = "layer3")
    route c1 -> either { exit | c2 -> either { exit | head -> exit(own) } }
}'''

VIT = '''network routed_vit (input = 3x32x32, classes = 10) {
    model backbone
    exit own = logits
    exit default = linear(pooled = 1)          # the mean of the tokens, then linear
    router default = mlp(hidden = [16], pooled = 1)
    column b1 = backbone(to = "blocks.0")
    column b2 = backbone(from = "blocks.0", to = "blocks.2")
    column head = backbone(from = "blocks.2")
    route b1 -> either { exit | b2 -> either { exit | head -> exit(own) } }
}'''

CASES = {"resnet": (tv_resnet, RESNET), "vit": (lambda: tiny_vit(depth=4), VIT)}


@pytest.fixture(params=sorted(CASES))
def routed(request):
    make, text = CASES[request.param]
    torch.manual_seed(0)
    model = make().eval()
    for p in model.parameters():  # weights unlike the initial ones, as trained ones are
        p.data.add_(0.05 * torch.randn_like(p))
    supply("backbone", model)
    g = build_graph(parse_spec(text, f"{request.param}.route"))
    net = build_class(g)().eval()
    yield model, g, net
    withdraw("backbone")


def _flops(model) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() // 2


def test_pieces_on_the_deepest_path_cost_what_the_model_costs(routed) -> None:
    model, g, _ = routed
    deepest = g.path(g.leaves[-1])
    pieces = sum(g.nodes[i].macs for i in deepest if g.nodes[i].kind == "column")
    assert pieces == _flops(model)
    heads = sum(g.nodes[i].macs for i in deepest if g.nodes[i].kind != "column")
    assert g.path_macs()[-1] == pieces + heads  # routers on top, counted apart
    assert g.nodes[g.leaves[-1]].macs == 0  # the model's own head is a column


def test_the_last_exit_is_the_models_own_output(routed) -> None:
    model, g, net = routed
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        dense = net(x)
        assert torch.allclose(dense.leaf_logits[-1], model(x), atol=1e-5, rtol=1e-5)
        last = len(g.leaves) - 1
        go_on = lambda j, s, rows, f: torch.ones(len(rows), dtype=torch.long)  # noqa: E731
        routed = net.route(x, policy=go_on)  # way 1 at both junctions: the deepest path
    assert routed.leaf.tolist() == [last] * 5
    assert torch.allclose(routed.logits, model(x), atol=1e-5, rtol=1e-5)


def test_the_network_owns_a_copy_of_the_models_weights(routed) -> None:
    model, g, net = routed
    names = dict(net.named_parameters())
    assert any(n.startswith("c1.") or n.startswith("b1.") for n in names)
    ours = {id(p) for p in net.parameters()}
    assert not ours & {id(p) for p in model.parameters()}  # training one leaves the other


def test_generated_module_names_each_piece_and_its_cuts(routed) -> None:
    _, g, _ = routed
    source = emit_module(g)
    assert "L.model_piece('backbone', None, " in source
    assert "L.logits(10)" in source
    cuts = [line.strip() for line in source.splitlines() if "a piece of model" in line]
    assert len(cuts) == 3 and cuts[0].endswith("from its input to after " +
                                               ("layer1" if "layer1" in cuts[0] else "blocks.0"))
    assert cuts[-1].endswith("to its output (its own head)")
    compile(source, "<generated>", "exec")


def test_engines_agree_on_a_routed_model(routed) -> None:
    pytest.importorskip("onnxruntime")
    from routec.engine import optimize_for_inference

    _, g, net = routed
    calibrate(net, torch.randn(64, 3, 32, 32))
    x = torch.randn(33, 3, 32, 32)
    with torch.inference_mode():
        ref = net.route(x)
    for engine in ("eager", "fused", "onnx"):
        out = optimize_for_inference(net, engine).route(x)
        assert torch.equal(out.leaf, ref.leaf), engine
        assert torch.allclose(out.logits, ref.logits, atol=2e-4, rtol=1e-4), engine


def _error(text: str, model=None) -> SpecError:
    supply("backbone", model if model is not None else tv_resnet())
    try:
        with pytest.raises(SpecError) as err:
            build_graph(parse_spec(text, "bad.route"))
    finally:
        withdraw("backbone")
    return err.value


def test_a_cut_inside_a_residual_block_points_at_the_spec() -> None:
    err = _error(RESNET.replace('to = "layer1")', 'to = "layer1.0.conv1")')
                 .replace('from = "layer1"', 'from = "layer1.0.conv1"'))
    text = err.render()
    assert "tensors are alive" in text and "valid cut points:" in text
    assert err.line == 6 and "bad.route:6:" in text


def test_pieces_out_of_order_are_refused() -> None:
    err = _error(RESNET.replace('from = "layer1", to = "layer3"', 'from = "layer2", to = "layer3"'))
    assert 'must read the model\'s tensor at "layer2"' in err.message
    assert err.line == 7


def test_an_unsupplied_model_is_a_spec_error_at_its_declaration() -> None:
    with pytest.raises(SpecError) as err:
        build_graph(parse_spec(RESNET.replace("model backbone", "model other")
                               .replace("backbone(", "other("), "x.route"))
    assert "model 'other' is not supplied" in err.value.message
    assert err.value.line == 2 and "--model other=MODULE:CALLABLE" in err.value.render()


def test_logits_exit_needs_the_models_head() -> None:
    err = _error(RESNET.replace("head -> exit(own)", "head -> exit").replace(
        "c2 -> either { exit |", "c2 -> either { exit(own) |"))
    assert "reads its column's output as the logits of 10 classes" in err.message


def test_untraceable_model_names_its_leaf_in_the_spec() -> None:
    from test_backbone_cut import Branchy

    text = '''network b (input = 3x8x8, classes = 10) {
        model backbone(leaves = ["gate"])
        exit own = logits
        column c1 = backbone(to = "gate")
        column head = backbone(from = "gate")
        route c1 -> either { exit | head -> exit(own) }
    }'''
    supply("backbone", Branchy(), leaves=("gate",))
    try:
        g = build_graph(parse_spec(text, "b.route"))
        net = build_class(g)().eval()
        x = torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            assert net(x).leaf_logits.shape == (2, 2, 10)
    finally:
        withdraw("backbone")
