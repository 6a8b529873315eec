"""``eqspike eval``: re-measure a run's accuracy from its saved config and latest checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from eqspike.train.api import load
from eqspike.train.trainer import load_splits


@torch.no_grad()
def evaluate_run(
    run_dir: str | Path, split: str = "test", data_dir: str | Path | None = None
) -> dict[str, Any]:
    """Accuracy and loss of ``run_dir``'s latest checkpoint on ``split``."""
    run = load(run_dir)
    splits = load_splits(run.config, data_dir)
    data = {"test": splits.test, "validation": splits.validation, "train": splits.train}[split]
    if data is None:
        from eqspike.errors import ConfigError

        raise ConfigError(f"{run_dir} was trained without a validation split (data.validation = 0)")
    dtype = getattr(torch, run.config.train.dtype)
    start = time.perf_counter()
    correct = loss = 0.0
    for chunk in torch.arange(len(data)).split(run.config.data.eval_batch_size):
        x, y = data.x[chunk].to(dtype), data.y[chunk]
        output = run.model(x)
        correct += (output.argmax(1) == y).sum().item()
        loss += run.model.loss(output, y).sum().item()
    seconds = time.perf_counter() - start
    recorded = run.meta.get("metrics", {})
    key = {"test": "test_acc", "validation": "val_acc", "train": "train_acc"}[split]
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(run.checkpoint),
        "epoch": run.meta.get("epoch"),
        "split": split,
        "samples": len(data),
        "accuracy": correct / len(data),
        "loss": loss / len(data),
        "recorded_accuracy": recorded.get(key),
        "seconds": seconds,
    }
