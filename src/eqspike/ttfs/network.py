"""The layered time-to-first-spike network the trainer runs, with the substrate distortions.

Each layer maps the spike times of its inputs (plus an optional bias spike) to the first spike
times of its LIF neurons, exactly (:mod:`eqspike.ttfs.spike_times`) or on a time grid
(:mod:`eqspike.ttfs.integrator`, for a time-discretised substrate or τ_m mismatch; gradients
are then the closed forms at the measured times, as in hardware-in-the-loop training).
Prediction: the earliest output spike; a sample with no output spike counts as wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from eqspike.shard import per_example
from eqspike.ttfs.integrator import integrate_first_spikes
from eqspike.ttfs.recipe import DistortionConfig, TTFSConfig
from eqspike.ttfs.spike_times import check_input_times, spike_times

SILENT_CAP = 1e3  # stands in for "no spike" inside the softmax (exp(-1e3/ξ) = 0)


@dataclass
class TTFSStepResult:
    """What :meth:`TTFSNetwork.learning_step` hands the trainer."""

    output: torch.Tensor  # output spike times (batch, n_out)
    loss: torch.Tensor  # per sample
    stats: dict[str, float] = field(default_factory=dict)
    weight_bump: list[torch.Tensor] | None = None  # instead of a gradient (silent layers)


def quantise_weights(w: torch.Tensor, bits: int | None, limit: float | None) -> torch.Tensor:
    """Clip to ±limit and round to limit / (2^bits - 1) steps in the forward pass; the gradient
    passes straight through to the float "shadow" weights (quantisation-aware training)."""
    if limit is None:
        return w
    q = w.clamp(-limit, limit)
    if bits is not None:
        step = limit / (2**bits - 1)
        q = torch.round(q / step) * step
    return w + (q - w).detach()


def standard_normal(
    shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """N(0, 1) noise drawn in float64 and cast to ``like``'s dtype and device, so that one seed
    gives the same noise in float64 and float32 runs (torch draws other numbers per dtype):
    a float32 run then follows its float64 twin up to rounding."""
    noise = per_example(
        lambda full: torch.randn(full, generator=generator, dtype=torch.float64), shape
    )
    return noise.to(like)


class TTFSNetwork(nn.Module):
    """Feed-forward LIF network trained on first-spike times (Göltz et al. 2021)."""

    bumps_weights = True  # the trainer applies ``weight_bump`` instead of a step

    def __init__(self, config: TTFSConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.config = config
        m = config.model
        self.sizes = list(m.layers)
        bias = m.bias_times is not None
        self.weights = nn.ParameterList()
        for n, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            w = torch.randn(n_in + int(bias), n_out, generator=generator, dtype=torch.float64)
            self.weights.append(nn.Parameter(w * m.init_std[n] + m.init_mean[n]))
        self._make_patterns(config.distortions)
        n_layers = len(self.weights)
        self.register_buffer("bump_values", torch.full((n_layers,), config.stabiliser.bump_value))
        self.register_buffer("bumped_last", torch.zeros(n_layers, dtype=torch.bool))
        self.last_forward_stats: dict[str, float] = {}
        self._eval_generator = torch.Generator().manual_seed(config.seed + 1)

    # --- substrate ------------------------------------------------------------------------

    def _make_patterns(self, d: DistortionConfig) -> None:
        """Frozen per-network patterns, unit-scaled (σ multiplies them at use), regenerated
        from ``distortions.seed`` so that a sweep over σ scales one and the same pattern."""
        g = torch.Generator().manual_seed(d.seed)
        for n, w in enumerate(self.weights):
            n_out = w.shape[1]
            self.register_buffer(f"weight_pattern{n}", torch.randn(w.shape, generator=g), False)
            self.register_buffer(f"threshold_pattern{n}", torch.randn(n_out, generator=g), False)
            self.register_buffer(f"tau_pattern{n}", torch.randn(n_out, generator=g), False)
            self.register_buffer(f"dead_draw{n}", torch.rand(n_out, generator=g), False)

    def set_distortions(self, distortions: DistortionConfig) -> None:
        """Switch the substrate (evaluation sweeps) without touching the trained weights."""
        self.config = self.config.model_copy(update={"distortions": distortions})
        device = self.weights[0].device
        self._make_patterns(distortions)
        self.to(device)

    def _dead(self, n: int) -> torch.Tensor | None:
        fraction = self.config.distortions.dead_neurons
        if fraction <= 0 or n == len(self.weights) - 1:  # output neurons stay alive
            return None
        return getattr(self, f"dead_draw{n}") < fraction

    def effective_weights(self, n: int) -> torch.Tensor:
        d = self.config.distortions
        w = quantise_weights(self.weights[n], d.weight_bits, d.weight_range)
        if d.weight_fixed_pattern > 0:
            w = w * (1 + d.weight_fixed_pattern * getattr(self, f"weight_pattern{n}").to(w))
        return w

    def _threshold(self, n: int, batch: int, generator: torch.Generator) -> torch.Tensor:
        """θ per neuron (1, J) or per (sample, neuron) (B, J), with the substrate's noise."""
        d, theta = self.config.distortions, self.config.model.threshold
        w = self.weights[n]
        value = torch.full((1, w.shape[1]), theta, dtype=w.dtype, device=w.device)
        if d.threshold_fixed_pattern > 0:
            value = value * (1 + d.threshold_fixed_pattern * getattr(self, f"threshold_pattern{n}"))
        if d.threshold_noise > 0:
            noise = standard_normal((batch, w.shape[1]), generator, w)
            value = value * (1 + d.threshold_noise * noise)
        return value.clamp(min=1e-3)

    def _uses_integrator(self) -> float | None:
        d, m = self.config.distortions, self.config.model
        if d.tau_mismatch > 0:
            return m.time_step or d.mismatch_time_step
        return m.time_step

    # --- forward --------------------------------------------------------------------------

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Features in [0, 1] (or images) → input spike times (batch, n_in); +inf = silent."""
        e = self.config.encoding
        if e.crop or e.resize:
            if x.dim() != 4:
                raise ValueError(f"encoding.crop/resize need images (B, C, H, W); got {x.shape}")
            if e.crop:
                top = (x.shape[-2] - e.crop) // 2
                left = (x.shape[-1] - e.crop) // 2
                x = x[..., top : top + e.crop, left : left + e.crop]
            if e.resize:
                x = F.interpolate(x, size=(e.resize, e.resize), mode="bilinear", antialias=True)
        v = x.flatten(1)
        if e.invert:
            v = 1.0 - v * (255.0 / e.pixel_levels)
        times = e.t_early + v.clamp(0.0, 1.0) * (e.t_late - e.t_early)
        if e.silent_background:
            times = torch.where(times >= e.t_late - 1e-9, math.inf, times)
        if self.training and e.jitter > 0 and generator is not None:
            times = (times + e.jitter * standard_normal(times.shape, generator, times)).abs()
        return times

    def forward_times(
        self,
        times: torch.Tensor,
        generator: torch.Generator | None = None,
        stats: dict | None = None,
    ) -> list[torch.Tensor]:
        """Spike times of every layer (hidden..., output) for input spike times ``times``."""
        check_input_times(times, self.sizes[0])
        m, d = self.config.model, self.config.distortions
        generator = generator or self._eval_generator
        step = self._uses_integrator()
        guard = self.config.stabiliser.dw_guard
        layers = []
        for n in range(len(self.weights)):
            if m.bias_times is not None:
                bias = torch.full_like(times[:, :1], m.bias_times[n])
                times = torch.cat([times, bias], dim=1)
            w = self.effective_weights(n)
            theta = self._threshold(n, times.shape[0], generator)
            measured = None
            if step is not None:
                tau_m = m.tau_ratio * (1 + d.tau_mismatch * getattr(self, f"tau_pattern{n}"))
                measured = integrate_first_spikes(
                    times.detach(), w.detach(), theta, tau_m.clamp(min=0.05).to(w), step, m.t_max
                )
            c = theta / m.tau_ratio  # c = g_L θ with g_L = τ_s / τ_m
            times = spike_times(
                times, w, c, m.tau_ratio, guard, measured, stats, self.config.model.max_elements
            )
            dead = self._dead(n)
            if dead is not None:
                times = torch.where(dead.to(times.device), math.inf, times)
            if d.spike_jitter > 0:
                noise = standard_normal(times.shape, generator, times)
                times = (times + d.spike_jitter * noise).clamp(min=0.0)
            layers.append(times)
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spike times (batch, n_out); +inf where a neuron stays silent."""
        layers = self.forward_times(self.encode(x))
        self.last_forward_stats = self._activity(layers)
        return layers[-1]

    def train(self, mode: bool = True) -> TTFSNetwork:
        super().train(mode)
        if not mode:  # evaluation noise replays identically for every evaluation
            self._eval_generator = torch.Generator().manual_seed(self.config.seed + 1)
        return self

    # --- objective ------------------------------------------------------------------------

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per sample: -log softmax(-t/ξ)[label] + α (exp(t_label/β) - 1); ``silent_loss`` (no
        gradient) when the label neuron is silent."""
        cfg = self.config.loss
        finite = torch.isfinite(output)
        t = torch.where(finite, output, SILENT_CAP)
        log_p = torch.log_softmax(-t / cfg.xi, dim=1)
        label = labels[:, None]
        label_silent = ~finite.gather(1, label).squeeze(1)
        t_label = torch.where(label_silent, 0.0, t.gather(1, label).squeeze(1))
        value = -log_p.gather(1, label).squeeze(1) + cfg.alpha * (torch.exp(t_label / cfg.beta) - 1)
        return torch.where(label_silent, torch.full_like(value, cfg.silent_loss), value)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Earliest output spike; -1 (never a label) when no output neuron spiked."""
        earliest = output.argmin(dim=1)
        return torch.where(torch.isfinite(output).any(dim=1), earliest, -1)

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        return [[w] for w in self.weights]

    # --- learning -------------------------------------------------------------------------

    def learning_step(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> TTFSStepResult:
        """Exact-gradient step; or, when a layer has too many silent neurons, a weight bump."""
        if len(labels) == 0:
            raise ValueError("learning_step got an empty batch; pass at least one sample.")
        self.train()
        generator = generator or torch.Generator().manual_seed(0)
        stats: dict[str, float] = {"guard_dropped": 0}
        layers = self.forward_times(self.encode(x, generator), generator, stats)
        loss = self.loss(layers[-1], labels)
        for w in self.weights:
            w.grad = None
        bump = self._weight_bump(layers)
        if bump is None:
            loss.mean().backward()
        activity = self._activity(layers)
        activity["guard_dropped"] = stats["guard_dropped"] / len(labels)
        activity["bumped"] = float(bump is not None)
        return TTFSStepResult(layers[-1].detach(), loss.detach(), activity, bump)

    @torch.no_grad()
    def _weight_bump(self, layers: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """Raise the incoming weights of neurons that missed a spike, in every layer whose
        silent fraction exceeds ``max_missing``; the bump doubles while a layer keeps
        triggering on consecutive batches."""
        limits = self.config.stabiliser.max_missing
        bumps: list[torch.Tensor] = []
        triggered = torch.zeros_like(self.bumped_last)
        for n, times in enumerate(layers):
            silent = torch.isinf(times)
            dead = self._dead(n)
            if dead is not None:
                silent = silent & ~dead.to(silent.device)
            bump = torch.zeros_like(self.weights[n])
            if silent.float().mean().item() > limits[n]:
                triggered[n] = True
                if self.bumped_last[n]:
                    self.bump_values[n] *= 2
                bump[:, silent.any(dim=0)] = self.bump_values[n].to(bump)
            bumps.append(bump)
        initial = self.config.stabiliser.bump_value
        self.bump_values[~triggered] = initial
        self.bumped_last.copy_(triggered)
        return bumps if bool(triggered.any()) else None

    # --- reporting ------------------------------------------------------------------------

    def _activity(self, layers: list[torch.Tensor]) -> dict[str, float]:
        stats = {}
        for n, times in enumerate(layers, start=1):
            spikes = torch.isfinite(times).sum(dim=1).double().mean().item()
            stats[f"spikes_layer{n}_per_sample"] = spikes
        stats["silent_output_fraction"] = torch.isinf(layers[-1]).double().mean().item()
        stats["no_output_spike"] = torch.isinf(layers[-1]).all(dim=1).double().mean().item()
        return stats

    def activity_warnings(self, row: dict[str, float]) -> list[str]:
        silent = row.get("train_no_output_spike", 0.0)
        if silent > 0.5:
            return [
                f"{silent:.0%} of training samples produced no output spike: the weights leave "
                "the outputs silent. Keep weight bumping on (stabiliser.max_missing, "
                "bump_value) or raise model.init_mean."
            ]
        return []
