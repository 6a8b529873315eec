"""Python API mirroring the CLI: ``train(config)``, ``resume(run_dir)``, ``load(run_dir)``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from eqspike.errors import CheckpointError
from eqspike.train.checkpoint import latest_checkpoint_path, load_checkpoint
from eqspike.train.config import RunConfig, apply_overrides, load_config, validate_config
from eqspike.train.trainer import Trainer


def _as_config(
    config: RunConfig | dict | str | Path | None, overrides: list[str] | None
) -> RunConfig:
    if isinstance(config, RunConfig):
        if overrides:
            return validate_config(apply_overrides(config.model_dump(mode="json"), overrides))
        return config
    if isinstance(config, dict):
        return validate_config(apply_overrides(dict(config), list(overrides or [])))
    return load_config(config, overrides)


def train(
    config: RunConfig | dict | str | Path | None = None,
    overrides: list[str] | None = None,
    run_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    quiet: bool = False,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train a run from a config (object, dict, YAML path or shipped name; None = the demo)."""
    trainer = Trainer(_as_config(config, overrides), run_dir, data_dir, resume=False, quiet=quiet)
    try:
        return trainer.fit(stop_after_epoch)
    finally:
        trainer.close()


def read_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml).")
    return validate_config(
        apply_overrides(yaml.safe_load(path.read_text()), list(overrides or [])), str(path)
    )


def resume(
    run_dir: str | Path,
    overrides: list[str] | None = None,
    data_dir: str | Path | None = None,
    quiet: bool = False,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Continue a run from its latest checkpoint (``overrides`` may raise ``train.epochs`` or
    change any setting that keeps the parameter shapes, e.g. ``solver.drive_dtype``)."""
    trainer = Trainer(
        read_run_config(run_dir, overrides), run_dir, data_dir, resume=True, quiet=quiet
    )
    if overrides:
        # config.yaml now holds the changed values: the log keeps from which epoch on.
        logging.getLogger("eqspike").info(
            "from epoch %d on with --set %s (config.yaml updated)",
            trainer.start_epoch,
            " ".join(overrides),
        )
    try:
        return trainer.fit(stop_after_epoch)
    finally:
        trainer.close()


@dataclass
class LoadedRun:
    """A trained model with the config it was trained from."""

    config: RunConfig
    model: nn.Module
    checkpoint: Path
    meta: dict[str, Any]


def load(
    run_dir: str | Path, device: str | torch.device = "cpu", overrides: list[str] | None = None
) -> LoadedRun:
    """Rebuild a run's model from its config and load its latest checkpoint's weights.

    ``overrides`` change the saved config before building (e.g. ``solver.readout_steps=20`` to
    evaluate with another readout); they must keep the parameter shapes.
    """
    from eqspike.algorithms import ALGORITHMS

    config = read_run_config(run_dir, overrides)
    path = latest_checkpoint_path(Path(run_dir))
    if path is None:
        raise CheckpointError(f"{run_dir} has no checkpoint (checkpoints/latest is missing).")
    ckpt = load_checkpoint(path, device)
    model = ALGORITHMS[config.algorithm].build(config, torch.Generator().manual_seed(config.seed))
    model.to(device=device, dtype=getattr(torch, config.train.dtype))
    try:
        model.load_state_dict(ckpt.weights)
    except RuntimeError as exc:
        raise CheckpointError(
            f"the checkpoint {path} does not fit the config (after overrides {overrides or []}): "
            f"{str(exc).splitlines()[0]}; do not override parameter shapes (model.layers)."
        ) from None
    model.eval()
    return LoadedRun(config, model, path, ckpt.meta)
