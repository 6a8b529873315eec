"""Neuron dynamics as pure functions (rate nonlinearities now; spiking neurons plug in here)."""

from eqspike.neurons.rate import hard_sigmoid

__all__ = ["hard_sigmoid"]
