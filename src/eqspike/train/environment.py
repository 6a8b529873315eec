"""What a run ran on: versions, device, threads, host (saved as environment.json)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def _cpuinfo(*keys: str) -> str | None:
    """The first value of any of ``keys`` in /proc/cpuinfo (None off Linux or if absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``), or None where unknown."""
    flags = _cpuinfo("flags", "Features")
    return None if flags is None else frozenset(flags.split())


def environment(device: torch.device | None = None) -> dict[str, Any]:
    from eqspike import __version__
    from eqspike.ep.precision import native_bfloat16

    info: dict[str, Any] = {
        "eqspike": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_bfloat16": native_bfloat16("cpu"),  # emulated bfloat16 drives run ~16x slower
        "torch_threads": torch.get_num_threads(),
        "device": str(device) if device is not None else "cpu",
        "cuda_available": torch.cuda.is_available(),
    }
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
