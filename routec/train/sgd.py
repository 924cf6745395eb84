"""SGD with momentum, the paper's optimiser, without ``torch.optim``.

``torch.optim.Optimizer.__init__`` imports ``torch._dynamo`` (the compiler) the
first time an optimiser is built: on a small CPU that costs longer than the rest
of ``routec train``'s start-up together, for an optimiser that needs none of it.
This one applies PyTorch's update rule exactly (no dampening, no Nesterov, no
weight decay: the L2 term is part of each strategy's loss):

    buf ← g                      on the first step
    buf ← momentum · buf + g     afterwards
    p   ← p − lr · buf

and reads and writes PyTorch's ``SGD`` state-dict layout, so checkpoints written
with ``torch.optim.SGD`` resume with it and the other way round.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class SGD:
    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0) -> None:
        self.param_groups: list[dict[str, Any]] = [{
            "params": list(params), "lr": lr, "momentum": momentum, "dampening": 0.0,
            "weight_decay": 0.0, "nesterov": False, "maximize": False}]
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:  # foreach ops: the same arithmetic, a few calls
            lr, momentum = group["lr"], group["momentum"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if momentum == 0:
                steps = [p.grad for p in params]
            else:
                fresh, bufs, grads = [], [], []
                for p in params:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        state["momentum_buffer"] = torch.clone(p.grad).detach()
                    else:
                        bufs.append(buf)
                        grads.append(p.grad)
                    fresh.append(state["momentum_buffer"])
                if bufs:
                    torch._foreach_mul_(bufs, momentum)
                    torch._foreach_add_(bufs, grads)
                steps = fresh
            torch._foreach_add_(params, steps, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: parameters numbered across groups in order."""
        state: dict[int, dict[str, Tensor]] = {}
        groups = []
        index = 0
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                if p in self.state:
                    state[index] = {k: v for k, v in self.state[p].items()}
                ids.append(index)
                index += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"])
                for g, mine in zip(groups, self.param_groups)):
            raise ValueError("optimizer state does not match the network's parameters")
        self.state = {}
        for saved, mine in zip(groups, self.param_groups):
            for key in ("lr", "momentum"):
                mine[key] = saved[key]
            for i, p in zip(saved["params"], mine["params"]):
                entry = state_dict["state"].get(i)
                if entry is not None and entry.get("momentum_buffer") is not None:
                    buf = entry["momentum_buffer"]
                    self.state[p] = {"momentum_buffer": buf.to(p.device, p.dtype).clone()}
