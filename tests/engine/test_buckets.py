"""The bucketed engine (cudagraphs' code with graphs off, as it runs on a CPU) routes
like ``net.route`` at every bucket boundary, and pads each segment to its bucket."""
from __future__ import annotations

import pytest
import torch

from helpers import calibrate, compile_bundled, images, randomise
from routec.tree import RoutingTree
from routec.engine import optimize_for_inference
from routec.engine.timing import FixedExits as MixPolicy
from routec.engine.buckets import bucket_for, bucket_sizes, pad_rows
from routec.engine.graphs import BucketEngine
from routec.errors import RoutecError

BATCH = 16


def test_buckets_are_powers_of_two_up_to_the_batch() -> None:
    for batch in (1, 5, 16, 100):
        sizes = bucket_sizes(batch)
        assert sizes[-1] == batch and list(sizes) == sorted(set(sizes))
        assert all(s & (s - 1) == 0 for s in sizes[:-1])  # powers of two below the batch
        assert all(2 * s >= batch for s in sizes[-2:-1])  # no power of two missing
        for m in range(1, 2 * batch + 2):
            b = bucket_for(m, sizes)
            assert b >= m
            assert not [s for s in sizes if m <= s < b]  # the smallest bucket that holds m
    assert bucket_sizes(16, [8, 3, 8]) == (3, 8)
    with pytest.raises(RoutecError):
        bucket_sizes(16, [0, 4])


def test_padding_keeps_rows_and_layout() -> None:
    a = torch.randn(3, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    p = pad_rows(a, 8)
    assert p.shape == (8, 4, 5, 5) and p.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(p[:3], a) and not p[3:].any()


@pytest.fixture(scope="module", params=["tiny", "paper_chain"])
def net(request):
    g, net = compile_bundled(request.param)
    randomise(net, seed=5)
    calibrate(net, images(100, g.input_shape, seed=1))
    return g, net


def _sizes() -> list[int]:
    out = set()
    for b in bucket_sizes(BATCH):
        out |= {b - 1, b, b + 1}
    return sorted(s for s in out if s >= 1)


@pytest.mark.parametrize("n", _sizes())
def test_every_bucket_boundary_routes_like_net_route(net, n: int) -> None:
    g, net = net
    topo = RoutingTree.of(net)
    eng = BucketEngine(net, batch=BATCH, graphs=False)
    assert not eng.graphs
    x = images(n, g.input_shape, seed=n)
    deepest = len(topo.leaves) - 1
    # all n rows down the deepest path (every segment on it gets n rows), then the rows
    # split over the exits (segments get every size below n)
    for target in (torch.full((n,), deepest), torch.arange(n) % len(topo.leaves)):
        eng.used.clear()
        with torch.inference_mode():
            ref = net.route(x, policy=MixPolicy(topo, target))
        out = eng.route(x, policy=MixPolicy(topo, target))
        assert torch.equal(ref.leaf, target)
        assert torch.equal(out.leaf, ref.leaf)
        assert torch.allclose(out.logits, ref.logits, atol=2e-4, rtol=1e-4)
        assert torch.equal(out.macs, ref.macs)
        # the first segment ran on all n rows, padded to the smallest bucket holding them
        first = [b for (s, b) in eng.used if s == 0]
        assert first == [min(b for b in bucket_sizes(BATCH) + (32,) if b >= n)]
        assert all(b in bucket_sizes(BATCH) or b > BATCH for (_, b) in eng.used)


def test_cudagraphs_without_cuda_is_one_line() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    _, net = compile_bundled("tiny")
    with pytest.raises(RoutecError) as err:
        optimize_for_inference(net, "cudagraphs")
    assert len(err.value.message.splitlines()) == 1 and "CUDA" in err.value.message
