"""Spiking EP (EqSpike): neurons that exchange only spikes through symmetric synapses.

Dynamics per step t (layers synchronous, vectorised over the batch), layer 0 = input:

    drive_n = W_n S_{n-1}(t-1) + W_{n+1}ᵀ S_{n+1}(t-1) + b_n   (+ β (y − s_N) at the output)
    u_n ← u_n + ε (drive_n − u_n),   s_n = σ(u_n),   S_n(t) = encoder(s_n)
    S_0(t) = encoder(x)                                         (pixels spike at their intensity)

which has the fixed point of discrete-time rate EP. Estimators (Martin et al. 2021; spec §3):

* :class:`SpikeDrivenEP` — the continual, local update: at every nudged step synapse (i, j)
  accumulates Δs_i·S̄_j + S̄_i·Δs_j with S̄ = ½ (S(t) + S(t−1)) (an exact rewrite of
  s_i s_j − s_i' s_j' with spikes standing in for the states). Centred: run +β and −β from
  copies of the same free state, which share their spike noise, and apply
  g = −(acc⁺ − acc⁻) / 2β; the shared noise cancels the accumulator's β-independent bias.
* :class:`SpikeCountEP` — baseline: decode each phase's rates from spike counts over the last
  ``window`` steps and apply the two-phase EP update once.

Speed without changing the arithmetic: the input is clamped, so its spike train and its drive
W_1 S_0(t) for every step are computed up front in one matrix product (:class:`InputTrain`);
the ±β phases run side by side as one batch of 2B rows, sharing the input drive; and the
input-layer accumulator Σ_t D(t)ᵀ S̄_0(t) is one product over all nudged steps at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch

from eqspike.ep.energy import MLPParams, drives, phi_param_grad_difference
from eqspike.ep.estimators import (
    EstimatorResult,
    Phases,
    RecordingEstimator,
    check_negative_beta_phase,
)
from eqspike.neurons.spiking import membrane_step, spike_count_rate, spike_encoder

MIN_RATE_WINDOW = 10


class SpikingState(NamedTuple):
    """Membranes u, states s = σ(u), last spikes S and encoder states of the free layers."""

    membranes: list[torch.Tensor]
    rates: list[torch.Tensor]
    spikes: list[torch.Tensor]
    encoders: list


class InputTrain(NamedTuple):
    """The clamped input's spikes S_0(t), t = 1..steps, and the drive W_1 S_0(t−1) + b_1 that
    layer 1 receives at step t (row t−1; S_0(0) = 0)."""

    spikes: torch.Tensor  # (steps, batch, n_in)
    drive: torch.Tensor  # (steps, batch, n_1)


def spike_fan_out(sizes: list[int], layer: int) -> int:
    """Synapses a spike of ``layer`` drives in a layered Hopfield net: the next layer and,
    through the same symmetric synapses, the previous one unless that is the clamped input."""
    last = len(sizes) - 1
    return (sizes[layer + 1] if layer < last else 0) + (sizes[layer - 1] if layer >= 2 else 0)


@dataclass
class EventCounts:
    """Events summed over the samples of a batch: the raw material of energy estimates.

    ``spikes``: emitted spikes per layer (index 0 = input); ``synaptic``: spike deliveries
    (a spike of layer n reaches layer n+1 and, through the same synapse, layer n−1 ≥ 1);
    ``neuron_updates``: membrane updates; ``weight_updates``: nonzero synapse increments.
    """

    spikes: list[float] = field(default_factory=list)
    synaptic: float = 0.0
    neuron_updates: float = 0.0
    weight_updates: float = 0.0

    def add(self, sizes: list[int], layer_spikes: list[float], rows: int) -> None:
        """One step of ``rows`` samples (phase copies included): spikes per layer, the synaptic
        deliveries they cause, and one membrane update per free neuron and row."""
        if not self.spikes:
            self.spikes = [0.0] * len(layer_spikes)
        self.spikes = [a + b for a, b in zip(self.spikes, layer_spikes, strict=True)]
        for n, count in enumerate(layer_spikes):
            self.synaptic += count * spike_fan_out(sizes, n)
        self.neuron_updates += rows * sum(sizes[1:])

    def per_sample(self, batch: int, prefix: str = "") -> dict[str, float]:
        out = {
            f"{prefix}spikes_per_sample": sum(self.spikes) / batch,
            f"{prefix}synaptic_events_per_sample": self.synaptic / batch,
            f"{prefix}neuron_updates_per_sample": self.neuron_updates / batch,
        }
        if self.weight_updates:
            out[f"{prefix}weight_update_events_per_sample"] = self.weight_updates / batch
        for n, count in enumerate(self.spikes):
            out[f"{prefix}spikes_layer{n}_per_sample"] = count / batch
        return out


@dataclass(frozen=True)
class SpikingSolver:
    """Relaxes a Hopfield energy with spiking neurons; ``neuron`` names the spike encoder."""

    neuron: str = "sigma_delta"
    epsilon: float = 0.2
    dither: bool = False  # random initial Sigma-Delta phases (desynchronises equal rates)
    readout_steps: int = (
        1  # prediction: output state averaged over the last steps of the free phase
    )

    def __post_init__(self) -> None:
        spike_encoder(self.neuron)  # validates the name
        if not 0.0 < self.epsilon <= 1.0:
            raise ValueError(f"spiking solver epsilon must be in (0, 1], got {self.epsilon}")

    def input_train(
        self, params: MLPParams, x: torch.Tensor, steps: int, generator: torch.Generator | None
    ) -> InputTrain:
        """Spike the clamped input for ``steps`` steps and compute its drive in one product."""
        encoder = spike_encoder(self.neuron)
        enc = encoder.init(x, generator, self.dither)
        spikes = []
        for _ in range(steps):
            spike, enc = encoder.step(x, enc)
            spikes.append(spike)
        train = torch.stack(spikes)
        previous = torch.cat([torch.zeros_like(train[:1]), train[:-1]])
        # Inputs at 0 never spike (any encoder): leave their columns out of the product.
        active = active_inputs(x)
        drive = torch.addmm(
            params.biases[0],
            previous[..., active].reshape(-1, len(active)),
            params.weights[0][:, active].t(),
        ).view(steps, x.shape[0], -1)
        return InputTrain(train, drive)

    def init_state(
        self, params: MLPParams, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> SpikingState:
        encoder = spike_encoder(self.neuron)
        zeros = params.init_state(x)
        return SpikingState(
            [z.clone() for z in zeros],
            [z.clone() for z in zeros],
            [z.clone() for z in zeros],
            [encoder.init(z, generator, self.dither) for z in zeros],
        )

    def copy(self, state: SpikingState, tile: int = 1) -> SpikingState:
        """A copy (``tile`` copies stacked along the batch) that replays the same spike noise."""
        encoder = spike_encoder(self.neuron)

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.repeat(tile, 1) if tile > 1 else t.clone()

        return SpikingState(
            [rep(m) for m in state.membranes],
            [rep(r) for r in state.rates],
            [rep(s) for s in state.spikes],
            [encoder.copy(e, tile) for e in state.encoders],
        )

    def step(
        self,
        params: MLPParams,
        input_drive: torch.Tensor,
        state: SpikingState,
        beta: float | torch.Tensor = 0.0,
        target: torch.Tensor | None = None,
        tile: int = 1,
    ) -> SpikingState:
        """One step of every free layer; ``beta`` may be a per-row column (±β side by side)."""
        encoder = spike_encoder(self.neuron)
        h = drives(params, input_drive, state.spikes)
        if isinstance(beta, torch.Tensor) or beta != 0.0:
            h[-1] = h[-1] + beta * params.nudge(state.rates[-1], target)
        membranes, rates, spikes, encoders = [], [], [], []
        for drive, membrane, enc in zip(h, state.membranes, state.encoders, strict=True):
            s, u = membrane_step(drive, membrane, self.epsilon)
            spike, enc = encoder.step(s, enc, tile)
            membranes.append(u)
            rates.append(s)
            spikes.append(spike)
            encoders.append(enc)
        return SpikingState(membranes, rates, spikes, encoders)

    def relax(
        self,
        params: MLPParams,
        inputs: InputTrain,
        start: int,
        state: SpikingState,
        steps: int,
        beta: float = 0.0,
        target: torch.Tensor | None = None,
        counts: EventCounts | None = None,
        record: list[list[torch.Tensor]] | None = None,
    ) -> SpikingState:
        """Steps ``start+1 .. start+steps`` of the input train, without autograd.

        Optionally counts events and records every layer's spikes (input first) per step.
        """
        sizes = [inputs.spikes.shape[2], *(r.shape[1] for r in state.rates)]
        with torch.no_grad():
            for t in range(start, start + steps):
                state = self.step(params, inputs.drive[t], state, beta, target)
                if record is not None:
                    record.append([inputs.spikes[t].clone(), *(s.clone() for s in state.spikes)])
                if counts is not None:
                    layer_spikes = [float(s.sum()) for s in state.spikes]
                    counts.add(
                        sizes, [float(inputs.spikes[t].sum()), *layer_spikes], len(inputs.spikes[t])
                    )
        return state

    def free_output(
        self, params: MLPParams, x: torch.Tensor, steps: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Output states after the free phase — averaged over its last ``readout_steps`` steps —
        and the phase's event counts per sample (inference).

        Bernoulli neurons draw from a fixed seed here, so that evaluation is deterministic.
        """
        generator = torch.Generator().manual_seed(0)
        counts = EventCounts()
        inputs = self.input_train(params, x, steps, generator)
        window = min(self.readout_steps, steps)
        state = self.relax(
            params, inputs, 0, self.init_state(params, x, generator), steps - window, counts=counts
        )
        output = torch.zeros_like(state.rates[-1])
        for t in range(steps - window, steps):
            state = self.relax(params, inputs, t, state, 1, counts=counts)
            output += state.rates[-1] / window
        return output, counts.per_sample(x.shape[0])


