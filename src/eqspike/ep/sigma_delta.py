"""Spiking relaxation for any energy: neurons exchange Sigma-Delta spikes, decoded by their
neighbours as running averages (the spiking conv EP of Lin et al. 2024, spec §2).

Each free layer n keeps its analogue state s_n and a Sigma-Delta phase φ_n; per step

    s_n ← σ((1 − ε) s_n + ε (∂Φ/∂s_n(a) + nudge_n))        drive from the *decoded* neighbours a
    φ_n ← φ_n + s_n,   q_n = [φ_n > ½],   φ_n ← φ_n − q_n     (first-order Sigma-Delta)
    a_n ← λ a_n + (1 − λ) q_n                                (running-average decoder)

so every layer transmits binary spikes only, and the time-averaged dynamics approximate the rate
network. Any energy's parameter object works (Hopfield MLP or conv): drives come from
``params.layer_drive``. The EP estimators contrast the decoded states of each phase
(:meth:`SigmaDeltaSolver.readout`); BPTT runs through the same steps with a surrogate gradient
for the spike (triangle of half-width 1 around the threshold), the reference of the spec's
gradient check and memory benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from eqspike.ep.solvers import FixedPointSolver
from eqspike.neurons.rate import hard_sigmoid


class SpikeWithSurrogate(torch.autograd.Function):
    """q = [v > 0] forward; dq/dv ≈ max(0, 1 − |v|) backward (only BPTT differentiates)."""

    @staticmethod
    def forward(ctx, v: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad * (1.0 - v.abs()).clamp(min=0.0)


class SigmaDeltaState(NamedTuple):
    rates: list[torch.Tensor]  # analogue states s_n
    phases: list[torch.Tensor]  # Sigma-Delta accumulators φ_n
    decoded: list[torch.Tensor]  # running averages a_n of the spikes (what neighbours see)
    spikes: list[torch.Tensor]  # this step's spikes q_n
    phase_sum: list[torch.Tensor]  # spikes summed since the phase started
    phase_steps: int


@dataclass(frozen=True)
class SigmaDeltaSolver:
    """Sigma-Delta spiking dynamics under any energy; ``decay`` = λ of the decoder."""

    step_size: float = 1.0
    decay: float = 0.8

    def __post_init__(self) -> None:
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"solver step_size must be in (0, 1], got {self.step_size}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decoder decay must be in [0, 1), got {self.decay}")

    def init(self, params, x: torch.Tensor) -> SigmaDeltaState:
        zeros = params.init_state(x)
        return SigmaDeltaState(zeros, *([z.clone() for z in zeros] for _ in range(4)), 0)

    def start_phase(self, state: SigmaDeltaState) -> SigmaDeltaState:
        """A phase's spike averages start from zero (the dynamics continue unchanged)."""
        return state._replace(phase_sum=[torch.zeros_like(q) for q in state.spikes], phase_steps=0)

    def readout(self, state: SigmaDeltaState) -> list[torch.Tensor]:
        """The states EP contrasts: each layer's spikes averaged over the current phase
        (averaging over a whole nudged phase learns where a short running average is too
        noisy at the sparse rates of a conv net)."""
        if state.phase_steps == 0:
            return state.decoded
        return [total / state.phase_steps for total in state.phase_sum]

    def output(self, state: SigmaDeltaState) -> torch.Tensor:
        """The output layer's own analogue state (its neurons need no decoding)."""
        return state.rates[-1]

    def step(
        self,
        params,
        x_drive: torch.Tensor,
        state: SigmaDeltaState,
        beta: float = 0.0,
        target: torch.Tensor | None = None,
    ) -> SigmaDeltaState:
        """One synchronous step of every layer; differentiable (BPTT), never in-place."""
        eps, lam = self.step_size, self.decay
        rates, phases, decoded, spikes, sums = [], [], [], [], []
        last = len(state.rates) - 1
        layers = zip(state.rates, state.phases, state.decoded, state.phase_sum, strict=True)
        for n, (s, phi, a, total) in enumerate(layers):
            h = params.layer_drive(x_drive, state.decoded, n)
            if beta != 0.0 and n == last:
                h = h + beta * (target - s)
            s = hard_sigmoid(h if eps == 1.0 else (1.0 - eps) * s + eps * h)
            phi = phi + s
            q = SpikeWithSurrogate.apply(phi - 0.5)
            rates.append(s)
            phases.append(phi - q)
            decoded.append(lam * a + (1.0 - lam) * q)
            spikes.append(q)
            sums.append(total + q)
        return SigmaDeltaState(rates, phases, decoded, spikes, sums, state.phase_steps + 1)

    relax = FixedPointSolver.relax  # the same no-graph loop over this solver's steps

    def phase_stats(self, state: SigmaDeltaState, prefix: str = "") -> dict[str, float]:
        """Spikes per sample of every free layer (1 … N) since the phase started, and the
        neuron updates (one per neuron and step): the raw material of energy estimates."""
        batch = state.rates[0].shape[0]
        stats = {
            f"{prefix}spikes_layer{n}_per_sample": float(total.sum()) / batch
            for n, total in enumerate(state.phase_sum, start=1)
        }
        stats[f"{prefix}spikes_per_sample"] = sum(
            stats[f"{prefix}spikes_layer{n}_per_sample"] for n in range(1, len(state.rates) + 1)
        )
        units = sum(r[0].numel() for r in state.rates)
        stats[f"{prefix}neuron_updates_per_sample"] = float(units * state.phase_steps)
        return stats

    def free_output(
        self, params, x: torch.Tensor, steps: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Output after the free phase, and its spike counts per layer and sample."""
        state = self.relax(params, params.input_drive(x), self.init(params, x), steps)
        return self.output(state), self.phase_stats(state)
