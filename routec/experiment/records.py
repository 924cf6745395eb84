"""Run records: what a finished run showed, kept small enough to commit.

A run directory holds weights (megabytes per run) and lives on one machine; a
record holds everything the results page reads, and nothing it does not:

    RECORDS/SUITE/RUN/config.json    the effective run configuration
    RECORDS/SUITE/RUN/spec.route     the spec the network was generated from
    RECORDS/SUITE/RUN/metrics.jsonl  the training log (machine, curves, exit mix)
    RECORDS/SUITE/RUN/record.json    the final routed evaluation on the test split:
                                     accuracy, mean MACs, per-exit and per-class counts,
                                     and the examples reaching every node (Figs. 6, 7)

``record.json`` is written last, so a folder with it is a complete record. A run
whose training diverged (a non-finite loss or network state) has no evaluation to
record; its folder holds ``failure.json`` in place of ``record.json`` (where and how it
diverged, its settings), so the divergence counts as the run's outcome on every
machine instead of a run that is forever "not yet recorded".
Paths under the data root are written as ``$ROUTEC_DATA/...``: records read the
same on every machine.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from routec.errors import RunError
from routec.train.run_dir import RunDir
from routec.train.run_files import CONFIG, METRICS, RECORDED

RECORD = "record.json"
FAILURE = "failure.json"
FORMAT = 1
COPIED = RECORDED
SPLIT = "test"
POLICY = "argmax"


def default_records(out: str | Path) -> Path:
    """Where ``routec experiment --out OUT`` keeps records: ``results/records`` beside OUT
    (``--out runs`` → ``results/records``)."""
    return Path(out).parent / "results" / "records"


def portable(text: str, data_root: str | None = None) -> str:
    """Write the data root as ``$ROUTEC_DATA``: records should not depend on one machine."""
    from routec.data.root import resolve_data_root

    root = resolve_data_root(data_root)
    for form in sorted({str(root), str(root.resolve())}, key=len, reverse=True):
        if form.rstrip("/"):
            text = text.replace(form.rstrip("/") + "/", "$ROUTEC_DATA/")
    return text


def read_record(record_dir: Path) -> dict[str, Any] | None:
    """The record.json of a record folder, or None if there is no complete record."""
    return _read_outcome(Path(record_dir) / RECORD)


def _read_outcome(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def record_is_current(record_dir: Path, state: dict[str, Any]) -> bool:
    """The record describes this checkpoint: same iteration, settings and spec (compared
    as :func:`record_answers` compares them)."""
    rec = read_record(record_dir)
    return bool(rec) and rec["iteration"] == state["iteration"] and \
        _same_settings(rec, state["config"], state["spec_text"])


def record_answers(record_dir: Path, config: dict[str, Any], spec_text: str) -> bool:
    """The record is of a finished run with exactly these settings and spec: a machine
    that has the record but not the run directory need not train the run again."""
    rec = read_record(record_dir)
    return bool(rec) and rec["finished"] and _same_settings(rec, config, spec_text)


def failure_answers(record_dir: Path, config: dict[str, Any], spec_text: str
                    ) -> dict[str, Any] | None:
    """The failure record of a run with exactly these settings and spec, or None.
    Training is deterministic, so such a run would diverge again where it did."""
    rec = read_failure(record_dir)
    return rec if rec and _same_settings(rec, config, spec_text) else None


def _same_settings(rec: dict[str, Any], config: dict[str, Any], spec_text: str) -> bool:
    from pydantic import ValidationError

    from routec.train.config import saved_config
    from routec.train.model import digest

    if rec["spec_sha256"] != digest(spec_text):
        return False
    try:  # a record older than a setting was trained with that setting's default
        recorded = saved_config(rec["config"]).model_dump()
    except (ValidationError, TypeError):
        return False
    neutral = ("tensorboard",)  # writes event files; the run's outcome is the same
    return ({k: v for k, v in portable_config(recorded).items() if k not in neutral}
            == {k: v for k, v in portable_config(config).items() if k not in neutral})


def portable_config(config: dict[str, Any], data_root: str | None = None) -> dict[str, Any]:
    """A run's settings as JSON, with the data root and paths under it made portable."""
    from routec.data.root import resolve_data_root

    root = resolve_data_root(data_root)
    out = json.loads(portable(json.dumps(config), data_root))
    return {k: "$ROUTEC_DATA" if isinstance(v, str) and v.rstrip("/") in (
        str(root), str(root.resolve())) else v for k, v in out.items()}


