"""Spiking relaxation for any energy: neurons exchange Sigma-Delta spikes, decoded by their
neighbours as running averages (the spiking conv EP of Lin et al. 2024, spec §2).

Each free layer n keeps its analogue state s_n and a Sigma-Delta phase φ_n; per step

    s_n ← σ((1 − ε) s_n + ε (∂Φ/∂s_n(a) + nudge_n))        drive from the *decoded* neighbours a
    φ_n ← φ_n + s_n,   q_n = [φ_n > ½],   φ_n ← φ_n − q_n     (first-order Sigma-Delta)
    a_n ← λ a_n + (1 − λ) q_n                                (running-average decoder)

so every layer transmits binary spikes only, and the time-averaged dynamics approximate the rate
network. The neuron is pluggable (``neuron``): ``sigma_delta`` as above, or ``bernoulli``,
q_n ~ Bernoulli(s_n) from a per-layer random stream (both nudged phases replay the free phase's
stream, so their contrast shares the noise); BPTT passes it straight through (dq/ds = 1).
Any energy's parameter object works (Hopfield MLP or conv): drives come from
``params.layer_drive``. The EP estimators contrast the decoded states of each phase
(:meth:`SigmaDeltaSolver.readout`); BPTT runs through the same steps with a surrogate gradient
for the spike (triangle of half-width 1 around the threshold), the reference of the spec's
gradient check and memory benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from eqspike.ep.solvers import FixedPointSolver, feedforward_state
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


def _fire_sigma_delta(s: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """φ ← φ + s; q = [φ > ½] (surrogate gradient); φ ← φ − q."""
    phi = phi + s
    q = SpikeWithSurrogate.apply(phi - 0.5)
    return q, phi - q


def _fire_bernoulli(
    s: torch.Tensor, stream: torch.Generator
) -> tuple[torch.Tensor, torch.Generator]:
    """q ~ Bernoulli(s) from the layer's stream; straight-through gradient for BPTT."""
    uniform = torch.rand(s.shape, generator=stream, dtype=s.dtype, device=s.device)
    hard = (uniform < s).to(s.dtype)
    return (s + (hard - s).detach() if s.requires_grad else hard), stream


def _copy_stream(stream: torch.Generator) -> torch.Generator:
    copy = torch.Generator(device=stream.device)
    copy.set_state(stream.get_state())
    return copy


NEURONS = ("sigma_delta", "bernoulli")


class SigmaDeltaState(NamedTuple):
    rates: list[torch.Tensor]  # analogue states s_n
    phases: list  # per layer: Sigma-Delta accumulator φ_n, or the Bernoulli random stream
    decoded: list[torch.Tensor]  # running averages a_n of the spikes (what neighbours see)
    spikes: list[torch.Tensor]  # this step's spikes q_n
    phase_sum: list[torch.Tensor]  # spikes summed since the phase started
    phase_steps: int


@dataclass(frozen=True)
class SigmaDeltaSolver:
    """Spiking dynamics under any energy: ``neuron`` (Sigma-Delta or Bernoulli) spikes,
    decoded by running averages with factor ``decay`` = λ."""

    step_size: float = 1.0
    decay: float = 0.8
    neuron: str = "sigma_delta"
    warm_start: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"solver step_size must be in (0, 1], got {self.step_size}")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decoder decay must be in [0, 1), got {self.decay}")
        if self.neuron not in NEURONS:
            raise ValueError(f"unknown neuron {self.neuron!r}; choose one of {list(NEURONS)}")

    def init(
        self, params, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> SigmaDeltaState:
        """Every layer silent; Bernoulli neurons get one random stream per layer, seeded from
        ``generator`` (a fixed seed when None, so that evaluation is deterministic).
        ``warm_start``: states and decoders start at the feed-forward sweep (as if each layer
        had been spiking at that rate), spikes and counts at zero."""
        zeros = params.init_state(x)
        start = feedforward_state(params, x) if self.warm_start else zeros
        if self.neuron == "sigma_delta":
            phases: list = [z.clone() for z in zeros]
        else:
            generator = generator or torch.Generator().manual_seed(0)
            seeds = torch.randint(0, 2**62, (len(zeros),), generator=generator).tolist()
            phases = [torch.Generator(device=x.device).manual_seed(seed) for seed in seeds]
        decoded = [s.clone() for s in start]
        spikes, counts = [z.clone() for z in zeros], [z.clone() for z in zeros]
        return SigmaDeltaState(list(start), phases, decoded, spikes, counts, 0)

    def start_phase(self, state: SigmaDeltaState) -> SigmaDeltaState:
        """A phase's spike averages start from zero (the dynamics continue unchanged; Bernoulli
        streams are copied, so phases started from the same state draw the same numbers)."""
        phases = state.phases
        if self.neuron == "bernoulli":
            phases = [_copy_stream(stream) for stream in phases]
        return state._replace(
            phases=phases, phase_sum=[torch.zeros_like(q) for q in state.spikes], phase_steps=0
        )

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
        fire = _fire_sigma_delta if self.neuron == "sigma_delta" else _fire_bernoulli
        rates, phases, decoded, spikes, sums = [], [], [], [], []
        last = len(state.rates) - 1
        layers = zip(state.rates, state.phases, state.decoded, state.phase_sum, strict=True)
        for n, (s, phi, a, total) in enumerate(layers):
            h = params.layer_drive(x_drive, state.decoded, n)
            if beta != 0.0 and n == last:
                h = h + beta * (target - s)
            s = hard_sigmoid(h if eps == 1.0 else (1.0 - eps) * s + eps * h)
            q, phi = fire(s, phi)
            rates.append(s)
            phases.append(phi)
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
        state = self.relax(params, params.input_drive(x), self.init(params, x, None), steps)
        return self.output(state), self.phase_stats(state)
