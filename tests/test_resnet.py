"""The bundled ResNet spec: a CIFAR ResNet-20 chain that compiles, draws and trains."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import routec
from routec.cli import main
from routec.graph import static_depth
from routec.parse import load_spec
from routec.train.config import make_config
from routec.train.loop import train


def resnet20_reference() -> torch.nn.Module:
    """ResNet-20 for CIFAR written directly in torch (He et al. 2016, option B shortcuts)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, c_in: int, c: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(c_in, c, 3, stride, 1), nn.BatchNorm2d(c),
                                      nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c))
            self.short = (nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False),
                                        nn.BatchNorm2d(c)) if stride > 1 or c_in != c
                          else nn.Identity())

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU()]
    c_in = 16
    for c, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(c_in, c, stride if i == 0 else 1))
            c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def test_it_compiles_with_an_exit_after_each_stage() -> None:
    net = routec.compile_network("resnet_chain")
    g = net.graph
    assert [g.nodes[i].id for i in g.leaves] == ["exit_stage1", "exit_stage2", "exit_stage3"]
    shapes = [n.out_shape for n in g.nodes if n.kind == "column"]
    assert shapes == [((16, 32, 32),), ((32, 16, 16),), ((64, 8, 8),)]
    # heads read pooled maps: 16x4x4 and 32x4x4 for the early ones, 64 for the last
    assert [g.nodes[i].head.in_features for i in g.leaves] == [256, 512, 64]
    assert [g.nodes[j].head.in_features for j in g.junctions] == [256, 512]
    assert static_depth(load_spec("resnet_chain")) == 3


def test_the_full_static_prefix_is_resnet20() -> None:
    """Parameters and MACs (flop counter) of --static-columns 3 equal a ResNet-20
    written in plain torch; the routed network's deepest path costs the same."""
    static = routec.compile_network("resnet_chain", static=3)
    ref = resnet20_reference().eval()
    net = static.build().eval()
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.rand(1, 3, 32, 32)

    def flops(fn) -> int:
        with FlopCounterMode(display=False) as c, torch.no_grad():
            fn()
        return c.get_total_flops() // 2

    assert static.graph.path_macs() == [flops(lambda: ref(x))] == [flops(lambda: net.route(x))]
    routed = routec.compile_network("resnet_chain").graph
    assert routed.path_macs()[-1] == static.graph.path_macs()[0] + sum(
        routed.nodes[j].macs for j in routed.junctions)


def test_every_path_matches_the_flop_counter() -> None:
    """Routed inference down each path (pooled heads included) costs what the graph says."""
    net_def = routec.compile_network("resnet_chain")
    g, net = net_def.graph, net_def.build().eval()
    x = torch.rand(1, 3, 32, 32)
    for leaf in range(3):
        def policy(j, scores, rows, h, leaf=leaf):
            return torch.full_like(rows, 0 if j == leaf else 1)

        with FlopCounterMode(display=False) as c, torch.no_grad():
            out = net.route(x, policy=policy)
        assert int(out.leaf[0]) == leaf
        assert c.get_total_flops() // 2 == g.path_macs()[leaf] == int(out.macs[0])


def test_compile_and_draw_from_the_command_line(tmp_path: Path, capsys) -> None:
    assert main(["compile", "resnet_chain", "--report"]) == 0
    assert "exit_stage3" in capsys.readouterr().out
    assert main(["compile", "resnet_chain", "-o", str(tmp_path / "net.py")]) == 0
    source = (tmp_path / "net.py").read_text()
    assert "shortcut=L.projection(16, 32, stride=2)" in source
    assert main(["draw", "resnet_chain", "-o", str(tmp_path / "net.svg")]) == 0
    assert (tmp_path / "net.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


@pytest.mark.parametrize("strategy, static", [("actor", None), ("static", 2)])
def test_it_trains_a_few_iterations(tmp_path: Path, strategy: str, static: int | None) -> None:
    cfg = make_config(dict(spec="resnet_chain", data="synthetic", strategy=strategy,
                           static_columns=static, iterations=3, batch=8, log_every=1,
                           eval_every=3, checkpoint_every=3, val_examples=16, k_cpt=1e-9))
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.finished and res.iteration == 3
    assert 0.0 <= res.val["accuracy"] <= 1.0
