"""Training against measured time (``--cost latency``) instead of MACs.

The behaviour test: two sibling branches of identical layers (so identical MACs),
either of which can solve the task, and a cost table in which branch A takes 100×
the time of branch B. Priced in time, the actor sends (almost) nothing down A;
priced in MACs the two branches cost the same and A keeps a large share. Were the
table ignored, both runs would be the same run and the test would fail.

The plumbing tests check every strategy's cost against an independent computation
from the table (reach probabilities, brute-force utilities, the sampled path).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from routec.codegen import build_class
from routec.engine.profile import CostTableError, load_cost_table, node_seconds
from routec.graph import build_graph
from routec.parse import parse_spec
from routec.train.actor import actor_loss
from routec.train.costs import node_costs, node_params
from routec.train.talr import apply_talr, talr_scales
from routec.train.tree import Tree, inference_leaf

TWIN = """
network twin (input = 3x4x4, classes = 2) {
    router default = linear
    column c0 = conv(4, kernel = 1) -> relu
    column a = conv(8, kernel = 1) -> relu
    column b = conv(8, kernel = 1) -> relu
    route c0 -> either { a -> exit | b -> exit }
}
"""


def twin_net(seed: int = 0):
    torch.manual_seed(seed)
    return build_class(build_graph(parse_spec(TWIN)))()


def slow_a_table(net, path: Path, slow: float = 100.0) -> Path:
    """A synthetic cost table: every node 10 us per example, branch a's column 100×."""
    nodes = [{"node": n, "kind": k, "macs": int(m),
              "seconds": 10e-6 * (slow if n == "a" else 1.0)}
             for n, k, m in zip(net.NODES, net.KINDS, net.MACS)]
    path.write_text(json.dumps({"format": "routec-cost-table", "network": net.NAME,
                                "nodes": nodes}))
    return path


def task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The class is the sign of channel 0: a 1×1 conv and a linear exit read it on
    either branch."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.randn(n, 3, 4, 4, generator=g)
    x[:, 0] += (y * 2.0 - 1)[:, None, None]
    return x, y


def train_actor(node_cost: torch.Tensor | None, k_cpt: float, steps: int = 300,
                seed: int = 0) -> tuple[float, float]:
    """(fraction of test examples routed to branch a, accuracy) after training."""
    net = twin_net(seed)
    tree, params = Tree.of(net), node_params(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = task(4096, seed)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=gen)
        out = net(x[idx])
        res = actor_loss(net, out, y[idx], k_cpt, tau=1.0, node_cost=node_cost)
        opt.zero_grad()
        res.loss.backward()
        apply_talr(params, talr_scales(res.reach))
        opt.step()
    net.eval()
    xt, yt = task(2048, seed + 100)
    with torch.no_grad():
        routed = net.route(xt)
    a_leaf = tree.leaves.index(net.NODES.index("exit_a"))
    return (float((routed.leaf == a_leaf).float().mean()),
            float((routed.logits.argmax(1) == yt).float().mean()))


def test_latency_actor_routes_around_the_slow_branch_the_mac_actor_does_not(
        tmp_path: Path) -> None:
    net = twin_net()
    assert net.MACS[net.NODES.index("a")] == net.MACS[net.NODES.index("b")]
    table = load_cost_table(slow_a_table(net, tmp_path / "table.json"))
    ms = node_costs(node_seconds(table, list(net.NODES), net.NAME))
    # both priced so that branch b's column costs the same 0.01 in either unit
    macs_b = float(net.MACS[net.NODES.index("b")])
    k_macs, k_ms = 0.01 / macs_b, 0.01 / float(ms[net.NODES.index("b")])
    a_time, acc_time = train_actor(ms, k_ms)
    a_macs, acc_macs = train_actor(None, k_macs)
    assert acc_time > 0.95 and acc_macs > 0.95
    assert a_time < 0.05, f"latency-priced actor still sends {a_time:.2f} down the slow branch"
    assert a_macs > 0.25, f"MAC-priced actor sends only {a_macs:.2f} down branch a"


# --- every strategy prices nodes with the table ---------------------------------------

