"""EP algorithms for the trainer (rate-based EP and spiking EqSpike): config sections, builders."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field, model_validator

from eqspike.ep.conv import ConvArchitecture, ConvEnergy, LayerSpec
from eqspike.ep.energy import HopfieldMLP
from eqspike.ep.estimators import Phases, check_negative_beta_phase, make_estimator
from eqspike.ep.network import EPNetwork
from eqspike.ep.precision import DRIVE_DTYPES
from eqspike.ep.sigma_delta import SigmaDeltaSolver
from eqspike.ep.solvers import make_solver
from eqspike.ep.spiking import MIN_RATE_WINDOW, SpikeCountEP, SpikeDrivenEP, SpikingSolver
from eqspike.errors import ConfigError
from eqspike.train.config import RunConfig, StrictModel


class HopfieldModelConfig(StrictModel):
    """Layer sizes ``[n_in, hidden..., n_out]`` and initialisation."""

    layers: list[int] = Field([4, 64, 3], min_length=2, description="[inputs, hidden..., outputs]")
    init: Literal["glorot_uniform", "torch_default"] = "glorot_uniform"
    gains: list[float] | None = Field(None, description="one init gain per weight layer")

    @model_validator(mode="after")
    def _check(self) -> HopfieldModelConfig:
        if any(size < 1 for size in self.layers):
            raise ValueError(f"layer sizes must be positive, got {self.layers}")
        if self.gains is not None and len(self.gains) != len(self.layers) - 1:
            raise ValueError(
                f"gains has {len(self.gains)} values for {len(self.layers) - 1} weight layers"
            )
        return self


class SolverConfig(StrictModel):
    """Relaxation dynamics (see :mod:`eqspike.ep.solvers`)."""

    kind: Literal["discrete", "continuous"] = "discrete"
    step_size: float = Field(0.5, gt=0.0, le=1.0, description="Euler step ε (continuous only)")
    update: Literal["synchronous", "asynchronous"] = "synchronous"
    free_steps: int = Field(30, gt=0, description="T, steps of the free phase")
    nudged_steps: int = Field(10, gt=0, description="K, steps of each nudged phase")
    warm_start: bool = Field(
        False,
        description="start each free phase from one bottom-up (feed-forward) sweep instead of "
        "zeros, so that fewer free steps reach the fixed point",
    )
    drive_dtype: Literal["float32", "float64", "bfloat16"] | None = Field(
        None,
        description="dtype of the drives during relaxation (None: the training dtype); "
        "bfloat16 ran conv drives 1.4x faster on a CPU with bfloat16 instructions, but 16x "
        "slower where bfloat16 is emulated (AVX2 only; see ep/precision.py)",
    )

    @model_validator(mode="after")
    def _check_step_size(self) -> SolverConfig:
        """``discrete`` dynamics take full steps (ε = 1): a step_size other than 1 (or the
        default, which saved configs list) would be silently ignored."""
        default = type(self).model_fields["step_size"].default
        if self.kind == "discrete" and self.step_size not in (1.0, default):
            raise ValueError(
                f"step_size = {self.step_size} is ignored by kind 'discrete', which takes full "
                "steps (eps = 1); use kind: continuous for Euler steps of that size, or remove "
                "step_size"
            )
        return self


class EstimatorConfig(StrictModel):
    """Gradient estimator (see :mod:`eqspike.ep.estimators`)."""

    kind: Literal["centered", "one_sided", "random_sign", "bptt"] = "centered"
    beta: float = Field(0.5, gt=0.0, description="nudging strength β (> 0; EP only)")
    bptt_truncate: int | None = Field(None, gt=0, description="BPTT through the last K steps only")

    @model_validator(mode="after")
    def _check_negative_phase(self) -> EstimatorConfig:
        check_negative_beta_phase(self.kind, self.beta)
        return self


class HopfieldRunConfig(RunConfig):
    """Sections shared by every EP algorithm on a layered Hopfield network."""

    model: HopfieldModelConfig = Field(default_factory=HopfieldModelConfig)

    @model_validator(mode="after")
    def _check_lrs(self) -> HopfieldRunConfig:
        self.optimizer.layer_lrs(len(self.model.layers) - 1)
        return self

    def check_data(self, n_inputs: int, n_classes: int) -> None:
        """Layer sizes must match the data: inputs = features per sample, outputs = classes."""
        layers = self.model.layers
        if layers[0] != n_inputs or layers[-1] != n_classes:
            raise ConfigError(
                f"model.layers = {layers} does not fit dataset {self.data.dataset!r} "
                f"({n_inputs} features, {n_classes} classes); use model.layers = "
                f"{[n_inputs, *layers[1:-1], n_classes]}."
            )


class RateEPConfig(HopfieldRunConfig):
    algorithm: Literal["rate_ep"] = "rate_ep"
    solver: SolverConfig = Field(default_factory=SolverConfig)
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)


class SpikingNeuronConfig(StrictModel):
    """Spiking neurons (see :mod:`eqspike.neurons.spiking`)."""

    kind: Literal["sigma_delta", "bernoulli"] = Field(
        "sigma_delta", description="spike encoder: deterministic Sigma-Delta or Bernoulli"
    )
    epsilon: float = Field(
        0.2, gt=0.0, le=1.0, description="membrane time step ε (u += ε(drive-u))"
    )
    dither: bool = Field(False, description="random initial Sigma-Delta phases, per neuron")


class SpikingPhasesConfig(StrictModel):
    free_steps: int = Field(60, gt=0, description="steps of the free phase")
    nudged_steps: int = Field(30, gt=0, description="steps of each nudged phase")
    readout_steps: int = Field(
        1, gt=0, description="predict from the output state averaged over the last N free steps"
    )


class SpikingEstimatorConfig(StrictModel):
    """Spike-driven continual update, or the two-phase spike-count baseline."""

    kind: Literal["spike_driven", "spike_count"] = "spike_driven"
    variant: Literal["centered", "one_sided"] = Field(
        "centered", description="one_sided is biased with spikes and collapses; for studies"
    )
    beta: float = Field(0.2, gt=0.0, description="nudging strength β (> 0)")
    window: int = Field(20, gt=0, description="spike_count: steps over which rates are counted")

    @model_validator(mode="after")
    def _check_negative_phase(self) -> SpikingEstimatorConfig:
        check_negative_beta_phase(self.variant, self.beta)
        return self


class EqSpikeConfig(HopfieldRunConfig):
    algorithm: Literal["eqspike"] = "eqspike"
    neuron: SpikingNeuronConfig = Field(default_factory=SpikingNeuronConfig)
    solver: SpikingPhasesConfig = Field(default_factory=SpikingPhasesConfig)
    estimator: SpikingEstimatorConfig = Field(default_factory=SpikingEstimatorConfig)

    @model_validator(mode="after")
    def _check_window(self) -> EqSpikeConfig:
        est, phases = self.estimator, self.solver
        if est.kind == "spike_count":
            if est.window < MIN_RATE_WINDOW:
                raise ValueError(
                    f"estimator.window = {est.window} resolves rates only to 1/{est.window}; "
                    f"the minimum is {MIN_RATE_WINDOW}"
                )
            if est.window > min(phases.free_steps, phases.nudged_steps):
                raise ValueError(
                    f"estimator.window = {est.window} is longer than a phase "
                    f"(free {phases.free_steps}, nudged {phases.nudged_steps} steps)"
                )
        return self


def _ep_network(energy, solver, config: RateEPConfig | ConvEPConfig) -> EPNetwork:
    """Energy + solver + the config's estimator and phases."""
    est = config.estimator
    estimator = make_estimator(est.kind, est.beta, est.bptt_truncate)
    phases = Phases(config.solver.free_steps, config.solver.nudged_steps)
    drive_dtype = config.solver.drive_dtype
    return EPNetwork(
        energy, solver, estimator, phases, DRIVE_DTYPES[drive_dtype] if drive_dtype else None
    )


