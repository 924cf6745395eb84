"""``routec demo``: its table must say what the two trained runs measure on their own."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from routec.cli import main
from routec.train.runs import load_run


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["demo", "--fast", "--data", "synthetic", "--out", str(out),
                     "--no-progress"]) == 0
    return out, buf.getvalue()


def _row(text: str, label: str) -> list[str]:
    line = next(l for l in text.splitlines() if l.lstrip("│┃ ").startswith(label))
    return [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]


def test_demo_table_matches_an_independent_evaluation(demo: tuple[Path, str]) -> None:
    out, text = demo
    acc = _row(text, "test accuracy")
    macs = _row(text, "mean MACs per image")
    for side, column in (("static", 1), ("routed", 2)):
        _, net, data, _ = load_run(out / side)
        with torch.no_grad():
            routed = net.route(data.test.images)
        accuracy = float((routed.logits.argmax(1) == data.test.labels).float().mean())
        assert acc[column] == f"{accuracy:.3f}"
        assert macs[column] == f"{float(routed.macs.float().mean()) / 1e6:.2f} M"
    # the static side is one path through every column of the routed network
    _, static_net, _, _ = load_run(out / "static")
    _, routed_net, _, _ = load_run(out / "routed")
    assert len(static_net.LEAVES) == 1
    static_cols = [n for n, k in zip(static_net.NODES, static_net.KINDS) if k == "column"]
    routed_cols = [n for n, k in zip(routed_net.NODES, routed_net.KINDS) if k == "column"]
    assert static_cols == routed_cols


def test_demo_per_class_exits_sum_to_one_and_match_routing(demo: tuple[Path, str]) -> None:
    out, text = demo
    _, net, data, state = load_run(out / "routed")
    with torch.no_grad():
        leaf = net.route(data.test.images).leaf
    for c, name in enumerate(state["classes"]):
        cells = _row(text, name)
        shares = [float(v) for v in cells[2:]]
        expected = torch.bincount(leaf[data.test.labels == c], minlength=len(shares)).float()
        expected = (expected / expected.sum()).tolist()
        assert shares == pytest.approx(expected, abs=0.006)
    assert (out / "dataflow.png").exists() or (out / "dataflow.dot").exists()


def test_demo_reuses_finished_runs(demo: tuple[Path, str], capsys) -> None:
    out, _ = demo
    before = (out / "routed" / "checkpoint.pt").stat().st_mtime_ns
    assert main(["demo", "--fast", "--data", "synthetic", "--out", str(out),
                 "--no-progress"]) == 0
    assert "reusing the finished run" in capsys.readouterr().err
    assert (out / "routed" / "checkpoint.pt").stat().st_mtime_ns == before


def test_demo_table_words_a_dearer_slower_routed_network_as_such(capsys) -> None:
    """A routed network that costs more or runs slower than its baseline is said to,
    rather than "0.80x fewer" or "0.50x faster"."""
    from types import SimpleNamespace

    from routec.demo.cli import _print_comparison

    settings = SimpleNamespace(iterations=10, batch=8, lr=0.1, warmup=0, k_cpt=1e-9)
    side = lambda macs, speed: SimpleNamespace(  # noqa: E731
        eval={"accuracy": 0.5, "mean_macs": macs}, images_per_second=speed, engine="eager",
        train_seconds=0.0, speeds={"eager": speed})
    _print_comparison("synthetic", settings, side(4e6, 200.0), side(5e6, 100.0))
    out = capsys.readouterr().out
    assert _row(out, "mean MACs per image")[-1] == "1.25x more"
    assert _row(out, "images per second")[-1] == "2.00x slower"
    _print_comparison("synthetic", settings, side(5e6, 100.0), side(4e6, 200.0))
    out = capsys.readouterr().out
    assert _row(out, "mean MACs per image")[-1] == "1.25x fewer"
    assert _row(out, "images per second")[-1] == "2.00x faster"
