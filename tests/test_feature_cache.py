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
from routec.train.backbone import FeatureCache, cache_bytes_estimate, freeze, pieces_of
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


# c3's output feeds only the head's piece: frozen and cached, the head ignores it
CHAIN = '''network chained_resnet (input = 3x32x32, classes = 10) {
    model backbone
    exit own = logits
    exit default = linear(pooled = 1)
    router default = mlp(hidden = [16], pooled = 1)
    column c1 = backbone(to = "layer1")
    column c2 = backbone(from = "layer1", to = "layer2")
    column c3 = backbone(from = "layer2", to = "layer3")
    column head = backbone(from = "layer3")
    route c1 -> either { exit | c2 -> either { exit | c3 -> head -> exit(own) } }
}'''


@pytest.fixture()
def chain():
    torch.manual_seed(0)
    supply("backbone", tv_resnet())
    try:
        yield build_class(build_graph(parse_spec(CHAIN, "chained.route")))()
    finally:
        withdraw("backbone")


def _outputs(net, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every column's piece output, computed (the independent reference)."""
    got = {}
    hooks = [pieces_of(getattr(net, c))[-1].register_forward_hook(
        lambda m, a, out, c=c: got.__setitem__(c, out)) for c in ("c1", "c2", "c3", "head")]
    with torch.no_grad():
        net(images)
    for h in hooks:
        h.remove()
    return got


def _pooled(t: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.adaptive_avg_pool2d(t, 1)


def test_each_piece_keeps_what_its_readers_read(chain) -> None:
    """c1 and c2 are read only by heads that average-pool to 1×1 first: they keep the
    pooled maps. c3 feeds only the cached head piece: it keeps nothing. The head's
    logits are read as they are (exit(own)): kept whole."""
    freeze(chain, "all")
    images = torch.randn(20, 3, 32, 32)
    chain.eval()
    reference = _outputs(chain, images)
    cache = FeatureCache.build(chain, images, torch.device("cpu"), batch=8)
    (c1,), (c2,), (c3,), (head,) = (pieces_of(getattr(chain, c)) for c in ("c1", "c2", "c3", "head"))
    assert torch.allclose(c1.cached, _pooled(reference["c1"]), atol=1e-6)
    assert torch.allclose(c2.cached, _pooled(reference["c2"]), atol=1e-6)
    assert c3.cached is None and c3.unread_shape == tuple(reference["c3"].shape[1:])
    assert torch.allclose(head.cached, reference["head"], atol=1e-6)
    kept = (_pooled(reference["c1"]).numel() + _pooled(reference["c2"]).numel()
            + reference["head"].numel()) * 4
    assert cache.nbytes == kept
    assert cache_bytes_estimate(chain, len(images)) == kept
    # every column that reads the input starts with a cached piece: no image is gathered
    assert not cache.input_read and cache.inputs(images, torch.arange(4)) is None
    idx = torch.tensor([7, 0, 19, 3, 3])
    x = cache.placeholder(images, len(idx), torch.device("cpu"))
    assert x.shape == (5, 3, 32, 32) and x.stride(0) == 0  # a stand-in, nothing copied
    with torch.no_grad():
        computed = chain(images[idx])
        with cache.rows(idx):
            cached = chain(x)
    assert torch.allclose(cached.leaf_logits, computed.leaf_logits, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(cached.scores, computed.scores))


def test_a_map_a_training_column_reads_is_kept_whole(chain) -> None:
    freeze(chain, "c2")  # c1 and c2 cached; c3 trains on c2's rows
    images = torch.randn(12, 3, 32, 32)
    cache = FeatureCache.build(chain, images, torch.device("cpu"), batch=4)
    reference = _outputs(chain, images)
    (c2,) = pieces_of(chain.c2)
    assert torch.allclose(c2.cached, reference["c2"], atol=1e-6)
    kept = (_pooled(reference["c1"]).numel() + reference["c2"].numel()) * 4
    assert cache.nbytes == cache_bytes_estimate(chain, len(images)) == kept
    assert not cache.input_read  # c1 still stands for the input
    chain.train()  # c3 and the heads train on the rows: the same as computing c1 and c2
    idx = torch.tensor([4, 4, 0, 11])
    with torch.no_grad():
        computed = chain(images[idx])
        with cache.rows(idx):
            cached = chain(images[idx])
    assert torch.allclose(cached.leaf_logits, computed.leaf_logits, atol=1e-5)


def test_heads_pooling_differently_keep_the_whole_map() -> None:
    torch.manual_seed(0)
    supply("backbone", tv_resnet())
    try:
        spec = CHAIN.replace("exit default = linear(pooled = 1)",
                             "exit default = linear(pooled = 2)")
        net = build_class(build_graph(parse_spec(spec, "mixed.route")))()
    finally:
        withdraw("backbone")
    freeze(net, "all")
    images = torch.randn(8, 3, 32, 32)
    cache = FeatureCache.build(net, images, torch.device("cpu"), batch=4)
    (c1,) = pieces_of(net.c1)  # its router pools to 1×1, its exit to 2×2: all of it
    assert tuple(c1.cached.shape) == (8, *_outputs(net, images)["c1"].shape[1:])
    net.eval()
    idx = torch.tensor([1, 6, 2])
    with torch.no_grad():
        computed = net(images[idx])
        with cache.rows(idx):
            cached = net(images[idx])
    assert torch.allclose(cached.leaf_logits, computed.leaf_logits, atol=1e-5)


def test_the_input_is_gathered_when_a_computed_column_reads_it(chain) -> None:
    images = torch.randn(12, 3, 32, 32)
    (c2,) = pieces_of(chain.c2)
    c2.freeze()  # cached, but c1 computes from the images
    cache = FeatureCache.build(chain, images, torch.device("cpu"), batch=4)
    assert cache.input_read
    idx = torch.tensor([5, 2])
    assert torch.equal(cache.inputs(images, idx), images[idx])
