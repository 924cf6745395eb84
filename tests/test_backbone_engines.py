"""A supplied model routed through every way routec runs a network: the eager, fused,
compiled and onnx engines, ``routec bench``, ``routec profile``, ``routec export`` with
the torch-free runner, and ``routec draw``.

The models are those of tests/models.py (a torchvision-style ResNet, a timm-style ViT
whose pieces hand token sequences on). Independent checks: ``net.route`` (under its
own decisions and under a forced exit mix), torch's FLOP counter on the whole model,
the graph's own MAC counts, and ``routec eval``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from helpers import calibrate, images, randomise
from models import ROUTED_TV_RESNET, tiny_vit, tv_resnet
from routec.backbone.supplied import supply, withdraw_all
from routec.cli import main
from routec.codegen import build_class
from routec.tree import RoutingTree
from routec.engine import optimize_for_inference
from routec.engine.timing import FixedExits, sample_exits
from routec.graph import build_graph
from routec.parse import parse_spec

pytest.importorskip("onnxruntime")

TESTS = Path(__file__).resolve().parent
ENGINES = ["eager", "fused", "onnx"]
SHAPE = (3, 32, 32)
VIT = '''network routed_vit (input = 3x32x32, classes = 10) {
    model  backbone
    router default = mlp(hidden = [16], pooled = 1)
    exit   default = linear(pooled = 1)          # the mean of the tokens, then linear
    exit   own     = logits
    column b1   = backbone(to = "blocks.0")
    column b2   = backbone(from = "blocks.0", to = "blocks.2")
    column head = backbone(from = "blocks.2")
    route b1 -> either { exit | b2 -> either { exit | head -> exit(own) } }
}
'''
CASES = {"resnet": (tv_resnet, ROUTED_TV_RESNET, "models:tv_resnet"),
         "vit": (tiny_vit, VIT, "models:tiny_vit")}
QUICK = ["--data", "synthetic", "--batch", "16", "--val-examples", "64", "--no-progress",
         "--eval-every", "1000", "--log-every", "2", "--iterations", "4"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}


@pytest.fixture(autouse=True)
def no_model_left_supplied():
    yield
    withdraw_all()


def graph_of(case: str):
    """The routing graph of a case's spec (MACs, shapes: no weights involved)."""
    make, text, _ = CASES[case]
    supply("backbone", make())
    try:
        return build_graph(parse_spec(text, f"{case}.route"))
    finally:
        withdraw_all()


