"""The routing loop's array operations on torch tensors, on whatever device they live.

:func:`routec.deploy.router.route_segments` is written once over
:class:`~routec.deploy.router.ArrayOps`; this is its torch implementation. Nothing
here reads the host but :meth:`TorchOps.counts` (one small read per junction, the
sizes of the parts) and :meth:`TorchOps.item` (a single row's way): the choices, the
sort that groups rows by way, the gathers and the scatters stay on the device.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class TorchOps:
    def arange(self, n: int, like: Tensor) -> Tensor:
        return torch.arange(n, device=like.device)

    def argmax(self, scores: Tensor) -> Tensor:
        return scores.argmax(dim=1)

    def item(self, a: Tensor) -> int:
        return int(a.reshape(-1)[0])

    def counts(self, choice: Tensor, ways: int) -> list[int]:
        return torch.bincount(choice, minlength=ways).tolist()

    def positions(self, choice: Tensor, counts: list[int]) -> Sequence[Tensor]:
        # a stable sort keeps each way's rows in batch order; split needs host sizes,
        # which counts already read
        return torch.argsort(choice, stable=True).split(counts)

    def take(self, a: Tensor, pos: Tensor) -> Tensor:
        """Rows ``pos`` of ``a``, keeping a channels-last tensor channels-last
        (index_select would return it contiguous, and several times slower)."""
        if a.ndim == 4 and a.is_contiguous(memory_format=torch.channels_last):
            return a.permute(0, 2, 3, 1).index_select(0, pos).permute(0, 3, 1, 2)
        return a.index_select(0, pos)

    def put(self, out: Tensor, rows: Tensor | None, values: Tensor) -> None:
        if rows is None:
            out.copy_(values)
        else:
            out.index_copy_(0, rows, values.to(out.dtype))

    def fill(self, out: Tensor, rows: Tensor | None, value: int) -> None:
        if rows is None:
            out.fill_(value)
        else:
            out.index_fill_(0, rows, value)


OPS = TorchOps()
