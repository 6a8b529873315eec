"""Time-stepped forward pass of a first-spike-time layer (the alternative to the closed forms).

Input spikes are moved to the nearest point of a grid of step h; between grid points the linear
ODE (C = τ_s = 1, g_L = 1/τ_m)

    dV/dt = -V/τ_m + I,   dI/dt = -I

is advanced exactly: I ← I e^{-h}, V ← V e^{-h/τ_m} + κ I with κ = (e^{-h} - e^{-h/τ_m}) /
(1/τ_m - 1) (κ = h e^{-h} when τ_m = 1). A neuron's spike time is the first grid point with
V ≥ θ, so its error is below h. Used where the closed forms cannot follow: a time-discretised
substrate (the step itself is the distortion), per-neuron τ_m mismatch, and as the independent
check of the closed forms in the tests.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def integrate_first_spikes(
    times: torch.Tensor,
    weights: torch.Tensor,
    threshold: torch.Tensor | float,
    tau_m: torch.Tensor | float,
    step: float,
    t_max: float,
) -> torch.Tensor:
    """First-spike times ``(B, J)`` on a grid of ``step`` up to ``t_max`` (+inf: none).

    ``threshold``: θ per neuron ``(J,)`` or per (sample, neuron); ``tau_m`` per neuron, in τ_s.
    """
    if step <= 0 or not math.isfinite(step):
        raise ValueError(f"the integrator step must be a positive number of tau_s; got {step}.")
    batch, _ = times.shape
    n_out = weights.shape[1]
    n_steps = math.ceil(t_max / step) + 1
    dtype, device = times.dtype, times.device
    bins = torch.round(torch.where(torch.isfinite(times), times, -1.0) / step).long()
    arrives = (bins >= 0) & (bins < n_steps)
    rows = (torch.arange(batch, device=device)[:, None] * n_steps + bins)[arrives]
    jumps = torch.zeros(batch * n_steps, n_out, dtype=dtype, device=device)
    jumps.index_add_(0, rows, weights.expand(batch, -1, -1)[arrives])
    jumps = jumps.view(batch, n_steps, n_out)

    tau_m = torch.as_tensor(tau_m, dtype=dtype, device=device).expand(n_out)
    theta = torch.as_tensor(threshold, dtype=dtype, device=device)
    current_decay = math.exp(-step)
    voltage_decay = torch.exp(-step / tau_m)
    rate_gap = 1.0 / tau_m - 1.0
    same = rate_gap.abs() < 1e-9
    safe_gap = torch.where(same, torch.ones_like(rate_gap), rate_gap)
    kappa = torch.where(same, step * current_decay, (current_decay - voltage_decay) / safe_gap)

    current = torch.zeros(batch, n_out, dtype=dtype, device=device)
    voltage = torch.zeros_like(current)
    out = torch.full_like(current, math.inf)
    for n in range(n_steps):
        current += jumps[:, n]
        if n > 0:
            crossed = (voltage >= theta) & torch.isinf(out)
            out = torch.where(crossed, torch.full_like(out, n * step), out)
            if n % 50 == 0 and not torch.isinf(out).any():
                break  # every neuron has spiked: later steps cannot change a first spike
        voltage = voltage * voltage_decay + kappa * current
        current = current * current_decay
    return out
