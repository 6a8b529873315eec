"""Plots written into run directories (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save atomically-enough (temp name then rename) and close."""
    from eqspike.io import atomic_write

    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def plot_training_curves(rows: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Accuracy (train/validation/test) and loss per epoch, side by side."""
    epochs = [r["epoch"] for r in rows]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("train_acc", "train"), ("val_acc", "validation"), ("test_acc", "test")):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax_acc.plot(
                epochs,
                [100 * v if v is not None else None for v in values],
                "o-",
                label=label,
                ms=3,
            )
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_acc.grid(alpha=0.3)
    ax_acc.legend()
    for key, label in (("train_loss", "train"), ("val_loss", "validation"), ("test_loss", "test")):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax_loss.plot(epochs, values, "o-", label=label, ms=3)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss", yscale="log")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