def build_rate_ep(config: RateEPConfig, generator: torch.Generator) -> EPNetwork:
    """The EP network a config describes, initialised from ``generator``."""
    energy = HopfieldMLP(config.model.layers, config.model.init, config.model.gains, generator)
    cfg = config.solver
    solver = make_solver(cfg.kind, cfg.step_size, cfg.update, cfg.warm_start)
    return _ep_network(energy, solver, config)


def build_eqspike(config: EqSpikeConfig, generator: torch.Generator) -> EPNetwork:
    """The spiking EP network a config describes, initialised from ``generator``."""
    energy = HopfieldMLP(config.model.layers, config.model.init, config.model.gains, generator)
    solver = SpikingSolver(
        config.neuron.kind, config.neuron.epsilon, config.neuron.dither, config.solver.readout_steps
    )
    est = config.estimator
    if est.kind == "spike_driven":
        estimator = SpikeDrivenEP(est.beta, est.variant)
    else:
        estimator = SpikeCountEP(est.beta, est.variant, est.window)
    return EPNetwork(
        energy, solver, estimator, Phases(config.solver.free_steps, config.solver.nudged_steps)
    )


class ConvLayerConfig(StrictModel):
    """One interaction of a conv EP network (see :mod:`eqspike.ep.conv`)."""

    kind: Literal["conv", "fc"]
    channels: int = Field(0, ge=0, description="conv: output channels")
    kernel: int = Field(5, gt=0, description="conv: square kernel size")
    padding: int = Field(0, ge=0, description="conv: zero padding")
    pool: Literal["avg", "max"] = Field("avg", description="conv: 2x2 stride-2 pooling")
    units: int = Field(0, ge=0, description="fc: output units")
    init_gain: float = Field(
        1.0, gt=0.0, description="initial weights U(±init_gain/√fan_in); 1 is PyTorch's scale"
    )
    init_bias: float = Field(0.0, description="initial bias of every unit of this layer")
    feedback_gain: float = Field(
        1.0,
        gt=0.0,
        description="scale of the feedback this interaction sends down to the layer below "
        "(layers 2 and up; the energy stays exact, so EP does too: see eqspike.ep.conv)",
    )

    @model_validator(mode="after")
    def _check(self) -> ConvLayerConfig:
        if self.kind == "conv" and self.channels < 1:
            raise ValueError("a conv layer needs channels >= 1")
        if self.kind == "fc" and self.units < 1:
            raise ValueError("an fc layer needs units >= 1")
        return self


