"""Every example in examples/ runs (in its fast mode) and does what it says."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import routec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TESTED = {"compile_and_route.py", "custom_tree.py", "own_training_loop.py",
          "dynamic_kcpt_budgets.py", "cifar_resnet.py", "train_cifar_resnet.py"}


def load(name: str):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    """Examples train networks; on a small shared machine one thread is fastest."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_example_has_a_test() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


def test_compile_and_route_matches_the_dense_pass() -> None:
    result = load("compile_and_route").main("tiny")
    assert result["gap"] < 1e-5
    g = routec.compile_network("tiny").graph
    assert min(g.path_macs()) <= result["mean_macs"] <= max(g.path_macs())


def test_the_custom_tree_has_a_four_way_junction_of_plain_columns() -> None:
    spec = routec.load_spec(str(EXAMPLES / "four_way.route"))
    layers = {call.name for column in spec.columns.values() for call in column.layers}
    assert layers <= {"conv", "bn", "relu", "pool", "linear"}, "plain conv columns only"
    g = routec.build_graph(spec)
    assert 4 in [g.nodes[j].ways for j in g.junctions]


def test_custom_tree_trains_above_chance(capsys) -> None:
    result = load("custom_tree").main(fast=True)
    assert 4 in result["junction_ways"]
    assert result["accuracy"] > 2 * result["chance"]  # synthetic data: chance is 0.1
    assert min(result["path_macs"]) <= result["mean_macs"] <= max(result["path_macs"])
    assert abs(sum(result["exit_fraction"]) - 1) < 1e-9
    out = capsys.readouterr().out
    assert "test accuracy" in out and "mean MACs" in out


def test_own_training_loop_lowers_the_loss(capsys) -> None:
    result = load("own_training_loop").main(fast=True)
    assert len(result["losses"]) == 80
    assert result["last_loss"] < 0.9 * result["first_loss"]
    assert result["accuracy"] > 0.1  # above chance on 10 classes
    assert min(result["path_macs"]) <= result["mean_macs"] <= max(result["path_macs"])
    assert "test accuracy" in capsys.readouterr().out


def test_dynamic_kcpt_curve_and_plot(tmp_path: Path, capsys) -> None:
    from PIL import Image

    png = tmp_path / "plots" / "budgets.png"
    module = load("dynamic_kcpt_budgets")
    result = module.main(png, fast=True)
    ks = list(module.GRID)
    assert result["k_cpt"] == ks
    assert len(result["accuracy"]) == len(result["mean_macs"]) == len(ks)
    macs = result["mean_macs"]
    # a higher price of computation buys less of it: non-increasing (1% slack), and the
    # dearest budget spends clearly less than the free one
    slack = 0.01 * max(result["path_macs"])
    assert all(b <= a + slack for a, b in zip(macs, macs[1:])), macs
    assert macs[-1] < macs[0] - slack, macs
    with Image.open(png) as image:
        image.load()
        assert image.format == "PNG" and image.size == (600, 400)
    assert f"wrote {png}" in capsys.readouterr().out


def test_examples_run_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "own_training_loop.py"), "--fast", "--iterations", "10"],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loss" in done.stdout and "test accuracy" in done.stdout


def test_cifar_resnet20_counts_as_he_et_al_say() -> None:
    """ResNet-20 on 32×32: about 41 M multiply-accumulates (He et al. 2016, Table 6: 0.27 M
    parameters), counted independently by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    model = load("cifar_resnet").resnet20().eval()
    params = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < params < 0.29e6, params
    with FlopCounterMode(display=False) as counter:
        out = model(torch.zeros(1, 3, 32, 32))
    assert out.shape == (1, 10)
    assert 39e6 < counter.get_total_flops() / 2 < 43e6


def _fake_cifar_batches(root: Path, per_batch: int = 40) -> None:
    """A tiny cifar-10-batches-py folder in the official pickle layout."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        data[:, :1024] = (labels[:, None] * 25).astype(np.uint8)  # red encodes the class
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels.tolist()}, f)


def test_backbone_training_script_writes_weights_that_reproduce_its_accuracy(
        tmp_path: Path) -> None:
    """The plain-PyTorch script (no routec import) trains, resumes finished runs as done,
    and its saved state_dict scores the accuracy its summary reports."""
    import json

    import ast

    for name in ("train_cifar_resnet.py", "cifar_resnet.py"):
        tree = ast.parse((EXAMPLES / name).read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                    for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom)}
        assert "routec" not in imported, name
    _fake_cifar_batches(tmp_path / "data")
    args = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--epochs", "2",
            "--batch", "20"]
    summary = load("train_cifar_resnet").main(args)
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    module = load("cifar_resnet")
    model = module.resnet20().eval()
    model.load_state_dict(torch.load(tmp_path / "out" / "resnet20_cifar10.pt",
                                     weights_only=True))
    mean = torch.tensor(summary["input"]["mean"])[:, None, None]
    std = torch.tensor(summary["input"]["std"])[:, None, None]
    import pickle
    with open(tmp_path / "data" / "cifar-10-batches-py" / "test_batch", "rb") as f:
        test = pickle.load(f, encoding="bytes")
    x = torch.from_numpy(test[b"data"].reshape(-1, 3, 32, 32)).float() / 255
    y = torch.tensor(test[b"labels"])
    with torch.no_grad():
        acc = float((model((x - mean) / std).argmax(1) == y).float().mean())
    assert acc == pytest.approx(summary["test_accuracy"], abs=1e-9)
    again = load("train_cifar_resnet").main(args)  # finished: nothing retrained
    assert again["train_seconds"] == summary["train_seconds"]