def model_macs(case: str) -> int:
    """The whole model's MACs by torch's FLOP counter: what its static chain costs."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        CASES[case][0]().eval()(torch.zeros(1, *SHAPE))
    return counter.get_total_flops() // 2


# -- the engines ---------------------------------------------------------------------------
@pytest.fixture(scope="module", params=sorted(CASES))
def built(request):
    make, text, _ = CASES[request.param]
    torch.manual_seed(0)
    supply("backbone", make())
    try:
        g = build_graph(parse_spec(text, f"{request.param}.route"))
        net = build_class(g)()
    finally:
        withdraw_all()
    randomise(net, seed=5)  # routers too, whose last layers start at zero
    calibrate(net, images(64, SHAPE, seed=1))  # then examples spread over the exits
    engines = {e: optimize_for_inference(net, e) for e in ENGINES}
    return g, net, engines


def _same(ref, out, what: str) -> None:
    assert torch.equal(out.leaf, ref.leaf), (what, out.leaf, ref.leaf)
    assert out.logits.shape == ref.logits.shape, what
    assert torch.allclose(out.logits, ref.logits, atol=2e-4, rtol=1e-4), \
        (what, float((out.logits - ref.logits).abs().max()))
    assert torch.equal(out.macs, ref.macs), what


def _check_engine(g, net, eng, name: str) -> None:
    """``eng`` routes like ``net.route`` at batches of 0, 1 and 33, by its own decisions
    and under a forced mix that sends examples to every exit."""
    topo = RoutingTree.of(net)
    path_macs = torch.tensor(g.path_macs(), dtype=torch.float64)
    leaves = len(topo.leaves)
    spread = set()
    for n in (0, 1, 33):
        x = images(n, SHAPE, seed=n + 2)
        with torch.inference_mode():
            ref = net.route(x)
        assert torch.equal(ref.macs, path_macs[ref.leaf])  # the graph's count, per path
        spread |= set(ref.leaf.tolist())
        _same(ref, eng.route(x), f"{name} n={n}")
        target = sample_exits([1.0] * leaves, n, seed=n) if n else torch.zeros(0, dtype=torch.long)
        with torch.inference_mode():
            ref = net.route(x, policy=FixedExits(topo, target))
        assert torch.equal(ref.leaf, target)  # the policy really forced the mix
        _same(ref, eng.route(x, policy=FixedExits(topo, target)), f"{name} n={n} mix")
    assert len(spread) >= 2, "the routers' own decisions reach several exits"
    x = images(1, SHAPE, seed=40)
    for leaf in range(leaves):  # one image forced to each exit in turn
        one = torch.tensor([leaf])
        with torch.inference_mode():
            ref = net.route(x, policy=FixedExits(topo, one))
        assert int(ref.leaf) == leaf
        _same(ref, eng.route(x, policy=FixedExits(topo, one)), f"{name} one to exit {leaf}")


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_route_like_net_route(built, engine: str) -> None:
    g, net, engines = built
    _check_engine(g, net, engines[engine], engine)


def test_fused_engine_folds_the_models_own_batchnorms(built) -> None:
    _, net, engines = built
    is_bn = lambda m: isinstance(m, torch.nn.modules.batchnorm._BatchNorm)  # noqa: E731
    bns = sum(map(is_bn, net.modules()))
    pieces = sum(is_bn(m) for name, m in net.named_modules() if ".piece." in name)
    own = sum(map(is_bn, (tv_resnet if net.NAME == "routed_resnet" else tiny_vit)().modules()))
    assert pieces == own and engines["fused"].folded == bns
    for mod in engines["fused"].modules:
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                       for m in mod.modules())


@pytest.mark.skipif(os.environ.get("ROUTEC_TEST_COMPILED") != "1",
                    reason="torch.compile takes about a minute per model on a small CPU; "
                           "set ROUTEC_TEST_COMPILED=1")
def test_compiled_engine_routes_like_net_route(built) -> None:
    g, net, _ = built
    _check_engine(g, net, optimize_for_inference(net, "compiled"), "compiled")


# -- runs of a routed model from the command line ------------------------------------------
def _train(tmp_path_factory, case: str) -> Path:
    """A short run of a case's spec, its routers then given random last layers (a few
    iterations leave them sending every example one way) so examples reach every exit."""
    from routec.train.checkpoint import load_checkpoint, save_checkpoint

    _, text, target = CASES[case]
    folder = tmp_path_factory.mktemp(f"routed-{case}")
    (folder / "routed.route").write_text(text)
    run = folder / "run"
    cwd = os.getcwd()
    os.chdir(TESTS)
    try:
        assert main(["train", str(folder / "routed.route"), "--model",
                     f"backbone={target}", "--out", str(run), *QUICK]) == 0
    finally:
        os.chdir(cwd)
        withdraw_all()
    state = load_checkpoint(run / "checkpoint.pt")
    last: dict[str, str] = {}
    for key in state["model"]:
        m = re.fullmatch(r"(j_\w+)\.mlp\.(\d+)\.weight", key)
        if m and state["model"][key].ndim == 2:
            if m[1] not in last or int(m[2]) > int(last[m[1]].split(".")[2]):
                last[m[1]] = key
    assert len(last) == 2, last
    gen = torch.Generator().manual_seed(4)
    for key in last.values():
        w = state["model"][key]
        state["model"][key] = torch.randn(w.shape, generator=gen)
    save_checkpoint(run / "checkpoint.pt", state)
    return run


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "resnet")


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory, "vit")


@pytest.fixture
def in_tests(monkeypatch):
    monkeypatch.chdir(TESTS)  # where models.py is: MODULE:CALLABLE imports from here


BENCH = ["--images", "32", "--batch", "16", "--repeats", "1", "--seconds", "0",
         "--latency-images", "2", "--json"]
PROFILE = ["--batch", "8", "--repeats", "1", "--json"]


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def _check_bench(result: dict, g, static_macs: int) -> None:
    names = [n.id for n in g.nodes]
    assert result["exits"] == [names[i] for i in g.leaves]
    assert result["engines"] == ENGINES
    # the per-node table: every node of the graph, pieces included, with the graph's MACs
    rows = {o["node"]: o for o in result["nodes"]}
    assert [o["node"] for o in result["nodes"][:len(names)]] == names
    for node in g.nodes:
        assert rows[node.id]["macs"] == node.macs, node.id
    pieces = [n.id for n in g.nodes if n.kind == "column"]
    assert len(pieces) == 3
    for name in pieces:
        o = rows[name]
        assert o["static_s"] > 0, name  # the static chain runs every piece
        if o["rows"]:  # rows of the first batch that reach it
            assert o["routed_s"] > 0, name
    assert rows[pieces[0]]["rows"] == 16  # the first piece sees every row of the batch
    # MACs: the static chain is the whole model; the routed mean is the mix of paths
    assert result["macs"]["static"] == static_macs
    mean = sum(f * m for f, m in zip(result["exit_mix"], g.path_macs()))
    assert result["macs"]["routed"] == pytest.approx(mean, rel=1e-9)
    for key, v in result["throughput"].items():
        assert v > 0, key


def _check_profile(table: dict, g) -> None:
    assert [o["node"] for o in table["nodes"]] == [n.id for n in g.nodes]
    for o, node in zip(table["nodes"], g.nodes):
        assert o["macs"] == node.macs and o["kind"] == node.kind, node.id
        assert o["seconds"] > 0, node.id
    chain = table["static_chain"]["by_batch"]["8"]
    assert chain["nodes"] == ["stem", "c1", "c2", "head", "exit_head"]
    assert chain["measured_s"] > 0 and chain["sum_of_nodes_s"] > 0


def test_bench_a_run_of_a_routed_model(resnet_run, in_tests, capsys) -> None:
    assert main(["bench", str(resnet_run), *BENCH]) == 0
    result = _json(capsys)
    _check_bench(result, graph_of("resnet"), model_macs("resnet"))
    assert sum(f > 0 for f in result["exit_mix"]) >= 2, result["exit_mix"]


def test_bench_a_spec_that_routes_a_model(in_tests, tmp_path, capsys) -> None:
    (tmp_path / "routed.route").write_text(ROUTED_TV_RESNET)
    assert main(["bench", str(tmp_path / "routed.route"), "--model",
                 "backbone=models:tv_resnet", "--mix", "50,25,25", *BENCH]) == 0
    result = _json(capsys)
    assert result["exit_mix"] == [0.5, 0.25, 0.25]  # 16, 8 and 8 of 32 images
    _check_bench(result, graph_of("resnet"), model_macs("resnet"))


def test_profile_a_run_of_a_routed_model(resnet_run, in_tests, capsys) -> None:
    assert main(["profile", str(resnet_run), *PROFILE]) == 0
    _check_profile(_json(capsys), graph_of("resnet"))


def test_profile_a_spec_that_routes_a_model(in_tests, tmp_path, capsys) -> None:
    (tmp_path / "vit.route").write_text(VIT)
    assert main(["profile", str(tmp_path / "vit.route"), "--model",
                 "backbone=models:tiny_vit", *PROFILE]) == 0
    table = _json(capsys)
    g = graph_of("vit")
    assert table["network"] == "routed_vit"
    assert [o["node"] for o in table["nodes"]] == [n.id for n in g.nodes]
    for o, node in zip(table["nodes"], g.nodes):
        assert o["macs"] == node.macs and o["seconds"] > 0, node.id
    chain = table["static_chain"]["by_batch"]["8"]
    assert chain["nodes"] == ["stem", "b1", "b2", "head", "exit_head"]


def test_a_spec_that_routes_a_model_needs_it_named(tmp_path, capsys) -> None:
    (tmp_path / "routed.route").write_text(ROUTED_TV_RESNET)
    for command in (["bench", *BENCH], ["profile", *PROFILE]):
        assert main([command[0], str(tmp_path / "routed.route"), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert "model 'backbone' is not supplied" in err and "Traceback" not in err, err


def test_export_of_a_vit_run_deploys_without_torch(vit_run, in_tests, tmp_path,
                                                   capsys) -> None:
    """Token sequences cross the ONNX boundary between pieces (as D×T×1 maps); the
    torch-free runner reaches what ``routec eval`` reports."""
    import numpy as np

    from routec.data.load import load_dataset

    assert main(["eval", str(vit_run), "--json"]) == 0
    (result,) = _json(capsys)["results"]
    assert all(f > 0 for f in result["exit_fraction"]), result["exit_fraction"]
    out = tmp_path / "export"
    assert main(["export", str(vit_run), "-o", str(out)]) == 0
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    g = graph_of("vit")
    assert manifest["path_macs"] == g.path_macs()
    assert [(o["id"], o["macs"]) for o in manifest["nodes"]] == [(n.id, n.macs) for n in g.nodes]
    import onnxruntime

    (b1,) = [o for o in manifest["nodes"] if o["id"] == "b1"]
    session = onnxruntime.InferenceSession(str(out / b1["file"]))
    (y,) = session.run(None, {"h0": np.zeros((3, *SHAPE), dtype=np.float32)})
    assert y.shape == (3, 32, 17, 1)  # 17 tokens of 32 as a D×T×1 map
    test = load_dataset("synthetic", seed=0).test
    np.save(tmp_path / "x.npy", test.images.numpy())
    np.save(tmp_path / "y.npy", test.labels.numpy())
    done = subprocess.run([sys.executable, "-m", "routec.deploy", str(out), "--images",
                           str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                           "--threads", "1", "--batch", "77"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    deployed = json.loads(done.stdout)
    assert deployed["torch_imported"] is False
    assert deployed["examples"] == result["examples"]
    assert deployed["accuracy"] == result["accuracy"]
    assert deployed["mean_macs"] == pytest.approx(result["mean_macs"], rel=1e-12)
    assert deployed["exit_counts"] == [round(f * result["examples"])
                                       for f in result["exit_fraction"]]


# -- pictures ------------------------------------------------------------------------------
def _check_picture(path: Path, g) -> None:
    text = path.read_text()
    for node in g.nodes:
        if node.kind in ("column", "exit"):
            assert node.id in text, node.id
    assert f"{len(g.nodes)} nodes, {len(g.leaves)} exits" in text


def test_draw_a_spec_that_routes_a_model(in_tests, tmp_path) -> None:
    (tmp_path / "routed.route").write_text(ROUTED_TV_RESNET)
    assert main(["draw", str(tmp_path / "routed.route"), "--model",
                 "backbone=models:tv_resnet", "-o", str(tmp_path / "flow.dot")]) == 0
    _check_picture(tmp_path / "flow.dot", graph_of("resnet"))
    if shutil.which("dot"):
        assert main(["draw", str(tmp_path / "routed.route"), "--model",
                     "backbone=models:tv_resnet", "-o", str(tmp_path / "flow.svg")]) == 0
        assert "<svg" in (tmp_path / "flow.svg").read_text()


def test_draw_a_run_of_a_routed_model(vit_run, in_tests, tmp_path, capsys) -> None:
    assert main(["eval", str(vit_run), "--json"]) == 0
    (result,) = _json(capsys)["results"]
    assert main(["draw", str(vit_run), "-o", str(tmp_path / "flow.dot"),
                 "--json", str(tmp_path / "flow.json")]) == 0
    _check_picture(tmp_path / "flow.dot", graph_of("vit"))
    flow = json.loads((tmp_path / "flow.json").read_text())
    assert flow["accuracy"] == pytest.approx(result["accuracy"], abs=1e-12)
    assert flow["exit_fraction"] == pytest.approx(result["exit_fraction"], abs=1e-12)
    if shutil.which("dot"):
        assert main(["draw", str(vit_run), "-o", str(tmp_path / "flow.svg")]) == 0
        assert "<svg" in (tmp_path / "flow.svg").read_text()