def active_inputs(x: torch.Tensor) -> torch.Tensor:
    """Indices of the input features that are nonzero for some sample of the batch."""
    return (x != 0).any(0).nonzero().squeeze(1)


def _check_estimator(variant: str, beta: float) -> None:
    if not beta > 0:
        raise ValueError(
            f"spiking EP needs beta > 0 (got {beta}): a nudged phase with beta = 0 carries no "
            "learning signal; use e.g. beta: 0.2."
        )
    if variant not in ("centered", "one_sided"):
        raise ValueError(f"unknown EP variant {variant!r}; choose centered or one_sided")
    check_negative_beta_phase(variant, beta)


def _free(solver, params, x, phases, generator, counts):
    inputs = solver.input_train(params, x, phases.free_steps + phases.nudged_steps, generator)
    state = solver.relax(
        params, inputs, 0, solver.init_state(params, x, generator), phases.free_steps, counts=counts
    )
    return inputs, state


@dataclass(frozen=True)
class SpikeDrivenEP(RecordingEstimator):
    """The continual, spike-driven local update (see module docstring)."""

    beta: float
    variant: Literal["centered", "one_sided"] = "centered"

    def __post_init__(self) -> None:
        _check_estimator(self.variant, self.beta)

    def _run(self, solver, params, x, target, phases, generator, record):
        batch = x.shape[0]
        sizes = [x.shape[1], *(w.shape[0] for w in params.weights)]
        counts = EventCounts()
        inputs, free = _free(solver, params, x, phases, generator, counts)
        free_stats = counts.per_sample(batch, "free_")
        tile = 2 if self.variant == "centered" else 1
        signs = torch.ones(tile * batch, 1, dtype=x.dtype, device=x.device)
        signs[batch:] = -1.0  # +β rows first, then −β rows (same samples, same spike noise)
        beta = self.beta * signs
        target_rows = target.repeat(tile, 1)
        state = solver.copy(free, tile)
        acc_w = [torch.zeros_like(w) for w in params.weights]
        acc_b = [torch.zeros_like(b) for b in params.biases]
        input_deltas, input_means, history = [], [], []
        with torch.no_grad():
            for t in range(phases.free_steps, phases.free_steps + phases.nudged_steps):
                drive = inputs.drive[t].repeat(tile, 1)
                new = solver.step(params, drive, state, beta, target_rows, tile)
                delta = [signs * (a - b) for a, b in zip(new.rates, state.rates, strict=True)]
                means = [0.5 * (a + b) for a, b in zip(new.spikes, state.spikes, strict=True)]
                # Input synapses: pre spikes identical in all rows -> sum the signed post changes.
                input_deltas.append(delta[0].view(tile, batch, -1).sum(0))
                input_means.append(0.5 * (inputs.spikes[t] + inputs.spikes[t - 1]))
                for n in range(1, len(acc_w)):  # W_n: pre = layer n (free index n-1), post = n+1
                    acc_w[n] += local_increment(delta[n], means[n - 1], means[n], delta[n - 1])
                for n, d in enumerate(delta):
                    acc_b[n] += d.sum(0)
                counts.add(
                    sizes,
                    [tile * float(inputs.spikes[t].sum()), *(float(s.sum()) for s in new.spikes)],
                    tile * batch,
                )
                counts.weight_updates += _update_events(delta, means, input_means[-1], tile)
                state = new
                if record:
                    w0 = sum(d.t() @ m for d, m in zip(input_deltas, input_means, strict=True))
                    history.append(self._scale(acc_w, acc_b, w0, tile, batch))
            k_b = phases.nudged_steps * batch
            active = active_inputs(x)  # silent inputs contribute S̄_j = 0 to every increment
            w0 = torch.zeros_like(params.weights[0])
            w0[:, active] = torch.stack(input_deltas).view(k_b, -1).t() @ torch.stack(input_means)[
                ..., active
            ].reshape(k_b, -1)
        grads = self._scale(acc_w, acc_b, w0, tile, batch)
        output = free.rates[-1]
        stats = free_stats | counts.per_sample(batch)
        return EstimatorResult(grads, output, params.cost(output, target), stats), history

    def _scale(self, acc_w, acc_b, w0, tile, batch) -> MLPParams:
        """g = −acc / (phases · β · batch): acc already holds acc⁺ − acc⁻ when centred."""
        scale = -1.0 / (tile * self.beta * batch)
        weights = (scale * w0, *(scale * a for a in acc_w[1:]))
        return MLPParams(weights, tuple(scale * a for a in acc_b))


