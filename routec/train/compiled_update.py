"""--compile's update: TALR, clipping and SGD's momentum step as one compiled pass.

Why: eager, the three walk every trainable tensor six times (TALR's multiply, the
clipping norm and multiply, the momentum multiply and add, the parameter add), each a
foreach op; with exits of a few hundred thousand weights that is a fifth of a compiled
step. Compiled, they read each gradient, momentum buffer and parameter once.

The arithmetic is the eager path's (:func:`routec.train.talr.apply_talr`, then
``clip_grad_norm_``, then :class:`routec.train.sgd.SGD`), up to float rounding: the
gradient's factor is TALR's scale times the clipping coefficient, applied once, and the
scaled gradient is not written back (nothing reads it after the step). The eager path
takes the steps this pass does not cover: the first (SGD makes its momentum buffers
then), any step where a trainable tensor has no gradient, and every step of a run
whose momentum is 0, whose loss is scaled (fp16), or whose nodes share a tensor.
"""
from __future__ import annotations

import torch
from torch import Tensor

from routec.train.sgd import SGD


def _update(params: list[Tensor], grads: list[Tensor], bufs: list[Tensor],
            scale: Tensor | None, lr: Tensor, momentum: float, max_norm: float) -> None:
    factor = None if scale is None else scale.to(grads[0].dtype)
    if max_norm:
        norms = torch.stack(torch._foreach_norm(grads))
        total = torch.linalg.vector_norm(norms if factor is None else norms * factor)
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        factor = coef.expand(len(grads)) if factor is None else factor * coef
    for i, (p, g, b) in enumerate(zip(params, grads, bufs)):
        b.mul_(momentum).add_(g if factor is None else g * factor[i])
        p.sub_(lr * b)


class CompiledUpdate:
    def __init__(self, params_per_node: list[list[Tensor]], opt: SGD,
                 max_norm: float | None) -> None:
        self.opt, self.max_norm = opt, float(max_norm or 0.0)
        self.params: list[Tensor] = []
        owner: list[int] = []
        seen: set[int] = set()
        shared = False
        for node, params in enumerate(params_per_node):
            for p in params:
                shared |= id(p) in seen
                if id(p) not in seen:
                    seen.add(id(p))
                    self.params.append(p)
                    owner.append(node)
        trainable = {id(p) for g in opt.param_groups for p in g["params"] if p.requires_grad}
        group = opt.param_groups[0]
        # covered: one group, every trainable tensor in exactly one node, momentum on
        self.covers = (not shared and trainable == seen and len(opt.param_groups) == 1
                       and group["momentum"] > 0 and bool(self.params))
        self.owner = torch.tensor(owner, device=self.params[0].device) if self.params else None
        self.step = torch.compile(_update)

    def __call__(self, scales: Tensor | None) -> bool:
        """Take the step (TALR by ``scales``, one per node, or none) and say True, or
        leave it to the eager path and say False."""
        if not self.covers:
            return False
        grads, bufs = [], []
        for p in self.params:
            buf = self.opt.state.get(p, {}).get("momentum_buffer")
            if p.grad is None or buf is None:
                return False
            grads.append(p.grad)
            bufs.append(buf)
        group = self.opt.param_groups[0]
        scale = None if scales is None else scales.index_select(0, self.owner)
        lr = torch.tensor(group["lr"], dtype=self.params[0].dtype, device=self.params[0].device)
        with torch.no_grad():
            self.step(self.params, grads, bufs, scale, lr, group["momentum"], self.max_norm)
        return True
