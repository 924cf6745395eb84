"""Routed-inference evaluations of a saved run, cached beside its checkpoint.

Reports never retrain: test accuracy and mean MACs come from routed inference on a
run's saved checkpoint (:func:`routec.train.evaluate.evaluate`). Each evaluation is
cached beside the checkpoint as ``eval_<split>_<policy>_<k>.json`` and reused while
the checkpoint file is unchanged, so a report or a bench reruns fast. This module is
the cache files and the evaluation; :class:`routec.train.run_dir.Evaluator` of a
run directory uses them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routec.errors import RoutecError
from routec.files import atomic_write_bytes

POLICY = "argmax"


# -- cache files ------------------------------------------------------------------------------
def k_tag(k: float | None) -> str:
    return "fixed" if k is None else f"{k:g}"


def cache_path(run_dir: Path, split: str, k: float | None, policy: str = POLICY) -> Path:
    return Path(run_dir) / f"eval_{split}_{policy}_{k_tag(k)}.json"


def fingerprint(ckpt: Path) -> dict[str, int]:
    """What marks a checkpoint file as unchanged: its size and modification time."""
    st = ckpt.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}



def read_cached(path: Path, checkpoint: dict[str, int]) -> dict[str, Any] | None:
    """The evaluation cached at ``path`` if it was made of the checkpoint with this
    fingerprint, else None."""
    cached = _read_json(path)
    return cached if cached and cached.get("checkpoint") == checkpoint else None


def write_cached(path: Path, record: dict[str, Any], checkpoint: dict[str, int]) -> None:
    """Cache ``record`` as the evaluation of the checkpoint with this fingerprint."""
    record["checkpoint"] = checkpoint
    _write_json_quietly(path, record)


# -- the evaluation ---------------------------------------------------------------------------
def evaluate_loaded(loaded: tuple[Any, Any, Any, dict[str, Any]], split: str,
                    k: float | None) -> dict[str, Any]:
    """Routed evaluation of a loaded run (config, network, dataset, checkpoint) on
    ``split`` at ``k`` (in the run's unit: per ms for latency runs; None: fixed k_cpt)."""
    from routec.train.evaluate import evaluate

    cfg, net, data, state = loaded
    part = data.test if split == "test" else data.val
    r = evaluate(net, part.images, part.labels,
                 k_cpt=None if k is None else cfg.router_k_cpt(k), policy=POLICY)
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
