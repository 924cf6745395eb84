"""routec experiment: suites as resumable, shardable lists of runs."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from routec.cli import main
from routec.errors import RunError
import torch

from routec.experiment.suites import FIGURES, SUITES, split_budget
from routec.graph import build_graph
from routec.parse import load_spec
from routec.train.checkpoint import load_checkpoint
from routec.train.config import K_CPT_GRID, make_config

QUICK = ["--data", "synthetic", "--spec", "tiny", "--batch", "8", "--no-progress",
         "--no-records"]


def test_suites_cover_the_paper() -> None:
    for name in ["hybrid-static", "hybrid-actor", "hybrid-critic", "hybrid-critic-optimistic",
                 "hybrid-critic-clserr", "hybrid-actor-dynamic", "hybrid-actor-nokdec",
                 "hybrid-actor-notalr", "hybrid-actor-tree", "cifar2-static", "cifar2-actor",
                 "cifar5-static", "cifar5-actor", "cifar10-static", "cifar10-actor"]:
        assert name in SUITES
    assert [r["static_columns"] for r in SUITES["hybrid-static"].values()] == list(range(1, 9))
    assert sorted(r["k_cpt"] for r in SUITES["hybrid-actor"].values()) == sorted(K_CPT_GRID)
    assert {r["utility"] for r in SUITES["hybrid-critic-optimistic"].values()} == {"optimistic"}
    assert all(r["talr"] is False for r in SUITES["hybrid-actor-notalr"].values())
    assert all(r["talr"] is False and r["strategy"] == "critic"
               for r in SUITES["hybrid-critic-notalr"].values())
    assert all(r["regularise_dhat"] is True for r in SUITES["hybrid-actor-regdhat"].values())
    with pytest.raises(RunError, match="regularise_dhat applies to --strategy actor"):
        make_config({"spec": "paper_chain", "strategy": "critic", "regularise_dhat": True})
    # every suite's runs are valid run configurations
    for runs in SUITES.values():
        for settings in runs.values():
            make_config({**split_budget(settings)[0], "iterations": 1})


def test_every_figure_panel_names_suites() -> None:
    for fig in FIGURES:
        for panel in fig.panels:
            assert set(panel.suites) <= set(SUITES), (fig.key, panel.key)
    keys = [f.key for f in FIGURES]
    assert [k for k in keys if k.startswith("fig")] == ["fig5", "fig6", "fig8", "fig9", "fig10"]


@pytest.mark.parametrize("w", [2, 3])
def test_width_suites_are_the_chain_w_times_wide_with_k_cpt_over_w_squared(w: int) -> None:
    """Fig. 10: every convolution's output channels ×w; k_cpt ÷w²; routers and exits as is."""
    actor, static = SUITES[f"cifar10-actor-x{w}"], SUITES[f"cifar10-static-x{w}"]
    assert sorted(r["k_cpt"] for r in actor.values()) == pytest.approx(
        sorted(k / w ** 2 for k in K_CPT_GRID))
    assert [r["static_columns"] for r in static.values()] == list(range(1, 9))
    assert {r["data"] for r in [*actor.values(), *static.values()]} == {"cifar10"}
    (spec,) = {r["spec"] for r in [*actor.values(), *static.values()]}
    base, wide = build_graph(load_spec("paper_chain")), build_graph(load_spec(spec))
    assert [n.kind for n in wide.nodes] == [n.kind for n in base.nodes]
    for a, b in zip(base.nodes, wide.nodes):
        if a.kind == "column":
            assert [c * w for c, _, _ in a.out_shape] == [c for c, _, _ in b.out_shape]
        else:
            assert (a.head is None) == (b.head is None)
            if a.head is not None:
                assert a.head.hidden == b.head.hidden
    ratio = wide.path_macs()[-1] / base.path_macs()[-1]
    assert w ** 2 * 0.8 < ratio < w ** 2 * 1.05  # convolutions dominate the MACs


