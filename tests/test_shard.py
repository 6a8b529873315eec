"""Per-example noise follows the example, whatever the split of a batch across ranks."""

import torch

from eqspike.data.augment import random_hflip, random_shift
from eqspike.data.encoders import poisson_rate
from eqspike.neurons.spiking import bernoulli_init, bernoulli_step
from eqspike.shard import batch_shard, per_example
from eqspike.ttfs.network import standard_normal


def split_like_ranks(draw, batch: torch.Tensor, world: int, out_dim: int = 0) -> torch.Tensor:
    """Run ``draw(share)`` as each rank would (same generator seed, examples rank::world of
    ``batch``) and re-interleave the outputs (examples along ``out_dim``) into global order."""
    merged = torch.empty_like(draw(batch))
    for rank in range(world):
        index = torch.arange(rank, len(batch), world)
        with batch_shard(rank, world, len(batch)):
            merged.index_copy_(out_dim, index, draw(batch[index]))
    return merged


def seeded(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shards_get_the_single_process_noise_of_their_examples():
    images = torch.rand(7, 1, 6, 6, generator=seeded(0))  # odd: shares of 4 and 3
    for world in (2, 3):
        for draw, data, dim in (
            (lambda x: random_shift(x, 2, seeded()), images, 0),
            (lambda x: random_hflip(x, seeded()), images, 0),
            (lambda x: standard_normal(tuple(x.shape), seeded(), x), images.flatten(1), 0),
            (lambda x: poisson_rate(x, 5, generator=seeded()), images.flatten(1), 1),
            (
                lambda x: bernoulli_step(x, bernoulli_init(x, seeded()))[0],
                images.flatten(1),
                0,
            ),
        ):
            torch.testing.assert_close(split_like_ranks(draw, data, world, dim), draw(data))


def test_other_sizes_get_independent_rows_per_rank():
    def draw(full):
        return torch.rand(full, generator=seeded())

    with batch_shard(0, 2, 6):
        first = per_example(draw, (5, 4))  # 5 is not rank 0's share (3): no global order
    with batch_shard(1, 2, 6):
        second = per_example(draw, (5, 4))
    assert first.shape == second.shape == (5, 4)
    assert not torch.equal(first, second)  # the ranks do not share noise
    assert torch.equal(per_example(draw, (5, 4)), draw((5, 4)))  # one process: a plain draw
