"""Training-step cost of generated networks.

speed:  one actor training step (dense pass, closed-form expected cost, backward,
        TALR, SGD) of the generated paper chain vs a hand-written PyTorch module
        of the same maths, batch 128, measured round-robin; prints their ratio
        (target ≤ 1.1).
memory: peak extra resident memory of one critic training step on the paper tree,
        sampled-path mode vs closed-form mode, each in fresh processes (median of
        three, large blocks mmapped so freed memory leaves); prints their ratio
        (target ≤ 0.5).

Run: python bench/train_step.py [--part speed|memory|both] [--batch 128] [--repeats 10]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from routec.codegen import build_class
from routec.graph import build_graph
from routec.parse import load_spec
from routec.train.actor import actor_loss
from routec.train.costs import node_params
from routec.train.talr import apply_talr, talr_scales

CHANNELS = [(16, 16, 16, 16), (16, 16, 16, 16), (32, 32, 32), (32, 32, 32), (64, 64), (64, 64),
            (128,), (128,)]


# --- the hand-written chain: plain PyTorch, no routec --------------------------------
class HandColumn(nn.Module):
    def __init__(self, c_in: tuple[int, ...], c_out: tuple[int, ...]) -> None:
        super().__init__()
        self.lat = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False)
                                 for a, b in zip(c_in, c_out))
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False)
                                  for a, b in zip(c_out[:-1], c_out[1:]))
        self.bn = nn.ModuleList(nn.BatchNorm2d(c, eps=1e-6) for c in c_out)

    def forward(self, levels: list[Tensor]) -> list[Tensor]:
        levels = levels[len(levels) - len(self.lat):]
        out: list[Tensor] = []
        for i, x in enumerate(levels):
            y = self.lat[i](x)
            if i:
                y = y + self.down[i - 1](F.max_pool2d(out[-1], 2))
            out.append(F.relu(self.bn[i](y)))
        return out


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.BatchNorm1d(h, eps=1e-6), nn.ReLU()]
        n_in = h
    return nn.Sequential(*layers, nn.Linear(n_in, n_out))


class HandChain(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        c_in: tuple[int, ...] = (3, 3, 3, 3)
        self.cols, self.routers, self.exits = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for k, ch in enumerate(CHANNELS):
            self.cols.append(HandColumn(c_in[len(c_in) - len(ch):], ch))
            feat = ch[-1] * 16
            if k < len(CHANNELS) - 1:
                self.routers.append(mlp(feat, (16, 16), 2))
            self.exits.append(mlp(feat, (), classes))
            c_in = ch

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        h = [x, F.avg_pool2d(x, 2), F.avg_pool2d(x, 4), F.avg_pool2d(x, 8)]
        logits, scores = [], []
        for k, col in enumerate(self.cols):
            h = col(h)
            flat = h[-1].flatten(1)
            if k < len(self.routers):
                scores.append(self.routers[k](flat))
            logits.append(self.exits[k](flat))
        return logits, scores


def hand_actor_loss(net: HandChain, logits: list[Tensor], scores: list[Tensor], y: Tensor,
                    k: float, tau: float, col_macs: Tensor, router_macs: Tensor,
                    exit_macs: Tensor, k_dec: float = 0.01, k_l2: float = 1e-4,
                    eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """The actor's expected cost for a chain, written out: exit k is reached with
    probability Π_{j<k} π_j(continue) · π_k(exit)."""
    n, L = y.shape[0], len(logits)
    reach_col = [torch.ones(n)]
    leaf_p = []
    for j, s in enumerate(scores):
        floor = torch.tensor([eps / L, eps * (L - j - 1) / L])
        pi = floor + (1 - floor.sum()) * torch.softmax(s / tau, dim=1)
        leaf_p.append(reach_col[-1] * pi[:, 0])
        reach_col.append(reach_col[-1] * pi[:, 1])
    leaf_p.append(reach_col[-1])
    P = torch.stack(leaf_p, 1)                 # n × L: reach of each exit
    C = torch.stack(reach_col, 1)              # n × L: reach of each column
    ce = torch.stack([F.cross_entropy(z, y, reduction="none") for z in logits], 1)
    cpt = k * ((C * col_macs).sum(1) + (C[:, :-1] * router_macs).sum(1) + (P * exit_macs).sum(1))
    sg_c, sg_p = C.detach(), P.detach()
    l2_col = torch.stack([sum((p ** 2).sum() for p in c.parameters() if p.ndim > 1)
                          for c in net.cols])
    l2_r = torch.stack([sum((p ** 2).sum() for p in r.parameters() if p.ndim > 1)
                        for r in net.routers])
    l2_e = torch.stack([sum((p ** 2).sum() for p in e.parameters() if p.ndim > 1)
                        for e in net.exits])
    mod = k_l2 * ((sg_c.mean(0) * l2_col).sum() + (sg_c[:, :-1].mean(0) * l2_r).sum()
                  + (sg_p.mean(0) * l2_e).sum())
    dec = sum(sg_c[:, j] * (s ** 2).sum(1) for j, s in enumerate(scores))
    loss = ((P * ce).sum(1) + cpt + k_dec * dec).mean() + mod
    return loss, torch.cat([C, C[:, :-1], P], 1).detach()


def speed(batch: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    g = build_graph(load_spec("paper_chain"))
    gen_net = build_class(g)()
    hand = HandChain()
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    k, tau = 4e-9, 1.0
    cols = [n for n in g.nodes if n.kind == "column"]
    col_macs = torch.tensor([float(n.macs) for n in cols])
    router_macs = torch.tensor([float(g.nodes[j].macs) for j in g.junctions])
    exit_macs = torch.tensor([float(g.nodes[leaf].macs) for leaf in g.leaves])
    gen_opt = torch.optim.SGD(gen_net.parameters(), lr=0.01, momentum=0.9)
    hand_opt = torch.optim.SGD(hand.parameters(), lr=0.01, momentum=0.9)
    gen_params = node_params(gen_net)
    hand_groups = ([list(c.parameters()) for c in hand.cols]
                   + [list(r.parameters()) for r in hand.routers]
                   + [list(e.parameters()) for e in hand.exits])

    def gen_step() -> None:
        res = actor_loss(gen_net, gen_net(x), y, k, tau)
        gen_opt.zero_grad()
        res.loss.backward()
        apply_talr(gen_params, talr_scales(res.reach))
        gen_opt.step()

    def hand_step() -> None:
        logits, scores = hand(x)
        loss, reach = hand_actor_loss(hand, logits, scores, y, k, tau, col_macs, router_macs,
                                      exit_macs)
        hand_opt.zero_grad()
        loss.backward()
        apply_talr(hand_groups, talr_scales(reach))
        hand_opt.step()

    for _ in range(2):
        gen_step()
        hand_step()
    times: dict[str, list[float]] = {"generated": [], "hand": []}
    for _ in range(repeats):
        for key, fn in (("generated", gen_step), ("hand", hand_step)):
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"generated_s": med["generated"], "hand_s": med["hand"],
            "ratio": med["generated"] / med["hand"]}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def memory_one(mode: str, batch: int) -> None:
    """Child process: one critic step on the paper tree; prints peak extra RSS in bytes."""
    from routec.train.critic import critic_loss
    from routec.train.sampled import sampled_critic_loss

    torch.manual_seed(0)
    g = build_graph(load_spec("paper_tree"))
    net = build_class(g)()
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    gen = torch.Generator().manual_seed(0)
    base = _rss_bytes()
    if mode == "sampled":
        res = sampled_critic_loss(net, x, y, 4e-9, 1.0, generator=gen)
    else:
        res = critic_loss(net, net(x), y, 4e-9, 1.0)
    res.loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"mode": mode, "peak_extra_bytes": peak - base}))


def memory(batch: int, trials: int = 3) -> dict[str, float]:
    """Median over ``trials`` fresh processes per mode.

    The children allocate every block over 64 KiB with mmap, which goes back to the
    system when freed, so peak resident memory follows the tensors actually alive.
    With glibc's defaults, freed heap stays resident and fragments differently from
    run to run (the sampled mode's many odd-sized subsets suffer most), and the
    peak then measures the allocator as much as the training step.
    """
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = {}
    for mode in ("closed", "sampled"):
        peaks = []
        for _ in range(trials):
            done = subprocess.run([sys.executable, __file__, "--memory-child", mode, "--batch",
                                   str(batch)], capture_output=True, text=True, check=True,
                                  env=env)
            peaks.append(json.loads(done.stdout.strip().splitlines()[-1])["peak_extra_bytes"])
        out[mode] = statistics.median(peaks)
    return {"closed_mb": out["closed"] / 2**20, "sampled_mb": out["sampled"] / 2**20,
            "ratio": out["sampled"] / out["closed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["speed", "memory", "both"], default="both")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--memory-child", choices=["closed", "sampled"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_one(args.memory_child, args.batch)
        return
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; batch {args.batch}")
    if args.part in ("speed", "both"):
        s = speed(args.batch, args.repeats)
        print(f"actor step, generated paper chain  {s['generated_s'] * 1e3:8.1f} ms")
        print(f"actor step, hand-written chain     {s['hand_s'] * 1e3:8.1f} ms")
        print(f"ratio generated/hand-written       {s['ratio']:8.3f}  (target ≤ 1.1)")
    if args.part in ("memory", "both"):
        m = memory(args.batch)
        print(f"critic step on paper_tree, closed-form  peak +{m['closed_mb']:8.1f} MiB")
        print(f"critic step on paper_tree, sampled path peak +{m['sampled_mb']:8.1f} MiB")
        print(f"ratio sampled/closed                    {m['ratio']:8.3f}  (target ≤ 0.5)")


if __name__ == "__main__":
    main()
