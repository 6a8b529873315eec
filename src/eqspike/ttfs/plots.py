"""Plots a TTFS user expects: output spike times per class and the Yin-Yang decision map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


@torch.no_grad()
def output_spike_raster(model, x: torch.Tensor, y: torch.Tensor, path: Path) -> dict[str, Any]:
    """One panel per true class: every sample's output spike times (x) per output neuron (y),
    the label neuron highlighted. A trained network fires its label neuron first."""
    from eqspike.analysis.plots import plt, save_figure

    times = model(x).cpu().numpy()
    labels = y.cpu().numpy()
    n_classes = times.shape[1]
    cols = min(n_classes, 5)
    rows = -(-n_classes // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
    rng = np.random.default_rng(0)
    finite = np.isfinite(times)
    t_max = float(times[finite].max()) if finite.any() else 1.0
    for k, ax in enumerate(axes.flat):
        if k >= n_classes:
            ax.axis("off")
            continue
        chosen = times[labels == k]
        for j in range(n_classes):
            t = chosen[:, j][np.isfinite(chosen[:, j])]
            ax.scatter(
                t,
                j + rng.uniform(-0.3, 0.3, len(t)),
                s=3,
                alpha=0.5,
                color="C3" if j == k else "C0",
            )
        ax.set_title(f"class {k} ({len(chosen)} samples)", fontsize=9)
        ax.set_yticks(range(n_classes))
        ax.set_xlim(0, t_max * 1.05)
        ax.set_xlabel("output spike time (τ_s)", fontsize=8)
    axes[0, 0].set_ylabel("output neuron")
    fig.tight_layout()
    save_figure(fig, path)
    median_label = float(np.median(times[np.arange(len(labels)), labels]))
    return {"png": str(path), "samples": len(labels), "median_label_spike_time": median_label}


@torch.no_grad()
def yinyang_decision_map(
    model, x: torch.Tensor, y: torch.Tensor, path: Path, resolution: int = 200
) -> dict[str, Any]:
    """The input plane coloured by the predicted class (inside the Yin-Yang disc), with the
    test points on top (crosses: misclassified)."""
    from eqspike.analysis.plots import plt, save_figure

    grid = torch.linspace(0, 1, resolution, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    px, py = gx.flatten(), gy.flatten()
    features = torch.stack([px, py, 1 - px, 1 - py], dim=1)
    dtype = next(model.parameters()).dtype
    predicted = torch.cat(
        [model.predict(model(chunk.to(dtype))) for chunk in features.split(2000)]
    ).double()
    inside = (px - 0.5) ** 2 + (py - 0.5) ** 2 <= 0.25
    image = torch.where(inside, predicted, torch.nan).view(resolution, resolution).numpy()
    test_pred = model.predict(model(x.to(dtype))).cpu().numpy()
    xs, labels = x.cpu().numpy(), y.cpu().numpy()
    wrong = test_pred != labels
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(image, origin="lower", extent=(0, 1, 0, 1), cmap="Pastel1", vmin=0, vmax=8)
    ax.scatter(xs[~wrong, 0], xs[~wrong, 1], c=labels[~wrong], cmap="Set1", vmin=0, vmax=8, s=4)
    ax.scatter(xs[wrong, 0], xs[wrong, 1], c="k", marker="x", s=12, label="misclassified")
    ax.set_title(f"Yin-Yang decisions: test {100 * (1 - wrong.mean()):.1f} %")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    fig.tight_layout()
    save_figure(fig, path)
    return {"png": str(path), "test_acc": float(1 - wrong.mean())}
