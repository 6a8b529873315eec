"""Neuron dynamics as pure functions: rate nonlinearities and spiking neurons."""

from eqspike.neurons.rate import hard_sigmoid
from eqspike.neurons.spiking import (
    SPIKE_ENCODERS,
    BernoulliState,
    SigmaDeltaState,
    SpikeEncoder,
    bernoulli_step,
    membrane_step,
    sigma_delta_step,
    spike_count_rate,
    spike_encoder,
)

__all__ = [
    "SPIKE_ENCODERS",
    "BernoulliState",
    "SigmaDeltaState",
    "SpikeEncoder",
    "bernoulli_step",
    "hard_sigmoid",
    "membrane_step",
    "sigma_delta_step",
    "spike_count_rate",
    "spike_encoder",
]
