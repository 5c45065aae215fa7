"""Distributed training under `torchrun` (or any launcher that sets RANK/WORLD_SIZE): the
standard PyTorch way, no home-made launcher.

    torchrun --nproc_per_node 4 -m vitrestore train configs/denoise.yaml

gloo on CPU, NCCL on CUDA; each process drives one device (cuda:LOCAL_RANK).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "DistInfo":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(info: DistInfo, device: torch.device) -> torch.device:
    """Join the process group (once); returns this process's device."""
    if info.world <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # depthwise conv weights (C, 1, k, k) have equivalent strides that DDP reports as a mismatch
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return device


def agree_max(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise maximum over all ranks, in one all-reduce (identity in one process)."""
    if info.world <= 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.barrier()


def teardown(info: DistInfo) -> None:
    if info.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
