"""Routing a model you already have from the command line: train with its weights frozen,
then eval, draw, export and resume without retyping it.

The model is ``tv_resnet`` of tests/models.py, named as a user names theirs:
``--model backbone=models:tv_resnet`` from the folder that holds ``models.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import ROUTED_TV_RESNET, tv_resnet
from routec.backbone.supplied import withdraw_all
from routec.cli import main
from routec.train.checkpoint import load_checkpoint

TESTS = Path(__file__).resolve().parent
QUICK = ["--data", "synthetic", "--batch", "16", "--val-examples", "64", "--no-progress",
         "--eval-every", "1000", "--log-every", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROUTEC_NO_PROGRESS": "1"}


@pytest.fixture(autouse=True)
def from_the_users_folder(monkeypatch):
    monkeypatch.chdir(TESTS)  # where models.py is: MODULE:CALLABLE imports from here
    yield
    withdraw_all()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(3)
    model = tv_resnet()
    for p in model.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # trained statistics, not the defaults
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory, weights) -> Path:
    folder = tmp_path_factory.mktemp("backbone")
    (folder / "routed.route").write_text(ROUTED_TV_RESNET)
    run = folder / "run"
    cwd = os.getcwd()
    os.chdir(TESTS)
    try:
        assert main(["train", str(folder / "routed.route"), "--model",
                     "backbone=models:tv_resnet", "--weights", str(weights), "--freeze", "all",
                     "--iterations", "6", "--out", str(run), *QUICK]) == 0
    finally:
        os.chdir(cwd)
        withdraw_all()
    return run


def test_the_run_records_the_model_and_its_weights(frozen_run, weights) -> None:
    import hashlib

    cfg = json.loads((frozen_run / "config.json").read_text())
    assert cfg["models"]["backbone"]["target"] == "models:tv_resnet"
    assert cfg["models"]["backbone"]["weights_sha256"] == \
        hashlib.sha256(weights.read_bytes()).hexdigest()
    assert cfg["freeze"] == "all"


def test_frozen_training_changes_no_backbone_parameter_or_statistic(frozen_run, weights) -> None:
    given = torch.load(weights, weights_only=True)
    state = load_checkpoint(frozen_run / "checkpoint.pt")["model"]
    pieces = {k: v for k, v in state.items() if ".piece." in k}
    matched = 0
    for key, value in pieces.items():
        own = key.split(".piece.", 1)[1]
        if own in given:
            assert torch.equal(value, given[own]), key
            matched += 1
    assert matched == len(given), "every backbone tensor, buffers included, is in the run"
    # while the routers trained: their last layer starts at zero (undecided)
    last = max((k for k in state if k.startswith("j_c1.") and k.endswith("weight")),
               key=lambda k: int(k.split(".")[2]))
    assert state[last].abs().sum() > 0, last


def test_eval_draw_export_and_resume_need_nothing_retyped(frozen_run, tmp_path) -> None:
    """In fresh processes, from the user's folder, with only the run directory named."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "routec", *args], cwd=TESTS, env=ENV,
                              capture_output=True, text=True, timeout=300)

    done = run("eval", str(frozen_run), "--json")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    done = run("draw", str(frozen_run), "-o", str(tmp_path / "flow.svg"))
    assert done.returncode == 0, done.stderr
    assert "<svg" in (tmp_path / "flow.svg").read_text()
    done = run("export", str(frozen_run), "-o", str(tmp_path / "export"))
    assert done.returncode == 0, done.stderr
    from routec.data.load import load_dataset
    import numpy as np

    test = load_dataset("synthetic", seed=0).test
    np.save(tmp_path / "x.npy", test.images.numpy())
    np.save(tmp_path / "y.npy", test.labels.numpy())
    done = subprocess.run([sys.executable, "-m", "routec.deploy", str(tmp_path / "export"),
                           "--images", str(tmp_path / "x.npy"), "--labels",
                           str(tmp_path / "y.npy")], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    deployed = json.loads(done.stdout)
    assert deployed["accuracy"] == result["accuracy"]
    assert deployed["mean_macs"] == pytest.approx(result["mean_macs"], rel=1e-12)
    resumed = run("train", "--resume", "--out", str(frozen_run), "--iterations", "8")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(frozen_run / "checkpoint.pt")["iteration"] == 8


@pytest.mark.parametrize("flags, phrase", [
    (["--model", "backbone=no_such_module:f"], "cannot import 'no_such_module'"),
    (["--model", "backbone=models:tv_resnet", "--weights", "/nonexistent/w.pt"],
     "cannot read the weights"),
    (["--model", "backbone=models:tv_resnet", "--model-kwargs",
      'backbone={"num_classes": 7}', "--weights", "WEIGHTS"], "shape of fc.weight"),
    ([], "model 'backbone' is not supplied"),
    (["--model", "backbone=models:tv_resnet", "--freeze", "c9"], "--freeze c9"),
])
def test_model_mistakes_are_one_line(flags, phrase, weights, tmp_path, capsys) -> None:
    (tmp_path / "routed.route").write_text(ROUTED_TV_RESNET)
    flags = [str(weights) if f == "WEIGHTS" else f for f in flags]
    code = main(["train", str(tmp_path / "routed.route"), *flags, "--iterations", "2",
                 "--out", str(tmp_path / "run"), *QUICK])
    err = capsys.readouterr().err
    assert code == 2 and phrase in err and "Traceback" not in err, err


def test_cached_features_train_like_computed_ones(weights, tmp_path, monkeypatch,
                                                  capsys) -> None:
    """Frozen pieces with no augmentation are run once per training image, not per step;
    the network trained on the cached outputs matches the one that recomputes them."""
    from routec.backbone.supplied import ModelPiece

    (tmp_path / "routed.route").write_text(ROUTED_TV_RESNET)
    args = ["train", str(tmp_path / "routed.route"), "--model", "backbone=models:tv_resnet",
            "--weights", str(weights), "--freeze", "all", "--no-augment",
            "--iterations", "260", *QUICK]  # 260 × 16 images: more than the split's 4,000
    calls = []
    original = ModelPiece.forward

    def counting(self, x):
        if self.rows is None:
            calls.append(len(x))  # rows computed by the piece itself
        return original(self, x)

    monkeypatch.setattr(ModelPiece, "forward", counting)
    assert main([*args, "--out", str(tmp_path / "cached")]) == 0
    assert "cached the frozen pieces' outputs" in capsys.readouterr().err
    assert 16 not in calls, "with the cache, no training step runs a frozen piece"
    calls.clear()
    import routec.train.loop as loop  # as if the outputs outgrew the memory: no cache
    monkeypatch.setattr(loop, "cache_bytes_estimate", lambda net, n: 1 << 62)
    withdraw_all()
    assert main([*args, "--out", str(tmp_path / "computed")]) == 0
    assert "caching their outputs would take" in capsys.readouterr().err
    assert calls.count(16) == 3 * 260, "without it, three pieces at each of 260 steps"
    # the same computation: the first logged losses agree to float precision (later ones
    # drift apart as any two float orders of summation do over hundreds of SGD steps)
    first = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[1])
             for run in ("cached", "computed")]
    assert first[0]["iteration"] == first[1]["iteration"] == 2
    assert first[0]["train_loss"] == pytest.approx(first[1]["train_loss"], rel=1e-5)
    assert first[0]["train_accuracy"] == first[1]["train_accuracy"]


