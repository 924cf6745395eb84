"""routec sweep: cross products of settings run like a suite, and --ray's absence."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from routec.cli import main
from routec.experiment.suites import SUITES
from routec.train.checkpoint import load_checkpoint

QUICK = ["--data", "synthetic", "--batch", "8", "--no-progress"]


def listed(capsys) -> dict[str, str]:
    """run name → its settings as `routec sweep --list` prints them."""
    out = capsys.readouterr().out.splitlines()
    return dict(line.split(": ", 1) for line in out)


def test_runs_are_the_cross_product_named_by_axis_values_in_order(capsys) -> None:
    assert main(["sweep", "tiny", "--k-cpt", "0,4e-9,1.6e-8", "--strategy", "actor,critic",
                 "--seed", "0,1", "--list"]) == 0
    runs = listed(capsys)
    expected = [f"sweep-tiny/{s}-{k}-s{seed}" for s in ("actor", "critic")
                for k in ("k0e-9", "k4e-9", "k16e-9") for seed in (0, 1)]
    assert list(runs) == expected
    assert runs["sweep-tiny/critic-k16e-9-s1"] == \
        "spec=tiny, strategy=critic, k_cpt=1.6e-08, seed=1"


def test_a_sweep_file_gives_fixed_settings_and_ordered_axes(tmp_path: Path, capsys) -> None:
    """Axes are named in the file's order, whatever their kind; a flag replaces the file's
    axis of the same setting in its place; --set adds a fixed setting."""
    spec = tmp_path / "my.toml"
    spec.write_text('name = "abl"\n[fixed]\nspec = "tiny"\npreset = "paper"\n'
                    '[axes]\ntalr = [true, false]\nk_dec = [0, 0.01]\nk_cpt = [1e-9]\n')
    assert main(["sweep", "--axes", str(spec), "--list"]) == 0
    assert list(listed(capsys)) == ["abl/talr-k-dec0-k1e-9", "abl/talr-k-dec0.01-k1e-9",
                                    "abl/no-talr-k-dec0-k1e-9", "abl/no-talr-k-dec0.01-k1e-9"]
    assert main(["sweep", "--axes", str(spec), "--k-cpt", "2e-9,8e-9", "--set",
                 "utility=optimistic", "--name", "other", "--list"]) == 0
    runs = listed(capsys)
    assert list(runs)[:2] == ["other/talr-k-dec0-k2e-9", "other/talr-k-dec0-k8e-9"]
    assert runs["other/talr-k-dec0-k2e-9"] == ("spec=tiny, preset=paper, utility=optimistic, "
                                               "talr=True, k_dec=0.0, k_cpt=2e-09")


def test_the_paper_grid_as_a_sweep_is_the_suite(tmp_path: Path, capsys) -> None:
    """A suite is a named sweep: the hybrid actor grid written as a sweep file gives the
    suite's run names and settings."""
    grid = ", ".join(str(k) for k in (0.0, 1e-9, 2e-9, 4e-9, 8e-9, 16e-9, 32e-9, 64e-9))
    spec = tmp_path / "grid.toml"
    spec.write_text('[fixed]\npreset = "paper"\nspec = "paper_chain"\nstrategy = "actor"\n'
                    f'data = "hybrid"\n[axes]\nk_cpt = [{grid}]\n')
    assert main(["sweep", "--axes", str(spec), "--list"]) == 0
    runs = listed(capsys)
    names = ["k0e-9", "k1e-9", "k2e-9", "k4e-9", "k8e-9", "k16e-9", "k32e-9", "k64e-9"]
    assert list(runs) == [f"grid/{n}" for n in names]
    assert list(SUITES["hybrid-actor"]) == names
    for name, settings in SUITES["hybrid-actor"].items():
        assert runs[f"grid/{name}"] == ", ".join(f"{k}={v}" for k, v in settings.items())


