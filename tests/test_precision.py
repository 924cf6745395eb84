"""--precision: autocast in training and in the torch engines, fp16's scaler, and the
one-line refusals (an unknown precision, the ONNX engine, a missing CUDA device)."""
from __future__ import annotations

import json

import pytest
import torch

from helpers import calibrate, compile_bundled, images, randomise
from routec.cli import main
from routec.engine import optimize_for_inference
from routec.errors import RoutecError
from routec.train.config import make_config
from routec.train.evaluate import evaluate
from routec.train.loop import train
from routec.train.precision import check_precision
from routec.train.runs import load_run

QUICK = {"spec": "tiny", "data": "synthetic", "k_cpt": 1e-7, "iterations": 40, "batch": 64,
         "eval_every": 1000, "log_every": 20, "seed": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("precision")
    out = {}
    for p in ("fp32", "bf16"):
        train(make_config({**QUICK, "precision": p}), root / p, progress=False)
        out[p] = root / p
    return out


def _weights(run) -> dict[str, torch.Tensor]:
    _, net, _, _ = load_run(str(run))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_bf16_training_is_recorded_runs_in_bf16_and_learns_like_fp32(runs) -> None:
    assert json.loads((runs["bf16"] / "config.json").read_text())["precision"] == "bf16"
    assert json.loads((runs["fp32"] / "config.json").read_text())["precision"] == "fp32"
    w32, w16 = _weights(runs["fp32"]), _weights(runs["bf16"])
    # same seed and data: only autocast can make the weights differ
    assert any(not torch.equal(w32[k], w16[k]) for k in w32 if w32[k].is_floating_point())
    acc = {}
    for p, run in runs.items():
        _, net, data, _ = load_run(str(run))
        acc[p] = evaluate(net, data.test.images, data.test.labels).accuracy
    chance = 1 / 10
    assert acc["fp32"] > 2 * chance  # the task is learnt at all in 40 steps
    assert abs(acc["bf16"] - acc["fp32"]) <= 0.1, acc


def test_bf16_engines_route_like_fp32() -> None:
    g, net = compile_bundled("paper_chain")
    randomise(net, seed=5)
    calibrate(net, images(100, g.input_shape, seed=1))
    x = images(64, g.input_shape, seed=2)
    for name in ("eager", "fused"):
        ref = optimize_for_inference(net, name).route(x)
        low = optimize_for_inference(net, name, precision="bf16").route(x)
        assert low.logits.dtype == ref.logits.dtype == x.dtype
        assert not torch.equal(low.logits, ref.logits)  # autocast was on
        # bf16 keeps ~3 significant digits: decisions and logits stay close
        assert (low.leaf == ref.leaf).float().mean() >= 0.9
        same = low.leaf == ref.leaf
        scale = ref.logits[same].abs().max()
        assert (low.logits[same] - ref.logits[same]).abs().max() <= 0.05 * scale


def test_fp16_training_scales_its_loss(tmp_path) -> None:
    from routec.train.checkpoint import load_checkpoint

    res = train(make_config({**QUICK, "iterations": 6, "precision": "fp16"}), tmp_path / "r",
                progress=False)
    assert res.finished and res.iteration == 6
    scaler = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["scaler"]
    # the scaler saw every step: its count of steps since the last overflow, or a scale
    # lowered from the initial 2**16 by an overflow
    assert scaler["_growth_tracker"] == 6 or scaler["scale"] < 2.0 ** 16, scaler


def test_precision_refusals(tmp_path, capsys) -> None:
    with pytest.raises(RoutecError, match="unknown precision"):
        check_precision("fp8", torch.device("cpu"))
    _, net = compile_bundled("tiny")
    with pytest.raises(RoutecError) as err:
        optimize_for_inference(net, "onnx", precision="bf16")
    assert "fp32 only" in err.value.message and len(err.value.message.splitlines()) == 1


def test_eval_at_bf16_and_on_a_missing_cuda(runs, capsys) -> None:
    assert main(["eval", str(runs["fp32"]), "--engine", "fused", "--precision", "bf16",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["precision"] == "bf16" and out["device"] == "cpu"
    _, net, data, _ = load_run(str(runs["fp32"]))
    ref = evaluate(net, data.test.images, data.test.labels)
    assert abs(out["results"][0]["accuracy"] - ref.accuracy) <= 0.03
    if not torch.cuda.is_available():
        assert main(["eval", str(runs["fp32"]), "--device", "cuda"]) != 0
        err = capsys.readouterr().err
        assert "no CUDA device is available" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["train", "tiny", "--data", "synthetic", "--iterations", "2"],
    ["bench", "tiny"],
    ["profile", "tiny"],
])
def test_device_cuda_without_cuda_is_one_line(argv, tmp_path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "r")]
    assert main([*argv, "--device", "cuda"]) != 0
    err = capsys.readouterr().err
    assert "no CUDA device is available" in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("error")]) == 1
    assert not (tmp_path / "r").exists()