def test_regularising_dhat_changes_only_the_gradient_of_c_mod() -> None:
    """The ablation flag leaves the loss value alone; it lets c_mod's gradient reach the
    routers through the reach probabilities, and does nothing when c_mod is zero."""
    from routec.train.actor import actor_loss
    from helpers import compile_bundled, randomise

    _, net = compile_bundled("tiny")
    randomise(net, seed=1)
    x, y = torch.rand(16, *net.INPUT_SHAPE), torch.randint(0, net.CLASSES, (16,))
    junctions = [net.NODES[j] for j in net.JUNCTIONS]
    routers = [p for name in junctions for p in getattr(net, name).parameters()]

    def grads(flag: bool, k_dec: float, k_l2: float) -> tuple[float, list[torch.Tensor]]:
        net.zero_grad()
        net.train()
        res = actor_loss(net, net(x), y, 1e-8, 1.0, k_dec=k_dec, k_l2=k_l2,
                         regularise_dhat=flag)
        res.loss.backward()
        return float(res.loss.detach()), [p.grad.clone() for p in routers]

    held, g_held = grads(False, 0.5, 1e-2)
    free, g_free = grads(True, 0.5, 1e-2)
    assert held == pytest.approx(free)
    assert any(not torch.allclose(a, b) for a, b in zip(g_held, g_free))
    _, g0 = grads(False, 0.0, 0.0)
    _, g1 = grads(True, 0.0, 0.0)
    assert all(torch.allclose(a, b) for a, b in zip(g0, g1))


def test_finished_runs_are_skipped_and_unfinished_resumed(tmp_path: Path, capsys) -> None:
    args = ["experiment", "hybrid-actor", "--runs", "k0e-9", "k4e-9", "--out", str(tmp_path),
            *QUICK]
    assert main([*args, "--iterations", "3"]) == 0
    first = load_checkpoint(tmp_path / "hybrid-actor" / "k4e-9" / "checkpoint.pt")
    assert first["iteration"] == 3 and first["config"]["k_cpt"] == 4e-9
    capsys.readouterr()
    assert main([*args, "--iterations", "3"]) == 0
    assert capsys.readouterr().err.count("finished, skipped") == 2
    assert main([*args, "--iterations", "5"]) == 0  # a larger budget resumes both runs
    assert "resuming" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "hybrid-actor" / "k0e-9" / "checkpoint.pt")["iteration"] == 5


def test_shards_split_the_runs(tmp_path: Path) -> None:
    runs = ["k0e-9", "k1e-9", "k2e-9"]
    base = ["experiment", "hybrid-actor", "--runs", *runs, "--out", str(tmp_path),
            "--iterations", "1", *QUICK]
    assert main([*base, "--shard", "1/2"]) == 0
    done = sorted(p.name for p in (tmp_path / "hybrid-actor").iterdir()
                  if (p / "checkpoint.pt").exists())
    assert done == ["k1e-9"]
    assert main([*base, "--shard", "0/2"]) == 0
    assert sorted(p.name for p in (tmp_path / "hybrid-actor").iterdir()) == sorted(runs)


def test_a_locked_run_is_left_to_its_owner(tmp_path: Path, capsys) -> None:
    """A run whose lock a live process holds is skipped, naming the holder; once the holder
    is killed (no cleanup runs) the kernel has dropped its flock and the run trains."""
    import subprocess
    import sys

    run = tmp_path / "hybrid-actor" / "k0e-9"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from routec.train.lock import RunLock; "
         "l = RunLock(sys.argv[1]); l.__enter__(); print('held', flush=True); "
         "time.sleep(600)", str(run)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    argv = ["experiment", "hybrid-actor", "--runs", "k0e-9", "--out", str(tmp_path),
            "--iterations", "1", *QUICK]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "another process is training it" in err and f"pid {holder.pid}" in err
    assert not (run / "checkpoint.pt").exists()
    holder.kill()
    holder.wait()
    (run / ".lock").write_text(f"pid {holder.pid}\n")  # a pid in the file is no lock
    assert main(argv) == 0
    assert (run / "checkpoint.pt").exists()


def test_unknown_suite_or_run(tmp_path: Path, capsys) -> None:
    assert main(["experiment", "hybrid-nothing"]) == 2
    assert "unknown suite" in capsys.readouterr().err
    assert main(["experiment", "hybrid-actor", "--runs", "k3e-9"]) == 2
    assert "has no run k3e-9" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "hybrid-actor", "--iterations", "x"])


