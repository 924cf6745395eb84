"""The torch-free runner takes raw images and gives ``routec eval``'s answers; a damaged
or hand-edited export, or input it cannot interpret, is one line on stderr and exit
code 2 from ``python -m routec.deploy``, never a traceback, a hang or a wrong answer."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

SEED = 3


@pytest.fixture(scope="module")
def normalised_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny spec briefly trained on the synthetic set with per-channel normalisation."""
    from routec.train.config import make_config
    from routec.train.loop import train

    out = tmp_path_factory.mktemp("deploy") / "run"
    cfg = make_config({"spec": "tiny", "data": "synthetic", "normalize": True, "k_cpt": 1e-7,
                       "iterations": 30, "batch": 64, "eval_every": 1000, "log_every": 30,
                       "seed": SEED})
    train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def exported(normalised_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from routec.cli import main

    out = tmp_path_factory.mktemp("deploy") / "export"
    assert main(["export", str(normalised_run), "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def raw_test(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """(images.npy, labels.npy, images) of the synthetic test split, before normalisation."""
    from routec.data.load import load_dataset

    test = load_dataset("synthetic", seed=SEED).test
    d = tmp_path_factory.mktemp("raw")
    x = test.images.numpy()
    np.save(d / "x.npy", x)
    np.save(d / "y.npy", test.labels.numpy())
    return d / "x.npy", d / "y.npy", x


def deploy(*args: Any) -> subprocess.CompletedProcess[str]:
    """``python -m routec.deploy`` in a fresh interpreter; a hang fails the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "routec.deploy", *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=env)


def refused(proc: subprocess.CompletedProcess[str], phrase: str) -> str:
    """Assert a one-line error containing ``phrase``, exit code 2, nothing on stdout."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert phrase in lines[0], lines[0]
    assert proc.stdout == ""
    return lines[0]


# ---------------------------------------------------------------- raw images in

def test_raw_images_reproduce_routec_eval(exported, normalised_run, raw_test, capsys) -> None:
    """Raw (unnormalised) test images through the runner: routec eval's accuracy, exit
    counts and MACs, and the eager network's prediction for every image."""
    import torch

    from routec.cli import main
    from routec.train.runs import load_run

    m = json.loads((exported / "manifest.json").read_text())
    norm = m["input"]["normalization"]
    assert norm is not None and m["input"]["range"] == [0.0, 1.0]
    assert not np.allclose(norm["std"], 1.0) and not np.allclose(norm["mean"], 0.0)
    xp, yp, raw = raw_test
    proc = deploy(exported, "--images", xp, "--labels", yp, "--batch", 128)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["torch_imported"] is False

    capsys.readouterr()
    assert main(["eval", str(normalised_run), "--json"]) == 0
    (ref,) = json.loads(capsys.readouterr().out)["results"]
    assert got["accuracy"] == ref["accuracy"]
    assert got["mean_macs"] == pytest.approx(ref["mean_macs"], rel=1e-12)
    assert got["exit_counts"] == [round(f * ref["examples"]) for f in ref["exit_fraction"]]

    _, net, data, _ = load_run(normalised_run)
    assert not np.array_equal(data.test.images.numpy(), raw)  # the run did normalise
    with torch.inference_mode():
        out = net.eval().route(data.test.images)
    assert got["predictions"] == out.logits.argmax(dim=1).tolist()
    assert got["exit_counts"] == np.bincount(out.leaf.numpy(), minlength=len(net.LEAVES)).tolist()


def test_normalised_images_are_refused(exported, normalised_run, tmp_path) -> None:
    """Images normalised already (the run's network inputs) would be normalised twice:
    refused by range, not scored."""
    from routec.train.runs import load_run

    _, _, data, _ = load_run(normalised_run)
    np.save(tmp_path / "x.npy", data.test.images[:50].numpy())
    refused(deploy(exported, "--images", tmp_path / "x.npy"), "takes raw pixels in [0, 1]")


def test_uint8_decoding_matches_the_datasets_own(tmp_path) -> None:
    """For CIFAR (stored as 8-bit sRGB) the runner's uint8 path equals routec's gamma
    decoding then normalisation, bit for bit, in either layout."""
    import torch

    from routec.data.preprocess import gamma_decode
    from routec.data.splits import DatasetInfo
    from routec.deploy.inputs import InputConvention
    from routec.engine.onnx_export import input_record

    mean, std = (0.2, 0.25, 0.3), (0.21, 0.22, 0.23)
    info = DatasetInfo(name="cifar10", classes=tuple("abcdefghij"), sizes={}, seed=0, source="",
                       normalization=(mean, std))
    rec = input_record((3, 32, 32), False, "cifar10", info)
    assert rec["uint8"]["decode"] == "srgb"
    conv = InputConvention.from_manifest(rec, (3, 32, 32), False, tmp_path / "manifest.json")
    gen = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (6, 3, 32, 32), generator=gen, dtype=torch.uint8)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    want = ((gamma_decode(raw) - m) / s).numpy()
    assert np.array_equal(conv.to_network(raw.numpy()), want)
    assert np.array_equal(conv.to_network(raw.numpy().transpose(0, 2, 3, 1).copy()), want)
    assert input_record((3, 32, 32), False, "synthetic", info)["uint8"] is None


@pytest.mark.parametrize("pixels", ["linear", "unit"])
def test_uint8_table_of_a_folder_is_its_decoder(tmp_path, pixels) -> None:
    """An image folder's table gives what routec's folder decoder gives for a PNG holding
    every 8-bit value."""
    from PIL import Image

    from routec.data.folders import ImageFile, decode_image
    from routec.engine.onnx_export import uint8_decoding

    v = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([v, v[::-1], v.T], axis=2)
    for c in "ab":
        (tmp_path / c).mkdir()
        Image.fromarray(rgb).save(tmp_path / c / "x.png")
    want = decode_image(ImageFile(tmp_path / "a" / "x.png", "a/x.png", 0, None), (3, 16, 16),
                        pixels, False)
    table = np.asarray(uint8_decoding(str(tmp_path), pixels)["table"], dtype=np.float32)
    assert np.array_equal(table[rgb.transpose(2, 0, 1)], want)


# ---------------------------------------------------------------- manifest faults

def _edited(exported: Path, tmp_path: Path, edit) -> Path:
    """A copy of the export whose manifest ``edit(manifest)`` changed."""
    d = tmp_path / "x"
    shutil.copytree(exported, d)
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))
    return d


