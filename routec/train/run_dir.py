"""One run directory, owned by one class: :class:`RunDir`.

Training writes a run directory (``routec train --out RUN``); every command that opens
one afterwards (eval, bench RUN, profile RUN, export, draw RUN, report, experiment
records and harvest, demo) goes through :class:`RunDir`: the paths of its files (named
in :mod:`routec.train.run_files`), whether it reached a checkpoint, its settings
(``config.json``), its checkpoint loaded back into a network and its dataset, its
training log, the files a record copies, and its routed evaluations cached beside the
checkpoint (:class:`Evaluator`; the cache files are :mod:`routec.train.evaluations`').

A record folder holds a run's settings, spec and log under the same names, so its log
is read through a :class:`RunDir` too.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routec.errors import RoutecError, RunError
from routec.train import evaluations
from routec.train.config import RunConfig, saved_config
from routec.train.run_files import CHECKPOINT, CONFIG, COST_TABLE, LOCK, METRICS, RECORDED, \
    ROLES, SPEC

if TYPE_CHECKING:
    from routec.runtime.routing import RoutedNetwork

Loaded = tuple[RunConfig, Any, Any, dict[str, Any]]  # (config, network, dataset, checkpoint)


class RunDir:
    """A run directory: its files, settings, checkpoint, log and cached evaluations.

    Nothing is read when one is made; the checkpoint and the dataset are loaded once,
    when first needed, and kept. ``data_root`` and ``cache_dir`` say where the run's
    dataset is on this machine (default: where the run was trained from).
    """

    def __init__(self, path: str | Path, *, checkpoint: str | Path | None = None,
                 data_root: str | None = None, cache_dir: str | None = None) -> None:
        self.path = Path(path)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else self.path / CHECKPOINT
        self.data_root, self.cache_dir = data_root, cache_dir
        self._state: dict[str, Any] | None = None
        self._config: RunConfig | None = None
        self._loaded: Loaded | None = None

    @classmethod
    def open(cls, run: str | Path, *, data_root: str | None = None,
             cache_dir: str | None = None) -> RunDir:
        """A run named on a command line: a run directory with a checkpoint, or a
        checkpoint file itself; else a one-line error that says what the path is."""
        p = Path(run)
        if p.is_dir():
            run_dir = cls(p, data_root=data_root, cache_dir=cache_dir)
            if run_dir.has_checkpoint:
                return run_dir
            if run_dir.config_file.exists():
                raise RunError(f"{p}: this run has no checkpoint yet (it stopped before its "
                               "first one); resume it with: routec train --out "
                               f"{p} --resume --start-if-missing")
            raise RunError(f"{p}: not a run directory (no {CHECKPOINT} in it)")
        if p.is_file():
            if p.name in ROLES:
                raise RunError(f"{p} is a run's {ROLES[p.name]} file, not a checkpoint; pass "
                               f"the run directory {p.parent} instead")
            return cls(p.parent, checkpoint=p, data_root=data_root, cache_dir=cache_dir)
        raise RunError(f"{p}: no such run directory or checkpoint file")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- files --------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def spec_file(self) -> Path:
        return self.path / SPEC

    @property
    def cost_table_file(self) -> Path:
        return self.path / COST_TABLE

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK

    @property
    def has_checkpoint(self) -> bool:
        """Whether the run reached its first checkpoint."""
        return self.checkpoint.is_file()

    def recorded_files(self) -> list[tuple[str, Path]]:
        """(name, path) of the files a record copies: settings, spec and training log."""
        return [(name, self.path / name) for name in RECORDED]

    # -- settings -----------------------------------------------------------------------
    def config(self) -> RunConfig:
        """The run's settings from ``config.json``, read without torch (a run stopped
        before its first checkpoint has them too)."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: not a run directory",
                           hint="pass directories written by routec train --out")
        try:
            return saved_config(json.loads(self.config_file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RunError(f"{self.path}: no {CONFIG} (not a routec run directory?)") from None
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise RunError(f"{self.config_file}: unreadable ({err})") from None

    # -- checkpoint ---------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The checkpoint (weights, settings, spec, classes), read once."""
        from routec.train.checkpoint import load_checkpoint

        if self._state is None:
            self._state = load_checkpoint(self.checkpoint)
        return self._state

    def trained_config(self) -> RunConfig:
        """The settings the checkpoint was trained with."""
        if self._config is None:
            self._config = saved_config(self.state()["config"])
        return self._config

    def network(self) -> RoutedNetwork:
        """The checkpoint's network with its weights, on the CPU, in eval mode (built
        anew on each call)."""
        return trained_network(self.state(), self.trained_config())

    def data(self) -> Any:
        """The run's dataset, split and normalised as when it trained; refused where the
        dataset's classes are no longer the run's."""
        from routec.parse import parse_spec

        state = self.state()
        shape = parse_spec(state["spec_text"], state["spec_label"]).input_shape
        return load_data(self.trained_config(), shape, self.data_root, self.cache_dir,
                         classes=list(state["classes"]))

    def load(self) -> Loaded:
        """(config, network, dataset, checkpoint), weights loaded; loaded once and kept."""
        if self._loaded is None:
            state, cfg = self.state(), self.trained_config()
            data = self.data()
            trained_on = state.get("data_files")
            if trained_on and data.info.files_digest and data.info.files_digest != trained_on:
                print(f"warning: {cfg.data} has other files than when this run was trained; "
                      "the splits held out of it are drawn anew and may hold images it "
                      "trained on", file=sys.stderr)
            self._loaded = (cfg, trained_network(state, cfg), data, state)
        return self._loaded

    # -- training log -------------------------------------------------------------------
    def metric_lines(self) -> list[dict[str, Any]]:
        """Every JSON object line of the training log, events included, in order."""
        path = self.metrics_file
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RoutecError(f"{path}: not a text file, so not a routec training log") from None
        out = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                out.append(rec)
        return out

    def read_metrics(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The run's start event and its per-iteration records (last record per iteration)."""
        path = self.metrics_file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise RunError(f"{path}: cannot read the run's metrics ({err.strerror})") from None
        except UnicodeDecodeError:
            raise RunError(f"{path}: not a text file, so not a routec training log") from None
        start: dict[str, Any] = {}
        records: dict[int, dict[str, Any]] = {}
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("iteration", 0), int):
                continue  # not a record routec writes
            if rec.get("event") == "start":
                start = rec
            elif "event" not in rec and "iteration" in rec:  # not a start/resume event
                records[int(rec["iteration"])] = rec
        if not start:
            raise RunError(f"{path}: no start record", hint="is this a routec run directory?")
        return start, [records[k] for k in sorted(records)]

    def start(self) -> dict[str, Any]:
        """The log's start event: network, exits, data source, machine."""
        return self.read_metrics()[0]

    def training_seconds(self) -> float:
        """Wall-clock seconds of training, summed over sittings (each resume restarts the
        clock; work redone after a kill is not counted, as its log lines were dropped)."""
        total, current = 0.0, 0.0
        for rec in self.metric_lines():
            if rec.get("event") in ("start", "resume"):
                total, current = total + current, 0.0
            elif "seconds" in rec:
                current = float(rec["seconds"])
        return total + current

    def machines(self) -> list[dict[str, Any]]:
        """The machines the run trained on (one per start or resume), as logged."""
        return [r["machine"] for r in self.metric_lines()
                if r.get("event") in ("start", "resume") and "machine" in r]

    # -- cached evaluation --------------------------------------------------------------
    def evaluator(self, use_cache: bool = True) -> Evaluator:
        """Routed-inference evaluations of the run's checkpoint, cached beside it."""
        return Evaluator(self, use_cache=use_cache)

    def evaluation(self, split: str, k: float | None) -> dict[str, Any]:
        """The routed evaluation of ``split`` at ``k`` (see :meth:`Evaluator.result`)."""
        return self.evaluator().result(split, k)


class Evaluator:
    """Routed-inference evaluations of one run's ``checkpoint.pt``, cached in its
    directory (``eval_<split>_<policy>_<k>.json``) and reused while the checkpoint file
    is unchanged.

    The checkpoint and dataset are loaded only when some evaluation is not cached.
    """

    def __init__(self, run_dir: str | Path | RunDir, *, data_root: str | None = None,
                 cache_dir: str | None = None, use_cache: bool = True) -> None:
        if isinstance(run_dir, RunDir):
            run = run_dir
        else:
            run = RunDir(run_dir, data_root=data_root, cache_dir=cache_dir)
        if run.checkpoint != run.path / CHECKPOINT:  # opened from another .pt file: the
            run = RunDir(run.path, data_root=run.data_root,  # cache is the directory's
                         cache_dir=run.cache_dir)
        self.run = run
        self.run_dir, self.ckpt, self.use_cache = run.path, run.checkpoint, use_cache
        self.computed = 0  # evaluations actually run (not read from the cache)

    def result(self, split: str, k: float | None) -> dict[str, Any]:
        if not self.ckpt.is_file():
            raise RunError(f"{self.run_dir}: no {CHECKPOINT} to evaluate")
        path = evaluations.cache_path(self.run_dir, split, k)
        fp = evaluations.fingerprint(self.ckpt)
        if self.use_cache:
            cached = evaluations.read_cached(path, fp)
            if cached is not None:
                return cached
        record = evaluations.evaluate_loaded(self.run.load(), split, k)
        self.computed += 1
        evaluations.write_cached(path, record, fp)
        return record


# -- a checkpoint's network and a run's dataset -----------------------------------------------
def trained_network(state: dict[str, Any], cfg: RunConfig) -> RoutedNetwork:
    """A checkpoint's network with its weights, on the CPU, in eval mode."""
    import torch

    from routec.train.model import build_network, to_device

    _, net = build_network(state["spec_label"], state["spec_text"],
                           classes=len(state["classes"]), dynamic=cfg.dynamic,
                           static_columns=cfg.static_columns, strategy=cfg.strategy,
                           kcpt_unit=cfg.router_kcpt_unit)
    net.load_state_dict(state["model"])
    to_device(net, torch.device("cpu"))
    return net.eval()


def load_data(cfg: RunConfig, shape: tuple[int, int, int], data_root: str | None = None,
              cache_dir: str | None = None, classes: list[str] | None = None) -> Any:
    """The dataset of ``cfg`` for a network taking ``shape`` images.

    Shape (and, with ``classes``, the class names a run was trained on) are checked
    before anything is decoded: a folder's tree and file headers, a named dataset's
    description.
    """
    from routec.data.load import dataset_meta, load_dataset
    from routec.errors import DataError

    root, cache = data_root or cfg.data_root, cache_dir or cfg.cache_dir
    opts = {"resize": cfg.resize, "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction, "pixels": cfg.pixels}
    meta = dataset_meta(cfg.data, cache, cfg.seed, shape=shape, **opts)
    if classes is not None and list(meta.classes) != list(classes):
        raise DataError(f"dataset '{cfg.data}' now has classes {', '.join(meta.classes)}; the run "
                        f"was trained on {', '.join(classes)}")
    return load_dataset(cfg.data, root, cache, seed=cfg.seed, shape=shape,
                        normalize=cfg.normalize, **opts)


def load_run(run: str | Path, data_root: str | None = None, cache_dir: str | None = None
             ) -> Loaded:
    """(config, network, dataset, checkpoint) of a saved run (directory or checkpoint
    file), weights loaded: ``RunDir.open(run).load()``."""
    return RunDir.open(run, data_root=data_root, cache_dir=cache_dir).load()


def read_metrics(run_dir: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``RunDir(run_dir).read_metrics()``: the start event and per-iteration records."""
    return RunDir(run_dir).read_metrics()


def training_seconds(run_dir: str | Path) -> float:
    """``RunDir(run_dir).training_seconds()``: seconds trained, summed over sittings."""
    return RunDir(run_dir).training_seconds()
