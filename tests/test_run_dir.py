"""RunDir, the one owner of a run directory, checked against what the directory holds:
its log parsed line by line, its checkpoint read and its network built here, its
dataset loaded here, and the one-line errors a path that is not a run gets."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.errors import RunError
from routec.train.run_dir import Evaluator, RunDir, load_run

QUICK = ["--data", "synthetic", "--batch", "16", "--k-cpt", "1e-6", "--val-examples", "32",
         "--log-every", "2", "--eval-every", "4", "--no-progress", "--no-tensorboard"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run_dir") / "run"
    assert main(["train", "tiny", *QUICK, "--iterations", "8", "--out", str(out)]) == 0
    return out


def _log(run: Path) -> list[dict]:
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    assert lines and all(isinstance(r, dict) for r in lines)
    return lines


def test_its_files_are_the_files_training_wrote(run: Path) -> None:
    rd = RunDir(run)
    assert rd.has_checkpoint and rd.checkpoint == run / "checkpoint.pt"
    assert rd.config_file == run / "config.json" and rd.config_file.is_file()
    assert rd.metrics_file == run / "metrics.jsonl" and rd.metrics_file.is_file()
    assert rd.spec_file == run / "spec.route" and rd.spec_file.is_file()
    assert [name for name, _ in rd.recorded_files()] == ["config.json", "spec.route",
                                                        "metrics.jsonl"]
    assert all(path.is_file() for _, path in rd.recorded_files())
    assert not RunDir(run.parent).has_checkpoint


def test_its_log_is_the_parsed_metrics_file(run: Path) -> None:
    lines = _log(run)
    rd = RunDir(run)
    assert rd.metric_lines() == lines
    start, records = rd.read_metrics()
    assert start == next(r for r in lines if r.get("event") == "start") == rd.start()
    by_iteration = {r["iteration"]: r for r in lines if "event" not in r and "iteration" in r}
    assert records == [by_iteration[i] for i in sorted(by_iteration)]
    assert [r["iteration"] for r in records] == [2, 4, 6, 8]
    # one sitting: the clock of the last logged line; one machine, the start's
    assert rd.training_seconds() == [r["seconds"] for r in lines if "seconds" in r][-1] > 0
    assert rd.machines() == [start["machine"]]


def test_its_settings_are_config_json_and_the_checkpoints(run: Path) -> None:
    from routec.train.config import saved_config

    saved = json.loads((run / "config.json").read_text())
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    rd = RunDir(run)
    assert rd.config() == saved_config(saved) == rd.trained_config()
    assert rd.state()["iteration"] == state["iteration"] == 8 and rd.state()["finished"]
    assert rd.config().iterations == 8 and rd.config().data == "synthetic"


def test_its_network_and_data_are_the_checkpoints(run: Path) -> None:
    """The loaded network carries the checkpoint's weights and routes the dataset as a
    network built here from the checkpoint's spec does."""
    from routec.data.load import load_dataset
    from routec.parse import parse_spec
    from routec.train.checkpoint import load_checkpoint
    from routec.train.evaluate import evaluate
    from routec.train.model import build_network

    state = load_checkpoint(run / "checkpoint.pt")
    cfg, net, data, loaded_state = RunDir(run).load()
    assert loaded_state["iteration"] == state["iteration"]
    assert not net.training
    assert set(net.state_dict()) == set(state["model"])
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state["model"].items())

    shape = parse_spec(state["spec_text"], state["spec_label"]).input_shape
    mine = load_dataset("synthetic", cfg.data_root, cfg.cache_dir, seed=cfg.seed, shape=shape,
                        normalize=cfg.normalize, resize=cfg.resize,
                        val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                        pixels=cfg.pixels)
    assert torch.equal(data.test.images[:], mine.test.images[:])
    assert torch.equal(data.test.labels, mine.test.labels)

    _, built = build_network(state["spec_label"], state["spec_text"],
                             classes=len(state["classes"]), dynamic=False, static_columns=None,
                             strategy="actor")
    built.load_state_dict(state["model"])
    built.eval()
    want = evaluate(built, mine.test.images, mine.test.labels).as_dict()
    assert evaluate(net, data.test.images, data.test.labels).as_dict() == want
    # load_run is RunDir.open(run).load(); a checkpoint file opens its directory's run
    assert evaluate(load_run(run)[1], mine.test.images, mine.test.labels).as_dict() == want
    by_file = RunDir.open(run / "checkpoint.pt")
    assert by_file.path == run and by_file.checkpoint == run / "checkpoint.pt"
    assert evaluate(by_file.network(), mine.test.images, mine.test.labels).as_dict() == want


def test_its_evaluation_is_cached_beside_the_checkpoint(run: Path) -> None:
    from routec.train.evaluate import evaluate

    for f in run.glob("eval_*.json"):
        f.unlink()
    _, net, data, _ = load_run(run)
    want = evaluate(net, data.test.images, data.test.labels).as_dict()

    first = RunDir(run).evaluator()
    assert first.result("test", None)["result"] == want and first.computed == 1
    cached = run / "eval_test_argmax_fixed.json"
    assert json.loads(cached.read_text())["result"] == want

    again = RunDir(run).evaluator()  # a new process would read the cache file
    assert again.result("test", None)["result"] == want and again.computed == 0
    assert RunDir(run).evaluation("test", None)["result"] == want

    ckpt = run / "checkpoint.pt"
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a newer checkpoint
    stale = Evaluator(run)
    assert stale.result("test", None)["result"] == want and stale.computed == 1
    assert RunDir(run).evaluator(use_cache=False).result("test", None)["result"] == want


def test_paths_that_are_not_runs_get_the_one_line_errors(run: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(RunError) as e:
        RunDir.open(missing)
    assert e.value.message == f"{missing}: no such run directory or checkpoint file"

    with pytest.raises(RunError) as e:
        RunDir.open(run / "metrics.jsonl")
    assert e.value.message == (f"{run / 'metrics.jsonl'} is a run's log file, not a "
                               f"checkpoint; pass the run directory {run} instead")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunError) as e:
        RunDir.open(empty)
    assert e.value.message == f"{empty}: not a run directory (no checkpoint.pt in it)"

    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "config.json").write_text((run / "config.json").read_text())
    with pytest.raises(RunError) as e:
        RunDir.open(stopped)
    assert "no checkpoint yet" in e.value.message
    assert RunDir(stopped).config() == RunDir(run).config()  # its settings are still there

    with pytest.raises(RunError) as e:  # load_run says the same
        load_run(missing)
    assert e.value.message == f"{missing}: no such run directory or checkpoint file"

    with pytest.raises(RunError, match="not a run directory"):
        RunDir(run / "config.json").config()
    with pytest.raises(RunError, match="no config.json"):
        RunDir(empty).config()
    with pytest.raises(RunError, match="cannot read the run's metrics"):
        RunDir(empty).read_metrics()


def test_commands_open_runs_through_it(run: Path, capsys) -> None:
    """eval on the run and on a file of it: the numbers of RunDir's evaluation, and the
    one-line error naming the run directory."""
    assert main(["eval", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = RunDir(run).evaluation("test", None)["result"]
    assert out["results"][0]["accuracy"] == want["accuracy"]
    assert out["results"][0]["mean_macs"] == pytest.approx(want["mean_macs"])
    assert main(["eval", str(run / "config.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a checkpoint" in err and str(run) in err
