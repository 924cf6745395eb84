"""Your own images end to end: class folders written here, then `routec train --data DIR`
and `routec eval`, in process through routec.cli.main.

Split sizes are read from what `train` prints and checked against counts made
independently from the files on disk and the documented rounding rule.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from routec.cli import main
from routec.data import load_dataset
from routec.data.folders import file_list
from routec.train.runs import load_run, make_augmenter

GRAY_SPEC = """network gray (input = 1x28x28) {
    stem to_pyramid(scales = 3)
    router default = linear
    exit default = linear
    column a = multiscale[4, 4, 4]
    column b = multiscale[4, 4]
    route a -> either { exit | b -> exit }
}
"""
RGB_SPEC = GRAY_SPEC.replace("gray", "rgb").replace("1x28x28", "3x48x48")
RUN = ["--iterations", "4", "--batch", "8", "--eval-every", "2", "--log-every", "2", "--no-progress"]


def write_images(folder: Path, counts: dict[str, int], size: tuple[int, int], colour: bool, seed: int = 0,
                 suffixes: tuple[str, ...] = (".png",)) -> None:
    """``counts[c]`` images per class folder, a class-dependent brightness plus noise."""
    rng = np.random.default_rng(seed)
    for k, (cls, n) in enumerate(counts.items()):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (*size, 3) if colour else size
            arr = np.clip(rng.normal(40 + 70 * k, 25, size=shape), 0, 255).astype(np.uint8)
            suffix = suffixes[i % len(suffixes)]
            Image.fromarray(arr, "RGB" if colour else "L").save(folder / cls / f"{i:03d}{suffix}")


def held_out(n: int, fraction: float) -> int:
    """The documented rule: round(n * fraction), halves rounded up."""
    return math.floor(n * fraction + 0.5)


def printed_table(err: str) -> dict[str, tuple[int, int, int]]:
    """class -> (train, val, test) from the table `routec train` prints."""
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["class", "train", "val", "test"])
    table = {}
    for line in lines[start + 1:]:
        name, *nums = line.split()
        table[name] = tuple(int(v.replace(",", "")) for v in nums)
        if name == "total":
            break
    return table


def files_per_class(folder: Path) -> dict[str, int]:
    return {d.name: sum(1 for f in d.iterdir() if f.is_file()) for d in sorted(folder.iterdir()) if d.is_dir()}


def eval_json(run: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    capsys.readouterr()
    assert main(["eval", str(run), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_grayscale_folder_trains_and_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "shapes"
    write_images(data, {"circle": 11, "square": 14, "zigzag": 6}, (28, 28), colour=False)
    (tmp_path / "gray.route").write_text(GRAY_SPEC)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "gray.route"), "--data", str(data), "--out", str(run),
                 "--cache-dir", str(tmp_path / "cache"), *RUN]) == 0
    err = capsys.readouterr().err
    assert "1×28×28 grayscale" in err
    want = {}
    for cls, n in files_per_class(data).items():
        test, val = held_out(n, 0.1), held_out(n, 0.1)
        want[cls] = (n - val - test, val, test)
    want["total"] = tuple(sum(v[i] for v in want.values()) for i in range(3))
    assert printed_table(err) == want

    out = eval_json(run, capsys)
    assert out["classes"] == ["circle", "square", "zigzag"]
    per_class = torch.tensor(out["results"][0]["class_exit_counts"]).sum(dim=1).tolist()
    assert per_class == [want[c][2] for c in out["classes"]]
    val = eval_json(run, capsys, "--split", "val")
    assert torch.tensor(val["results"][0]["class_exit_counts"]).sum().item() == want["total"][1]

    # draw RUN and report route the same 1×28×28 test split
    flow = tmp_path / "flow.json"
    assert main(["draw", str(run), "-o", str(tmp_path / "flow.dot"), "--json", str(flow)]) == 0
    drawn = json.loads(flow.read_text())
    assert [sum(col) for col in zip(*drawn["exit_class"], strict=True)] == [want[c][2] for c in out["classes"]]
    assert main(["report", str(run), "-o", str(tmp_path / "report")]) == 0
    (row,) = json.loads((tmp_path / "report" / "summary.json").read_text())["rows"]
    assert row["accuracy"] == pytest.approx(out["results"][0]["accuracy"])

    assert "warning" not in capsys.readouterr().err
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(data / "circle" / "late.png")
    assert main(["eval", str(run)]) == 0  # an image added since training: eval warns
    assert "has other files than when this run was trained" in capsys.readouterr().err

    write_images(data, {"circle": 0, "square": 0, "zigzag": 0, "wave": 5}, (28, 28), colour=False)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2  # a class added since training: refused before decoding
    err = capsys.readouterr().err
    assert "circle, square, wave, zigzag" in err and "trained on circle, square, zigzag" in err


def test_rgb_split_tree_trains_and_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "pets"
    write_images(data / "train", {"cat": 20, "dog": 16}, (48, 48), colour=True, seed=1,
                 suffixes=(".png", ".jpg", ".PNG"))
    write_images(data / "test", {"cat": 4, "dog": 3}, (48, 48), colour=True, seed=2)
    (tmp_path / "rgb.route").write_text(RGB_SPEC)
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "rgb.route"), "--data", str(data), "--out", str(run),
                 "--val-fraction", "0.25", "--cache-dir", str(tmp_path / "cache"), "--normalize",
                 "--shift", "0.25", "--no-flip", *RUN]) == 0
    err = capsys.readouterr().err
    assert "3×48×48 RGB" in err and "normalised per channel" in err
    train_files, test_files = files_per_class(data / "train"), files_per_class(data / "test")
    want = {c: (n - held_out(n, 0.25), held_out(n, 0.25), test_files[c]) for c, n in train_files.items()}
    want["total"] = tuple(sum(v[i] for v in want.values()) for i in range(3))
    assert printed_table(err) == want

    out = eval_json(run, capsys)
    per_class = torch.tensor(out["results"][0]["class_exit_counts"]).sum(dim=1).tolist()
    assert per_class == [test_files["cat"], test_files["dog"]]
    # the saved run names its folder absolutely, so eval works from anywhere
    saved = json.loads((run / "config.json").read_text())
    assert saved["data"] == str(data.resolve()) and saved["normalize"] and saved["flip"] is False

    cfg, _, loaded, _ = load_run(run)
    x = loaded.train.images[:].double()  # eval standardised with the same training statistics
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-4)
    augmenter = make_augmenter(cfg, loaded)
    assert augmenter.max_shift == (12, 12) and augmenter.flip_p == 0.0  # 0.25 of 48 px, no flips


def test_augmentation_defaults_follow_the_dataset(tmp_path: Path) -> None:
    from routec.train.config import make_config

    synthetic = load_dataset("synthetic")
    paper = make_augmenter(make_config({"spec": "tiny", "data": "synthetic"}), synthetic)
    assert paper.max_shift == (4, 4) and paper.flip_p == 0.5  # the paper's ±4 px and flips
    data = tmp_path / "d"
    write_images(data, {"a": 5, "b": 5}, (28, 20), colour=False)
    folder = load_dataset(str(data), cache_dir=tmp_path / "c")
    own = make_augmenter(make_config({"spec": "tiny", "data": str(data)}), folder)
    assert own.max_shift == (4, 3) and own.flip_p == 0.5  # 0.125 of 28 and of 20, halves up


def test_wrong_size_names_the_file_before_decoding_and_resize_fixes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "digits"
    write_images(data, {"a": 8, "b": 8}, (28, 28), colour=False)
    odd = data / "b" / "zz-odd.png"
    Image.fromarray(np.full((30, 24), 200, np.uint8), "L").save(odd)
    (tmp_path / "gray.route").write_text(GRAY_SPEC)
    cache = tmp_path / "cache"
    args = ["train", str(tmp_path / "gray.route"), "--data", str(data), "--cache-dir", str(cache), *RUN]
    assert main([*args, "--out", str(tmp_path / "r1")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert str(odd) in err and "30×24" in err and "--resize" in err
    assert "decoding" not in err and not list(cache.glob("*.pt"))  # nothing was decoded

    assert main([*args, "--out", str(tmp_path / "r2"), "--resize"]) == 0
    resized = load_dataset(str(data), cache_dir=cache, shape=(1, 28, 28), resize=True)
    files = file_list(data)
    for split in ("train", "val", "test"):
        part = resized.split(split)
        for row, index in enumerate(part.source_index.tolist()):
            if files[index] == odd:  # a constant image stays constant when resized
                assert torch.allclose(part.images[row], torch.full((1, 28, 28), (200 / 255) ** 2.2), atol=1e-6)
                break
        else:
            continue
        break
    else:
        raise AssertionError("the resized image is in no split")


def test_shape_mismatch_is_reported_before_any_data_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTEC_DATA", str(tmp_path / "no-data-here"))
    (tmp_path / "gray.route").write_text(GRAY_SPEC)
    assert main(["train", str(tmp_path / "gray.route"), "--data", "mnist", "--out", str(tmp_path / "r"),
                 *RUN]) == 2
    err = capsys.readouterr().err
    assert "1×28×28" in err and "3×32×32" in err and "mnist28" in err
    assert "no MNIST found" not in err  # the shapes were compared before looking for files

    data = tmp_path / "gray"
    write_images(data, {"a": 5, "b": 5}, (32, 32), colour=False)
    cache = tmp_path / "cache"
    assert main(["train", "tiny", "--data", str(data), "--cache-dir", str(cache), "--out",
                 str(tmp_path / "r2"), *RUN]) == 2
    err = capsys.readouterr().err
    assert "grayscale" in err and "3×32×32" in err and not list(cache.glob("*.pt"))


def test_folder_only_flags_are_refused_for_named_datasets(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "tiny", "--data", "synthetic", "--val-fraction", "0.2", "--out",
                 str(tmp_path / "r"), *RUN]) == 2
    assert "--val-fraction applies to image folders" in capsys.readouterr().err


def test_experiment_runs_a_suite_on_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rgb32"
    write_images(data, {"x": 6, "y": 6}, (32, 32), colour=True)
    assert main(["experiment", "cifar2-static", "--runs", "n1", "--data", str(data), "--iterations", "2",
                 "--batch", "4", "--out", str(tmp_path / "exp"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"]) == 0
    assert printed_table(capsys.readouterr().err)["total"] == (8, 2, 2)  # 6 per class: 1 val, 1 test
    out = eval_json(tmp_path / "exp" / "cifar2-static" / "n1", capsys)
    assert out["classes"] == ["x", "y"] and out["iteration"] == 2