def test_a_run_with_a_budget_multiple_trains_that_many_times_longer(tmp_path: Path,
                                                                      capsys) -> None:
    args = ["experiment", "hybrid-actor-dynamic-x2", "--out", str(tmp_path), *QUICK,
            "--iterations", "2"]
    (run,) = SUITES["hybrid-actor-dynamic-x2"].values()
    assert split_budget(run) == ({k: v for k, v in run.items() if k != "budget"}, 2)
    assert main(args) == 0
    state = load_checkpoint(tmp_path / "hybrid-actor-dynamic-x2" / "dynamic" / "checkpoint.pt")
    assert state["iteration"] == 4 and state["config"]["iterations"] == 4
    capsys.readouterr()
    assert main(["experiment", "--list"]) == 0  # the listing says which runs train longer
    listing = capsys.readouterr().out.splitlines()
    assert "hybrid-actor-dynamic-x2: dynamic (2x the --iterations budget)" in listing
    assert "hybrid-actor-dynamic: dynamic" in listing
    assert main(args) == 0  # finished at 2 x 2: skipped, not resumed
    assert "finished, skipped" in capsys.readouterr().err


def test_a_recorded_run_is_not_trained_again_on_a_machine_without_its_directory(
        tmp_path: Path, capsys) -> None:
    """Records are committed, run directories are not: a fresh checkout must not retrain
    what its records already answer, and must train a run whose settings differ."""
    records = tmp_path / "records"
    quick = [a for a in QUICK if a != "--no-records"]
    args = ["experiment", "hybrid-actor", "--runs", "k4e-9", "--out", str(tmp_path / "runs"),
            "--records", str(records), *quick]
    assert main([*args, "--iterations", "2"]) == 0
    assert (records / "hybrid-actor" / "k4e-9" / "record.json").is_file()
    shutil.rmtree(tmp_path / "runs")  # a new machine: the records and nothing else
    capsys.readouterr()
    assert main([*args, "--iterations", "2"]) == 0
    assert "recorded in" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "hybrid-actor" / "k4e-9" / "checkpoint.pt").exists()
    assert main([*args, "--iterations", "3"]) == 0  # another budget is another run
    assert "starting" in capsys.readouterr().err
    state = load_checkpoint(tmp_path / "runs" / "hybrid-actor" / "k4e-9" / "checkpoint.pt")
    assert state["iteration"] == 3


def test_status_says_what_is_done_partly_trained_and_not_started(tmp_path: Path,
                                                                 capsys) -> None:
    """--status reads records and run directories without training anything."""
    records, out = tmp_path / "records", tmp_path / "runs"
    quick = [a for a in QUICK if a != "--no-records"]
    base = ["--out", str(out), "--records", str(records), *quick]
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "--iterations", "2",
                 *base]) == 0
    assert main(["experiment", "hybrid-actor", "--runs", "k4e-9", "--iterations", "1",
                 *base]) == 0  # trained to 1 of the 2 asked below: partly trained
    capsys.readouterr()
    # price the recorded runs (k4e-9 finished its 1-iteration budget) at an hour an
    # iteration: what is left is then counted in hours
    for rec_file in records.glob("hybrid-actor/*/record.json"):
        rec = json.loads(rec_file.read_text())
        rec["training_seconds"] = 3600.0 * rec["iteration"]
        rec_file.write_text(json.dumps(rec))
    assert main(["experiment", "hybrid-actor", "hybrid-static", "--status", "--iterations",
                 "2", *base]) == 0
    lines = capsys.readouterr().out.splitlines()
    others = [r for r in SUITES["hybrid-actor"] if r not in ("k0e-9", "k4e-9")]
    left = 1 + 2 * len(others)  # iterations: k4e-9 is at 1 of 2, the others at 0 of 2
    assert lines[0] == (f"hybrid-actor: 1 of {len(SUITES['hybrid-actor'])} done; "
                        f"partly trained in {out}: k4e-9 (1 of 2); "
                        f"not started: {', '.join(others)}; about {left:.1f} h left")
    assert lines[1] == (f"hybrid-static: 0 of 8 done; not started: "
                        f"{', '.join(SUITES['hybrid-static'])}; "
                        "no recorded run of this kind to price 8 of them")
    assert lines[2] == (f"left: about {left:.1f} h of training at the recorded pace, one run "
                        "per process, and 8 run(s) of a kind with no record to price them")
    assert load_checkpoint(out / "hybrid-actor" / "k4e-9" / "checkpoint.pt")["iteration"] == 1
    capsys.readouterr()
    shutil.rmtree(out)  # a fresh machine at another budget: not done, its record is named
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "--status", "--iterations",
                 "5", *base]) == 0
    assert capsys.readouterr().out.strip() == (
        "hybrid-actor: 0 of 1 done; not started: k0e-9 (recorded at 2 × 8); about 5.0 h left")


