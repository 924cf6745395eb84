"""Training a network that routes a supplied model: what is frozen, and distillation.

``--freeze`` keeps pieces of the model as they were trained (no gradients, batch-norm
statistics kept, eval mode throughout); ``--distill W`` adds W × the mean over the
other exits of KL(model head ‖ exit), pulling every early exit towards the answers of
the model's own head (held fixed), as self-distillation for early exits does.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    rows ``idx`` of what it stored, which is as much of its output as its readers read
    (:func:`_reading`). Outside that block (validation, evaluation) the pieces compute
    as usual."""

    def __init__(self, pieces: list[nn.Module], device: torch.device,
                 input_read: bool = True) -> None:
        self.pieces, self.device = pieces, device
        # whether anything reads the network's input while rows are set: when the
        # cached pieces stand for everything that would, a trainer need not gather
        # the batch's images at all (only its labels)
        self.input_read = input_read

    @classmethod
    def build(cls, net: nn.Module, images: Tensor, device: torch.device,
              batch: int | None = None) -> FeatureCache:
        """Run the network over ``images`` a batch at a time (``images[a:b]``: a split kept
        on disk is never held whole), keeping of each frozen piece's output what its
        readers read (:func:`_reading`): nothing, the average-pooled map, or all of it."""
        from routec.train.evaluate import eval_batch

        batch = min(256, eval_batch(images)) if batch is None else batch
        pieces = [p for p in pieces_of(net) if p.frozen]
        reading = _reading(net, pieces)
        outputs: dict[int, list[Tensor]] = {id(p): [] for p in pieces}
        shapes: dict[int, tuple[int, ...]] = {}

        def keep(m: nn.Module, args: object, out: Tensor) -> None:
            shapes[id(m)] = tuple(out.shape[1:])
            read = reading.keeps[id(m)]
            if read is not None:  # pooled as the heads pool it: the same op, same values
                outputs[id(m)].append((out if read == FULL else F.adaptive_avg_pool2d(
                    out, read)).detach().cpu())

        hooks = [p.register_forward_hook(keep) for p in pieces]
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
            if reading.keeps[id(p)] is None:
                p.cached, p.unread_shape = None, shapes[id(p)]
            else:
                p.cached, p.unread_shape = torch.cat(outputs[id(p)]).to(device), None
        return cls(pieces, device, reading.input_read)

    @property
    def nbytes(self) -> int:
        return sum(p.cached.numel() * p.cached.element_size() for p in self.pieces
                   if p.cached is not None)

    def rows(self, idx: Tensor) -> _Rows:
        return _Rows(self.pieces, idx.to(self.device))

    def inputs(self, images: Tensor, idx: Tensor) -> Tensor | None:
        """The images at ``idx`` as the network's input while ``rows(idx)`` is set, or
        None when nothing would read them (see :meth:`placeholder`)."""
        return images.index_select(0, idx) if self.input_read else None

    @staticmethod
    def placeholder(like: Tensor, n: int, device: torch.device) -> Tensor:
        """A zero-stride stand-in for ``n`` of ``like``'s rows on ``device``: the input
        of a batch whose images only cached pieces would read (nothing is gathered)."""
        return torch.zeros((), dtype=like.dtype, device=device).expand(n, *like.shape[1:])


class _Rows:
    def __init__(self, pieces: list[nn.Module], idx: Tensor) -> None:
        self.pieces, self.idx = pieces, idx

    def __enter__(self) -> None:
        for p in self.pieces:
            p.rows = self.idx

    def __exit__(self, *exc: object) -> None:
        for p in self.pieces:
            p.rows = None


FULL = "full"  # a cached piece keeps its whole output


@dataclass
class _Reading:
    keeps: dict[int, int | tuple[int, int] | str | None]  # per piece id: None, pool size, FULL
    input_read: bool


def _reading(net: nn.Module, cached: list[nn.Module]) -> _Reading:
    """What of each cached piece's output is read while rows are set, and whether the
    network's input is.

    A column whose first layer is a cached piece ignores its input (the piece gives its
    stored rows); junctions and exits read theirs. So a cached piece that ends its
    column keeps:

    - nothing, when every node reading it is such a column (its output only feeds
      cached pieces; a zero-stride placeholder stands in);
    - the map average-pooled to p × p, when every node that reads it is a head pooling
      to p × p first (``pooled = p``): pooling a p × p map to p × p changes nothing, so
      the heads compute exactly what they would, from a thousandth of the memory;
    - all of it otherwise (an unpooled head, a model's own logits, a column that trains).

    A node's readers are its children and, through a junction (which passes its input
    on), the junction's children. The input is unread when every reader of the stem's
    output is a column that ignores it."""
    from routec.runtime.layers import Head, OnCoarsest

    cached_ids = {id(p) for p in cached}

    def piece(layer: nn.Module) -> nn.Module | None:
        inner = layer.layer if isinstance(layer, OnCoarsest) else layer
        return inner if id(inner) in cached_ids else None

    def layers(i: int) -> list[nn.Module]:
        return list(getattr(net, net.NODES[i])) if net.KINDS[i] == "column" else []

    def ignores_input(i: int) -> bool:
        return bool(layers(i)) and piece(layers(i)[0]) is not None

    def pool_size(i: int) -> int | tuple[int, int] | None:
        head = getattr(net, net.NODES[i])
        return head.pool.output_size if isinstance(head, Head) and head.pool is not None \
            else None

    tree = net.TREE

    def readers(i: int) -> list[int]:
        """The nodes that read node i's output: its children, and through a junction
        (which passes its input on) the junction's children too."""
        out = []
        for c in tree.children[i]:
            out.append(c)
            if tree.kinds[c] == "junction":
                out += readers(c)
        return out

    keeps: dict[int, int | tuple[int, int] | str | None] = {id(p): FULL for p in cached}
    for i in range(tree.size):
        last = piece(layers(i)[-1]) if layers(i) else None
        if last is None:
            continue
        reading = [c for c in readers(i) if not ignores_input(c)]
        sizes = {pool_size(c) for c in reading}
        if not reading:
            keeps[id(last)] = None
        elif len(sizes) == 1 and None not in sizes:
            keeps[id(last)] = sizes.pop()
    root = tree.parent.index(-1)
    if tree.kinds[root] == "stem":
        input_read = not all(ignores_input(c) for c in readers(root))
    else:
        input_read = not ignores_input(root)
    return _Reading(keeps, input_read)


def cache_bytes_estimate(net: nn.Module, n: int) -> int:
    """Bytes the frozen pieces' outputs for ``n`` examples take (float32), as much of
    each as :func:`_reading` keeps."""
    pieces = [p for p in pieces_of(net) if p.frozen]
    keeps = _reading(net, pieces).keeps
    total = 0
    for p in pieces:
        read = keeps[id(p)]
        if read == FULL:
            total += 4 * n * _out_numel(p)
        elif read is not None:
            ph, pw = (read, read) if isinstance(read, int) else read
            total += 4 * n * _channels(p) * ph * pw
    return total


def _channels(piece: nn.Module) -> int:
    """Channels of a piece's output as a map: C of C×H×W or of C (as C×1×1), D of T×D."""
    shape = tuple(piece.out_shape)
    return int(shape[1] if len(shape) == 2 else shape[0])


def _out_numel(piece: nn.Module) -> int:
    shape = getattr(piece, "out_shape", None)
    if shape is None:
        return 0
    numel = 1
    for v in shape:
        numel *= int(v)
    return numel
