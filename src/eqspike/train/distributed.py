"""Data-parallel training on ``torch.distributed`` (launch with ``torchrun``).

The trainer is the same in one or N processes: every rank shuffles the training set the same
way, takes examples ``rank::world`` of each global batch (per-example noise follows the example,
:mod:`eqspike.shard`), estimates gradients on them, and the gradients (EP updates) are averaged
with ``all_reduce`` before the optimiser steps, so every rank keeps identical weights. Rank 0
alone writes files. Backend: nccl on GPU, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun set up (env ``WORLD_SIZE`` > 1); else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def average_gradients(
    params: list[torch.nn.Parameter], ctx: DistContext, share: float = 1.0
) -> None:
    """Replace each ``param.grad`` by its mean over ranks (one flat all-reduce).

    ``share`` = n_rank · world / n_batch weighs a rank's per-example mean by how many of the
    global batch's examples it held, so that uneven shares (the last, odd-sized batch) still
    give the global batch's mean gradient.
    """
    if not ctx.enabled:
        return
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    if share != 1.0:
        flat *= share
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_across_ranks(values: list[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Sum scalar statistics (loss sums, correct counts) over ranks."""
    if not ctx.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    """Tear the group down once every rank is done with it (a rank that destroys it while a
    peer still writes its summary can abort the peer's gloo threads)."""
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
