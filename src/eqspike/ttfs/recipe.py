"""Config schema of time-to-first-spike runs and the builder the trainer calls."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from eqspike.errors import ConfigError
from eqspike.train.config import RunConfig, StrictModel


class TTFSModelConfig(StrictModel):
    """Layered LIF network; times in units of τ_s."""

    layers: list[int] = Field([4, 120, 3], min_length=2, description="[inputs, hidden..., outputs]")
    tau_ratio: Literal[1, 2] = Field(1, description="τ_m / τ_s: 1 (Lambert W) or 2 (quadratic)")
    threshold: float = Field(1.0, gt=0.0, description="θ (E_L = 0)")
    bias_times: list[float] | None = Field(
        None, description="one bias spike per weight layer at this time (trainable weight)"
    )
    init_mean: list[float] = Field([1.5, 0.5], description="N(mean, std) weight init per layer")
    init_std: list[float] = Field([0.8, 0.8])
    time_step: float | None = Field(
        None, gt=0.0, description="forward pass by the time-stepped integrator (None: exact)"
    )
    t_max: float = Field(20.0, gt=0.0, description="integrator horizon (τ_s)")
    max_elements: int = Field(
        1 << 22, gt=0, description="largest temporary (batch x inputs x chunk) of the exact pass"
    )

    @model_validator(mode="after")
    def _check(self) -> TTFSModelConfig:
        n_weights = len(self.layers) - 1
        for key in ("init_mean", "init_std"):
            if len(getattr(self, key)) != n_weights:
                raise ValueError(f"{key} needs {n_weights} values, one per weight layer")
        if self.bias_times is not None and len(self.bias_times) != n_weights:
            raise ValueError(f"bias_times needs {n_weights} values, one per weight layer")
        if any(size < 1 for size in self.layers):
            raise ValueError(f"layer sizes must be positive, got {self.layers}")
        return self


class EncodingConfig(StrictModel):
    """Feature v ∈ [0, 1] → spike time t_early + v (t_late - t_early)."""

    t_early: float = Field(0.15, ge=0.0)
    t_late: float = Field(2.0, gt=0.0)
    invert: bool = Field(False, description="v = 1 - x (MNIST: ink spikes early)")
    pixel_levels: int = Field(256, gt=1, description="with invert: v = 1 - x·255/levels")
    silent_background: bool = Field(False, description="inputs at exactly t_late do not spike")
    crop: int | None = Field(None, gt=0, description="centre-crop images to this size first")
    resize: int | None = Field(None, gt=0, description="then resize images to this size")
    jitter: float = Field(0.0, ge=0.0, description="training only: Gaussian σ on input times")

    @model_validator(mode="after")
    def _check(self) -> EncodingConfig:
        if self.t_late <= self.t_early:
            raise ValueError(f"t_late ({self.t_late}) must be later than t_early ({self.t_early})")
        return self


class TTFSLossConfig(StrictModel):
    """L = -log softmax(-t/ξ)[label] + α (exp(t_label / β) - 1)."""

    xi: float = Field(0.2, gt=0.0)
    alpha: float = Field(0.005, ge=0.0)
    beta: float = Field(1.0, gt=0.0)
    silent_loss: float = Field(100.0, description="loss of a sample whose label neuron is silent")


class StabiliserConfig(StrictModel):
    """The authors' training stabilisers."""

    dw_guard: float | None = Field(0.2, gt=0.0, description="drop |δ ∂T/∂w| above this")
    max_missing: list[float] = Field(
        [0.3, 0.0], description="per layer: bump weights above this fraction of silent neurons"
    )
    bump_value: float = Field(5e-4, ge=0.0, description="first bump; doubles while repeating")


class DistortionConfig(StrictModel):
    """Substrate non-idealities (spec §7), in training and in evaluation. Relative σ are
    fractions of the nominal value; fixed patterns are frozen per network (``seed``)."""

    spike_jitter: float = Field(0.0, ge=0.0, description="σ (τ_s) on every neuron's spike time")
    weight_bits: int | None = Field(None, gt=0, description="magnitude bits (+ sign)")
    weight_range: float | None = Field(None, gt=0.0, description="clip |w| to this")
    weight_fixed_pattern: float = Field(0.0, ge=0.0, description="relative σ per synapse")
    threshold_fixed_pattern: float = Field(0.0, ge=0.0, description="relative σ per neuron")
    threshold_noise: float = Field(0.0, ge=0.0, description="relative σ per neuron and trial")
    tau_mismatch: float = Field(0.0, ge=0.0, description="relative σ of τ_m per neuron")
    mismatch_time_step: float = Field(
        0.01, gt=0.0, description="integrator step used when tau_mismatch > 0"
    )
    dead_neurons: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of silent hidden")
    seed: int = Field(12345, description="seed of the frozen patterns")

    @model_validator(mode="after")
    def _check(self) -> DistortionConfig:
        if self.weight_bits is not None and self.weight_range is None:
            raise ValueError("weight_bits needs weight_range (the largest |w| the substrate holds)")
        return self


class TTFSConfig(RunConfig):
    algorithm: Literal["ttfs"] = "ttfs"
    model: TTFSModelConfig = Field(default_factory=TTFSModelConfig)
    encoding: EncodingConfig = Field(default_factory=EncodingConfig)
    loss: TTFSLossConfig = Field(default_factory=TTFSLossConfig)
    stabiliser: StabiliserConfig = Field(default_factory=StabiliserConfig)
    distortions: DistortionConfig = Field(default_factory=DistortionConfig)

    @model_validator(mode="after")
    def _check(self) -> TTFSConfig:
        n_weights = len(self.model.layers) - 1
        self.optimizer.layer_lrs(n_weights)
        if len(self.stabiliser.max_missing) != n_weights:
            raise ValueError(
                f"stabiliser.max_missing needs {n_weights} values (one per spiking layer)"
            )
        return self

    def expected_inputs(self, n_inputs: int) -> int:
        return self.encoding.resize**2 if self.encoding.resize else n_inputs

    def check_data(self, n_inputs: int, n_classes: int) -> None:
        layers = self.model.layers
        want = self.expected_inputs(n_inputs)
        if layers[0] != want or layers[-1] != n_classes:
            note = f" after resizing to {self.encoding.resize}²" if self.encoding.resize else ""
            raise ConfigError(
                f"model.layers = {layers} does not fit dataset {self.data.dataset!r} "
                f"({want} input features{note}, {n_classes} classes); use model.layers = "
                f"{[want, *layers[1:-1], n_classes]}."
            )
        if (self.encoding.crop or self.encoding.resize) and self.data.dataset == "yinyang":
            raise ConfigError("encoding.crop / encoding.resize apply to images; set them null.")


def build_ttfs(config: TTFSConfig, generator: torch.Generator):
    from eqspike.ttfs.network import TTFSNetwork

    return TTFSNetwork(config, generator)
