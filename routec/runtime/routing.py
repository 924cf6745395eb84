"""Routing primitives the generated code calls: outputs, gather/scatter, policies.

Routed inference keeps, at every node, the *rows* (indices into the batch) of the
examples that reached it and their features. A junction splits both with index
gathers, so a column only ever computes on the rows routed to it; exits scatter
their logits back into the batch-sized output.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from routec.errors import RunError
from routec.tree import RoutingTree  # noqa: F401  (generated modules import it from here)

Pyramid = tuple[Tensor, ...]
# policy(junction_index, scores, rows, features) -> chosen way per row (int64); rows are
# the examples' positions in the batch, features the pyramid the junction's router read.
Policy = Callable[[int, Tensor, Tensor, Pyramid], Tensor]


@dataclass
class DenseOutput:
    """Every node evaluated for every example (what the training strategies consume).

    leaf_logits: L×N×C, one slice per leaf (exit) in leaf order;
    scores: one N×ways tensor per junction, in junction order;
    node_macs: MACs per example of every node, in node order.
    """

    leaf_logits: Tensor
    scores: tuple[Tensor, ...]
    node_macs: Tensor


@dataclass
class RoutedOutput:
    """Routed inference: one path per example.

    logits: N×C from the exit each example reached; leaf: that exit's leaf index;
    macs: MACs spent on each example: the sum over the nodes on its path, which is
    the MACs of the path to the exit it reached (looked up once per exit).
    """

    logits: Tensor
    leaf: Tensor
    macs: Tensor


def argmax_policy(junction: int, scores: Tensor, rows: Tensor, features: Pyramid) -> Tensor:
    """The paper's inference policy: take the highest-scoring branch."""
    return scores.argmax(dim=1)


def split(choice: Tensor, ways: int, rows: Tensor, h: Pyramid, k: Tensor | None
          ) -> list[tuple[Tensor, Pyramid, Tensor | None]]:
    """Partition (rows, features, k_cpt) by ``choice``; one part per way.

    When every row takes the same way, that part reuses the tensors as they are
    (no copy), which is the common case late in a trained network. A single row
    costs one host read of its choice and no bincount or nonzero; otherwise one
    bincount is read back once for all ways, and the ways' positions come from one
    stable sort split by those counts (no ``nonzero``, which would read the device
    again per way).
    """
    n = rows.numel()
    if n == 1:
        way = int(choice)
        empty = (rows[:0], tuple(x[:0] for x in h), None if k is None else k[:0])
        return [(rows, h, k) if w == way else empty for w in range(ways)]
    parts: list[tuple[Tensor, Pyramid, Tensor | None]] = []
    counts = torch.bincount(choice, minlength=ways).tolist()
    order: tuple[Tensor, ...] = ()
    for way, c in enumerate(counts):
        if c == n:
            parts.append((rows, h, k))
        elif c == 0:
            parts.append((rows[:0], tuple(x[:0] for x in h), None if k is None else k[:0]))
        else:
            if not order:  # each way's positions, in batch order, without another sync
                order = torch.argsort(choice, stable=True).split(counts)
            pos = order[way]
            parts.append((rows.index_select(0, pos), tuple(x.index_select(0, pos) for x in h),
                          None if k is None else k.index_select(0, pos)))
    return parts


