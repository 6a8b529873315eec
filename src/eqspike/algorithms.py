"""Registry of algorithms the trainer can run: name -> (config schema, model builder).

A new algorithm plugs in by adding one entry: its :class:`~eqspike.train.config.RunConfig`
subclass (with ``check_data``) and a builder returning an ``nn.Module`` that provides

* ``forward(x) -> output scores`` (prediction = argmax) and ``loss(output, labels)``;
* ``learning_step(x, labels, generator) -> result``: fills ``param.grad`` with the gradient
  estimate; ``result`` has ``output``, per-example ``loss`` and a ``stats`` dict (averaged
  into the epoch's metrics, e.g. spikes per sample);
* ``layer_parameters()``: parameter groups, one per layer (per-layer learning rates);
* optionally ``last_forward_stats`` (event counts of the last forward pass, averaged into the
  evaluation metrics) and ``activity_warnings(metrics_row) -> list[str]`` (logged per epoch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from eqspike.ep.recipe import EqSpikeConfig, RateEPConfig, build_eqspike, build_rate_ep
from eqspike.train.config import RunConfig


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
}
