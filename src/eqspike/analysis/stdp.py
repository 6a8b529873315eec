"""STDP analysis of EqSpike: weight changes against the timing of pre- and postsynaptic spikes.

During real nudged phases of a trained network, every step at which a sampled synapse (i, j)
receives a nonzero increment of the applied rule,

    c(t) = ∓ (Δs_i S̄_j + S̄_i Δs_j) / 2β        (− in the +β phase, + in the −β phase)

is an *event*; it is tagged with Δt = t_post − t_pre, the offset between the postsynaptic and
the presynaptic spike nearest to t (within ``max_lag`` steps). Mean Δw per Δt bin, with
counts, shows the window; an exponential is fitted on each side:

    Δw = a₊ exp(−Δt/τ₊) for Δt > 0,    Δw = a₋ exp(Δt/τ₋) for Δt < 0.

Control: one phase at β = 0 with the one-sided scale −1/β, i.e. the accumulator's
β-independent part, which centring removes; the report says how much of the applied window's
shape it shares (correlation of the binned curves). Pairing protocol: one synapse, a presynaptic
and a postsynaptic neuron each driven to a single brief burst, offsets swept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eqspike.analysis.plots import plt, save_figure
from eqspike.ep.spiking import SpikingSolver
from eqspike.errors import ConfigError
from eqspike.io import atomic_write_json
from eqspike.neurons.spiking import membrane_step, sigma_delta_init, sigma_delta_step


def _nearest_spike_time(spikes: torch.Tensor, max_lag: int) -> torch.Tensor:
    """For every step t, the time of the spike nearest to t (inf if none within max_lag).

    ``spikes``: (steps, ...) binary. Ties go to the earlier spike.
    """
    steps = spikes.shape[0]
    t = torch.arange(steps, dtype=torch.float64).view(-1, *([1] * (spikes.dim() - 1)))
    times = torch.where(spikes > 0, t, torch.full_like(spikes, math.inf, dtype=torch.float64))
    best = torch.full_like(times, math.inf)
    best_dist = torch.full_like(times, math.inf)
    for lag in range(-max_lag, max_lag + 1):
        shifted = torch.roll(times, shifts=-lag, dims=0)
        if lag > 0:
            shifted[steps - lag :] = math.inf
        elif lag < 0:
            shifted[:-lag] = math.inf
        dist = (shifted - t).abs()
        better = dist < best_dist
        best = torch.where(better, shifted, best)
        best_dist = torch.where(better, dist, best_dist)
    return best


def record_events(
    network,
    x: torch.Tensor,
    labels: torch.Tensor,
    synapses: int,
    max_lag: int,
    seed: int,
    beta_override: float | None = None,
) -> dict[str, np.ndarray]:
    """(Δt, Δw) events of sampled synapses of every weight layer during the nudged phases."""
    solver = network.solver
    if not isinstance(solver, SpikingSolver):
        raise ConfigError("stdp needs a spiking run (algorithm: eqspike)")
    params, sizes, phases = network.energy.params(), network.sizes, network.phases
    beta = network.estimator.beta
    x = x.flatten(1)
    target = network.target(labels)
    g = torch.Generator().manual_seed(seed)
    chosen = [
        (
            torch.randint(0, sizes[n + 1], (synapses,), generator=g),
            torch.randint(0, sizes[n], (synapses,), generator=g),
        )
        for n in range(len(sizes) - 1)
    ]
    inputs = solver.input_train(params, x, phases.free_steps + phases.nudged_steps, g)
    free = solver.relax(params, inputs, 0, solver.init_state(params, x, g), phases.free_steps)
    if beta_override is None:
        nudges = [(beta, -1.0 / (2 * beta)), (-beta, 1.0 / (2 * beta))]
    else:  # control: one phase at beta_override, one-sided scale -1/beta
        nudges = [(beta_override, -1.0 / beta)]
    dts, dws = [], []
    with torch.no_grad():
        for phase_beta, scale in nudges:
            state = solver.copy(free)
            pre_spikes, post_spikes, increments = (
                [[] for _ in chosen],
                [[] for _ in chosen],
                [[] for _ in chosen],
            )
            for t in range(phases.free_steps, phases.free_steps + phases.nudged_steps):
                new = solver.step(params, inputs.drive[t], state, phase_beta, target)
                layer_spikes = [inputs.spikes[t], *new.spikes]
                layer_prev = [inputs.spikes[t - 1], *state.spikes]
                delta = [None, *(a - b for a, b in zip(new.rates, state.rates, strict=True))]
                for k, (post, pre) in enumerate(chosen):
                    mean_pre = 0.5 * (layer_spikes[k][:, pre] + layer_prev[k][:, pre])
                    mean_post = 0.5 * (layer_spikes[k + 1][:, post] + layer_prev[k + 1][:, post])
                    inc = delta[k + 1][:, post] * mean_pre
                    if delta[k] is not None:
                        inc = inc + mean_post * delta[k][:, pre]
                    increments[k].append(scale * inc)
                    pre_spikes[k].append(layer_spikes[k][:, pre])
                    post_spikes[k].append(layer_spikes[k + 1][:, post])
                state = new
            for k in range(len(chosen)):
                inc = torch.stack(increments[k]).double()
                t_pre = _nearest_spike_time(torch.stack(pre_spikes[k]).double(), max_lag)
                t_post = _nearest_spike_time(torch.stack(post_spikes[k]).double(), max_lag)
                lag = t_post - t_pre
                valid = (inc != 0) & torch.isfinite(lag) & (lag.abs() <= max_lag)
                dts.append(lag[valid].numpy())
                dws.append(inc[valid].numpy())
    return {"dt": np.concatenate(dts), "dw": np.concatenate(dws)}


@torch.no_grad()
def nudged_samples(
    network, x: torch.Tensor, labels: torch.Tensor, count: int, batch: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` samples whose free-phase output differs from the one-hot target.

    A trained network's outputs sit exactly on the hard sigmoid's bounds for most samples, so
    the nudge β(y − s) is exactly zero there and the ±β phases replay the free phase: such
    samples carry no learning signal and no timing information about the update."""
    chosen: list[torch.Tensor] = []
    found = 0
    solver = getattr(network, "solver", None)
    if getattr(solver, "readout_steps", 1) > 1:  # the nudge sees the last state, not a window
        solver = dataclasses.replace(solver, readout_steps=1)
    for start in range(0, len(x), batch):
        xb, yb = x[start : start + batch], labels[start : start + batch]
        if solver is not None:
            params, steps = network.energy.params(), network.phases.free_steps
            out, _ = solver.free_output(params, network.prepare_input(xb), steps)
        else:
            out = network(xb)
        keep = (out != network.target(yb)).any(1).nonzero().squeeze(1) + start
        chosen.append(keep)
        found += len(keep)
        if found >= count:
            break
    index = torch.cat(chosen)[:count] if chosen else torch.zeros(0, dtype=torch.long)
    if len(index) == 0:
        raise ConfigError("no sample is nudged (every output equals its target exactly)")
    return x[index], labels[index]


