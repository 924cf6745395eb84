"""Does the actor learn to route? Easy examples out early when computation costs,
not when it is free. A generated task where column 1 suffices for half the examples:

* easy (classes 0, 1): the sign of channel 2, visible to a linear read-out of column 1;
* hard (classes 2, 3): the XOR of the signs of channel 0's top and bottom halves, which
  column 1 (a 1×1 conv and ReLU, read linearly) cannot express in full, but column 2's
  hidden layer can.

With a cost per MAC the actor should send the easy half out at exit 1 and stay
accurate; with free computation both exits classify easy examples perfectly, so
nothing should pull them towards the early exit. (A linear router can still pick
out one XOR cell that exit 1 gets right, so some hard examples may leave early,
correctly: that is the cheaper solution, not a failure.)
"""
from __future__ import annotations

import torch

from routec.codegen import build_class
from routec.graph import build_graph
from routec.parse import parse_spec
from routec.train.actor import actor_loss
from routec.train.costs import node_params
from routec.train.talr import apply_talr, talr_scales
from routec.train.tree import Tree, inference_leaf

SPEC = """
network behave (input = 3x4x4, classes = 4) {
    router default = linear             # cannot express the XOR itself
    column c1 = conv(4, kernel = 1) -> relu
    column c2 = linear(32) -> relu
    route c1 -> either { exit | c2 -> exit }
}
"""


def task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    easy = torch.rand(n, generator=g) < 0.5
    sign = lambda: torch.randint(0, 2, (n,), generator=g) * 2.0 - 1  # noqa: E731
    top, bottom, flag = sign(), sign(), sign()
    x = torch.zeros(n, 3, 4, 4)
    x[:, 0, :2] = top[:, None, None]
    x[:, 0, 2:] = bottom[:, None, None]
    x[:, 2] = torch.where(easy, flag, torch.zeros(n))[:, None, None]
    x += 0.05 * torch.randn(x.shape, generator=g)
    y = torch.where(easy, (flag > 0).long(), 2 + (top * bottom > 0).long())
    return x, y, easy


def train_actor(k_cpt: float, seed: int = 0, steps: int = 600) -> tuple[float, float, float]:
    torch.manual_seed(seed)
    g = build_graph(parse_spec(SPEC))
    net = build_class(g)()
    tree, params = Tree.of(net), node_params(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y, _ = task(8192, seed)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(y), (128,), generator=gen)
        out = net(x[idx])
        res = actor_loss(net, out, y[idx], k_cpt, tau=2 ** (-step / 300))
        opt.zero_grad()
        res.loss.backward()
        apply_talr(params, talr_scales(res.reach))
        opt.step()
    net.eval()
    xt, yt, easy = task(4096, seed + 100)
    with torch.no_grad():
        routed = net.route(xt)
    early = routed.leaf == 0
    accuracy = float((routed.logits.argmax(1) == yt).float().mean())
    return float(early[easy].float().mean()), float(early[~easy].float().mean()), accuracy


def test_actor_sends_easy_examples_out_early_only_when_computation_costs() -> None:
    easy_out, _, accuracy = train_actor(k_cpt=1e-4)
    assert easy_out > 0.9, f"only {easy_out:.2f} of easy examples left at exit 1"
    assert accuracy > 0.95
    free_easy_out, free_hard_out, free_accuracy = train_actor(k_cpt=0.0)
    assert free_easy_out < 0.7, f"with free computation {free_easy_out:.2f} still left early"
    assert free_hard_out < 0.1  # free computation: hard examples go where they are solved
    assert free_accuracy > 0.95