def test_a_cost_vector_equal_to_macs_reproduces_mac_pricing_in_every_strategy() -> None:
    """The cost-vector path is the MAC path when the vector is the MACs themselves."""
    from routec.train.critic import critic_loss
    from routec.train.sampled import sampled_critic_loss

    net = twin_net()
    tree = Tree.of(net)
    x, y = task(32, 1)
    out = net(x)
    k = 1e-4
    a = actor = actor_loss(net, out, y, k, tau=1.0)
    b = actor_loss(net, out, y, k, tau=1.0, node_cost=tree.macs.clone())
    assert float(a.loss.detach()) == pytest.approx(float(b.loss.detach()), rel=1e-6)
    for utility in ("pragmatic", "optimistic"):
        a = critic_loss(net, out, y, k, tau=0.1, utility=utility)
        b = critic_loss(net, out, y, k, tau=0.1, utility=utility, node_cost=tree.macs.clone())
        assert float(a.loss.detach()) == pytest.approx(float(b.loss.detach()), rel=1e-6)
    a = sampled_critic_loss(net, x, y, k, 0.1, generator=torch.Generator().manual_seed(0))
    b = sampled_critic_loss(net, x, y, k, 0.1, generator=torch.Generator().manual_seed(0),
                            node_cost=tree.macs.clone())
    assert float(a.loss.detach()) == pytest.approx(float(b.loss.detach()), rel=1e-6)
    # and a different vector changes the loss (the vector is used)
    c = actor_loss(net, out, y, k, tau=1.0, node_cost=tree.macs * 3)
    assert float(c.loss.detach()) != pytest.approx(float(actor.loss.detach()), rel=1e-6)


def test_critic_utility_is_the_cheapest_paths_measured_time(tmp_path: Path) -> None:
    from routec.train.critic import utilities

    net = twin_net()
    tree = Tree.of(net)
    table = load_cost_table(slow_a_table(net, tmp_path / "t.json"))
    ms = node_costs(node_seconds(table, list(net.NODES), net.NAME))
    k = torch.full((3,), 0.5, dtype=torch.float64)
    zero_err = torch.zeros(3, len(tree.leaves), dtype=torch.float64)
    v = utilities(tree, (torch.zeros(3, 2, dtype=torch.float64),), zero_err, k, "optimistic",
                  ms)
    # brute force: every root-to-leaf path's milliseconds from the table, by name
    secs = {o["node"]: o["seconds"] for o in table["nodes"]}
    paths = [["stem", "c0", "j_c0", "a", "exit_a"], ["stem", "c0", "j_c0", "b", "exit_b"]]
    cheapest = min(sum(secs[n] for n in p) for p in paths) * 1e3
    assert v[:, 0].tolist() == pytest.approx([0.5 * cheapest] * 3)


def test_path_cost_is_the_sum_over_each_leafs_path() -> None:
    from routec.train.costs import path_cost

    net = twin_net()
    tree = Tree.of(net)
    cost = torch.arange(1.0, tree.size + 1, dtype=torch.float64)
    cum, leaf = path_cost(tree, cost)
    for j, node in enumerate(tree.leaves):
        walk, total = node, 0.0
        while walk >= 0:
            total += float(cost[walk])
            walk = tree.parent[walk]
        assert float(leaf[j]) == total == float(cum[node])


# --- routec train --cost latency / routec eval ----------------------------------------

def tiny_table(path: Path) -> tuple[Path, dict[str, float]]:
    from routec.api import compile_network
    from routec.parse import load_spec

    net = compile_network(load_spec("tiny")).build()
    secs = {n: 1e-5 * (i + 1) for i, n in enumerate(net.NODES)}
    path.write_text(json.dumps({"network": net.NAME, "nodes": [
        {"node": n, "seconds": s} for n, s in secs.items()]}))
    return path, secs


@pytest.mark.parametrize("extra", [["--k-cpt", "0.5"],
                                   ["--k-cpt", "dynamic", "--strategy", "critic",
                                    "--critic-mode", "sampled"]])
