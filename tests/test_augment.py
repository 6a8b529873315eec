import pytest
import torch

from eqspike.data.augment import random_shift


def test_random_shift_moves_each_image_by_its_own_offset():
    x = torch.zeros(64, 1, 7, 7)
    x[:, 0, 3, 3] = 1.0  # one bright pixel in the centre
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    assert torch.all(shifted.sum((1, 2, 3)) == 1.0)  # the pixel never leaves a 7x7 image
    positions = shifted[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 7 - 3, positions % 7 - 3
    assert rows.abs().max() <= 2 and cols.abs().max() <= 2
    assert (
        len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10
    )  # offsets differ between images


def test_random_shift_fills_with_zeros_and_is_reproducible():
    x = torch.ones(8, 1, 5, 5)
    a = random_shift(x, 1, torch.Generator().manual_seed(3))
    b = random_shift(x, 1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # a shifted all-ones image keeps 5x5 minus the uncovered row/column
    kept = a.sum((1, 2, 3))
    assert torch.all((kept == 25) | (kept == 20) | (kept == 16))
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)
    with pytest.raises(ValueError, match="B, C, H, W"):
        random_shift(torch.ones(3, 4), 1, torch.Generator())