VIT_SPEC = '''network routed_vit (input = 3x32x32, classes = 10) {
    model  backbone
    router default = mlp(hidden = [16], pooled = 1)
    exit   default = linear(pooled = 1)
    exit   own     = logits
    column b1   = backbone(to = "blocks.0")
    column b2   = backbone(from = "blocks.0", to = "blocks.2")
    column head = backbone(from = "blocks.2")
    route b1 -> either { exit | b2 -> either { exit | head -> exit(own) } }
}
'''


@pytest.mark.parametrize("model, spec", [("tv_resnet", ROUTED_TV_RESNET),
                                         ("tiny_vit", VIT_SPEC)])
@pytest.mark.parametrize("strategy", [
    ["--strategy", "actor", "--k-cpt", "dynamic", "--distill", "0.5"],
    ["--strategy", "critic"],
    ["--strategy", "critic", "--critic-mode", "sampled"],
    ["--strategy", "multi-exit"],
    ["--strategy", "static", "--static-columns", "2"],
])
def test_every_strategy_trains_on_a_frozen_backbone(model, spec, strategy, tmp_path) -> None:
    """Each strategy takes its steps; the frozen backbone's tensors stay as supplied."""
    (tmp_path / "net.route").write_text(spec)
    torch.manual_seed(0)
    import models

    source = getattr(models, model)()
    torch.save(source.state_dict(), tmp_path / "w.pt")
    assert main(["train", str(tmp_path / "net.route"), "--model", f"backbone=models:{model}",
                 "--weights", str(tmp_path / "w.pt"), "--freeze", "all", *strategy,
                 "--iterations", "3", "--out", str(tmp_path / "run"), *QUICK]) == 0
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    given = source.state_dict()
    seen = 0
    for key, value in state.items():
        if ".piece." in key:
            assert torch.equal(value, given[key.split(".piece.", 1)[1]]), key
            seen += 1
    assert seen > 0


