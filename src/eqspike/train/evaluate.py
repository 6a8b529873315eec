"""``eqspike eval``: re-measure a run's accuracy from its saved config and latest checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from eqspike.train.api import load
from eqspike.train.trainer import configure_cpu, evaluation_sums, load_splits


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    data_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Accuracy and loss of ``run_dir``'s latest checkpoint on ``split``."""
    run = load(run_dir, overrides=overrides)
    configure_cpu(run.config.train.threads)
    splits = load_splits(run.config, data_dir)
    data = {"test": splits.test, "validation": splits.validation, "train": splits.train}[split]
    if data is None:
        from eqspike.errors import ConfigError

        raise ConfigError(f"{run_dir} was trained without a validation split (data.validation = 0)")
    dtype = getattr(torch, run.config.train.dtype)
    start = time.perf_counter()
    sums = evaluation_sums(
        run.model, data.x, data.y, run.config.data.eval_batch_size, torch.device("cpu"), dtype
    )
    seconds = time.perf_counter() - start
    recorded = run.meta.get("metrics", {})
    key = {"test": "test_acc", "validation": "val_acc", "train": "train_acc"}[split]
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(run.checkpoint),
        "epoch": run.meta.get("epoch"),
        "split": split,
        "overrides": list(overrides or []),
        "samples": len(data),
        "accuracy": sums.pop("acc") / len(data),
        "loss": sums.pop("loss") / len(data),
        "recorded_accuracy": recorded.get(key),
        "seconds": seconds,
    } | {k: v / len(data) for k, v in sums.items()}