class RoutedNetwork(nn.Module):
    """Base of every generated network: its routing tree and shared bookkeeping.

    Subclasses (written by ``routec compile``) set ``TREE`` and ``SPEC_SHA256`` and
    define ``forward`` (dense pass) and ``route`` (routed inference). The tree's
    fields are also class constants (``NODES``, ``PARENT``, ...), set from ``TREE``
    when the subclass is made, so the generated code and its readers name them
    briefly; the tree stays their one source.
    """

    TREE: RoutingTree
    SPEC_SHA256: str = ""
    NAME: str = ""
    INPUT_SHAPE: tuple[int, int, int] = (0, 0, 0)
    CLASSES: int = 0
    DYNAMIC_KCPT: bool = False
    NODES: tuple[str, ...] = ()
    KINDS: tuple[str, ...] = ()
    PARENT: tuple[int, ...] = ()
    WAY: tuple[int, ...] = ()
    MACS: tuple[int, ...] = ()
    LEAVES: tuple[int, ...] = ()
    JUNCTIONS: tuple[int, ...] = ()
    WAYS: tuple[int, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        tree = cls.__dict__.get("TREE")
        if tree is None:
            return
        cls.NAME, cls.INPUT_SHAPE, cls.CLASSES = tree.name, tree.input_shape, tree.classes
        cls.DYNAMIC_KCPT, cls.NODES, cls.KINDS = tree.dynamic_kcpt, tree.nodes, tree.kinds
        cls.PARENT, cls.WAY, cls.MACS = tree.parent, tree.way, tree.macs
        cls.LEAVES, cls.JUNCTIONS, cls.WAYS = tree.leaves, tree.junctions, tree.ways

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("node_macs", torch.tensor(self.MACS, dtype=torch.float64),
                             persistent=False)
        # MACs of the path from the root to each node: an example that reaches exit
        # node i has spent exactly _path_macs[i]
        self._path_macs = tuple(float(v) for v in self.TREE.cumulative_macs)

    # -- inputs ---------------------------------------------------------------------
    def _kcpt(self, k_cpt: float | Tensor | None, x: Tensor) -> Tensor | None:
        """Per-example k_cpt (N,) for dynamic networks; None for static-cost ones."""
        if not self.DYNAMIC_KCPT:
            if k_cpt is not None:
                raise RunError(f"network '{self.NAME}' was compiled without a k_cpt input",
                               hint="compile with --dynamic-kcpt to feed k_cpt to routers")
            return None
        if k_cpt is None:
            raise RunError(f"network '{self.NAME}' reads k_cpt: pass k_cpt=...",
                           hint="e.g. net(x, k_cpt=4e-9)")
        k = torch.as_tensor(k_cpt, dtype=x.dtype, device=x.device)
        if k.ndim == 0:
            k = k.expand(x.shape[0])
        if k.shape != (x.shape[0],):
            raise RunError(f"k_cpt must be a number or a tensor of shape ({x.shape[0]},), "
                           f"got {tuple(k.shape)}")
        return k

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.INPUT_SHAPE):
            raise RunError(f"network '{self.NAME}' takes N×{'×'.join(map(str, self.INPUT_SHAPE))}"
                           f" input, got {'×'.join(map(str, x.shape))}")

    # -- routed-inference bookkeeping -------------------------------------------------
    def _start(self, x: Tensor) -> RoutedOutput:
        n = x.shape[0]
        return RoutedOutput(
            logits=x.new_zeros(n, self.CLASSES),
            leaf=torch.full((n,), -1, dtype=torch.long, device=x.device),
            macs=torch.zeros(n, dtype=torch.float64, device=x.device),
        )

    def _spend(self, out: RoutedOutput, rows: Tensor, node: int) -> None:
        """Nothing to do per node: ``_emit`` charges each example its whole path."""

    def _emit(self, out: RoutedOutput, rows: Tensor, node: int, leaf: int, logits: Tensor
              ) -> None:
        if rows.numel() == out.leaf.numel():  # every example of the batch (rows == arange)
            out.logits.copy_(logits)
            out.leaf.fill_(leaf)
            out.macs.fill_(self._path_macs[node])
            return
        out.logits.index_copy_(0, rows, logits.to(out.logits.dtype))
        out.leaf.index_fill_(0, rows, leaf)
        out.macs.index_fill_(0, rows, self._path_macs[node])

    def _dense(self, leaf_logits: list[Tensor], scores: list[Tensor]) -> DenseOutput:
        return DenseOutput(torch.stack(leaf_logits), tuple(scores), self.node_macs)

    # -- tree helpers the trainer and reports use -------------------------------------
    def path(self, node: int) -> list[int]:
        """Node indices from the root to ``node``."""
        return self.TREE.path(node)

    def path_macs(self) -> list[int]:
        return self.TREE.path_macs()