def test_several_suites_run_one_after_another(tmp_path: Path, capsys) -> None:
    args = ["experiment", "hybrid-actor", "hybrid-static", "--out", str(tmp_path),
            "--iterations", "1", "--shard", "0/8", *QUICK]
    assert main(args) == 0  # the shard takes the first run of each suite
    done = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.glob("*/*/checkpoint.pt"))
    assert done == ["hybrid-actor/k0e-9", "hybrid-static/n1"]
    assert main(["experiment", "hybrid-actor", "hybrid-static", "--runs", "n1"]) == 2
    assert "exactly one suite" in capsys.readouterr().err


def test_a_diverged_run_is_recorded_as_such_and_not_trained_again(tmp_path: Path, monkeypatch,
                                                                  capsys) -> None:
    """A run whose loss goes non-finite has no evaluation, but it is an outcome: its failure
    record says where, a later pass (or a fresh machine) skips it, and training it again
    from its last good checkpoint diverges at the same iteration (training is deterministic)."""
    from routec.experiment.records import read_failure, read_record

    # no clipping and an absurd rate: the loss overflows within a few steps
    monkeypatch.setitem(SUITES["hybrid-actor"], "k0e-9", {
        **SUITES["hybrid-actor"]["k0e-9"], "lr": 1e9, "talr": False, "preset": "paper",
        "checkpoint_every": 1})
    records, out = tmp_path / "records", tmp_path / "runs"
    quick = [a for a in QUICK if a != "--no-records"]
    args = ["experiment", "hybrid-actor", "--runs", "k0e-9", "--iterations", "200",
            "--out", str(out), "--records", str(records), *quick]
    assert main(args) == 0  # recorded: the campaign goes on, nothing failed
    err = capsys.readouterr().err
    assert "loss became" in err and "failure.json" in err
    folder = records / "hybrid-actor" / "k0e-9"
    failure = read_failure(folder)
    assert failure is not None and read_record(folder) is None
    last_good = load_checkpoint(out / "hybrid-actor" / "k0e-9" / "checkpoint.pt")["iteration"]
    assert failure["outcome"] == "diverged" and failure["last_good"] == last_good
    assert last_good <= failure["iteration"] < 200
    assert f"iteration {failure['iteration']}" in failure["reason"]
    assert all((folder / f).is_file() for f in ("config.json", "spec.route", "metrics.jsonl"))

    assert main(args) == 0  # the same settings again: skipped, not resumed
    assert "diverged at iteration" in capsys.readouterr().err
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", "--status", "--iterations",
                 "200", "--out", str(out), "--records", str(records), *quick]) == 0
    assert capsys.readouterr().out.strip() == (
        f"hybrid-actor: 0 of 1 done; diverged (recorded as such): k0e-9 at iteration "
        f"{failure['iteration']}")

    (folder / "failure.json").unlink()  # asked to try again, it diverges where it did
    assert main(args) == 0
    assert "resuming" in capsys.readouterr().err
    assert read_failure(folder)["iteration"] == failure["iteration"]

    assert main([*args[:4], "--iterations", "300", *args[6:]]) == 0  # other settings: trained
    assert "resuming" in capsys.readouterr().err

    assert main([*args, "--no-records"]) == 2  # with nowhere to record it, it is a failure
    assert "1 run(s) failed" in capsys.readouterr().err

    # on the page: the suite table and the setup table name the run and how it diverged
    assert main(["experiment", "hybrid-actor", "--runs", "k4e-9", "--iterations", "2",
                 "--out", str(out), "--records", str(records), *quick]) == 0
    failure = read_failure(folder)
    page = tmp_path / "results.md"
    assert main(["report", "--experiments", str(records), "-o", str(page)]) == 0
    text = page.read_text()
    assert f"| 1 of {len(SUITES['hybrid-actor'])}, 1 diverged (k0e-9) (not yet: " in text
    assert (f"k0e-9: loss became {failure['reason'].split()[2]} at iteration "
            f"{failure['iteration']} (last good checkpoint: iteration {failure['last_good']})"
            in text)


