"""Training-time data augmentation, vectorised over the batch and driven by an explicit
generator so that a run stays reproducible from its seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from eqspike.shard import per_example


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` ``(B, C, H, W)`` by its own integer offset (dy, dx), each
    uniform in ``[-max_shift, max_shift]``, filling the uncovered border with zeros.

    Small translations are the classic cheap regulariser for fully connected nets on MNIST:
    they do not change the label but break the pixel-exact memorisation of training digits.
    """
    if max_shift == 0:
        return x
    if x.dim() != 4:
        raise ValueError(f"random_shift expects (B, C, H, W) images, got shape {tuple(x.shape)}")
    batch, _, height, width = x.shape
    offsets = per_example(
        lambda full: torch.randint(-max_shift, max_shift + 1, full, generator=generator),
        (2, batch),
        batch_dim=1,
    )
    offsets = offsets.to(x.device)
    padded = F.pad(x, (max_shift,) * 4)
    rows = torch.arange(height, device=x.device) + max_shift - offsets[0][:, None]  # (B, H)
    cols = torch.arange(width, device=x.device) + max_shift - offsets[1][:, None]  # (B, W)
    index = torch.arange(batch, device=x.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
    return shifted.permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of ``x`` ``(B, C, H, W)`` left-right with probability ½.

    For label-symmetric data only (Fashion-MNIST's garments, not digits): a mirrored shirt is
    still a shirt, a mirrored 3 is not a 3.
    """
    if x.dim() != 4:
        raise ValueError(f"random_hflip expects (B, C, H, W) images, got shape {tuple(x.shape)}")
    uniform = per_example(lambda full: torch.rand(full, generator=generator), (x.shape[0],))
    flip = (uniform < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment_batch(
    x: torch.Tensor,
    max_shift: int,
    hflip: bool,
    shift_generator: torch.Generator,
    flip_generator: torch.Generator,
) -> torch.Tensor:
    """The training-time augmentations a config asks for (``data.augment_shift``,
    ``data.augment_hflip``), each from its own random stream."""
    if max_shift:
        x = random_shift(x, max_shift, shift_generator)
    if hflip:
        x = random_hflip(x, flip_generator)
    return x
