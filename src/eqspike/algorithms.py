"""Registry of algorithms the trainer can run: name -> (config schema, model builder).

A new algorithm plugs in by adding one entry: its :class:`~eqspike.train.config.RunConfig`
subclass and a builder returning an ``nn.Module`` with ``forward(x) -> output scores`` and
``learning_step(x, target, generator) -> result`` (fills ``param.grad``; the result has
``output`` and per-example ``loss``), plus ``param_groups()`` for per-layer learning rates.
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