def test_a_suite_whose_every_run_diverged_is_on_the_page_as_such(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """With no evaluated run a suite has no table of its own, but it has been run: the setup
    table gives its budget, its diverged runs and the machine, and its claims say why they
    cannot be judged rather than "not yet run"."""
    from routec.experiment.records import read_failure

    monkeypatch.setitem(SUITES, "hybrid-actor-notalr", {"k0e-9": {
        **SUITES["hybrid-actor-notalr"]["k0e-9"], "lr": 1e9, "preset": "paper",
        "checkpoint_every": 1}})
    records, out = tmp_path / "records", tmp_path / "runs"
    quick = [a for a in QUICK if a != "--no-records"]
    common = ["--iterations", "200", "--out", str(out), "--records", str(records), *quick]
    assert main(["experiment", "hybrid-actor-notalr", *common]) == 0
    failure = read_failure(records / "hybrid-actor-notalr" / "k0e-9")
    assert failure is not None
    assert main(["experiment", "hybrid-actor", "--runs", "k0e-9", *common]) == 0  # evaluated

    page = tmp_path / "results.md"
    assert main(["report", "--experiments", str(records), "-o", str(page)]) == 0
    row = next(line for line in page.read_text().splitlines()
               if line.startswith("| hybrid-actor-notalr |"))
    assert row.endswith("| 200 × 8 | 0 of 1, 1 diverged (k0e-9) | M1 |"), row
    claim = next(line for line in page.read_text().splitlines()
                 if "TALR improves actor networks" in line)
    assert "pending: suite hybrid-actor-notalr has no evaluated run (every run diverged)" \
        in claim


@pytest.mark.parametrize("suite,run,static", [("cifar10-actor", "k0e-9", None),
                                              ("cifar10-static", "n3", 3)])
def test_status_prices_a_wider_kind_from_the_recorded_one_by_measured_macs(
        tmp_path: Path, capsys, suite: str, run: str, static: int | None) -> None:
    """A ×2 run with no record of its kind is priced from the ×1 record of the same run,
    scaled by what the two networks cost: checked against torch's own FLOP count of a
    dense pass through every node of each network."""
    from helpers import compile_bundled, counted_macs

    committed = Path(__file__).parents[1] / "results" / "records" / suite / run
    if not (committed / "record.json").is_file():
        pytest.skip(f"no committed record of {suite}/{run}")
    records = tmp_path / "records"
    shutil.copytree(committed, records / suite / run)
    rec_file = records / suite / run / "record.json"
    rec = json.loads(rec_file.read_text())
    rec["training_seconds"] = 3600.0 * rec["iteration"]  # an hour an iteration
    rec_file.write_text(json.dumps(rec))

    def dense_macs(spec: str) -> float:
        g, net = compile_bundled(spec, static=static)
        net.train()  # training evaluates every node: what an iteration pays for
        return counted_macs(lambda: net(torch.rand(2, *g.input_shape))) / 2  # two images

    ratio = dense_macs("paper_chain_x2") / dense_macs("paper_chain")
    assert main(["experiment", f"{suite}-x2", "--runs", run, "--status", "--iterations", "2",
                 "--out", str(tmp_path / "runs"), "--records", str(records)]) == 0
    line = capsys.readouterr().out.strip()
    head = f"{suite}-x2: 0 of 1 done; not started: {run}; about "
    tail = " h left (estimated from paper_chain by MACs)"
    assert line.startswith(head) and line.endswith(tail), line
    assert float(line[len(head):-len(tail)]) == pytest.approx(2 * ratio, abs=0.051)
    assert 3 < ratio < 4.2  # ×2 wide: convolutions' MACs ×4, routers and exits less


def test_a_record_matches_settings_that_differ_only_in_tensorboard() -> None:
    """Event files change nothing a record holds; any setting that trains differently does."""
    from routec.experiment.records import _same_settings
    from routec.train.config import make_config
    from routec.train.model import digest

    text = "any spec text"
    cfg = make_config({"spec": "tiny", "data": "synthetic", "iterations": 10})
    rec = {"spec_sha256": digest(text), "config": cfg.model_dump()}
    quiet = make_config({"spec": "tiny", "data": "synthetic", "iterations": 10,
                         "tensorboard": False})
    other = make_config({"spec": "tiny", "data": "synthetic", "iterations": 10, "lr": 0.05})
    assert _same_settings(rec, quiet.model_dump(), text)
    assert not _same_settings(rec, other.model_dump(), text)
    assert not _same_settings(rec, quiet.model_dump(), text + " edited")
