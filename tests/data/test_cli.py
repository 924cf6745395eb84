"""``routec data list`` and ``routec data show`` through the real entry point."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from routec.cli import main
from routec.data import dataset_summary, synthetic


def test_list_without_data_marks_unavailable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    code = main(["data", "list", "--data-root", str(empty), "--cache-dir", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("hybrid", "cifar2", "cifar5", "cifar10", "mnist"):
        assert f"{name}: unavailable" in out
    assert f"no MNIST found under {empty}" in out
    assert f"no CIFAR-10 found under {empty}: looked for cifar-10-batches-py/ and cifar-10-jpeg[.tar.gz]" in out
    # The synthetic dataset is always there, with its real counts.
    data = synthetic()
    assert "synthetic" in out and str(len(data.train)) in out and str(len(data.test)) in out


def test_list_uses_environment_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROUTEC_DATA", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path} (ROUTEC_DATA)" in out
    assert f"no MNIST found under {tmp_path}" in out


def test_list_with_real_data(real_root: Path, run_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "list", "--data-root", str(real_root), "--cache-dir", str(run_cache)])
    out = capsys.readouterr().out
    assert code == 0 and "unavailable" not in out
    for name in ("hybrid", "cifar2", "cifar5", "cifar10", "mnist"):
        summary = dataset_summary(name, real_root, run_cache)
        row = f"│ {summary.classes[0]} "
        assert row in out
        totals = [str(sum(summary.counts[s])) for s in ("train", "val", "test")]
        assert any(all(t in line for t in totals) and "total" in line for line in out.splitlines())


def test_show_synthetic_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "grid.png"
    assert main(["data", "show", "synthetic", "--out", str(out_png)]) == 0
    stdout = capsys.readouterr().out
    assert "built-in synthetic dataset" in stdout and str(out_png) in stdout
    with Image.open(out_png) as img:
        img.load()
        assert img.format == "PNG"
        assert img.width >= 400 and img.height >= 400  # 8×8 cells of 32×32 images, readable
        assert img.width <= 4000 and img.height <= 4000


def test_show_augmented_val_small_grid(tmp_path: Path) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    assert main(["data", "show", "synthetic", "--out", str(small), "--split", "val", "--augment", "--n", "4"]) == 0
    assert main(["data", "show", "synthetic", "--out", str(large), "--n", "64"]) == 0
    with Image.open(small) as a, Image.open(large) as b:
        assert a.width < b.width and a.height < b.height


def test_show_real_hybrid(
    real_root: Path, run_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_png = tmp_path / "hybrid.png"
    args = ["data", "show", "hybrid", "--out", str(out_png), "--augment", "--n", "16",
            "--data-root", str(real_root), "--cache-dir", str(run_cache)]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert f"MNIST from {real_root}" in stdout and "CIFAR-10 from" in stdout
    with Image.open(out_png) as img:
        assert img.format == "PNG" and img.width > 200


def test_bad_name_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "show", "imagenet", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: unknown dataset 'imagenet'") and "hybrid" in err
    assert not (tmp_path / "x.png").exists()


def test_missing_files_exit_2_naming_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "show", "cifar10", "--out", str(tmp_path / "x.png"), "--data-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: no CIFAR-10 found under {tmp_path}" in err
    assert "--download" in err  # the hint says how to get the files


def test_list_and_show_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    root = tmp_path / "pics"
    for cls, n in (("ant", 12), ("bee", 7)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (12, 12), 20 * i).save(root / cls / f"{i}.png")
    assert main(["data", "list", str(root), "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "1×12×12 grayscale" in out
    # 12 → 1 val, 1 test; 7 → 1, 1 (round half up of n/10)
    rows = [[cell.strip() for cell in line.split("│")[1:5]] for line in out.splitlines()]
    assert ["ant", "10", "1", "1"] in rows and ["bee", "5", "1", "1"] in rows
    png = tmp_path / "grid.png"
    assert main(["data", "show", str(root), "--out", str(png), "--n", "6", "--augment",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    assert Image.open(png).size[0] > 0
