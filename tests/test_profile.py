"""``routec profile``: every node's measured time per example, as a cost table.

Timing on a shared CPU is noisy, so the timing checks compare quantities that differ
by large factors, or agree within a loose band, against independent measurements.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
import torch

from routec.codegen import build_class
from routec.engine.profile import CostTableError, load_cost_table, node_seconds, profile
from routec.graph import build_graph
from routec.parse import parse_spec

# two sibling branches: "big" has 16× the channels of "small" (~250× the MACs)
LOPSIDED = """
network lopsided (input = 3x16x16, classes = 2) {
    column c0 = conv(4) -> relu
    column small = conv(4) -> relu
    column big = conv(64) -> relu -> conv(64) -> relu
    route c0 -> either { small -> exit | big -> exit }
}
"""
CHAIN = """
network lopsided_static (input = 3x16x16, classes = 2) {
    column c0 = conv(4) -> relu
    column big = conv(64) -> relu -> conv(64) -> relu
    route c0 -> big -> exit
}
"""


def _net(text: str):
    torch.manual_seed(0)
    return build_class(build_graph(parse_spec(text)))().eval()


@pytest.fixture(scope="module")
def lopsided_table() -> dict:
    torch.set_num_threads(1)
    return profile(_net(LOPSIDED), _net(CHAIN), batches=[32], repeats=3, min_seconds=0.2)


def test_the_table_lists_every_node_with_its_macs_and_the_setting(lopsided_table) -> None:
    net = _net(LOPSIDED)
    t = lopsided_table
    assert [o["node"] for o in t["nodes"]] == list(net.NODES)
    assert [o["macs"] for o in t["nodes"]] == [int(m) for m in net.MACS]
    assert all(o["seconds"] > 0 and o["by_batch"]["32"] == o["seconds"] for o in t["nodes"])
    assert t["engine"] == "fused" and t["batch"] == 32 and t["torch"] == torch.__version__
    assert t["machine"] and t["threads"] == 1
    assert node_seconds(t, list(net.NODES), net.NAME) == [o["seconds"] for o in t["nodes"]]


def test_time_is_charged_to_the_node_that_spends_it(lopsided_table) -> None:
    s = {o["node"]: o["seconds"] for o in lopsided_table["nodes"]}
    assert s["big"] > 5 * s["small"], s


def _median_time(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_a_paths_node_times_add_up_to_the_path_timed_whole(lopsided_table) -> None:
    """Independent: the routed network forced down the big branch, merged segments,
    timed here by its own loop."""
    from routec.tree import RoutingTree
    from routec.engine.timing import FixedExits
    from routec.engine.engines import optimize_for_inference

    net = _net(LOPSIDED)
    topo = RoutingTree.of(net)
    big_leaf = [i for i, leaf in enumerate(topo.leaves) if topo.nodes[leaf] == "exit_big"][0]
    eng = optimize_for_inference(net, "fused")
    x = torch.rand(32, 3, 16, 16)
    pol = FixedExits(topo, torch.full((32,), big_leaf))
    whole = _median_time(lambda: eng.route(x, policy=pol)) / 32
    s = {o["node"]: o["seconds"] for o in lopsided_table["nodes"]}
    path = sum(s[n] for n in ("stem", "c0", "j_c0", "big", "exit_big") if n in s)
    assert 0.5 < path / whole < 2.0, (path, whole)
    chain = lopsided_table["static_chain"]["by_batch"]["32"]
    assert 0.5 < chain["sum_of_nodes_s"] / chain["measured_s"] < 2.0, chain


def test_cli_writes_a_table_training_reads(tmp_path: Path, capsys) -> None:
    from routec.api import compile_network
    from routec.cli import main
    from routec.parse import load_spec

    out = tmp_path / "tiny.json"
    assert main(["profile", "tiny", "--batch", "16", "--repeats", "1", "--threads", "1",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    net = compile_network(load_spec("tiny")).build()
    for name in net.NODES:
        assert name in printed
    assert "static chain" in printed
    t = load_cost_table(out)
    assert len(node_seconds(t, list(net.NODES), net.NAME)) == len(net.NODES)
    with pytest.raises(SystemExit):
        main(["profile", "tiny", "--engine", "eager"])


def test_bad_tables_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CostTableError, match="not a readable cost table"):
        load_cost_table(bad)
    bad.write_text(json.dumps({"nodes": [{"node": "a"}]}))
    with pytest.raises(CostTableError, match="not a cost table"):
        load_cost_table(bad)
    with pytest.raises(CostTableError, match="not found"):
        load_cost_table(tmp_path / "missing.json")


def test_a_run_is_profiled_as_its_trained_network(tmp_path: Path, capsys) -> None:
    from routec.cli import main
    from routec.train.runs import load_run

    run = tmp_path / "run"
    assert main(["train", "tiny", "--data", "synthetic", "--iterations", "2", "--batch", "8",
                 "--out", str(run), "--no-progress", "--val-examples", "8"]) == 0
    out = tmp_path / "t.json"
    assert main(["profile", str(run), "--batch", "8", "--repeats", "1", "--threads", "1",
                 "-o", str(out)]) == 0
    _, net, _, _ = load_run(str(run))
    t = load_cost_table(out)
    assert t["label"] == f"run {run}"
    assert [o["node"] for o in t["nodes"]] == list(net.NODES)
