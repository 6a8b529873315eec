"""Measured energy, where the machine exposes a counter: NVML on NVIDIA GPUs, RAPL on CPUs.

A measurement that cannot be taken is returned as ``{"joules_per_sample": None, "reason": ...}``
— never an invented number.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RAPL_ROOT = Path("/sys/class/powercap")


def _repeat_for(fn: Callable[[], int], min_seconds: float) -> tuple[int, float]:
    """Call ``fn`` (returns samples processed) until ``min_seconds`` have passed."""
    samples, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        samples += fn()
    return samples, time.perf_counter() - start


def gpu_energy(fn: Callable[[], int], min_seconds: float = 2.0) -> dict[str, Any]:
    """Joules per sample of ``fn`` on GPU 0 from NVML's total-energy counter (mJ, updated every
    20-100 ms: hence runs of at least ``min_seconds``)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {"joules_per_sample": None, "reason": "no CUDA GPU on this machine"}
        import pynvml  # from nvidia-ml-py
    except ImportError:
        return {
            "joules_per_sample": None,
            "reason": "nvidia-ml-py is not installed (pip install 'eqspike[gpu]')",
        }
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        fn()  # warm-up
        torch.cuda.synchronize()
        before = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        samples, seconds = _repeat_for(lambda: (fn(), torch.cuda.synchronize())[0], min_seconds)
        after = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        name = pynvml.nvmlDeviceGetName(handle)
    except Exception as exc:  # NVML reports unsupported devices with its own errors
        return {"joules_per_sample": None, "reason": f"NVML: {exc}"}
    joules = (after - before) / 1e3
    return {
        "joules_per_sample": joules / samples,
        "joules": joules,
        "seconds": seconds,
        "samples": samples,
        "device": str(name),
    }


def _rapl_files() -> list[Path]:
    if not RAPL_ROOT.is_dir():
        return []
    return sorted(RAPL_ROOT.glob("intel-rapl:[0-9]*/energy_uj"))


def cpu_energy(fn: Callable[[], int], min_seconds: float = 2.0) -> dict[str, Any]:
    """Joules per sample of ``fn`` on the CPU packages from RAPL (``/sys/class/powercap``)."""
    files = _rapl_files()
    if not files:
        return {
            "joules_per_sample": None,
            "reason": f"no RAPL counters under {RAPL_ROOT} (common in VMs and containers)",
        }
    try:
        before = [int(f.read_text()) for f in files]
        samples, seconds = _repeat_for(fn, min_seconds)
        after = [int(f.read_text()) for f in files]
    except OSError as exc:
        return {"joules_per_sample": None, "reason": f"RAPL counters not readable: {exc}"}
    joules = sum((a - b) for a, b in zip(after, before, strict=True)) / 1e6
    if joules <= 0:  # a counter wrapped around during the run
        return {"joules_per_sample": None, "reason": "RAPL counter wrapped; run again"}
    return {
        "joules_per_sample": joules / samples,
        "joules": joules,
        "seconds": seconds,
        "samples": samples,
        "note": "whole CPU package(s): other processes' energy included",
    }
