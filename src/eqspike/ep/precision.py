"""Mixed precision for the relaxation: drives in a low-precision dtype, everything else not.

The relaxation spends its time in the drives ∂Φ/∂s_n (convolutions, their transposes, matrix
products), evaluated 100+ times per batch. On CPUs with AVX512-BF16 (and on GPUs) a bfloat16
convolution runs ~3× faster than a float32 one, and the drives of a noisy, clipped dynamics do
not need 24 mantissa bits. So :class:`LowPrecisionDrives` wraps an energy's parameter object:

* ``input_drive`` / ``layer_drive`` cast the weights once per batch and the neighbours' states
  per call to ``dtype``, compute there (the library accumulates in float32) and return the drive
  in the states' own dtype;
* states, Sigma-Delta accumulators, running averages, the EP update ∂Φ/∂θ and the master weights
  stay in the training dtype (``param_grad_difference``, ``phi``, ``flat`` … are the wrapped
  object's own).

Spikes (0/1) are exact in bfloat16; decoded rates in [0, 1] lose ≤ 2⁻⁹ relative. Whether
accuracy holds is measured, not assumed (BENCHMARKS.md, conv speed tricks).
"""

from __future__ import annotations

from typing import Any

import torch

DRIVE_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


class LowPrecisionDrives:
    """An energy's parameter object whose drives are computed in ``dtype``."""

    def __init__(self, params: Any, dtype: torch.dtype) -> None:
        self.full = params
        self.dtype = dtype
        self.low = _prepared(params.replaced([p.detach().to(dtype) for p in params.flat()]))

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        return self.low.input_drive(x.to(self.dtype)).to(x.dtype)

    def layer_drive(self, x_drive: torch.Tensor, acts: list[torch.Tensor], n: int) -> torch.Tensor:
        """∂Φ/∂s_n from the states cast to ``dtype`` (only layers n − 1 … n + 1 are read)."""
        low_acts = [a.to(self.dtype) if abs(k - n) <= 1 else a for k, a in enumerate(acts)]
        if n == 0:  # only the first layer reads the input's drive: cast it there, not every call
            x_drive = x_drive.to(self.dtype)
        return self.low.layer_drive(x_drive, low_acts, n).to(acts[n].dtype)

    def __getattr__(self, name: str) -> Any:
        # Everything but the drives (phi, param_grad_difference, init_state, flat, replaced,
        # weights, arch …) is the full-precision object's.
        return getattr(self.full, name)


def _prepared(params: Any) -> Any:
    prepare = getattr(params, "prepared", None)  # conv: pooled kernels computed once
    return params if prepare is None else prepare()


def drive_params(params: Any, dtype: torch.dtype | None) -> Any:
    """The parameters a relaxation should use: ``params`` with what their drives reuse
    precomputed, and, when ``dtype`` differs from theirs, the low-precision view."""
    if dtype is None or params.flat()[0].dtype == dtype:
        return _prepared(params)
    return LowPrecisionDrives(params, dtype)