@pytest.fixture
def images5(tmp_path) -> Path:
    np.save(tmp_path / "five.npy", np.random.default_rng(0).random((5, 3, 32, 32), dtype=np.float32))
    return tmp_path / "five.npy"


def test_parent_cycle_is_an_error_not_a_hang(exported, tmp_path, images5) -> None:
    def cycle(m: dict) -> None:
        net = m["network"]
        a = net["kinds"].index("column")
        child = net["parent"].index(a)
        net["parent"][a] = child  # a → its child → a
    refused(deploy(_edited(exported, tmp_path, cycle), "--images", images5), "cycle")


@pytest.mark.parametrize("edit, phrase", [
    (lambda m: m["network"]["parent"].__setitem__(1, 99), "has parent 99"),
    (lambda m: m["network"]["leaves"].__setitem__(0, 99), "network.leaves"),
    (lambda m: m["network"]["junctions"].__setitem__(0, -7), "network.junctions"),
    (lambda m: m["nodes"][3].__setitem__("index", 42), "lists nodes"),
], ids=["parent", "leaf", "junction", "node-record"])
def test_out_of_range_index(exported, tmp_path, images5, edit, phrase) -> None:
    refused(deploy(_edited(exported, tmp_path, edit), "--images", images5), phrase)


def test_class_count_mismatch(exported, tmp_path, images5) -> None:
    """More classes than the exits' logits have (names added to match): caught from the
    graphs' declared output shapes."""
    def more(m: dict) -> None:
        m["network"]["classes"] += 1
        m["class_names"].append("extra")
    line = refused(deploy(_edited(exported, tmp_path, more), "--images", images5),
                   "logits (one per class)")
    assert ".onnx" in line

    def names(m: dict) -> None:
        m["class_names"].pop()
    refused(deploy(_edited(exported, tmp_path / "b", names), "--images", images5), "class names")


@pytest.mark.parametrize("path, phrase", [
    ("../../etc/passwd", "leaves the export directory"),
    ("/etc/passwd", "not a relative path"),
])
def test_file_outside_the_export_is_refused(exported, tmp_path, images5, path, phrase) -> None:
    refused(deploy(_edited(exported, tmp_path, lambda m: m["nodes"][0].__setitem__("file", path)),
                   "--images", images5), phrase)


def test_symlink_out_of_the_export_is_refused(exported, tmp_path, images5) -> None:
    """A node file that is a symlink to an identical copy outside: the hash would pass,
    the location does not."""
    d = _edited(exported, tmp_path, lambda m: None)
    m = json.loads((d / "manifest.json").read_text())
    inside = d / m["nodes"][1]["file"]
    outside = tmp_path / "elsewhere.onnx"
    shutil.copyfile(inside, outside)
    inside.unlink()
    inside.symlink_to(outside)
    refused(deploy(d, "--images", images5), "resolves outside the export directory")


