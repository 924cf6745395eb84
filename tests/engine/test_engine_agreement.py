"""Every engine routes like ``net.route``: same decisions, close logits, same MACs.

The MACs are also checked against the graph's own per-path sums (an independent
count), and batch-norm folding against the number of batch-norms in the network.
"""
from __future__ import annotations

import pytest
import torch

from helpers import calibrate, compile_bundled, images, randomise
from routec.tree import RoutingTree
from routec.engine import optimize_for_inference
from routec.engine.timing import FixedExits, sample_exits
from routec.parse import bundled_specs

ENGINES = ["eager", "fused", "onnx"]
pytest.importorskip("onnxruntime")


def _same(ref, out, atol=2e-4) -> None:
    assert torch.equal(out.leaf, ref.leaf), (out.leaf, ref.leaf)
    assert out.logits.shape == ref.logits.shape
    assert torch.allclose(out.logits, ref.logits, atol=atol, rtol=1e-4), \
        float((out.logits - ref.logits).abs().max())
    assert torch.equal(out.macs, ref.macs)


def _graph_macs(g, leaf: torch.Tensor) -> torch.Tensor:
    return torch.tensor(g.path_macs(), dtype=torch.float64)[leaf]


@pytest.fixture(scope="module", params=sorted(bundled_specs()))
def built(request):
    g, net = compile_bundled(request.param)
    randomise(net, seed=5)
    calibrate(net, images(200, g.input_shape, seed=1))  # routers then spread examples
    engines = {e: optimize_for_inference(net, e) for e in ENGINES}
    return g, net, engines


@pytest.mark.parametrize("n", [0, 1, 7, 61])
def test_engines_agree_with_route(built, n: int) -> None:
    g, net, engines = built
    x = images(n, g.input_shape, seed=n + 2)
    with torch.inference_mode():
        ref = net.route(x)
    assert torch.equal(ref.macs, _graph_macs(g, ref.leaf))
    for name, eng in engines.items():
        out = eng.route(x)
        _same(ref, out)
    if n == 61:  # calibrated random weights spread examples over several exits
        assert len(set(ref.leaf.tolist())) >= 2


def test_engines_agree_under_a_forced_mix(built) -> None:
    """A policy callable (here forcing every exit to be used) is honoured by every engine."""
    g, net, engines = built
    topo = RoutingTree.of(net)
    n = 3 * len(topo.leaves)
    target = sample_exits([1.0] * len(topo.leaves), n, seed=1)
    x = torch.randn(n, *g.input_shape, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        ref = net.route(x, policy=FixedExits(topo, target))
    assert torch.equal(ref.leaf, target)  # the policy really forced every exit
    for eng in engines.values():
        _same(ref, eng.route(x, policy=FixedExits(topo, target)))
    for leaf in range(len(topo.leaves)):  # one image forced to each exit in turn
        one = torch.tensor([leaf])
        with torch.inference_mode():
            ref = net.route(x[:1], policy=FixedExits(topo, one))
        assert int(ref.leaf) == leaf
        for eng in engines.values():
            _same(ref, eng.route(x[:1], policy=FixedExits(topo, one)))


def test_batchnorm_is_folded_everywhere(built) -> None:
    g, net, engines = built
    bns = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert bns > 0 and engines["fused"].folded == bns
    for mod in engines["fused"].modules:
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                       for m in mod.modules())


def test_dynamic_kcpt_agrees() -> None:
    g, net = compile_bundled("tiny", dynamic=True)
    randomise(net, seed=2)
    x = images(23, g.input_shape, seed=4)
    calibrate(net, images(100, g.input_shape, seed=1), k_cpt=torch.full((100,), 1e-7))
    ks = [4e-9, torch.linspace(0, 1e-6, 23), torch.full((23,), 3e-7)]
    engines = [optimize_for_inference(net, e) for e in ENGINES]
    leaves = set()
    for k in ks:
        with torch.inference_mode():
            ref = net.route(x, k_cpt=k)
        leaves |= set(ref.leaf.tolist())
        for eng in engines:
            _same(ref, eng.route(x, k_cpt=k))
            _same(net.route(x[:1], k_cpt=k if not torch.is_tensor(k) else k[:1]),
                  eng.route(x[:1], k_cpt=k if not torch.is_tensor(k) else k[:1]))
    assert len(leaves) >= 2


def test_trained_run_agrees(trained_run) -> None:
    from routec.train.runs import load_run

    _, net, data, _ = load_run(trained_run)
    x = data.test.images[:301]
    with torch.inference_mode():
        ref = net.route(x)
    for e in ENGINES:
        eng = optimize_for_inference(net, e)
        _same(ref, eng.route(x))
        for i in (0, 5):  # single images
            _same(net.route(x[i:i + 1]), eng.route(x[i:i + 1]))


def test_route_batch_of_one_matches_batch() -> None:
    """The batch-1 fast path of net.route gives each row what the batched pass gives it."""
    g, net = compile_bundled("paper_tree")
    randomise(net, seed=11)
    calibrate(net, images(100, g.input_shape, seed=1))
    x = images(12, g.input_shape, seed=3)
    with torch.inference_mode():
        batch = net.route(x)
        for i in range(12):
            one = net.route(x[i:i + 1])
            assert int(one.leaf) == int(batch.leaf[i])
            assert torch.allclose(one.logits[0], batch.logits[i], atol=1e-5)
            assert float(one.macs) == g.path_macs()[int(one.leaf)]
    assert len(set(batch.leaf.tolist())) >= 2


def test_engines_use_inference_statistics_and_leave_the_mode_alone() -> None:
    g, net = compile_bundled("tiny")
    randomise(net, seed=8)
    calibrate(net, images(100, g.input_shape, seed=1))
    x = images(9, g.input_shape, seed=2)
    with torch.inference_mode():
        ref = net.eval().route(x)
    net.train()
    for e in ENGINES:
        out = optimize_for_inference(net, e).route(x)
        _same(ref, out)
        assert net.training


def test_eval_cli_engines_agree(trained_run, capsys) -> None:
    import json

    from routec.cli import main

    results = {}
    for e in ENGINES:
        assert main(["eval", str(trained_run), "--engine", e, "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["engine"] == e
        (r,) = payload["results"]
        results[e] = (r["accuracy"], r["exit_fraction"], r["mean_macs"])
    assert results["fused"] == results["eager"] == results["onnx"]
