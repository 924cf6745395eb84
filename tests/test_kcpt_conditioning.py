"""Every-layer k_cpt conditioning (RunConfig.k_cpt_conditioning = "every-layer").

Routers of a dynamic-k_cpt network read k_cpt either the paper's way (one input
k_cpt × 1e7 at the first layer) or as log1p(k_cpt / unit) beside every linear layer's
input. These tests check the new form against computations written out by hand, and
that the paper's form (the default) generates exactly the code it did before.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import routec
from helpers import assert_deployed_routes_as_torch, calibrate, images, randomise
from routec.api import compile_network
from routec.cli import main
from routec.errors import RunError
from routec.experiment.suites import FIGURES, SUITES
from routec.runtime import layers as L
from routec.train.config import LATENCY_K_CPT_GRID, make_config

UNIT = 1e-9
KS = (0.0, 1e-9, 4e-9, 3.2e-8, 6.4e-8)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _reference_head(head: L.Head, feats: torch.Tensor, k: torch.Tensor, unit: float
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """An eval-mode every-layer router written out with its own weights: each linear's
    weight split into its feature columns and its k column (no concatenation)."""
    kf = torch.log1p(k / unit)
    x, pre = feats, []
    mods = list(head.mlp)
    for i, m in enumerate(mods):
        if not isinstance(m, torch.nn.Linear):
            continue
        y = x @ m.weight[:, :-1].T + kf[:, None] * m.weight[:, -1] + m.bias
        pre.append(y)
        if i + 1 < len(mods):  # hidden: batch-norm with running statistics, then ReLU
            bn = mods[i + 1]
            y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            y = torch.relu(y)
        x = y
    return x, pre


def test_every_layer_router_equals_a_hand_written_reference() -> None:
    c = compile_network("tiny", dynamic_kcpt=True, kcpt_unit=UNIT)
    net = c.build()
    randomise(net, seed=1)
    net.eval()
    x = images(6, c.graph.input_shape, seed=2)
    with torch.no_grad():
        h = net.a(net.stem(x))  # the pyramid both junction j_a's router reads
        feats = h[-1].flatten(1)
        for kv in KS:
            k = torch.full((6,), kv)
            want, _ = _reference_head(net.j_a, feats, k, UNIT)
            got = net.j_a(h, k)
            assert torch.allclose(got, want, atol=1e-5), kv
            # and the dense pass hands the router the same k
            assert torch.allclose(net(x, k_cpt=kv).scores[0], want, atol=1e-5)


def test_every_linear_layer_hears_k_directly() -> None:
    """With the first layer's k column zeroed, k still moves every later layer's
    pre-activation in the every-layer form, and nothing at all in the paper's form."""
    torch.manual_seed(0)
    feats = torch.randn(8, 32, 1, 1)
    heads = {"every": L.router(33, hidden=(16, 16), ways=3, k_cpt_input=True, k_cpt_unit=UNIT),
             "paper": L.router(33, hidden=(16, 16), ways=3, k_cpt_input=True)}
    for name, head in heads.items():
        randomise(head, seed=3)
        head.eval()
        with torch.no_grad():
            head.mlp[0].weight[:, -1] = 0
        outs: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: outs.append(o))
                 for m in head.mlp if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            head((feats,), torch.full((8,), 1e-9))
            lo, outs[:] = list(outs), []
            head((feats,), torch.full((8,), 3.2e-8))
            hi = list(outs)
        for hk in hooks:
            hk.remove()
        moved = [not torch.allclose(a, b) for a, b in zip(lo, hi)]
        assert len(moved) == 3
        assert moved == ([False, True, True] if name == "every" else [False, False, False])


def test_the_k_feature_is_order_one_for_both_grids() -> None:
    macs = make_config({"spec": "tiny", "k_cpt": "dynamic",
                        "k_cpt_conditioning": "every-layer"})
    lat = make_config({"spec": "tiny", "k_cpt": "dynamic", "cost": "latency",
                       "cost_table": "table.json", "k_cpt_conditioning": "every-layer"})
    assert lat.k_cpt_grid == LATENCY_K_CPT_GRID
    for cfg in (macs, lat):
        assert cfg.router_kcpt_unit == pytest.approx(1e-9)
        fed = [math.log1p(cfg.router_k_cpt(k) / cfg.router_kcpt_unit) for k in cfg.k_cpt_grid]
        assert fed[0] == 0 and 0.5 < fed[1] < 1 and max(fed) < 5
    paper = make_config({"spec": "tiny", "k_cpt": "dynamic"})
    assert paper.k_cpt_conditioning == "paper" and paper.router_kcpt_unit is None


# sha256 of the code generated for these specs before every-layer conditioning existed
# (routec's version string replaced by VERSION): the paper's form must not change.
# Regenerated once since, when the class began to carry its routing tree as one
# `TREE = RoutingTree(...)` literal instead of eleven tables: a diff of the old and new
# sources showed only that block and its import changed.
PAPER_SOURCES = {
    ("paper_chain", True): "edcada60435ea6b0eff20508b0db886226642f7cb45aa91abb920279c3b4a2b1",
    ("paper_chain", False): "3e90755ad6e259ed1abdb357bfd7a43cdccce2c80d0db0dcf3a3ed4968225479",
    ("tiny", True): "38894d0bb081dd1ed82720c21d541f0fdd3cf6b1f801f1fc88d319f79e5ad205",
}


