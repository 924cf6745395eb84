"""`routec bench RUN` finds the static runs to compare with beside the run's suite."""
from __future__ import annotations

from pathlib import Path

from routec.engine.cli import _static_runs


def _run(root: Path, suite: str, name: str) -> Path:
    d = root / suite / name
    d.mkdir(parents=True)
    (d / "checkpoint.pt").write_bytes(b"")
    return d


def test_the_nearest_static_sibling_suite_is_the_baseline(tmp_path: Path) -> None:
    n1, n2 = _run(tmp_path, "hybrid-static", "n1"), _run(tmp_path, "hybrid-static", "n2")
    (tmp_path / "hybrid-static" / "not-a-run").mkdir()
    actor = _run(tmp_path, "hybrid-actor", "k1e-9")
    timed = _run(tmp_path, "hybrid-actor-latency", "k0.04ms")
    assert _static_runs(actor, None) == [n1, n2]
    assert _static_runs(timed, None) == [n1, n2]  # past hybrid-actor-static, absent
    wide = _run(tmp_path, "hybrid-actor-static", "n1")  # a nearer one wins when present
    assert _static_runs(timed, None) == [wide]
    assert _static_runs(_run(tmp_path, "cifar2-actor", "k0e-9"), None) == []

