"""Per-example random draws that do not depend on how a batch is split across processes.

In data-parallel training every rank holds a share of each global batch (rank r: the global
batch's examples r, r + world, r + 2·world, …) and every rank gets the same batch generator.
Drawing per-example noise (input jitter, shifts, stochastic spikes) of the *share's* shape
would hand the ranks identical noise for different examples, and would differ from the
single-process run. Instead, :func:`per_example` draws the noise of the whole global batch and
keeps the rows of this rank's examples: the examples get exactly the noise they get in one
process, whatever the number of ranks.

The trainer declares the split with :func:`batch_shard` around each learning step; evaluation,
whose shares are not slices of one global batch, declares no global size, so the ranks draw
independent noise. Outside any split (one process, tests) :func:`per_example` is a plain draw.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    global_size: int = 0  # examples in the global batch (0: unknown, draws only independent)

    @property
    def size(self) -> int:
        """How many of the global batch's examples this rank holds."""
        return len(range(self.rank, self.global_size, self.world))


_SHARD: ContextVar[Shard | None] = ContextVar("eqspike_shard", default=None)


@contextmanager
def batch_shard(rank: int, world: int, global_size: int) -> Iterator[None]:
    """Within this block, this process holds examples ``rank::world`` of a global batch."""
    token = _SHARD.set(Shard(rank, world, global_size))
    try:
        yield
    finally:
        _SHARD.reset(token)


def per_example(
    draw: Callable[[tuple[int, ...]], torch.Tensor], shape: tuple[int, ...], batch_dim: int = 0
) -> torch.Tensor:
    """``draw(shape)`` for this rank's examples, as the single-process run would draw them.

    ``shape[batch_dim]`` counts examples. If it is this rank's share of the global batch, the
    global batch's noise is drawn and this rank's rows kept. Any other size (e.g. a draw shared
    by copies of the batch) gets rank-specific rows of a larger draw: independent across ranks,
    though not the single-process numbers.
    """
    shard = _SHARD.get()
    if shard is None or shard.world == 1:
        return draw(tuple(shape))
    n = shape[batch_dim]
    full = list(shape)
    if n == shard.size:
        full[batch_dim] = shard.global_size
        rows = torch.arange(shard.rank, shard.global_size, shard.world)
    else:
        full[batch_dim] = n * shard.world
        rows = torch.arange(shard.rank * n, (shard.rank + 1) * n)
    noise = draw(tuple(full))
    return noise.index_select(batch_dim, rows.to(noise.device))
