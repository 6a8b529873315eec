"""Principal branch W₀ of the Lambert W function in torch (PyTorch has none).

W₀(z) solves w·eʷ = z with w ≥ -1, defined for z ≥ -1/e. It gives the rising-flank threshold
crossing of a LIF neuron with τ_m = τ_s. Vectorised, CPU or GPU, float32 or float64, with no
Python loop over elements: an initial guess from the branch-point series (near -1/e) or a
logarithmic asymptote, refined by a fixed number of Halley steps.
"""

from __future__ import annotations

import math

import torch

INV_E = math.exp(-1.0)
# 1/e = INV_E + _INV_E_LOW exactly to ~1e-33: z + 1/e near the branch point without cancellation.
_INV_E_LOW = -1.2428753672788363e-17
_HALLEY_STEPS = 4  # 3 already reach 1e-12 over [-1/e, 1e8] in float64; one spare
# Branch-point series W = Σ c_k p^k, p = sqrt(2(e z + 1)); used directly where p < _SERIES_P.
_SERIES = (-1.0, 1.0, -1.0 / 3.0, 11.0 / 72.0, -43.0 / 540.0, 769.0 / 17280.0, -221.0 / 8505.0)
_SERIES_P = 0.01


def lambertw0(z: torch.Tensor) -> torch.Tensor:
    """W₀(z) elementwise; NaN where z < -1/e (outside the real domain) or z is NaN."""
    dtype = z.dtype
    distance = (z + INV_E) + _INV_E_LOW  # z + 1/e, accurate near the branch point
    p = torch.sqrt((2.0 * math.e) * distance.clamp(min=0.0))
    near = torch.zeros_like(p)
    for coefficient in reversed(_SERIES):
        near = near * p + coefficient
    # log1p guess for moderate z, asymptote log z - log log z for large z.
    safe = z.clamp(min=-INV_E)
    moderate = torch.log1p(safe.clamp(min=0.0)) * 0.75 + torch.where(safe < 0, safe, 0.0)
    big = safe.clamp(min=3.0)
    log_big = torch.log(big)
    large = log_big - torch.log(log_big)
    w = torch.where(p < 0.8, near, torch.where(safe > 3.0, large, moderate))
    for _ in range(_HALLEY_STEPS):
        ew = torch.exp(w)
        f = w * ew - safe
        wp1 = w + 1.0
        denominator = ew * wp1 - (w + 2.0) * f / (2.0 * wp1)
        step = f / denominator
        # At the branch point itself w = -1 exactly and the step is 0/0: keep w.
        w = torch.where(torch.isfinite(step), w - step, w)
    w = torch.where(p < _SERIES_P, near, w)  # Halley loses digits to cancellation there
    w = torch.where(z == float("inf"), z, w)
    # z = -1/e rounded to float64 lies 1.2e-17 below the true branch point: treat as W = -1.
    w = torch.where(z < -INV_E, torch.full_like(w, float("nan")), w)
    return w.to(dtype)