def _exp(dt: np.ndarray, a: float, tau: float) -> np.ndarray:
    return a * np.exp(-np.abs(dt) / tau)


def fit_window(bins: np.ndarray, mean: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Exponential fits on each side (bins with events only); NaN where a fit fails."""
    from scipy.optimize import curve_fit

    out: dict[str, float] = {}
    for side, mask in (("plus", bins > 0), ("minus", bins < 0)):
        use = mask & (counts > 0)
        a, tau = math.nan, math.nan
        if use.sum() >= 2:
            x, y = bins[use].astype(float), mean[use]
            guess = (y[np.argmin(np.abs(x))], 3.0)
            with contextlib.suppress(RuntimeError, ValueError):  # no fit -> NaN
                (a, tau), _ = curve_fit(
                    _exp,
                    x,
                    y,
                    p0=guess,
                    sigma=1 / np.sqrt(counts[use]),
                    maxfev=10000,
                    bounds=([-np.inf, 0.5], [np.inf, 100.0]),  # τ: half a step to 100 steps
                )
        out[f"a_{side}"], out[f"tau_{side}"] = float(a), float(tau)
    return out


def binned(events: dict[str, np.ndarray], max_lag: int) -> dict[str, Any]:
    bins = np.arange(-max_lag, max_lag + 1)
    dt = events["dt"].astype(int)
    counts = np.array([(dt == b).sum() for b in bins])
    sums = np.array([events["dw"][dt == b].sum() for b in bins])
    mean = np.divide(sums, counts, out=np.zeros(len(bins)), where=counts > 0)
    return {
        "dt": bins.tolist(),
        "mean_dw": mean.tolist(),
        "counts": counts.tolist(),
        "events": len(dt),
        "fit": fit_window(bins, mean, counts),
    }


def pairing_protocol(epsilon: float, offsets: range, pulse: float = 3.0, steps: int = 60) -> dict:
    """One synapse, two Sigma-Delta neurons, each kicked by a one-step drive ``pulse`` (pre at
    t = 20, post at 20 + Δt); Δw = Σ_t Δs_post S̄_pre + S̄_post Δs_pre of the local rule."""
    dws = []
    for offset in offsets:
        kicks = {"pre": 20, "post": 20 + offset}
        traces = {}
        for name, kick in kicks.items():
            u = torch.zeros(1, dtype=torch.float64)
            enc = sigma_delta_init(u)
            s_prev, spike_prev = (
                torch.zeros(1, dtype=torch.float64),
                torch.zeros(1, dtype=torch.float64),
            )
            ds, sbar = [], []
            for t in range(steps):
                drive = torch.full_like(u, pulse if t == kick else 0.0)
                s, u = membrane_step(drive, u, epsilon)
                spike, enc = sigma_delta_step(s, enc)
                ds.append(float(s - s_prev))
                sbar.append(float(0.5 * (spike + spike_prev)))
                s_prev, spike_prev = s, spike
            traces[name] = (np.array(ds), np.array(sbar))
        (ds_pre, sb_pre), (ds_post, sb_post) = traces["pre"], traces["post"]
        dws.append(float((ds_post * sb_pre + sb_post * ds_pre).sum()))
    return {"dt": list(offsets), "dw": dws, "epsilon": epsilon, "pulse": pulse}


def stdp_report(
    network,
    x: torch.Tensor,
    labels: torch.Tensor,
    out: Path,
    synapses: int = 200,
    max_lag: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """stdp.json + stdp.png: applied window, β = 0 control, pairing protocol."""
    applied = binned(record_events(network, x, labels, synapses, max_lag, seed), max_lag)
    control = binned(record_events(network, x, labels, synapses, max_lag, seed, 0.0), max_lag)
    a, c = np.array(applied["mean_dw"]), np.array(control["mean_dw"])
    shared = float(np.corrcoef(a, c)[0, 1]) if a.std() > 0 and c.std() > 0 else math.nan
    pairing = pairing_protocol(network.solver.epsilon, range(-max_lag, max_lag + 1))
    report = {
        "beta": network.estimator.beta,
        "samples": int(x.shape[0]),
        "synapses_per_layer": synapses,
        "applied": applied,
        "control_beta0": control,
        "shape_correlation_applied_vs_control": shared,
        "pairing_protocol": pairing,
        "png": str(out / "stdp.png"),
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, data, title in (
        (axes[0], applied, "applied (centred ±β)"),
        (axes[1], control, "control: β = 0 (one-sided scale)"),
    ):
        dt = np.array(data["dt"])
        ax.bar(
            dt,
            data["mean_dw"],
            color=np.where(np.array(data["mean_dw"]) > 0, "tab:red", "tab:blue"),
        )
        fit = data["fit"]
        for side, sign in (("plus", 1), ("minus", -1)):
            if math.isfinite(fit[f"a_{side}"]):
                grid = np.linspace(1.0, dt.max(), 50) * sign
                ax.plot(grid, _exp(grid, fit[f"a_{side}"], fit[f"tau_{side}"]), "k-")
        ax.axhline(0, color="gray", lw=0.5)
        ax.set(
            title=f"{title}\n{data['events']} events",
            xlabel="Δt = t_post − t_pre (steps)",
            ylabel="mean Δw per event",
        )
    axes[2].plot(pairing["dt"], pairing["dw"], "o-")
    axes[2].axhline(0, color="gray", lw=0.5)
    axes[2].set(
        title="pairing protocol (one synapse)", xlabel="Δt = t_post − t_pre (steps)", ylabel="Δw"
    )
    fig.tight_layout()
    save_figure(fig, out / "stdp.png")
    atomic_write_json(out / "stdp.json", report)
    return report
