"""Data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPU).

Every rank draws the same global batch (same seeds), keeps its own slice, and
DistributedDataParallel averages gradients. TALR scales are computed from the
reach probabilities of the *global* batch so all ranks scale alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from routec.train.talr import talr_scales


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get(
            "ROUTEC_DIST_BACKEND", "") != "gloo" else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size())


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()


def wrap(net: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    if not d.active:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def shard(t: Tensor, d: Dist) -> Tensor:
    """This rank's rows of a global batch (contiguous slices, sizes differing by ≤ 1)."""
    if not d.active:
        return t
    return t.tensor_split(d.world_size)[d.rank]


def global_talr_scales(reach: Tensor, d: Dist) -> Tensor:
    if not d.active:
        return talr_scales(reach)
    stats = torch.cat([(reach.double() ** 2).sum(dim=0),
                       torch.tensor([reach.shape[0]], dtype=torch.float64)])
    dist.all_reduce(stats)
    return (stats[-1] / stats[:-1]).sqrt()
