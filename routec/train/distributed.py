"""Data-parallel training under ``torchrun`` (gloo on CPU, nccl on GPU).

Every rank draws the same global batch (same seeds), keeps its own slice, and
DistributedDataParallel averages gradients. TALR scales are computed from the
reach probabilities of the *global* batch so all ranks scale alike.

The backend follows the device the run trains on (``--device cpu`` on a machine
with GPUs still uses gloo), and ``--device cuda`` gives each process of a node its
own GPU, ``cuda:LOCAL_RANK``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from routec.errors import RunError
from routec.train.talr import talr_scales


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1


def backend(device: torch.device) -> str:
    """nccl for GPUs, gloo otherwise (or wherever ROUTEC_DIST_BACKEND=gloo asks for it)."""
    if device.type == "cuda" and os.environ.get("ROUTEC_DIST_BACKEND", "") != "gloo":
        return "nccl"
    return "gloo"


def process_device(device: torch.device) -> torch.device:
    """This process's device: under torchrun, ``--device cuda`` is the GPU of the
    process's local rank, so the N processes of a node use its N GPUs (and not all GPU 0)."""
    local = os.environ.get("LOCAL_RANK")
    if device.type != "cuda" or local is None or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.index is not None:
        if per_node > 1:
            raise RunError(f"--device {device} under torchrun would put all {per_node} "
                           "processes of this node on one GPU",
                           hint="pass --device cuda: each process takes cuda:LOCAL_RANK")
        return device
    count = torch.cuda.device_count()
    if int(local) >= count:
        raise RunError(f"torchrun started {per_node} processes on this node, which has "
                       f"{count} GPU(s)", hint=f"pass --nproc-per-node {count} (or fewer)")
    torch.cuda.set_device(int(local))
    return torch.device("cuda", int(local))


def setup(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend=backend(device))
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
