"""--compile: the training step compiled by torch.compile computes what the eager step
computes (loss, reach, routing, gradients), compiles once for a run whose temperature
decays, and without a C++ compiler is refused before a run directory is made."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from routec.codegen import build_class
from routec.graph import build_graph
from routec.parse import load_spec
from routec.train.config import make_config
from routec.train.machine import cxx_compiler
from routec.train.steps import compile_step, strategy_step
from helpers import images, randomise
from models import ROUTED_TV_RESNET

needs_compiler = pytest.mark.skipif(cxx_compiler() is None,
                                    reason="torch.compile needs a C++ compiler on a CPU")


def _net(seed: int = 0):
    g = build_graph(load_spec("tiny"))
    net = build_class(g)()
    randomise(net, seed=seed)
    net.train()
    return g, net


def _grads(net) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


@needs_compiler
@pytest.mark.parametrize("strategy", ["actor", "critic"])
def test_compiled_step_computes_what_the_eager_step_does(strategy: str) -> None:
    from torch._dynamo.utils import counters

    g, net = _net()
    cfg = make_config({"spec": "tiny", "strategy": strategy, "k_cpt": 3e-9})
    step = compile_step()
    graphs = None
    for i, tau in enumerate((1.0, 0.8, 0.55)):  # a decaying temperature
        x = images(16, g.input_shape, seed=i)
        y = torch.randint(0, g.classes, (16,), generator=torch.Generator().manual_seed(i))
        results = []
        for fn in (strategy_step, step):
            net.zero_grad(set_to_none=True)
            res = fn(cfg, net, net, x, y, 3e-9, tau, torch.Generator().manual_seed(0))
            res.loss.backward()
            results.append((res, _grads(net)))
        (eager, eager_grads), (compiled, compiled_grads) = results
        torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(compiled.reach, eager.reach, rtol=1e-5, atol=1e-7)
        assert torch.equal(compiled.leaf, eager.leaf)
        assert compiled_grads.keys() == eager_grads.keys() and eager_grads
        for name, grad in eager_grads.items():
            torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-6,
                                       msg=lambda m: f"{name}: {m}")
        if i == 0:
            graphs = counters["stats"]["unique_graphs"]
    # τ enters as a tensor: a new temperature compiles nothing new
    assert counters["stats"]["unique_graphs"] == graphs


def _eager_update(params, opt, scales, max_norm) -> None:
    """TALR, clipping and SGD as the eager trainer takes them (steps.one_step)."""
    from routec.train.steps import with_grads
    from routec.train.talr import apply_talr

    if scales is not None:
        apply_talr(params, scales)
    torch.nn.utils.clip_grad_norm_(with_grads(params), max_norm)
    opt.step()


@needs_compiler
@pytest.mark.parametrize("talr", [True, False])
def test_compiled_update_takes_the_eager_update(talr: bool) -> None:
    """TALR, clipping (binding: a small max norm) and momentum SGD over five steps
    leave the weights and momentum buffers the eager update leaves; the first step,
    before momentum buffers exist, is the eager path's."""
    from routec.train.compiled_update import CompiledUpdate
    from routec.train.costs import node_params
    from routec.train.sgd import SGD
    from routec.train.talr import talr_scales

    cfg = make_config({"spec": "tiny", "strategy": "actor", "k_cpt": 3e-9})
    nets = [_net(seed=1)[1] for _ in range(2)]
    g = build_graph(load_spec("tiny"))
    opts = [SGD(n.parameters(), lr=0.1, momentum=0.9) for n in nets]
    update = CompiledUpdate(node_params(nets[1]), opts[1], max_norm=0.05)
    assert update.covers
    taken = []
    for i in range(5):
        x = images(16, g.input_shape, seed=10 + i)
        y = torch.randint(0, g.classes, (16,), generator=torch.Generator().manual_seed(i))
        for which, (net, opt) in enumerate(zip(nets, opts)):
            for group in opt.param_groups:
                group["lr"] = 0.1 / (1 + i)  # the schedule moves lr: nothing recompiles
            res = strategy_step(cfg, net, net, x, y, 3e-9, 1.0, torch.Generator())
            opt.zero_grad(set_to_none=True)
            res.loss.backward()
            scales = talr_scales(res.reach) if talr else None
            if which == 0 or not update(scales):
                taken.append((which, "eager"))
                _eager_update(node_params(net), opt, scales, 0.05)
    assert taken.count((1, "eager")) == 1, "only the first step is left to the eager path"
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        if a.requires_grad:
            torch.testing.assert_close(opts[1].state[b]["momentum_buffer"],
                                       opts[0].state[a]["momentum_buffer"],
                                       rtol=1e-4, atol=1e-6)
    moved = [not torch.equal(a, b) for a, b in zip(nets[0].parameters(),
                                                   _net(seed=1)[1].parameters())]
    assert any(moved)


TESTS = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}


@needs_compiler
def test_a_frozen_backbone_trains_compiled_as_it_trains_eager(tmp_path: Path) -> None:
    """The case --compile is for: exits and routers on a frozen model's cached features.
    The compiled run records its setting and logs the losses the eager one logs."""
    (tmp_path / "routed.route").write_text(ROUTED_TV_RESNET)
    args = [sys.executable, "-m", "routec", "train", str(tmp_path / "routed.route"),
            "--model", "backbone=models:tv_resnet", "--freeze", "all", "--no-augment",
            "--data", "synthetic", "--batch", "16", "--val-examples", "64", "--no-progress",
            "--eval-every", "1000", "--log-every", "2", "--iterations", "260"]
    for run, extra in (("eager", []), ("compiled", ["--compile"])):
        done = subprocess.run([*args, "--out", str(tmp_path / run), *extra], cwd=TESTS,
                              env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "cached the frozen pieces' outputs" in done.stderr
    cfg = json.loads((tmp_path / "compiled" / "config.json").read_text())
    assert cfg["compile"] is True
    logs = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text()
             .splitlines()] for run in ("eager", "compiled")]
    # the first logged losses agree to float precision (later ones drift apart as two
    # orders of summation do over hundreds of SGD steps)
    assert logs[0][1]["iteration"] == logs[1][1]["iteration"] == 2
    assert logs[1][1]["train_loss"] == pytest.approx(logs[0][1]["train_loss"], rel=1e-5)
    assert logs[1][1]["train_accuracy"] == logs[0][1]["train_accuracy"]
    assert logs[1][-1]["iteration"] == 260


def test_compile_without_a_compiler_is_one_line_and_makes_no_run(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with no compiler on it (python is named in full)
    bare.mkdir()
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "routec", "train", "tiny", "--data",
                           "synthetic", "--iterations", "2", "--compile", "--out", str(out)],
                          env={**ENV, "PATH": str(bare)}, capture_output=True, text=True)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "--compile needs a C++ compiler" in done.stderr.splitlines()[0]
    assert not out.exists()
