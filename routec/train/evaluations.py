"""Routed-inference evaluations of a saved run, cached beside its checkpoint.

Reports never retrain: test accuracy and mean MACs come from routed inference on a
run's saved checkpoint (:func:`routec.train.evaluate.evaluate`). Each evaluation is
cached beside the checkpoint as ``eval_<split>_<policy>_<k>.json`` and reused while
the checkpoint file is unchanged, so a report or a bench reruns fast.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routec.errors import RoutecError, RunError
from routec.files import atomic_write_bytes
from routec.train.run_files import CHECKPOINT

POLICY = "argmax"


# -- cached evaluation --------------------------------------------------------------------
def k_tag(k: float | None) -> str:
    return "fixed" if k is None else f"{k:g}"


def cache_path(run_dir: Path, split: str, k: float | None, policy: str = POLICY) -> Path:
    return Path(run_dir) / f"eval_{split}_{policy}_{k_tag(k)}.json"


def _fingerprint(ckpt: Path) -> dict[str, int]:
    st = ckpt.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


class Evaluator:
    """Routed-inference evaluations of one run's checkpoint, cached in its directory.

    The checkpoint and dataset are loaded only when some evaluation is not cached.
    """

    def __init__(self, run_dir: Path, *, data_root: str | None = None,
                 cache_dir: str | None = None, use_cache: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.ckpt = self.run_dir / CHECKPOINT
        self.data_root, self.cache_dir, self.use_cache = data_root, cache_dir, use_cache
        self._loaded: tuple[Any, Any, Any, dict[str, Any]] | None = None
        self.computed = 0  # evaluations actually run (not read from the cache)

    def result(self, split: str, k: float | None) -> dict[str, Any]:
        if not self.ckpt.is_file():
            raise RunError(f"{self.run_dir}: no checkpoint.pt to evaluate")
        path = cache_path(self.run_dir, split, k)
        fp = _fingerprint(self.ckpt)
        if self.use_cache:
            cached = _read_json(path)
            if cached and cached.get("checkpoint") == fp:
                return cached
        record = self._evaluate(split, k)
        record["checkpoint"] = fp
        _write_json_quietly(path, record)
        return record

    def _evaluate(self, split: str, k: float | None) -> dict[str, Any]:
        from routec.train.evaluate import evaluate
        from routec.train.runs import load_run

        if self._loaded is None:
            self._loaded = load_run(self.run_dir, self.data_root, self.cache_dir)
        cfg, net, data, state = self._loaded
        part = data.test if split == "test" else data.val
        r = evaluate(net, part.images, part.labels,  # k: in the run's unit (per ms: latency)
                     k_cpt=None if k is None else cfg.router_k_cpt(k), policy=POLICY)
        self.computed += 1
        return {"split": split, "policy": POLICY, "k_cpt": k, "iteration": state["iteration"],
                "finished": state["finished"], "classes": list(state["classes"]),
                "result": r.as_dict()}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_quietly(path: Path, record: dict[str, Any]) -> None:
    """Cache if the run directory is writable; a read-only run still gets its report."""
    try:
        atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    except RoutecError:
        pass