class ConvModelConfig(StrictModel):
    input_shape: list[int] = Field([1, 28, 28], min_length=3, max_length=3)
    layers: list[ConvLayerConfig] = Field(
        default_factory=lambda: [
            ConvLayerConfig(kind="conv", channels=32, kernel=5),
            ConvLayerConfig(kind="conv", channels=64, kernel=5),
            ConvLayerConfig(kind="fc", units=512),
            ConvLayerConfig(kind="fc", units=10),
        ]
    )
    loss: Literal["squared_error", "cross_entropy"] = Field(
        "squared_error",
        description="squared_error: the last fc layer is a free output layer, C = ½‖s_N − y‖²; "
        "cross_entropy: the last fc layer is a softmax readout of the layer below, outside the "
        "dynamics (Laborieux et al. 2021), C = −log softmax(o)_y",
    )


class ConvSolverConfig(SolverConfig):
    """Rate dynamics (``discrete`` / ``continuous``) or Sigma-Delta spiking (``sigma_delta``:
    layers exchange spikes, decoded by running averages with factor ``decay``)."""

    kind: Literal["discrete", "continuous", "sigma_delta"] = "discrete"  # type: ignore[assignment]
    decay: float = Field(0.8, ge=0.0, lt=1.0, description="sigma_delta: decoder's running average")
    neuron: Literal["sigma_delta", "bernoulli"] = Field(
        "sigma_delta",
        description="sigma_delta solver: the spiking neuron (deterministic Sigma-Delta or "
        "stochastic Bernoulli)",
    )
    contrast: Literal["spikes", "analogue"] = Field(
        "spikes",
        description="sigma_delta solver: what EP contrasts per phase, the spikes averaged over "
        "it (the spec's decoded spike states) or the neurons' own analogue states",
    )

    @model_validator(mode="after")
    def _check_applies(self) -> ConvSolverConfig:
        """Keys that the chosen dynamics would silently ignore are errors (set to other than
        their defaults: saved run configs list every key)."""
        spiking_only = [
            key
            for key in ("decay", "neuron", "contrast")
            if getattr(self, key) != type(self).model_fields[key].default
        ]
        if self.kind != "sigma_delta" and spiking_only:
            raise ValueError(
                f"{spiking_only} apply to the spiking solver only; set kind: "
                f"sigma_delta or remove them (kind {self.kind!r} is rate dynamics)"
            )
        if self.kind == "sigma_delta" and self.update != "synchronous":
            raise ValueError(
                "the sigma_delta solver updates every layer synchronously (spikes of one step "
                "drive the next); remove update or use kind: discrete for asynchronous updates"
            )
        return self


