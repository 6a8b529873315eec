"""``eqspike gradcheck CONFIG``: build the config's network, take one batch, compare with BPTT."""

from __future__ import annotations

from pathlib import Path

import torch

from eqspike.ep.gradcheck import (
    gradcheck,
    plot_gradcheck,
    plot_spiking_gradcheck,
    spiking_gradcheck,
    spiking_table,
)
from eqspike.errors import ConfigError
from eqspike.io import atomic_write_json
from eqspike.train.config import load_config
from eqspike.train.trainer import load_splits


def run_gradcheck(
    config_name: str,
    overrides: list[str],
    data_dir: str | None,
    batch: int,
    out: Path,
) -> tuple[str, Path]:
    """Write gradcheck.json and gradcheck.png into ``out``; return the printed table."""
    from eqspike.algorithms import ALGORITHMS

    config = load_config(config_name, overrides)
    if config.algorithm not in ("rate_ep", "eqspike", "conv_ep"):
        raise ConfigError(
            f"gradcheck supports rate_ep, eqspike and conv_ep, not {config.algorithm!r}"
        )
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    train = load_splits(config, data_dir).train
    config.check_data(train.n_inputs, train.n_classes)
    network = ALGORITHMS[config.algorithm].build(config, torch.Generator().manual_seed(config.seed))
    network = network.double()
    x, labels = train.x[:batch].double(), train.y[:batch]
    out.mkdir(parents=True, exist_ok=True)
    if config.algorithm == "eqspike":
        spiking = spiking_gradcheck(network, x, labels)
        atomic_write_json(
            out / "gradcheck.json", {"config": config_name, "overrides": overrides, **spiking}
        )
        plot_spiking_gradcheck(spiking, out / "gradcheck.png")
        return spiking_table(spiking), out
    report = gradcheck(network, x, labels, config.estimator.beta)
    atomic_write_json(
        out / "gradcheck.json", {"config": config_name, "overrides": overrides, **report.as_dict()}
    )
    plot_gradcheck(report, out / "gradcheck.png")
    return report.table(), out