def test_a_sweep_trains_resumes_and_records_as_experiment_does(tmp_path: Path,
                                                              capsys) -> None:
    """The runs of a sweep and of a suite with the same settings are trained by one
    engine: the same checkpoints and the same records, but for the names."""
    out, records = tmp_path / "runs", tmp_path / "records"
    common = ["--out", str(out), "--records", str(records), *QUICK]
    sweep = ["sweep", "tiny", "--k-cpt", "0,4e-9", "--set", "preset=paper",
             "--name", "mine", *common]
    assert main([*sweep, "--iterations", "2"]) == 0
    assert main([*sweep, "--iterations", "3"]) == 0  # a larger budget resumes both
    assert capsys.readouterr().err.count("resuming (3 iterations)") == 2
    assert main([*sweep, "--iterations", "3"]) == 0
    assert capsys.readouterr().err.count("finished, skipped") == 2
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "k4e-9", "--spec", "tiny",
                 "--iterations", "3", *common]) == 0
    for run in ("k0e-9", "k4e-9"):
        ours = json.loads((records / "mine" / run / "record.json").read_text())
        suite = json.loads((records / "hybrid-actor" / run / "record.json").read_text())
        assert ours["config"]["k_cpt"] == {"k0e-9": 0.0, "k4e-9": 4e-9}[run]
        assert ours["suite"] == "mine" and suite["suite"] == "hybrid-actor"
        assert ours["evaluations"] == suite["evaluations"]  # trained alike, bit for bit
        assert ours["config"] == suite["config"]
        state = load_checkpoint(out / "mine" / run / "checkpoint.pt")
        assert state["iteration"] == 3 and state["finished"]


@pytest.mark.parametrize("argv,message", [
    (["sweep", "tiny", "--axis", "k_dex=0,1"], "error: unknown run setting 'k_dex'\n"
                                              "hint: did you mean k_dec?"),
    (["sweep", "tiny", "--axis", "iterations=1,2"], "iterations is not a sweep setting"),
    (["sweep", "tiny", "--k-cpt", "0,x"], "error: k_cpt = 'x'"),
    (["sweep", "tiny"], "error: the sweep has no axis"),
    (["sweep", "--k-cpt", "0"], "needs a SPEC"),
    (["sweep", "tiny", "--k-cpt", "0", "--name", "hybrid-actor"],
     "hybrid-actor is a suite of the paper's experiments"),
    (["sweep", "tiny", "--axis", "batch=8,16", "--batch", "8"], "--batch is also an axis"),
    (["sweep", "tiny", "--k-cpt", "0", "--cpus-per-run", "2"], "--cpus-per-run applies with "
                                                               "--ray"),
    (["experiment", "hybrid-actor", "--gpus-per-run", "1", "--ray"],
     "--gpus-per-run reserves GPUs that --device cpu runs would not use"),
])
def test_sweep_errors_are_one_line(argv: list[str], message: str, tmp_path: Path,
                                   capsys) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2, err
    assert not list(tmp_path.iterdir())  # nothing trained, no folder made


@pytest.mark.parametrize("command", [["experiment", "hybrid-actor", "--runs", "k0e-9",
                                      "--spec", "tiny"],
                                     ["sweep", "tiny", "--k-cpt", "0,4e-9"]])
def test_without_ray_installed_ray_is_a_one_line_error(command: list[str], tmp_path: Path,
                                                       monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if absent
    assert main([*command, "--out", str(tmp_path), *QUICK, "--no-records", "--ray"]) == 2
    assert capsys.readouterr().err == ('error: --ray needs Ray, which is not installed\n'
                                       'hint: pip install "routec[ray]"\n')
    assert not list(tmp_path.iterdir())
    assert main([*command, "--out", str(tmp_path), *QUICK, "--no-records",
                 "--iterations", "1"]) == 0
    assert list(tmp_path.glob("*/*/checkpoint.pt"))  # the same runs train without Ray
