"""Spiking neurons as pure step functions: ``step(rate, state) -> (spikes, new_state)``.

A neuron keeps a local analogue state s in [0, 1] and communicates only binary spikes. Two
encoders turn s into spikes behind one interface (:data:`SPIKE_ENCODERS`):

* **Sigma-Delta** (deterministic, first order): φ ← φ + s; S = [φ > ½]; φ ← φ − S. The spike
  count over T steps differs from Σ s by less than 1, so the rate is exact to within 1/T.
* **Bernoulli** (stochastic): S ~ Bernoulli(s), drawn from the state's own generator, so two
  copies of the same state (the ±β nudged phases) draw the same random numbers.

The membrane that feeds them is a leaky integrator of the drive, u ← u + ε (drive − u), with
s = σ(u) (:func:`membrane_step`): filtering the drive, not σ(drive), keeps the fixed point of
rate-based EP (the mean of σ(W·spikes) is not σ(W·rates)).

Both steps are differentiable where BPTT needs them (rates that require grad): Sigma-Delta
through a surrogate, dS/dφ ≈ max(0, 1 − |φ − ½|) (:class:`SpikeWithSurrogate`), Bernoulli
straight through (dS/ds = 1). Without grad they are plain comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch

from eqspike.neurons.rate import hard_sigmoid
from eqspike.shard import per_example


class SpikeWithSurrogate(torch.autograd.Function):
    """S = [v > 0] forward; dS/dv ≈ max(0, 1 − |v|) backward (only BPTT differentiates)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad * (1.0 - v.abs()).clamp(min=0.0)


class SigmaDeltaState(NamedTuple):
    """Residual φ of the Sigma-Delta quantiser (starts at 0)."""

    residual: torch.Tensor


class BernoulliState(NamedTuple):
    """The random stream of a layer; copying the state replays the same draws."""

    generator: torch.Generator


def sigma_delta_init(
    like: torch.Tensor, generator: torch.Generator | None = None, dither: bool = False
) -> SigmaDeltaState:
    """φ = 0, or with ``dither`` a random phase φ ~ U(−½, ½) per neuron (from ``generator``),
    so that neurons with equal rates do not all spike on the same steps."""
    if not dither:
        return SigmaDeltaState(torch.zeros_like(like))
    uniform = per_example(
        lambda full: torch.rand(full, generator=generator, dtype=like.dtype), like.shape
    )
    return SigmaDeltaState(uniform.to(like.device) - 0.5)


def sigma_delta_step(
    rate: torch.Tensor, state: SigmaDeltaState, tile: int = 1
) -> tuple[torch.Tensor, SigmaDeltaState]:
    """φ ← φ + s; S = [φ > ½]; φ ← φ − S. (Deterministic: ``tile`` has nothing to share.)"""
    residual = state.residual + rate
    if residual.requires_grad:
        spikes = SpikeWithSurrogate.apply(residual - 0.5)
    else:
        spikes = (residual > 0.5).to(rate.dtype)
    return spikes, SigmaDeltaState(residual - spikes)


def sigma_delta_copy(state: SigmaDeltaState, tile: int = 1) -> SigmaDeltaState:
    """An independent copy; ``tile`` copies stacked along the batch dimension."""
    residual = state.residual
    return SigmaDeltaState(residual.repeat(tile, *([1] * (residual.dim() - 1))))


def bernoulli_init(
    like: torch.Tensor, generator: torch.Generator | None = None, dither: bool = False
) -> BernoulliState:
    """A generator seeded from ``generator`` (``dither`` is moot: draws are independent)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return BernoulliState(torch.Generator(device=like.device).manual_seed(seed))


def bernoulli_step(
    rate: torch.Tensor, state: BernoulliState, tile: int = 1
) -> tuple[torch.Tensor, BernoulliState]:
    """S ~ Bernoulli(s) with the state's generator.

    ``tile`` = k: the batch holds k copies of the same samples (e.g. the +β and −β phases run
    side by side); one set of random numbers is drawn and shared by the k copies.
    """
    shape = (rate.shape[0] // tile, *rate.shape[1:])
    uniform = per_example(
        lambda full: torch.rand(
            full, generator=state.generator, dtype=rate.dtype, device=rate.device
        ),
        shape,
    )
    if tile > 1:
        uniform = uniform.repeat(tile, *([1] * (rate.dim() - 1)))
    spikes = (uniform < rate).to(rate.dtype)
    if rate.requires_grad:  # straight through
        spikes = rate + (spikes - rate).detach()
    return spikes, state


def bernoulli_copy(state: BernoulliState, tile: int = 1) -> BernoulliState:
    """A generator at the same position: it replays the same draws (shared by ``tile`` copies)."""
    generator = torch.Generator(device=state.generator.device)
    generator.set_state(state.generator.get_state())
    return BernoulliState(generator)


@dataclass(frozen=True)
class SpikeEncoder:
    """A spiking neuron model: initial state, step, and a copy that replays the same future."""

    init: Callable
    step: Callable
    copy: Callable


SPIKE_ENCODERS: dict[str, SpikeEncoder] = {
    "sigma_delta": SpikeEncoder(sigma_delta_init, sigma_delta_step, sigma_delta_copy),
    "bernoulli": SpikeEncoder(bernoulli_init, bernoulli_step, bernoulli_copy),
}


def spike_encoder(name: str) -> SpikeEncoder:
    if name not in SPIKE_ENCODERS:
        raise ValueError(f"unknown neuron {name!r}; choose one of {sorted(SPIKE_ENCODERS)}")
    return SPIKE_ENCODERS[name]


def membrane_step(
    drive: torch.Tensor, membrane: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """u ← u + ε (drive − u); returns (s = σ(u), u)."""
    membrane = membrane + epsilon * (drive - membrane)
    return hard_sigmoid(membrane), membrane


def spike_count_rate(spikes: torch.Tensor) -> torch.Tensor:
    """Decode a rate from a spike train of shape (time, ...): the count divided by the window."""
    return spikes.mean(0)