def eval_ks(cfg: Any) -> list[float | None]:
    """k_cpt values a record evaluates at: the training grid for dynamic runs, else none."""
    return list(cfg.k_cpt_grid) if cfg.dynamic else [None]


def evaluation(flow: Any, exit_names: list[str]) -> dict[str, Any]:
    """The evaluation numbers (as ``routec eval`` reports them) from measured dataflow."""
    n = flow.examples
    return {
        "examples": n, "accuracy": sum(flow.exit_correct) / n, "mean_macs": flow.mean_macs,
        "exit_fraction": [c / n for c in flow.exit_count],
        "exit_accuracy": [k / c if c else None for k, c in zip(flow.exit_correct,
                                                              flow.exit_count)],
        "class_exit_counts": [list(col) for col in zip(*flow.exit_class)],  # class × exit
        "exit_names": exit_names,
    }


def build_record(run_dir: Path, suite: str, run: str, *, data_root: str | None = None,
                 cache_dir: str | None = None, loaded: Any = None) -> dict[str, Any]:
    """Evaluate a run's checkpoint by routed inference and describe it as a record."""
    from routec.train.dataflow import measure

    cfg, net, data, state = loaded or RunDir.open(run_dir, data_root=data_root,
                                                  cache_dir=cache_dir).load()
    run_log = RunDir(run_dir)  # its training log, read whether or not it was loaded here
    part = data.test
    exit_names = [net.NODES[i] for i in net.LEAVES]
    evaluations = []
    for k in eval_ks(cfg):
        flow = measure(net, part.images, part.labels, part.origin,  # k in the run's unit
                       k_cpt=None if k is None else cfg.router_k_cpt(k))
        evaluations.append({
            "k_cpt": k, "result": evaluation(flow, exit_names),
            "dataflow": {key: getattr(flow, key) for key in (
                "node_count", "exit_count", "exit_correct", "exit_origin", "exit_class")}})
    start = run_log.start()
    extra: dict[str, Any] = {}
    if cfg.strategy == "multi-exit":
        extra["confidence"] = confidence_evaluations(net, part)
    return {
        "format": FORMAT, "suite": suite, "run": run, "split": SPLIT, "policy": POLICY,
        "iteration": int(state["iteration"]), "finished": bool(state["finished"]),
        "config": portable_config(state["config"], data_root), "spec_label": state["spec_label"],
        "spec_sha256": state["spec_sha256"], "network": net.NAME, "data": cfg.data,
        "data_source": portable(str(start.get("data_source", "")), data_root),
        "classes": list(state["classes"]), "nodes": list(net.NODES),
        "exits": exit_names, "path_macs": net.path_macs(),
        "machines": run_log.machines(),
        "training_seconds": run_log.training_seconds(),
        "evaluations": evaluations, **extra,
    }


# A multi-exit network has no trained routers: it is deployed with a confidence rule
# (exit once the top softmax probability reaches a threshold), one point per threshold.
# The top of the range is dense: on a trained backbone most of the curve lies above 0.9.
CONFIDENCE_THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def confidence_evaluations(net: Any, part: Any) -> list[dict[str, Any]]:
    """The test-split evaluation of ``net`` under the confidence policy at each threshold;
    MACs include the exits evaluated to decide and not taken."""
    from routec.train.evaluate import evaluate

    return [{"threshold": t, "result": evaluate(net, part.images, part.labels,
                                                policy="confidence", threshold=t).as_dict()}
            for t in CONFIDENCE_THRESHOLDS]


def write_record(run_dir: Path, record_dir: Path, suite: str, run: str, *,
                 data_root: str | None = None, cache_dir: str | None = None,
                 loaded: Any = None) -> Path:
    """Write the record of a finished run; returns its folder."""
    run_dir, record_dir = Path(run_dir), Path(record_dir)
    rec = build_record(run_dir, suite, run, data_root=data_root, cache_dir=cache_dir,
                       loaded=loaded)
    if not rec["finished"]:
        raise RunError(f"{run_dir}: the run is not finished (iteration {rec['iteration']} of "
                       f"{rec['config']['iterations']}); records are of finished runs")
    _write_folder(run_dir, record_dir, RECORD, rec, data_root)
    return record_dir


