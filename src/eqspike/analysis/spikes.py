"""Spike rasters and firing-rate histograms of a trained spiking network (``eqspike raster``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eqspike.analysis.plots import plt, save_figure
from eqspike.ep.spiking import SpikingSolver
from eqspike.errors import ConfigError
from eqspike.io import atomic_write_json


def record_free_phase(network, x: torch.Tensor) -> list[torch.Tensor]:
    """Spikes of every layer during the free phase: list over layers of (steps, batch, n)."""
    solver = network.solver
    if not isinstance(solver, SpikingSolver):
        raise ConfigError("raster needs a spiking run (algorithm: eqspike)")
    params, steps = network.energy.params(), network.phases.free_steps
    x = x.flatten(1)
    generator = torch.Generator().manual_seed(0)
    inputs = solver.input_train(params, x, steps, generator)
    record: list[list[torch.Tensor]] = []
    solver.relax(params, inputs, 0, solver.init_state(params, x, generator), steps, record=record)
    return [torch.stack(layer) for layer in zip(*record, strict=True)]


def spike_report(network, x: torch.Tensor, out: Path, max_neurons: int = 100) -> dict[str, Any]:
    """raster.png (sample 0, every layer), rates.png (histograms), spikes.json (summary)."""
    layers = record_free_phase(network, x)
    names = ["input"] + [f"hidden {n}" for n in range(1, len(layers) - 1)] + ["output"]
    fig, axes = plt.subplots(len(layers), 1, figsize=(9, 2.2 * len(layers)), sharex=True)
    for ax, name, spikes in zip(axes, names, layers, strict=True):
        sample = spikes[:, 0, :]
        active = sample.sum(0).argsort(descending=True)[:max_neurons].sort().values
        t, n = torch.nonzero(sample[:, active], as_tuple=True)
        ax.scatter(t.numpy() + 1, n.numpy(), s=2, marker="|", color="k")
        ax.set(
            ylabel=f"{name}\n(neuron)",
            title=f"{name}: {len(active)} most active of {sample.shape[1]}",
        )
    axes[-1].set_xlabel("free-phase step")
    fig.tight_layout()
    save_figure(fig, out / "raster.png")

    rates = [spikes.mean(0).flatten() for spikes in layers]  # per neuron and sample
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3))
    for ax, name, r in zip(axes, names, rates, strict=True):
        ax.hist(r.numpy(), bins=40, range=(0, 1), color="tab:blue")
        ax.set(title=name, xlabel="firing rate (spikes/step)", yscale="log")
    axes[0].set_ylabel("neurons x samples")
    fig.tight_layout()
    save_figure(fig, out / "rates.png")
    summary = {
        "samples": int(x.shape[0]),
        "free_steps": int(layers[0].shape[0]),
        "layers": {
            name: {
                "neurons": int(r.numel() // x.shape[0]),
                "mean_rate": float(r.mean()),
                "silent_fraction": float((r == 0).double().mean()),
                "saturated_fraction": float((r >= 0.99).double().mean()),
                "spikes_per_sample": float(s.sum() / x.shape[0]),
            }
            for name, r, s in zip(names, rates, layers, strict=True)
        },
        "files": ["raster.png", "rates.png"],
    }
    atomic_write_json(out / "spikes.json", summary)
    return summary
