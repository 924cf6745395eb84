"""How long the runs a campaign still lacks will take, at the pace its records show.

A suite's runs take hours each on a CPU, so a campaign is spread over sittings and
machines; the records of finished runs say how many seconds an iteration took for
each kind of run (same spec, strategy, static prefix and batch cost the same), which
prices the runs still to train. A kind with no record yet (a wider spec, say) is priced
from a recorded kind that differs only in its spec, scaled by the two networks' MACs:
an estimate, and said to be one.
"""
from __future__ import annotations

import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from routec.errors import RoutecError
from routec.experiment.records import read_record, record_dirs


class PaceKey(NamedTuple):
    """What decides the work of one training iteration: runs with equal keys cost alike."""
    spec: str | None
    strategy: str | None
    static_columns: int | None
    batch: int | None
    device: str


def pace_key(config: dict[str, Any]) -> PaceKey:
    return PaceKey(config.get("spec"), config.get("strategy"), config.get("static_columns"),
                   config.get("batch"), config.get("device", "cpu"))


def recorded_pace(records_root: Path | None) -> dict[PaceKey, float]:
    """Median training seconds per iteration of the recorded runs, by :func:`pace_key`."""
    seen: dict[PaceKey, list[float]] = {}
    if records_root is None or not Path(records_root).is_dir():
        return {}
    for _suite, _run, folder in record_dirs(Path(records_root)):
        rec = read_record(folder)
        if not rec or not rec.get("training_seconds") or not rec.get("iteration"):
            continue
        seen.setdefault(pace_key(rec["config"]), []).append(
            float(rec["training_seconds"]) / int(rec["iteration"]))
    return {k: statistics.median(v) for k, v in seen.items()}


@lru_cache(maxsize=None)
def network_macs(spec: str, static_columns: int | None) -> int:
    """MACs of every node of ``spec`` (its first ``static_columns`` columns when given):
    the work one training example costs, up to the layers' relative speeds."""
    from routec.graph import build_graph, static_prefix
    from routec.parse import load_spec

    parsed = load_spec(spec)
    if static_columns:
        parsed = static_prefix(parsed, static_columns)
    return build_graph(parsed).total_macs


def scaled_pace(config: dict[str, Any], pace: dict[PaceKey, float]
                ) -> tuple[float, str] | None:
    """Seconds per iteration for a kind with no record, from the recorded kind that
    differs from it only in its spec, scaled by MACs; with that recorded spec's name.
    None when no recorded kind is that close."""
    key = pace_key(config)
    for other, seconds in sorted(pace.items(), key=lambda kv: str(kv[0])):
        if (None in (key.spec, other.spec) or other.spec == key.spec
                or other._replace(spec=key.spec) != key):  # must differ in the spec alone
            continue
        try:
            ratio = (network_macs(key.spec, key.static_columns)
                     / network_macs(other.spec, other.static_columns))
        except (RoutecError, OSError):  # a spec file gone or broken since: no estimate
            continue
        return seconds * ratio, other.spec
    return None


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"
