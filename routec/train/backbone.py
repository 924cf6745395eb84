"""Training a network that routes a supplied model: what is frozen, and distillation.

``--freeze`` keeps pieces of the model as they were trained (no gradients, batch-norm
statistics kept, eval mode throughout); ``--distill W`` adds W × the mean over the
other exits of KL(model head ‖ exit), pulling every early exit towards the answers of
the model's own head (held fixed), as self-distillation for early exits does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from routec.errors import RunError


def pieces_of(module: nn.Module) -> list[nn.Module]:
    from routec.backbone.supplied import ModelPiece

    return [m for m in module.modules() if isinstance(m, ModelPiece)]


def freeze(net: nn.Module, which: str) -> list[str]:
    """Freeze the supplied-model pieces named by ``which`` (none, all, or a column and
    the columns before it); returns the names of the columns frozen."""
    if which == "none":
        return []
    columns = [i for i, k in enumerate(net.KINDS) if k == "column" and pieces_of(
        getattr(net, net.NODES[i]))]
    if not columns:
        raise RunError(f"--freeze {which}: this network routes no supplied model (a spec's "
                       "`model NAME`); there is nothing to freeze")
    if which == "all":
        chosen = columns
    else:
        names = [net.NODES[i] for i in columns]
        if which not in net.NODES or net.NODES.index(which) not in columns:
            raise RunError(f"--freeze {which}: expected none, all, or a column that runs a "
                           f"piece of a supplied model: {', '.join(names)}")
        ancestors = set(net.TREE.path(net.NODES.index(which)))
        chosen = [i for i in columns if i in ancestors]
    for i in chosen:
        for piece in pieces_of(getattr(net, net.NODES[i])):
            piece.freeze()
    return [net.NODES[i] for i in chosen]


def own_head_leaves(net: nn.Module) -> list[int]:
    """Leaf indices (in LEAVES order) whose exit reads a model's own head's logits."""
    from routec.runtime.layers import Logits

    return [k for k, node in enumerate(net.LEAVES)
            if isinstance(getattr(net, net.NODES[node]), Logits)]


def distill_loss(leaf_logits: Tensor, head: int) -> Tensor:
    """Mean over the other exits of KL(softmax(head) ‖ softmax(exit)), per example mean;
    the head's answers are a fixed target."""
    target = F.log_softmax(leaf_logits[head].detach(), dim=1)
    others = [k for k in range(leaf_logits.shape[0]) if k != head]
    if not others:
        return leaf_logits.new_zeros(())
    terms = [F.kl_div(F.log_softmax(leaf_logits[k], dim=1), target, log_target=True,
                      reduction="batchmean") for k in others]
    return torch.stack(terms).mean()


class FeatureCache:
    """The outputs of frozen pieces for every training example, computed once.

    A frozen piece whose input no augmentation changes gives the same output for an
    example at every step, so training the routers, exits and unfrozen pieces after it
    need not run it again: ``with cache.rows(idx):`` makes every cached piece return the
    rows ``idx`` of its stored outputs. Outside that block (validation, evaluation)
    the pieces compute as usual."""

    def __init__(self, pieces: list[nn.Module]) -> None:
        self.pieces = pieces

    @classmethod
    def build(cls, net: nn.Module, images: Tensor, device: torch.device,
              batch: int | None = None) -> FeatureCache:
        """Run the network over ``images`` a batch at a time (``images[a:b]``: a split kept
        on disk is never held whole), keeping the frozen pieces' outputs."""
        from routec.train.evaluate import eval_batch

        batch = min(256, eval_batch(images)) if batch is None else batch
        pieces = [p for p in pieces_of(net) if p.frozen]
        outputs: dict[int, list[Tensor]] = {id(p): [] for p in pieces}
        hooks = [p.register_forward_hook(
            lambda m, args, out: outputs[id(m)].append(out.detach().cpu())) for p in pieces]
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                for i in range(0, len(images), batch):
                    net(images[i:i + batch].to(device))
        finally:
            for h in hooks:
                h.remove()
            net.train(was_training)
        for p in pieces:
            p.cached = torch.cat(outputs[id(p)]).to(device)
        return cls(pieces)

    @property
    def nbytes(self) -> int:
        return sum(p.cached.numel() * p.cached.element_size() for p in self.pieces)

    def rows(self, idx: Tensor) -> _Rows:
        return _Rows(self.pieces, idx)


class _Rows:
    def __init__(self, pieces: list[nn.Module], idx: Tensor) -> None:
        self.pieces, self.idx = pieces, idx

    def __enter__(self) -> None:
        for p in self.pieces:
            p.rows = self.idx.to(p.cached.device)

    def __exit__(self, *exc: object) -> None:
        for p in self.pieces:
            p.rows = None


def cache_bytes_estimate(net: nn.Module, n: int) -> int:
    """Bytes the frozen pieces' outputs for ``n`` examples take (float32)."""
    total = 0
    for i, kind in enumerate(net.KINDS):
        if kind != "column":
            continue
        for p in pieces_of(getattr(net, net.NODES[i])):
            if p.frozen:
                total += 4 * n * _out_numel(p)
    return total


def _out_numel(piece: nn.Module) -> int:
    shape = getattr(piece, "out_shape", None)
    if shape is None:
        return 0
    numel = 1
    for v in shape:
        numel *= int(v)
    return numel
