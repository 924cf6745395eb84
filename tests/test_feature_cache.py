"""The frozen pieces' cached outputs, gathered per step into a reused buffer: each step
sees exactly its rows, a piece frozen only up to a cut still trains on them, and a
backward through rows a later step has overwritten is refused, not silently wrong."""
from __future__ import annotations

import pytest
import torch

from models import tv_resnet
from routec.backbone.supplied import supply, withdraw
from routec.codegen import build_class
from routec.graph import build_graph
from routec.parse import parse_spec
from routec.train.backbone import FeatureCache, freeze, pieces_of
from test_backbone_route import RESNET

SPEC = RESNET  # the routed ResNet of the compiler's tests: cuts after layer1 and layer3


@pytest.fixture()
def net():
    torch.manual_seed(0)
    supply("backbone", tv_resnet())
    try:
        yield build_class(build_graph(parse_spec(SPEC, "cached.route")))()
    finally:
        withdraw("backbone")


def test_each_step_sees_its_own_rows(net) -> None:
    freeze(net, "all")
    images = torch.randn(40, 3, 32, 32)
    cache = FeatureCache.build(net, images, torch.device("cpu"), batch=16)
    net.eval()
    gen = torch.Generator().manual_seed(1)
    for size in (8, 8, 5, 8):  # a ragged batch between equal ones: the buffer follows
        idx = torch.randperm(40, generator=gen)[:size]
        with torch.no_grad():
            computed = net(images[idx]).leaf_logits
            with cache.rows(idx):
                cached = net(images[idx]).leaf_logits
        assert torch.allclose(cached, computed, atol=1e-5)


def test_a_piece_after_the_cut_trains_on_the_rows(net) -> None:
    freeze(net, "c1")  # c1 frozen and cached; c2 and the head train on its rows
    images = torch.randn(24, 3, 32, 32)
    cache = FeatureCache.build(net, images, torch.device("cpu"), batch=8)
    net.train()
    idx = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    with cache.rows(idx):
        out = net(images[idx])
    out.leaf_logits.sum().backward()
    (c2,) = pieces_of(net.c2)
    grads = [p.grad for p in c2.parameters()]
    assert all(g is not None for g in grads) and any(bool(g.abs().sum() > 0) for g in grads)


def test_a_backward_through_overwritten_rows_is_refused(net) -> None:
    freeze(net, "c1")
    images = torch.randn(24, 3, 32, 32)
    cache = FeatureCache.build(net, images, torch.device("cpu"), batch=8)
    net.train()
    with cache.rows(torch.arange(8)):
        first = net(images[:8]).leaf_logits.sum()
    with cache.rows(torch.arange(8, 16)):  # the next step gathers into the same buffer
        net(images[8:16])
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.backward()