class ConvEPConfig(RunConfig):
    """EP on a convolutional energy (2C2FC and deeper: the layer list is config), with rate or
    Sigma-Delta spiking dynamics."""

    algorithm: Literal["conv_ep"] = "conv_ep"
    model: ConvModelConfig = Field(default_factory=ConvModelConfig)
    solver: ConvSolverConfig = Field(default_factory=ConvSolverConfig)
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)

    @model_validator(mode="after")
    def _check_model(self) -> ConvEPConfig:
        self.optimizer.layer_lrs(len(self.model.layers))
        try:
            ConvArchitecture.build(
                tuple(self.model.input_shape), _layer_specs(self.model), _has_readout(self.model)
            )
        except ValueError as exc:
            raise ValueError(f"model.layers: {exc}") from None
        if self.model.layers[-1].kind != "fc":
            raise ValueError("the last layer must be fc (one unit per class)")
        return self

    def check_data(self, n_inputs: int, n_classes: int) -> None:
        c, h, w = self.model.input_shape
        out = self.model.layers[-1].units
        if c * h * w != n_inputs or out != n_classes:
            raise ConfigError(
                f"model.input_shape {self.model.input_shape} with {out} outputs does not fit "
                f"dataset {self.data.dataset!r} ({n_inputs} input values, {n_classes} classes); "
                f"use input_shape [1, 28, 28] for MNIST-like images and {n_classes} final units."
            )


def _has_readout(model: ConvModelConfig) -> bool:
    return model.loss == "cross_entropy"


def _layer_specs(model: ConvModelConfig) -> list[LayerSpec]:
    return [
        LayerSpec(
            layer.kind,
            channels=layer.channels,
            kernel=layer.kernel,
            pool=layer.pool,
            padding=layer.padding,
            units=layer.units,
            init_gain=layer.init_gain,
            init_bias=layer.init_bias,
            feedback_gain=layer.feedback_gain,
        )
        for layer in model.layers
    ]


def build_conv_ep(config: ConvEPConfig, generator: torch.Generator) -> EPNetwork:
    """The conv EP network a config describes, initialised from ``generator``."""
    shape = tuple(config.model.input_shape)
    energy = ConvEnergy(
        shape,  # type: ignore[arg-type]
        _layer_specs(config.model),
        generator,
        _has_readout(config.model),
    )
    cfg = config.solver
    if cfg.kind == "sigma_delta":
        if any(layer.kind == "conv" and layer.pool == "max" for layer in config.model.layers):
            warnings.warn(
                "max pooling with spiking (sigma_delta) dynamics: allowed for the pooling study, "
                "but EP's gradient estimate is biased there (the time-average of a max over "
                "spikes is not the max of the rates, and the unpooling argmax changes from step "
                "to step); use pool: avg for training.",
                stacklevel=2,
            )
        step = 1.0 if cfg.step_size is None else cfg.step_size
        solver = SigmaDeltaSolver(step, cfg.decay, cfg.neuron, cfg.warm_start, cfg.contrast)
    else:
        solver = make_solver(cfg.kind, cfg.step_size, cfg.update, cfg.warm_start)
    return _ep_network(energy, solver, config)