def test_negative_macs_are_refused(exported, tmp_path, images5) -> None:
    def neg(m: dict) -> None:
        m["network"]["macs"][1] = -5
        m["nodes"][1]["macs"] = -5
    refused(deploy(_edited(exported, tmp_path, neg), "--images", images5), "negative MACs (-5)")


def test_damaged_file_is_named(exported, tmp_path, images5) -> None:
    d = _edited(exported, tmp_path, lambda m: None)
    m = json.loads((d / "manifest.json").read_text())
    victim = d / m["nodes"][2]["file"]
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 1
    victim.write_bytes(bytes(blob))
    line = refused(deploy(d, "--images", images5), "sha256 differs")
    assert str(victim) in line


def test_old_manifest_version_is_refused(exported, tmp_path, images5) -> None:
    """A manifest without the input convention (version 1) cannot be run correctly."""
    refused(deploy(_edited(exported, tmp_path, lambda m: m.update(version=1)), "--images", images5),
            "re-export")


# ---------------------------------------------------------------- runner inputs

def _save(tmp_path: Path, name: str, a: Any, **kw: Any) -> Path:
    np.save(tmp_path / name, a, **kw)
    return tmp_path / name


@pytest.mark.parametrize("make, phrase", [
    (lambda x: (x * 255).astype(np.uint8), "has no 8-bit form"),
    (lambda x: x.astype(np.float64), "images are float64"),
    (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x).astype(np.float32),
     "NaN or infinite values (the first in image 0)"),
    (lambda x: x[:, :, :16, :16].copy(), "this network takes float32 N×3×32×32"),
    (lambda x: x[0], "this network takes"),
    (lambda x: x[:0], "holds no images"),
], ids=["uint8", "float64", "nan", "shape", "no-batch-axis", "empty"])
def test_bad_images_are_refused(exported, raw_test, tmp_path, make, phrase) -> None:
    x = make(raw_test[2][:20])
    refused(deploy(exported, "--images", _save(tmp_path, "x.npy", x)), phrase)


@pytest.mark.parametrize("batch", [0, -1])
def test_batch_below_one_is_refused(exported, raw_test, batch) -> None:
    refused(deploy(exported, "--images", raw_test[0], "--batch", batch), "at least 1 image")


def test_labels_of_the_wrong_length_or_kind(exported, raw_test, tmp_path) -> None:
    xp, yp, x = raw_test
    y = np.load(yp)
    refused(deploy(exported, "--images", xp, "--labels", _save(tmp_path, "a.npy", y[:-1])),
            f"{len(y) - 1} labels for {len(y)} images")
    refused(deploy(exported, "--images", xp, "--labels", _save(tmp_path, "b.npy", y.astype(float))),
            "1-D integer array")
    refused(deploy(exported, "--images", xp, "--labels", _save(tmp_path, "c.npy", y + 100)),
            "is not a class index")


def test_pickled_and_unreadable_npy_are_refused(exported, raw_test, tmp_path) -> None:
    obj = np.array([{"x": 1}, None], dtype=object)
    refused(deploy(exported, "--images", _save(tmp_path, "o.npy", obj, allow_pickle=True)),
            "not a readable .npy array of images")
    (tmp_path / "t.npy").write_text("not an array")
    refused(deploy(exported, "--images", tmp_path / "t.npy"), "not a readable .npy array")
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    refused(deploy(exported, "--images", tmp_path / "z.npz"), ".npz archive")
    refused(deploy(exported, "--images", tmp_path / "missing.npy"), "no such file")
    refused(deploy(exported, "--images", raw_test[0], "--labels",
                   _save(tmp_path, "ol.npy", obj, allow_pickle=True)), "of labels")


def test_route_refuses_nan_and_other_dtypes(exported, raw_test) -> None:
    """route() takes network inputs: NaN and non-float32 arrays are refused there too."""
    from routec.deploy import InputError, load

    net = load(exported)
    x = net.preprocess(raw_test[2][:4])
    with pytest.raises(InputError, match="float32"):
        net.route(x.astype(np.float64))
    x[1, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        net.route(x)
    with pytest.raises(InputError, match="batch must be"):
        net.predict(raw_test[2][:4], batch=0)


def test_tampered_hash_entry_is_refused(exported, tmp_path, images5) -> None:
    """A manifest whose sha256 entry is not a hash at all."""
    refused(deploy(_edited(exported, tmp_path, lambda m: m["nodes"][0].__setitem__("sha256", "x")),
                   "--images", images5), "no sha256")