def test_train_with_latency_cost_saves_the_table_and_eval_reports_time(
        tmp_path: Path, capsys, extra: list[str]) -> None:
    from routec.cli import main
    from routec.train.runs import load_run

    table, secs = tiny_table(tmp_path / "tiny.json")
    run = tmp_path / "run"
    assert main(["train", "tiny", "--data", "synthetic", "--iterations", "6", "--batch", "16",
                 "--cost", "latency", "--cost-table", str(table), "--out", str(run),
                 "--no-progress", "--val-examples", "32", "--eval-every", "6", *extra]) == 0
    saved = json.loads((run / "cost_table.json").read_text())
    assert {o["node"]: o["seconds"] for o in saved["nodes"]} == secs
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "mean measured time" in capsys.readouterr().out
    cfg, net, data, _ = load_run(str(run))
    tree = Tree.of(net)
    brute = []  # each exit's path time, walking up by name
    for node in tree.leaves:
        total = 0.0
        while node >= 0:
            total += secs[net.NODES[node]]
            node = tree.parent[node]
        brute.append(total)
    last = metrics[-1]
    assert last["val_mean_seconds"] == pytest.approx(
        sum(f * t for f, t in zip(last["val_exit_fraction"], brute)))
    capsys.readouterr()
    ks = ["--k-cpt", "0.04"] if "dynamic" in extra else []
    assert main(["eval", str(run), "--json", *ks]) == 0
    (r,) = json.loads(capsys.readouterr().out)["results"]
    # independent: route the test split densely, sum each example's path time by name
    with torch.no_grad():
        k_in = None if cfg.k_cpt != "dynamic" else torch.full((len(data.test),), 0.04e-7)
        dense = net(data.test.images, k_cpt=k_in)
    leaf = inference_leaf(tree, dense.scores, len(data.test))
    total = 0.0
    for node in (tree.leaves[int(i)] for i in leaf):
        while node >= 0:
            total += secs[net.NODES[node]]
            node = tree.parent[node]
    assert r["mean_measured_seconds"] == pytest.approx(total / len(leaf))
    assert main(["eval", str(run), *ks]) == 0
    assert "mean measured time" in capsys.readouterr().out


def test_a_table_for_another_network_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    from routec.cli import main

    table = slow_a_table(twin_net(), tmp_path / "twin.json")
    args = ["train", "tiny", "--data", "synthetic", "--iterations", "2", "--batch", "16",
            "--no-progress", "--out", str(tmp_path / "run")]
    assert main([*args, "--cost", "latency", "--cost-table", str(table)]) == 2
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if "does not match 'tiny'" in ln]
    assert "twin" in line and "Traceback" not in err
    assert main([*args, "--cost", "latency"]) == 2
    assert "--cost-table" in capsys.readouterr().err
    assert main([*args, "--cost", "latency", "--cost-table", str(tmp_path / "none.json")]) == 2
    assert "cost table not found" in capsys.readouterr().err
    with pytest.raises(CostTableError):
        node_seconds(load_cost_table(table), ["stem"], "x")


def test_dynamic_latency_runs_draw_per_millisecond_k_and_feed_routers_k_per_ms() -> None:
    """Routers read k_cpt × KCPT_SCALE; a latency run feeds them its k_cpt per ms as is."""
    from routec.runtime.layers import KCPT_SCALE
    from routec.train.config import LATENCY_K_CPT_GRID, make_config
    from routec.train.loop import strategy_step
    from routec.train.model import build_network, spec_text

    _, net = build_network(*spec_text("tiny"), classes=4, dynamic=True, static_columns=None,
                           strategy="actor")
    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor, k_cpt: torch.Tensor):  # records what the network is fed
        seen.append(k_cpt)
        return net(x, k_cpt=k_cpt)

    x, y = torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    k = torch.tensor([0.0, 0.01, 0.16, 0.64])
    for cost, extra in (("latency", {"cost_table": "t.json"}), ("macs", {})):
        cfg = make_config({"spec": "tiny", "data": "synthetic", "k_cpt": "dynamic",
                           "cost": cost, **extra})
        strategy_step(cfg, net, model, x, y, k, 1.0, torch.Generator())
    latency_in, macs_in = seen
    assert torch.allclose(latency_in * KCPT_SCALE, k)  # routers see k per ms
    assert torch.equal(macs_in, k)  # MAC-priced runs are fed k_cpt as before
    cfg = make_config({"spec": "tiny", "k_cpt": "dynamic", "cost": "latency",
                       "cost_table": "t.json"})
    assert cfg.k_cpt_grid == LATENCY_K_CPT_GRID
    assert make_config({"spec": "tiny", "k_cpt": "dynamic"}).k_cpt_grid != LATENCY_K_CPT_GRID