@pytest.mark.parametrize("name,dynamic", list(PAPER_SOURCES))
def test_the_paper_form_generates_the_same_code(name: str, dynamic: bool) -> None:
    src = compile_network(name, dynamic_kcpt=dynamic).source
    assert "k_cpt_unit" not in src
    assert _sha(src.replace(routec.__version__, "VERSION")) == PAPER_SOURCES[name, dynamic], \
        "generated code changed (or the bundled spec did: then regenerate these digests)"


def test_every_layer_code_differs_only_in_routers_and_their_costs() -> None:
    paper = compile_network("paper_chain", dynamic_kcpt=True)
    every = compile_network("paper_chain", dynamic_kcpt=True, kcpt_unit=UNIT)
    a, b = paper.source.splitlines(), every.source.splitlines()
    assert len(a) == len(b)
    changed = [(x, y) for x, y in zip(a, b) if x != y]
    assert any("k_cpt_unit=1e-09" in y for _, y in changed)
    for x, y in changed:
        assert "L.router(" in y or "MACs" in y or "MACS" in y or "parameters" in y, y


@pytest.mark.parametrize("name", ["paper_chain", "tiny"])  # tiny: a router with no hidden layer
def test_every_layer_router_costs_are_the_modules_own(name: str) -> None:
    """Parameters as the module counts them, and one MAC per linear weight."""
    every = compile_network(name, dynamic_kcpt=True, kcpt_unit=UNIT)
    net = every.build()
    for j in every.graph.junctions:
        node = every.graph.nodes[j]
        head = getattr(net, node.id)
        assert node.params == sum(p.numel() for p in head.parameters())
        assert node.macs == sum(m.weight.numel() for m in head.mlp
                                if isinstance(m, torch.nn.Linear))


def test_settings_refuse_every_layer_without_dynamic_k(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="applies with --k-cpt dynamic"):
        make_config({"spec": "tiny", "k_cpt": 4e-9, "k_cpt_conditioning": "every-layer"})
    with pytest.raises(RunError, match="positive value"):
        make_config({"spec": "tiny", "k_cpt": "dynamic", "k_cpt_grid": [0.0],
                     "k_cpt_conditioning": "every-layer"})
    assert main(["train", "tiny", "--data", "synthetic", "--k-cpt", "4e-9",
                 "--k-cpt-conditioning", "every-layer", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()
    assert main(["compile", "tiny", "--kcpt-conditioning", "every-layer"]) == 2
    out = tmp_path / "tiny.py"
    assert main(["compile", "tiny", "--dynamic-kcpt", "--kcpt-conditioning", "every-layer",
                 "--kcpt-unit", "2e-9", "-o", str(out)]) == 0
    assert "k_cpt_input=True, k_cpt_unit=2e-09" in out.read_text()


def test_train_resume_and_eval_keep_the_conditioning(tmp_path: Path) -> None:
    from routec.train.evaluate import evaluate
    from routec.train.loop import train
    from routec.train.runs import load_run

    run = tmp_path / "run"
    base = {"spec": "tiny", "data": "synthetic", "batch": 16, "log_every": 2,
            "eval_every": 100, "checkpoint_every": 2, "val_examples": 32, "k_cpt": "dynamic"}
    every = make_config({**base, "iterations": 4, "k_cpt_conditioning": "every-layer"})
    train(every, run, progress=False, stop_after=2)
    with pytest.raises(RunError, match="--k-cpt-conditioning was 'every-layer', now 'paper'"):
        train(make_config({**base, "iterations": 4}), run, resume=True, progress=False)
    train(every, run, resume=True, progress=False)
    cfg, net, data, state = load_run(run)
    assert state["iteration"] == 4 and cfg.k_cpt_conditioning == "every-layer"
    assert net.j_a.k_cpt_unit == pytest.approx(1e-9) and net.j_b.k_cpt_unit == pytest.approx(1e-9)
    with torch.no_grad():  # the trained routers' last layers read k: they left zero
        assert net.j_a.mlp[-1].weight[:, -1].abs().sum() > 0
    r = evaluate(net, data.test.images[:40], data.test.labels[:40], k_cpt=4e-9)
    assert 0 <= r.accuracy <= 1
    assert main(["eval", str(run), "--k-cpt", "0", "3.2e-8"]) == 0


def test_onnx_export_of_an_every_layer_network_matches_eager(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from routec.deploy import load
    from routec.engine.onnx_export import export_network

    c = compile_network("tiny", dynamic_kcpt=True, kcpt_unit=UNIT)
    net = c.build()
    randomise(net, seed=4)
    calibrate(net, images(100, c.graph.input_shape, seed=1), k_cpt=torch.full((100,), 4e-9))
    export_network(net, tmp_path / "dyn")
    deployed = load(tmp_path / "dyn")
    x = images(17, c.graph.input_shape, seed=6)
    k = torch.linspace(0, 6.4e-8, 17)
    assert_deployed_routes_as_torch(net, deployed, x, k)


def test_the_listen_suite_is_the_dynamic_suite_with_every_layer_routers() -> None:
    from routec.report.summary import strategy_label

    (paper,) = SUITES["hybrid-actor-dynamic"].values()
    (listen,) = SUITES["hybrid-actor-dynamic-listen"].values()
    assert listen == {**paper, "k_cpt_conditioning": "every-layer"}
    (panel,) = [p for f in FIGURES if f.key == "fig5" for p in f.panels if p.key == "strategies"]
    assert {"hybrid-actor-dynamic", "hybrid-actor-dynamic-listen"} <= set(panel.suites)
    a, b = (strategy_label(make_config({**r, "iterations": 10})) for r in (paper, listen))
    assert a == "actor, dynamic k_cpt" and b != a
