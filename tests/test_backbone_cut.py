"""Cutting a model the user already has into pieces: torch.fx cut points, weights kept.

Checked against independent computations: the pieces composed equal the model's own
output; their MACs add up to torch's FLOP count of the whole model; a cut inside a
residual block is found by brute force (which earlier values a later op still reads).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from models import tiny_vit, tv_resnet
from routec.backbone.cut import CutError, cut_points, piece_stats, resolve_cut, split, trace

MODELS = {
    "resnet": (lambda: tv_resnet([2, 1, 1, 1]), ["layer1", "layer2", "layer3", "layer4"]),
    "vit": (lambda: tiny_vit(depth=4), ["blocks.0", "blocks.1", "blocks.3"]),
}


def _macs(model: nn.Module) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_pieces_compose_to_the_model_and_count_its_macs(kind: str) -> None:
    make, names = MODELS[kind]
    torch.manual_seed(0)
    model = make().eval()
    gm = trace(model)
    for k in range(1, len(names) + 1):  # cut at 1, 2, ... points
        pieces = split(gm, [resolve_cut(gm, n) for n in names[:k]])
        assert len(pieces) == k + 1
        x = torch.randn(3, 3, 32, 32)
        y = x
        with torch.no_grad():
            for piece in pieces:
                y = piece(y)
            assert torch.equal(y, model(x))
        stats = piece_stats(pieces, (3, 32, 32))
        assert sum(s["macs"] for s in stats) == _macs(model)
        assert sum(s["params"] for s in stats) == sum(p.numel() for p in model.parameters())
        assert stats[-1]["shape"] == (10,)


def test_piece_shapes_are_feature_maps_or_token_sequences() -> None:
    resnet = trace(tv_resnet())
    stats = piece_stats(split(resnet, [resolve_cut(resnet, "layer2")]), (3, 32, 32))
    assert stats[0]["shape"] == (32, 4, 4)  # C×H×W after stem (÷4) and layer2 (÷2)
    vit = trace(tiny_vit())
    stats = piece_stats(split(vit, [resolve_cut(vit, "blocks.1")]), (3, 32, 32))
    assert stats[0]["shape"] == (17, 32)  # T×D: 16 patches and the class token


def test_pieces_share_the_models_parameters() -> None:
    """Weights loaded into the model after cutting are the pieces' weights."""
    model = tv_resnet().eval()
    gm = trace(model)
    pieces = split(gm, [resolve_cut(gm, "layer1")])
    other = tv_resnet().eval()
    torch.manual_seed(1)
    for p in other.parameters():
        p.data.normal_()
    model.load_state_dict(other.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(pieces[1](pieces[0](x)), other(x))


def _brute_force_live(gm, name: str) -> int:
    """How many values made up to ``name``'s last node are read after it (slow, plain)."""
    nodes = [n for n in gm.graph.nodes if n.op not in ("get_attr", "output")]
    owned = [i for i, n in enumerate(nodes)
             if name == n.name or name in [k.split("@")[0]
                                           for k in (n.meta.get("nn_module_stack") or {})]
             or (n.op == "call_module" and n.target == name)]
    i = max(owned)
    live = 0
    for j in range(i + 1):
        readers = [u for u in nodes[j].users if u.op == "output" or nodes.index(u) > i]
        live += bool(readers)
    return live


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_module_is_a_cut_point_exactly_when_one_tensor_is_alive(kind: str) -> None:
    gm = trace(MODELS[kind][0]())
    valid = {p.name for p in cut_points(gm)}
    checked = 0
    for name, _ in gm.named_modules():
        if not name or name in ("head", "fc"):
            continue
        try:
            alive = _brute_force_live(gm, name)
        except ValueError:  # a module the trace never called
            continue
        checked += 1
        if alive == 1:
            resolve_cut(gm, name)
        else:
            with pytest.raises(CutError, match="tensors are alive") as err:
                resolve_cut(gm, name)
            assert "valid cut points:" in str(err.value)
            assert name not in valid
    assert checked > 10


def test_a_cut_inside_a_residual_block_is_refused_with_the_valid_ones() -> None:
    gm = trace(tv_resnet())
    with pytest.raises(CutError) as err:
        resolve_cut(gm, "layer2.0.conv1")
    text = str(err.value)
    assert "2 tensors are alive" in text and "layer2, " in text and "\n" not in text.split(
        "hint:")[0].strip()


def test_unknown_names_and_order() -> None:
    gm = trace(tv_resnet())
    with pytest.raises(CutError, match="no module or traced node named 'layer9'"):
        resolve_cut(gm, "layer9")
    with pytest.raises(CutError, match="in the order"):
        split(gm, [resolve_cut(gm, "layer2"), resolve_cut(gm, "layer1")])


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = Gate()
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.gate(self.stem(x)).mean(dim=(2, 3)))


class Gate(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # a Python branch on a tensor's value
            return x.relu()
        return -x


def test_an_untraceable_model_names_the_submodule_to_keep_whole() -> None:
    with pytest.raises(CutError, match=r'(?s)cannot be traced.*leaves = \["gate"\]'):
        trace(Branchy())
    gm = trace(Branchy(), leaves=("gate",))
    assert "gate" in {p.name for p in cut_points(gm)}
    with pytest.raises(CutError, match="no submodule named nope"):
        trace(Branchy(), leaves=("nope",))