def local_increment(
    post_change: torch.Tensor,
    pre_spikes: torch.Tensor,
    post_spikes: torch.Tensor,
    pre_change: torch.Tensor | None,
) -> torch.Tensor:
    """Σ_batch Δs_i S̄_j + S̄_i Δs_j for every synapse (i post, j pre), shape (n_post, n_pre).

    Entry (i, j) reads only neuron i's and neuron j's own quantities: the rule is local.
    ``pre_change`` is None for clamped input neurons (Δs_j = 0).
    """
    increment = post_change.t() @ pre_spikes
    if pre_change is not None:
        increment = increment + post_spikes.t() @ pre_change
    return increment


def _update_events(delta, means, input_mean, tile) -> float:
    """Nonzero increments Δs_i S̄_j + S̄_i Δs_j, summed over rows and weight layers."""
    nonzero = [(d != 0).sum(1).double() for d in delta]
    active = [(m != 0).sum(1).double() for m in means]
    events = nonzero[0] @ (input_mean != 0).sum(1).double().repeat(tile)
    for n in range(1, len(delta)):
        events = events + nonzero[n] @ active[n - 1] + active[n] @ nonzero[n - 1]
    return float(events)


@dataclass(frozen=True)
class SpikeCountEP:
    """Two-phase baseline: rates decoded from spike counts over the last ``window`` steps of
    each phase, then the (centred or one-sided) EP update applied once."""

    beta: float
    variant: Literal["centered", "one_sided"] = "centered"
    window: int = 20

    def __post_init__(self) -> None:
        _check_estimator(self.variant, self.beta)
        if self.window < MIN_RATE_WINDOW:
            raise ValueError(
                f"a spike-count window of {self.window} steps resolves rates only to "
                f"1/{self.window}; use window >= {MIN_RATE_WINDOW}."
            )

    def _phase(self, solver, params, inputs, start, state, steps, beta, target, counts):
        """Run ``steps``; return the final state and the rates counted over the last window."""
        if steps < self.window:
            raise ValueError(
                f"phase of {steps} steps is shorter than the spike-count window ({self.window}); "
                "lengthen the phase or shorten estimator.window."
            )
        head = steps - self.window
        state = solver.relax(params, inputs, start, state, head, beta, target, counts)
        record: list[list[torch.Tensor]] = []
        state = solver.relax(
            params, inputs, start + head, state, self.window, beta, target, counts, record
        )
        rates = [spike_count_rate(torch.stack(layer)) for layer in zip(*record, strict=True)]
        return state, rates

    def gradients(
        self,
        solver: SpikingSolver,
        params: MLPParams,
        x: torch.Tensor,
        target: torch.Tensor,
        phases: Phases,
        generator: torch.Generator | None = None,
    ) -> EstimatorResult:
        """The two-phase spike-count estimate of ∂L/∂θ on a batch."""
        batch, free_steps = x.shape[0], phases.free_steps
        counts = EventCounts()
        inputs = solver.input_train(params, x, free_steps + phases.nudged_steps, generator)
        start = solver.init_state(params, x, generator)
        free, free_rates = self._phase(
            solver, params, inputs, 0, start, free_steps, 0.0, None, counts
        )
        free_stats = counts.per_sample(batch, "free_")
        nudged = [
            self._phase(
                solver,
                params,
                inputs,
                free_steps,
                solver.copy(free),
                phases.nudged_steps,
                b,
                target,
                counts,
            )[1]
            for b in ((self.beta, -self.beta) if self.variant == "centered" else (self.beta,))
        ]
        plus, minus = (nudged[0], nudged[1]) if len(nudged) == 2 else (nudged[0], free_rates)
        scale = -1.0 / (len(nudged) * self.beta)
        # The input's decoded rates are the same in every nudged phase (same encoder copies).
        grads = phi_param_grad_difference(plus[0], plus[1:], minus[1:], scale)
        output = free.rates[-1]
        stats = free_stats | counts.per_sample(batch)
        return EstimatorResult(grads, output, params.cost(output, target), stats)
