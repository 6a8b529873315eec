import pytest
import torch

from eqspike.data.augment import augment_batch, random_hflip, random_shift


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


def test_random_hflip_mirrors_about_half_the_images_reproducibly():
    x = torch.arange(64 * 6, dtype=torch.float32).reshape(64, 1, 2, 3)
    a = random_hflip(x, torch.Generator().manual_seed(1))
    mirrored = (a == x.flip(-1)).flatten(1).all(1)
    kept = (a == x).flatten(1).all(1)
    assert torch.all(mirrored ^ kept)  # each image is either mirrored or untouched
    assert 16 < int(mirrored.sum()) < 48
    assert torch.equal(a, random_hflip(x, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="B, C, H, W"):
        random_hflip(torch.ones(3, 4), torch.Generator())


def test_augment_batch_applies_only_what_is_asked():
    x = torch.rand(8, 1, 5, 5)
    g = torch.Generator
    assert torch.equal(augment_batch(x, 0, False, g(), g()), x)
    shifted = augment_batch(x, 1, False, g().manual_seed(0), g().manual_seed(0))
    assert torch.equal(shifted, random_shift(x, 1, g().manual_seed(0)))
    flipped = augment_batch(x, 0, True, g().manual_seed(0), g().manual_seed(5))
    assert torch.equal(flipped, random_hflip(x, g().manual_seed(5)))