def read_failure(record_dir: Path) -> dict[str, Any] | None:
    """The failure.json of a record folder, or None if the run has no failure record."""
    return _read_outcome(Path(record_dir) / FAILURE)


def write_failure(run_dir: Path, record_dir: Path, suite: str, run: str, err: Any,
                  config: dict[str, Any], spec_text: str, *, data_root: str | None = None
                  ) -> Path:
    """Record that a run diverged (``err`` a :class:`~routec.errors.TrainingDiverged`):
    its settings, its training log up to the last good checkpoint, the iteration and the
    message; no evaluation, since no trained network stands for the settings."""
    from routec.train.model import digest

    run_dir, record_dir = Path(run_dir), Path(record_dir)
    run_log = RunDir(run_dir)
    rec = {
        "format": FORMAT, "suite": suite, "run": run, "outcome": "diverged",
        "iteration": int(err.iteration), "last_good": err.last_good, "cause": err.cause,
        "reason": err.message,
        "config": portable_config(config, data_root),
        "spec_sha256": digest(spec_text),
        "machines": run_log.machines(), "training_seconds": run_log.training_seconds(),
    }
    _write_folder(run_dir, record_dir, FAILURE, rec, data_root)
    return record_dir


def _write_folder(run_dir: Path, record_dir: Path, name: str, rec: dict[str, Any],
                  data_root: str | None) -> None:
    """Copy the run's settings and log into ``record_dir`` and write ``name`` (record.json
    or failure.json) last; the folder holds one outcome, so the other file goes."""
    from routec.files import atomic_write_bytes

    try:
        record_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunError(f"{record_dir}: cannot create the record folder ({err.strerror})"
                       ) from None
    for outcome in (RECORD, FAILURE):  # incomplete until the new outcome file is back
        (record_dir / outcome).unlink(missing_ok=True)
    for copied, path in RunDir(run_dir).recorded_files():
        text = path.read_text(encoding="utf-8")
        if copied == CONFIG:
            text = json.dumps(portable_config(json.loads(text), data_root), indent=2) + "\n"
        elif copied == METRICS:
            text = portable(text, data_root)
        atomic_write_bytes(record_dir / copied, text.encode("utf-8"))
    atomic_write_bytes(record_dir / name, (json.dumps(rec, indent=1) + "\n").encode("utf-8"))


def finished_runs(runs_root: Path) -> Iterator[tuple[str, str, Path]]:
    """(suite, run, run directory) of every checkpointed run of a known suite."""
    from routec.experiment.suites import SUITES

    for suite, runs in SUITES.items():
        for run in runs:
            d = Path(runs_root) / suite / run
            if RunDir(d).has_checkpoint:
                yield suite, run, d


def harvest(runs_root: Path, records_root: Path, *, force: bool = False,
            data_root: str | None = None, cache_dir: str | None = None,
            say: Callable[[str], None] | None = None) -> list[Path]:
    """Write (or refresh) the record of every finished run under ``runs_root``.

    Run directories are only read. Unfinished runs are left out; a record that
    already describes its run's checkpoint is kept unless ``force``.
    """
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    runs_root, records_root = Path(runs_root), Path(records_root)
    if not runs_root.is_dir():
        raise RunError(f"{runs_root}: no such experiment folder",
                       hint="pass the --out folder of routec experiment (default: runs)")
    written = []
    for suite, run, d in finished_runs(runs_root):
        state = RunDir(d).state()
        if not state["finished"]:
            say(f"{suite}/{run}: unfinished (iteration {state['iteration']}), no record")
            continue
        target = records_root / suite / run
        if not force and record_is_current(target, state):
            continue
        say(f"{suite}/{run}: writing its record")
        written.append(write_record(d, target, suite, run, data_root=data_root,
                                    cache_dir=cache_dir))
    return written


def record_dirs(records_root: Path) -> Iterator[tuple[str, str, Path]]:
    """(suite, run, folder) of every complete record under ``records_root``, in suite order."""
    from routec.experiment.suites import SUITES

    for suite, runs in SUITES.items():
        for run in runs:
            d = Path(records_root) / suite / run
            if (d / RECORD).is_file():
                yield suite, run, d