def test_latency_priced_routing_of_a_supplied_model(tmp_path, capsys) -> None:
    """--cost latency: the cost table profiled from the spec prices the pieces in time."""
    (tmp_path / "net.route").write_text(ROUTED_TV_RESNET)
    table = tmp_path / "table.json"
    assert main(["profile", str(tmp_path / "net.route"), "--model",
                 "backbone=models:tv_resnet", "--batch", "16", "--images", "32",
                 "--repeats", "1", "-o", str(table)]) == 0
    withdraw_all()
    assert main(["train", str(tmp_path / "net.route"), "--model", "backbone=models:tv_resnet",
                 "--cost", "latency", "--cost-table", str(table), "--k-cpt", "0.04",
                 "--iterations", "3", "--out", str(tmp_path / "run"), *QUICK]) == 0
    nodes = json.loads(table.read_text())
    assert "c1" in json.dumps(nodes) and "head" in json.dumps(nodes)


def test_distillation_pulls_exits_towards_the_head_only() -> None:
    """KL(head ‖ exit) per exit, averaged: zero when an exit agrees with the head, and
    its gradient moves the exits, never the head (a fixed target)."""
    import torch.nn.functional as F

    from routec.train.backbone import distill_loss

    torch.manual_seed(0)
    logits = torch.randn(3, 5, 4, requires_grad=True)  # 3 leaves, 5 examples, 4 classes
    same = logits.detach().clone()
    same[0] = same[2]
    same[1] = same[2]
    assert float(distill_loss(same, head=2)) == pytest.approx(0.0, abs=1e-7)
    loss = distill_loss(logits, head=2)
    p = F.softmax(logits[2].detach(), dim=1)
    expect = sum((p * (p.log() - F.log_softmax(logits[k].detach(), dim=1))).sum(1).mean()
                 for k in (0, 1)) / 2
    assert float(loss) == pytest.approx(float(expect), rel=1e-6)
    loss.backward()
    assert logits.grad[2].abs().sum() == 0 and logits.grad[:2].abs().sum() > 0


def test_the_model_alone_is_a_static_run_that_trains_nothing(weights, tmp_path, capsys) -> None:
    """A static run through every frozen column to the model's own head has nothing to
    learn: it says so, keeps every tensor, and its evaluation is the model's own."""
    (tmp_path / "net.route").write_text(ROUTED_TV_RESNET)
    assert main(["train", str(tmp_path / "net.route"), "--model", "backbone=models:tv_resnet",
                 "--weights", str(weights), "--freeze", "all", "--strategy", "static",
                 "--static-columns", "3", "--iterations", "3", "--out",
                 str(tmp_path / "run"), *QUICK]) == 0
    assert "nothing on the trained path has a trainable parameter" in capsys.readouterr().err
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    given = torch.load(weights, weights_only=True)
    for key, value in state.items():
        if ".piece." in key:
            assert torch.equal(value, given[key.split(".piece.", 1)[1]]), key
    # the run's test accuracy is the model's own, computed here without routec
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    from routec.train.config import saved_config
    from routec.train.runs import load_data  # the same synthetic test split, normalised

    cfg = saved_config(load_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"])
    test = load_data(cfg, (3, 32, 32)).test
    model = tv_resnet()
    model.load_state_dict(given)
    with torch.no_grad():
        pred = model.eval()(torch.as_tensor(test.images)).argmax(1)
    own = int((pred == torch.as_tensor(test.labels)).sum()) / len(pred)
    got = result["results"][0]["accuracy"]
    assert got == pytest.approx(own, abs=1e-9)
