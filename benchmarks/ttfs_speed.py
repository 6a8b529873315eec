"""Benchmark: TTFS training speed and the memory of the exact forward pass.

* training samples/s on Yin-Yang (4-120-3, batch 150) and MNIST (784-350-10, batch 80), float64,
  real data, the project's learning step (forward, exact backward, Adam);
* peak memory of the exact forward pass of the MNIST hidden layer (784 -> 350, batch 80), ours
  (sorted inputs + prefix sums, O(B·N_in·N_out), chunked) against the naive enumeration of
  every causal set (O(B·N_in²·N_out), the reference's method). The naive one cannot run at that
  size (its prefix tensor alone is ~138 GB): it is measured on the same layer with 2 outputs and
  its full-size need is computed. Each measurement runs in a fresh process (peak RSS).

    python benchmarks/ttfs_speed.py --data-dir ../shared/data
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time

import torch
from common import record, speed_arguments, timed

from eqspike.train.config import load_config
from eqspike.train.trainer import load_splits
from eqspike.ttfs.lambertw import lambertw0
from eqspike.ttfs.network import TTFSNetwork
from eqspike.ttfs.spike_times import first_spike_times


def naive_first_spike_times(times: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Baseline only: every causal set as a (B, N_in, N_in, N_out) masked product (τ_m = τ_s)."""
    sorted_times, _ = times.sort(dim=1)
    e = times.exp()
    causal = (times[:, None, :] <= sorted_times[:, :, None]).to(times.dtype)  # (B, K, I)
    product = causal[..., None] * (weights[None, None] * e[:, None, :, None])  # (B, K, I, J)
    a1 = product.sum(2)
    b = (product * times[:, None, :, None]).sum(2)
    z = (-(1 / a1) * torch.exp(b / a1)).clamp(min=-math.exp(-1))
    candidate = b / a1 - lambertw0(z)
    nxt = torch.cat([sorted_times[:, 1:], torch.full_like(sorted_times[:, :1], math.inf)], 1)
    valid = (a1 > 0) & (candidate >= sorted_times[..., None]) & (candidate < nxt[..., None])
    return torch.where(valid, candidate, math.inf).amin(1)


def _measure(method: str, n_out: int) -> dict:
    """Runs in a child process: peak RSS growth of one forward pass."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    times = (0.15 + torch.rand(80, 784, generator=g, dtype=torch.float64) * 1.85).contiguous()
    weights = torch.randn(784, n_out, generator=g, dtype=torch.float64) * 0.1 + 0.05
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    fn = first_spike_times if method == "exact" else naive_first_spike_times
    out = fn(times, weights)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_mb": (peak - before) / 1024,
        "seconds": seconds,
        "spiking": torch.isfinite(out).float().mean().item(),
    }


def measure_in_child(method: str, n_out: int) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import ttfs_speed as s; "
        f"print(json.dumps(s._measure({method!r}, {n_out})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def training_speed(name: str, data_dir, batches: int, dtype: str | None = None) -> float:
    """Samples/s of learning steps + Adam, in the config's ``train.dtype`` or ``dtype``."""
    config = load_config(name, [f"train.dtype={dtype}"] if dtype else [])
    splits = load_splits(config, data_dir)
    torch_dtype = getattr(torch, config.train.dtype)
    net = TTFSNetwork(config, torch.Generator().manual_seed(0)).to(torch_dtype)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.optimizer.lr)
    size = config.data.batch_size
    x, y = splits.train.x.to(torch_dtype), splits.train.y
    batches = min(batches, len(y) // size)  # full batches only (Yin-Yang has 5000 samples)
    chunks = [(x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]) for i in range(batches)]

    def step(xb, yb):
        result = net.learning_step(xb, yb, torch.Generator().manual_seed(0))
        if result.weight_bump is None:
            optimizer.step()

    seconds, _ = timed(step, chunks, warmup=2)
    return batches * size / seconds


def main() -> None:
    args = speed_arguments(__doc__.splitlines()[0], batches=30)
    exact = measure_in_child("exact", 350)
    exact_small = measure_in_child("exact", 2)
    naive_small = measure_in_child("naive", 2)
    naive_full_gb = 80 * 784 * 784 * 350 * 8 / 1e9
    yinyang = training_speed("ttfs/yinyang", None, args.batches)
    mnist_batches = max(3, args.batches // 10)
    mnist = training_speed("ttfs/mnist", args.data_dir, mnist_batches)  # float32
    mnist_float64 = training_speed("ttfs/mnist", args.data_dir, mnist_batches, "float64")
    record(
        "ttfs_speed",
        {
            "yinyang_train_samples_per_s": yinyang,
            "mnist_train_samples_per_s": mnist,
            "mnist_train_samples_per_s_float64": mnist_float64,
            "mnist_forward_peak_mb": exact["peak_mb"],
            "mnist_forward_seconds": exact["seconds"],
            "naive_forward_full_size_gb_needed": naive_full_gb,
            "two_outputs_exact_peak_mb": exact_small["peak_mb"],
            "two_outputs_naive_peak_mb": naive_small["peak_mb"],
            "two_outputs_exact_seconds": exact_small["seconds"],
            "two_outputs_naive_seconds": naive_small["seconds"],
        },
        notes="Forward pass of the 784->350 layer at batch 80, float64, 1 thread. The naive "
        "enumeration needs a (B, N_in, N_in, N_out) tensor: 138 GB at full size, so it runs "
        "only with 2 outputs. Peak MB = growth of the process's max RSS during the pass. "
        "Training samples/s: learning step + Adam on real batches, in each config's dtype "
        "(Yin-Yang float64, MNIST float32; MNIST also in float64).",
        targets={"mnist_forward_peak_mb": "a few hundred MB"},
    )


if __name__ == "__main__":
    main()
