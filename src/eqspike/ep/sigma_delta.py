"""Spiking relaxation for any energy: neurons exchange Sigma-Delta spikes, decoded by their
neighbours as running averages (the spiking conv EP of Lin et al. 2024, spec §2).

Each free layer n keeps its analogue state s_n and a Sigma-Delta phase φ_n; per step

    s_n ← σ((1 − ε) s_n + ε (∂Φ/∂s_n(a) + nudge_n))        drive from the *decoded* neighbours a
    φ_n ← φ_n + s_n,   q_n = [φ_n > ½],   φ_n ← φ_n − q_n     (first-order Sigma-Delta)
    a_n ← λ a_n + (1 − λ) q_n                                (running-average decoder)

so every layer transmits binary spikes only, and the time-averaged dynamics approximate the rate
network. The neuron is pluggable (``neuron``: any of ``neurons.spiking.SPIKE_ENCODERS``,
the same step functions EqSpike uses): ``sigma_delta`` as above, or ``bernoulli``,
q_n ~ Bernoulli(s_n) from a per-layer random stream (both nudged phases replay the free phase's
stream, so their contrast shares the noise). Any energy's parameter object works (Hopfield MLP or
conv): drives come from ``params.layer_drive``. The EP estimators contrast the decoded states of
each phase (:meth:`SigmaDeltaSolver.readout`); BPTT runs through the same steps with the
neurons' surrogate (Sigma-Delta: triangle of half-width 1 around the threshold) or
straight-through (Bernoulli) gradients, the reference of the spec's gradient check and memory
benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from eqspike.ep.solvers import FixedPointSolver, feedforward_state
from eqspike.neurons.rate import hard_sigmoid
from eqspike.neurons.spiking import SPIKE_ENCODERS, spike_encoder

NEURONS = tuple(SPIKE_ENCODERS)  # the pluggable spiking neurons of neurons/spiking.py
# What EP contrasts per phase: the spikes averaged over it (the spec's decoded spike states),
# or each neuron's own analogue state averaged over it (less quantisation noise; measured in
# benchmarks/conv_alignment.py).
CONTRASTS = ("spikes", "analogue")


class SpikingRelaxationState(NamedTuple):
    rates: list[torch.Tensor]  # analogue states s_n
    neurons: list  # per layer: the neuron's state (Sigma-Delta residual φ_n, Bernoulli stream)
    decoded: list[torch.Tensor]  # running averages a_n of the spikes (what neighbours see)
    spikes: list[torch.Tensor]  # this step's spikes q_n
    phase_sum: list[torch.Tensor]  # spikes summed since the phase started
    phase_steps: int
    rate_sum: list[torch.Tensor] | None = None  # analogue states summed (contrast "analogue")


@dataclass(frozen=True)
class SigmaDeltaSolver:
    """Spiking dynamics under any energy: ``neuron`` (Sigma-Delta or Bernoulli) spikes,
    decoded by running averages with factor ``decay`` = λ."""

    step_size: float = 1.0
    decay: float = 0.8
    neuron: str = "sigma_delta"
    warm_start: bool = False
    contrast: str = "spikes"

    def __post_init__(self) -> None:
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"solver step_size must be in (0, 1], got {self.step_size}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decoder decay must be in [0, 1), got {self.decay}")
        if self.neuron not in NEURONS:
            raise ValueError(f"unknown neuron {self.neuron!r}; choose one of {list(NEURONS)}")
        if self.contrast not in CONTRASTS:
            raise ValueError(f"unknown contrast {self.contrast!r}; choose one of {list(CONTRASTS)}")

    def init(
        self, params, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> SpikingRelaxationState:
        """Every layer silent; Bernoulli neurons get one random stream per layer, seeded from
        ``generator`` (a fixed seed when None, so that evaluation is deterministic).
        ``warm_start``: states and decoders start at the feed-forward sweep (as if each layer
        had been spiking at that rate), spikes and counts at zero."""
        zeros = params.init_state(x)
        start = feedforward_state(params, x) if self.warm_start else zeros
        encoder = spike_encoder(self.neuron)
        generator = generator or torch.Generator().manual_seed(0)
        neurons = [encoder.init(z, generator) for z in zeros]
        decoded = [s.clone() for s in start]
        spikes, counts = [z.clone() for z in zeros], [z.clone() for z in zeros]
        rate_sum = [z.clone() for z in zeros] if self.contrast == "analogue" else None
        return SpikingRelaxationState(list(start), neurons, decoded, spikes, counts, 0, rate_sum)

    def start_phase(self, state: SpikingRelaxationState) -> SpikingRelaxationState:
        """A phase's spike averages start from zero (the dynamics continue unchanged; Bernoulli
        streams are copied, so phases started from the same state draw the same numbers)."""
        copy = spike_encoder(self.neuron).copy
        return state._replace(
            neurons=[copy(neuron) for neuron in state.neurons],
            phase_sum=[torch.zeros_like(q) for q in state.spikes],
            phase_steps=0,
            rate_sum=[torch.zeros_like(r) for r in state.rates]
            if self.contrast == "analogue"
            else None,
        )

    def readout(self, state: SpikingRelaxationState) -> list[torch.Tensor]:
        """The states EP contrasts: each layer's spikes (or, contrast "analogue", its analogue
        states) averaged over the current phase (averaging over a whole nudged phase learns
        where a short running average is too noisy at the sparse rates of a conv net)."""
        if state.phase_steps == 0:
            return state.decoded
        sums = state.rate_sum if state.rate_sum is not None else state.phase_sum
        return [total / state.phase_steps for total in sums]

    def output(self, state: SpikingRelaxationState) -> torch.Tensor:
        """The output layer's own analogue state (its neurons need no decoding)."""
        return state.rates[-1]

    def step(
        self,
        params,
        x_drive: torch.Tensor,
        state: SpikingRelaxationState,
        beta: float = 0.0,
        target: torch.Tensor | None = None,
    ) -> SpikingRelaxationState:
        """One synchronous step of every layer; differentiable (BPTT), never in-place."""
        eps, lam = self.step_size, self.decay
        fire = spike_encoder(self.neuron).step
        rates, neurons, decoded, spikes, sums = [], [], [], [], []
        last = len(state.rates) - 1
        layers = zip(state.rates, state.neurons, state.decoded, state.phase_sum, strict=True)
        for n, (s, neuron, a, total) in enumerate(layers):
            h = params.layer_drive(x_drive, state.decoded, n)
            if beta != 0.0 and n == last:
                h = h + beta * params.nudge(s, target)
            s = hard_sigmoid(h if eps == 1.0 else (1.0 - eps) * s + eps * h)
            q, neuron = fire(s, neuron)  # the neuron's step (surrogate/straight-through for BPTT)
            rates.append(s)
            neurons.append(neuron)
            decoded.append(lam * a + (1.0 - lam) * q)
            spikes.append(q)
            sums.append(total + q)
        rate_sum = None
        if state.rate_sum is not None:
            rate_sum = [total + r for total, r in zip(state.rate_sum, rates, strict=True)]
        return SpikingRelaxationState(
            rates, neurons, decoded, spikes, sums, state.phase_steps + 1, rate_sum
        )

    relax = FixedPointSolver.relax  # the same no-graph loop over this solver's steps

    def phase_stats(self, state: SpikingRelaxationState, prefix: str = "") -> dict[str, float]:
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
        state = self.relax(params, params.input_drive(x), self.init(params, x, None), steps)
        return self.output(state), self.phase_stats(state)
