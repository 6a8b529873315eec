"""Registry of algorithms the trainer can run: name -> (config schema, model builder).

A new algorithm plugs in by adding one entry: its :class:`~eqspike.train.config.RunConfig`
subclass (with ``check_data``) and a builder returning an ``nn.Module`` that provides

* ``forward(x) -> output`` and ``loss(output, labels)``; prediction is the argmax of the
  output unless the model has ``predict(output)`` (e.g. earliest spike);
* ``learning_step(x, labels, generator) -> result``: fills ``param.grad`` with the gradient
  estimate; ``result`` has ``output``, per-example ``loss`` and a ``stats`` dict (averaged
  into the epoch's metrics, e.g. spikes per sample);
* ``layer_parameters()``: parameter groups, one per layer (per-layer learning rates);
* optionally ``bumps_weights = True`` with ``result.weight_bump`` (a weight change the trainer
  applies instead of the optimiser step, see ``Trainer._apply_weight_bump``);
* optionally ``last_forward_stats`` (event counts of the last forward pass, averaged into the
  evaluation metrics) and ``activity_warnings(metrics_row) -> list[str]`` (logged per epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from eqspike.ep.recipe import (
    ConvEPConfig,
    EqSpikeConfig,
    RateEPConfig,
    build_conv_ep,
    build_eqspike,
    build_rate_ep,
)
from eqspike.train.config import RunConfig
from eqspike.ttfs.recipe import TTFSConfig, build_ttfs


@dataclass(frozen=True)
class Algorithm:
    config: type[RunConfig]
    build: Callable[[RunConfig, torch.Generator], nn.Module]
    description: str


ALGORITHMS: dict[str, Algorithm] = {
    "rate_ep": Algorithm(
        RateEPConfig,
        build_rate_ep,  # type: ignore[arg-type]
        "rate-based Equilibrium Propagation on a layered Hopfield network",
    ),
    "eqspike": Algorithm(
        EqSpikeConfig,
        build_eqspike,  # type: ignore[arg-type]
        "EqSpike: spike-driven Equilibrium Propagation (spiking neurons, local updates)",
    ),
    "conv_ep": Algorithm(
        ConvEPConfig,
        build_conv_ep,  # type: ignore[arg-type]
        "rate-based Equilibrium Propagation on a convolutional energy (conv + pooling + fc)",
    ),
    "ttfs": Algorithm(
        TTFSConfig,
        build_ttfs,  # type: ignore[arg-type]
        "time-to-first-spike LIF networks with exact spike-time gradients (fast and deep)",
    ),
}
