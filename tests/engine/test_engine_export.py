"""``routec export`` writes ONNX per node + manifest; routec.deploy runs it without torch
and reproduces ``routec eval``; a manifest that disagrees with its files is refused."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

RUNNER = """
import json, sys
import numpy as np
from routec import deploy
net = deploy.load(sys.argv[1])
x, y = np.load(sys.argv[2]), np.load(sys.argv[3])
pred, exits, macs = net.predict(x, batch=128)
assert "torch" not in sys.modules, "the runner imported torch"
print(json.dumps({"accuracy": float((pred == y).mean()),
                  "exit_counts": np.bincount(exits, minlength=len(net.exit_names)).tolist(),
                  "mean_macs": float(macs.mean()), "torch": "torch" in sys.modules}))
"""


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    from routec.cli import main

    out = tmp_path_factory.mktemp("export") / "tiny"
    assert main(["export", str(trained_run), "-o", str(out)]) == 0
    return out


def test_manifest_describes_the_network(exported, trained_run) -> None:
    from routec.train.runs import load_run

    _, net, _, state = load_run(trained_run)
    m = json.loads((exported / "manifest.json").read_text())
    assert m["network"]["nodes"] == list(net.NODES)
    assert m["network"]["macs"] == list(net.MACS)
    assert m["network"]["ways"] == list(net.WAYS)
    assert m["class_names"] == list(state["classes"])
    assert m["input"]["shape"] == list(net.INPUT_SHAPE) and m["input"]["k_cpt"] is False
    assert m["exits"] == [net.NODES[i] for i in net.LEAVES]
    assert len(m["nodes"]) == len(net.NODES)
    for rec in m["nodes"]:
        assert (exported / rec["file"]).is_file()


def test_runner_reproduces_eval_without_torch(exported, trained_run, tmp_path) -> None:
    from routec.train.evaluate import evaluate
    from routec.train.runs import load_run

    from routec.data.load import load_dataset

    cfg, net, data, _ = load_run(trained_run)
    test = data.test
    ref = evaluate(net, test.images, test.labels)
    raw = load_dataset(cfg.data, seed=cfg.seed).test  # the pixels before normalisation
    np.save(tmp_path / "x.npy", raw.images.numpy())
    np.save(tmp_path / "y.npy", test.labels.numpy())
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(exported), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["torch"] is False
    assert got["accuracy"] == pytest.approx(ref.accuracy, abs=0)
    counts = [round(f * ref.examples) for f in ref.exit_fraction]
    assert got["exit_counts"] == counts
    assert got["mean_macs"] == pytest.approx(ref.mean_macs, rel=1e-12)


def test_deploy_module_cli(exported, tmp_path) -> None:
    rng = np.random.default_rng(0)
    m = json.loads((exported / "manifest.json").read_text())
    x = rng.random((5, *m["input"]["shape"]), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "routec.deploy", str(exported),
                           "--images", str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["torch_imported"] is False and sum(out["exit_counts"]) == 5


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_tampered_file_is_refused(exported, tmp_path) -> None:
    from routec.deploy import ManifestError, load

    d = _copy(exported, tmp_path / "t1")
    m = json.loads((d / "manifest.json").read_text())
    victim = d / m["nodes"][1]["file"]
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="sha256"):
        load(d)


def test_swapped_files_are_refused(exported, tmp_path) -> None:
    """Two node files swapped, with the manifest's hashes updated to match: the
    declared inputs/outputs no longer match what the node records."""
    import hashlib

    from routec.deploy import ManifestError, load

    d = _copy(exported, tmp_path / "t2")
    m = json.loads((d / "manifest.json").read_text())
    kinds = {r["kind"]: r for r in m["nodes"]}
    a, b = kinds["column"], kinds["exit"]
    fa, fb = (d / a["file"]).read_bytes(), (d / b["file"]).read_bytes()
    (d / a["file"]).write_bytes(fb)
    (d / b["file"]).write_bytes(fa)
    a["sha256"], b["sha256"] = hashlib.sha256(fb).hexdigest(), hashlib.sha256(fa).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="declares inputs"):
        load(d)


def test_missing_file_and_bad_manifest(exported, tmp_path) -> None:
    from routec.deploy import ManifestError, load

    d = _copy(exported, tmp_path / "t3")
    m = json.loads((d / "manifest.json").read_text())
    (d / m["nodes"][2]["file"]).unlink()
    with pytest.raises(ManifestError, match="missing ONNX file"):
        load(d)
    d2 = _copy(exported, tmp_path / "t4")
    m["nodes"] = m["nodes"][:-1]
    (d2 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="lists nodes"):
        load(d2)
    with pytest.raises(ManifestError, match="no manifest.json"):
        load(tmp_path)


def test_export_of_a_dynamic_kcpt_network_reads_kcpt(tmp_path) -> None:
    """A network whose routers read k_cpt exports a k_cpt input; the runner feeds it."""
    import torch

    from helpers import (assert_deployed_routes_as_torch, calibrate, compile_bundled, images,
                         randomise)
    from routec.deploy import load
    from routec.engine.onnx_export import export_network
    from routec.errors import RoutecError

    g, net = compile_bundled("tiny", dynamic=True)
    randomise(net, seed=4)
    calibrate(net, images(100, g.input_shape, seed=1), k_cpt=torch.full((100,), 1e-7))
    export_network(net, tmp_path / "dyn")
    m = json.loads((tmp_path / "dyn" / "manifest.json").read_text())
    assert m["input"]["k_cpt"] is True
    assert any("k_cpt" in r["inputs"] for r in m["nodes"] if r["kind"] == "junction")
    deployed = load(tmp_path / "dyn")
    x = images(17, g.input_shape, seed=6)
    k = torch.linspace(0, 1e-6, 17)
    assert_deployed_routes_as_torch(net, deployed, x, k)
    with pytest.raises(RoutecError, match="reads k_cpt"):
        deployed.route(x.numpy())


def test_runner_without_onnxruntime_says_so(exported, monkeypatch) -> None:
    import builtins

    from routec.deploy import load
    from routec.errors import RoutecError

    real = builtins.__import__

    def fake(mod, *args, **kwargs):
        if mod == "onnxruntime" or mod.startswith("onnxruntime."):
            raise ImportError(f"No module named '{mod}'", name=mod)
        return real(mod, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(RoutecError, match="needs onnxruntime"):
        load(exported)