def test_the_latency_suite_is_the_mac_actor_grid_priced_in_time() -> None:
    from routec.experiment.suites import SUITES
    from routec.train.config import LATENCY_K_CPT_GRID, make_config

    mac, lat = SUITES["hybrid-actor"], SUITES["hybrid-actor-latency"]
    assert sorted(r["k_cpt"] for r in lat.values()) == sorted(LATENCY_K_CPT_GRID)
    for r in lat.values():
        cfg = make_config({**r, "iterations": 10})
        assert cfg.cost == "latency" and cfg.cost_table
        same = {k: v for k, v in r.items() if k not in ("cost", "cost_table", "k_cpt")}
        assert same == {k: v for k, v in next(iter(mac.values())).items() if k != "k_cpt"}


def test_a_resumed_latency_run_prices_with_the_table_it_was_started_with(
        tmp_path: Path) -> None:
    from routec.train.config import make_config
    from routec.train.loop import train

    table, secs = tiny_table(tmp_path / "tiny.json")
    cfg = make_config({"spec": "tiny", "data": "synthetic", "batch": 8, "iterations": 4,
                       "checkpoint_every": 2, "val_examples": 8, "eval_every": 4,
                       "cost": "latency", "cost_table": str(table), "k_cpt": 0.1})
    run = tmp_path / "run"
    assert not train(cfg, run, progress=False, stop_after=2).finished
    table.write_text(json.dumps({"nodes": [{"node": "other", "seconds": 1.0}]}))
    assert train(cfg, run, resume=True, progress=False).finished  # the run's own copy
    saved = json.loads((run / "cost_table.json").read_text())
    assert {o["node"]: o["seconds"] for o in saved["nodes"]} == secs


def test_cost_settings_that_do_not_fit_are_plain_one_line_errors() -> None:
    from routec.errors import RunError
    from routec.train.config import make_config

    with pytest.raises(RunError) as e:
        make_config({"spec": "tiny", "cost": "latency"})
    assert e.value.message == ("bad run configuration: --cost latency needs --cost-table FILE "
                               "(written by `routec profile SPEC -o FILE`)")
    with pytest.raises(RunError, match="--cost-table applies with --cost latency"):
        make_config({"spec": "tiny", "cost_table": "t.json"})


def test_reports_evaluate_a_dynamic_latency_run_at_k_per_ms(tmp_path: Path) -> None:
    """Report summaries, experiment records and dataflow take a latency run's k_cpt per
    ms, as routec eval does: the same as routing with k × 1e-7 fed to the network."""
    from routec.experiment.records import build_record
    from routec.report.dataflow import measure_run
    from routec.report.summary import Evaluator
    from routec.train.config import make_config
    from routec.train.evaluate import evaluate
    from routec.train.loop import train
    from routec.train.runs import load_run

    table, _ = tiny_table(tmp_path / "tiny.json")
    cfg = make_config({"spec": "tiny", "data": "synthetic", "batch": 8, "iterations": 2,
                       "val_examples": 8, "eval_every": 2, "cost": "latency",
                       "cost_table": str(table), "k_cpt": "dynamic"})
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    _, net, data, _ = load_run(str(run))
    torch.manual_seed(0)
    with torch.no_grad():  # routers that read k_cpt, so a wrong scale shows
        for name in net.NODES:
            if name.startswith("j_"):
                for prm in getattr(net, name).parameters():
                    prm.normal_(0, 3.0)
    from routec.train.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(run / "checkpoint.pt")  # rewritten through routec: checksummed
    state["model"] = net.state_dict()
    save_checkpoint(run / "checkpoint.pt", {k: v for k, v in state.items() if k != "format"})
    expect = {k: evaluate(net, data.test.images, data.test.labels, k_cpt=k * 1e-7)
              for k in (0.0, 0.64)}
    assert expect[0.0].exit_fraction != expect[0.64].exit_fraction  # the test can fail
    for k, r in expect.items():
        got = Evaluator(run, use_cache=False).result("test", k)["result"]
        assert got["exit_fraction"] == pytest.approx(r.exit_fraction)
        flow, _ = measure_run(run, k_cpt=k)
        assert flow.mean_macs == pytest.approx(r.mean_macs)
    rec = build_record(run, "s", "r")
    by_k = {e["k_cpt"]: e["result"] for e in rec["evaluations"]}
    assert by_k[0.64]["exit_fraction"] == pytest.approx(expect[0.64].exit_fraction)
