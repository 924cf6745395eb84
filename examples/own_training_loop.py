"""A hand-written training loop on routec's Python API.

`routec train` does all of this for you (with checkpoints, resume, logging and
every strategy); this example shows the pieces, for when you want your own loop:

    compile_network  → a generated nn.Module (dense `forward`, routed `route`)
    actor_loss       → the paper's actor objective: expected error + k_cpt · expected MACs
    talr_scales / apply_talr → throughput-adjusted learning rates between backward and step
    SGD with momentum, learning rate and temperature halving on a schedule
    evaluate         → accuracy and mean MACs from routed inference

Run:  python examples/own_training_loop.py [--fast] [--iterations N] [--k-cpt X]
"""
from __future__ import annotations

import argparse

import torch

import routec


def main(*, spec: str = "tiny", iterations: int = 150, batch: int = 32, k_cpt: float = 1e-6,
         lr: float = 0.05, seed: int = 0, fast: bool = False) -> dict:
    """Train ``spec`` on synthetic data with a loop written here; returns losses and results."""
    if fast:
        iterations = min(iterations, 80)
    torch.manual_seed(seed)
    data = routec.load_dataset("synthetic", seed=seed)
    # the bundled `tiny` spec says 4 classes; the synthetic dataset has 10
    net = routec.compile_network(spec, classes=data.num_classes).build()
    params = routec.node_params(net)          # per node, for TALR
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    images, labels = data.train.images, data.train.labels

    losses: list[float] = []
    net.train()
    for it in range(iterations):
        idx = torch.randint(len(images), (batch,), generator=order)
        x, y = images[idx], labels[idx]
        for group in opt.param_groups:           # lr and τ halve on a schedule
            group["lr"] = lr * 2 ** (-it / 1000)
        tau = 1.0 * 2 ** (-it / 2000)

        out = net(x)                              # dense pass: every node, every example
        res = routec.actor_loss(net, out, y, k_cpt=k_cpt, tau=tau)
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        routec.apply_talr(params, routec.talr_scales(res.reach))
        opt.step()
        losses.append(float(res.loss.detach()))
        if (it + 1) % max(iterations // 5, 1) == 0:
            acc = float((res.logits.argmax(1) == y).float().mean())
            print(f"iteration {it + 1:>4}: loss {res.loss.item():.3f}, "
                  f"batch accuracy {acc:.2f}")

    result = routec.evaluate(net, data.test.images, data.test.labels)   # routed inference
    window = max(iterations // 10, 1)
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    print(f"loss {first:.3f} -> {last:.3f} (means of the first and last {window} iterations)")
    print(f"test accuracy {result.accuracy:.3f}, mean MACs {result.mean_macs:,.0f}; "
          "exits: " + ", ".join(f"{n} {f:.0%}" for n, f in
                                zip(result.exit_names, result.exit_fraction)))
    return {"losses": losses, "first_loss": first, "last_loss": last,
            "accuracy": result.accuracy, "mean_macs": result.mean_macs,
            "exit_fraction": result.exit_fraction, "path_macs": net.path_macs()}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default="tiny")
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--k-cpt", type=float, default=1e-6)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="at most 80 iterations")
    a = p.parse_args()
    main(spec=a.spec, iterations=a.iterations, batch=a.batch, k_cpt=a.k_cpt, lr=a.lr,
         seed=a.seed, fast=a.fast)
