"""Spike encoders: turn pixel intensities in [0, 1] into spike trains or spike times.

All encoders are vectorised over the batch and the inputs and take an explicit generator so
that runs are reproducible.
"""

from __future__ import annotations

import torch

from eqspike.shard import per_example


def poisson_rate(
    x: torch.Tensor, steps: int, max_rate: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bernoulli spike trains of shape ``(steps, *x.shape)``: P(spike at t) = ``max_rate * x``."""
    _check_unit_interval(x)
    p = (x * max_rate).clamp(0.0, 1.0)
    noise = per_example(
        lambda full: torch.rand(full, generator=generator, dtype=x.dtype, device=x.device),
        (steps, *x.shape),
        batch_dim=1,
    )
    return (noise < p).to(x.dtype)


def deterministic_rate(x: torch.Tensor, steps: int, max_rate: float = 1.0) -> torch.Tensor:
    """Regular spike trains (an integrate-and-fire encoder with threshold 1 and no noise).

    The accumulator a_t = a_{t-1} + r x spikes and subtracts 1 whenever it reaches 1, so the
    count over ``steps`` is ``floor(steps * r * x)``: the rate is exact to within 1/steps.
    """
    _check_unit_interval(x)
    rate = (x * max_rate).clamp(0.0, 1.0)
    t = torch.arange(1, steps + 1, dtype=x.dtype, device=x.device).view(-1, *([1] * x.dim()))
    cumulative = torch.floor(t * rate + 1e-9)
    previous = torch.cat([torch.zeros_like(cumulative[:1]), cumulative[:-1]])
    return cumulative - previous


def latency(
    x: torch.Tensor, t_early: float = 0.0, t_late: float = 1.0, silence_below: float = 0.0
) -> torch.Tensor:
    """Time-to-first-spike code: bright pixels spike early, ``t = t_late - x (t_late - t_early)``.

    Inputs at or below ``silence_below`` never spike (time ``inf``).
    """
    _check_unit_interval(x)
    times = t_late - x * (t_late - t_early)
    return torch.where(x > silence_below, times, torch.full_like(times, float("inf")))


def _check_unit_interval(x: torch.Tensor) -> None:
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise ValueError(
            "spike encoders expect intensities in [0, 1]; got values in "
            f"[{x.min().item():.3g}, {x.max().item():.3g}]. Rescale the input first."
        )
