"""EP algorithms for the trainer (rate-based EP and spiking EqSpike): config sections, builders."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from eqspike.ep.energy import HopfieldMLP
from eqspike.ep.estimators import Phases, make_estimator
from eqspike.ep.network import EPNetwork
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


class EstimatorConfig(StrictModel):
    """Gradient estimator (see :mod:`eqspike.ep.estimators`)."""

    kind: Literal["centered", "one_sided", "random_sign", "bptt"] = "centered"
    beta: float = Field(0.5, gt=0.0, description="nudging strength β (> 0; EP only)")
    bptt_truncate: int | None = Field(None, gt=0, description="BPTT through the last K steps only")


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


def build_rate_ep(config: RateEPConfig, generator: torch.Generator) -> EPNetwork:
    """The EP network a config describes, initialised from ``generator``."""
    energy = HopfieldMLP(config.model.layers, config.model.init, config.model.gains, generator)
    solver = make_solver(config.solver.kind, config.solver.step_size, config.solver.update)
    estimator = make_estimator(
        config.estimator.kind, config.estimator.beta, config.estimator.bptt_truncate
    )
    return EPNetwork(
        energy, solver, estimator, Phases(config.solver.free_steps, config.solver.nudged_steps)
    )


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
