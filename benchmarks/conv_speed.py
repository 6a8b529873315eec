"""Benchmark: speed tricks of conv EP on the paper-size 2C2FC net, and whether accuracy holds.

* Drives (one pass over every layer's ∂Φ/∂s_n, batch 64, the relaxation's inner loop): the
  explicit conv → 2×2 average pool and upsample ÷ 4 → transposed conv (baseline, kept only
  here) against the library's single stride-2 conv with the pooled (k+1)×(k+1) kernel, in
  float32 and with bfloat16 drives.
* Learning step (Sigma-Delta spiking, the config's 40 free + 2 × 20 nudged steps, centred EP,
  batch 64) on
  real MNIST: float32 drives vs bfloat16 drives (``solver.drive_dtype``), interleaved.
* Accuracy hold: ``conv/mnist_spiking_quick`` trained with float32 and with bfloat16 drives.
* Warm start (free phases from one feed-forward sweep): ``conv/mnist_spiking_quick`` with 40
  free steps from zeros vs 20 free steps from zeros and from the warm start; ``conv/mnist_quick``
  (rate) with 30 vs 15 free steps, cold and warm.

    python benchmarks/conv_speed.py --data-dir ../shared/data
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import record, speed_arguments, timed

from eqspike.algorithms import ALGORITHMS
from eqspike.ep.conv import ConvParams
from eqspike.ep.precision import drive_params
from eqspike.train.api import train
from eqspike.train.config import load_config
from eqspike.train.trainer import load_splits


def explicit_drives(params: ConvParams, x: torch.Tensor, acts: list[torch.Tensor]) -> list:
    """Baseline only: every drive with the pre-pool map materialised (conv, then pool)."""
    states, drives = [x, *acts], []
    for n, spec in enumerate(params.arch.layers):
        w, b = params.weights[n], params.biases[n]
        if spec.kind == "fc":
            h = torch.addmm(b, states[n].flatten(1), w.t())
        else:
            h = F.avg_pool2d(F.conv2d(states[n], w, b, padding=spec.padding), 2)
        if n + 1 < len(acts):
            above, up = params.arch.layers[n + 1], acts[n + 1]
            if above.kind == "fc":
                h = h + (up @ params.weights[n + 1]).view_as(h)
            else:
                unpooled = F.interpolate(up, scale_factor=2, mode="nearest") / 4.0
                h = h + F.conv_transpose2d(unpooled, params.weights[n + 1], padding=above.padding)
        drives.append(h)
    return drives


def library_drives(params, x: torch.Tensor, acts: list[torch.Tensor]) -> list:
    x_drive = params.input_drive(x)
    return [params.layer_drive(x_drive, acts, n) for n in range(len(acts))]


def _ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    args = speed_arguments(__doc__.splitlines()[0], batches=6)
    config = load_config("conv/mnist")
    net = ALGORITHMS["conv_ep"].build(config, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 28, 28, generator=g)
    acts = [torch.rand(64, *shape, generator=g) for shape in net.energy.arch.shapes[1:]]
    params = net.energy.params()
    with torch.no_grad():
        full, low = drive_params(params, None), drive_params(params, torch.bfloat16)
        drive_ms = {
            "drive_ms_explicit_pool": _ms(lambda: explicit_drives(params, x, acts), 20),
            "drive_ms_pooled_kernel": _ms(lambda: library_drives(full, x, acts), 20),
            "drive_ms_pooled_kernel_bf16": _ms(lambda: library_drives(low, x, acts), 20),
        }
        exact = explicit_drives(params, x, acts)
        error = max(
            float((a - e).norm() / e.norm())
            for a, e in zip(library_drives(full, x, acts), exact, strict=True)
        )

    splits = load_splits(config, args.data_dir)
    batches = [
        (splits.train.x[i * 64 : (i + 1) * 64], splits.train.y[i * 64 : (i + 1) * 64])
        for i in range(args.batches)
    ]
    nets = {}
    for name, dtype in (("float32", None), ("bfloat16", "bfloat16")):
        cfg = load_config("conv/mnist", overrides=[f"solver.drive_dtype={dtype or 'null'}"])
        nets[name] = ALGORITHMS["conv_ep"].build(cfg, torch.Generator().manual_seed(0))
    step_seconds: dict[str, list[float]] = {name: [] for name in nets}
    for _ in range(2):  # interleaved, so both see the same machine load
        for name, model in nets.items():
            seconds, _ = timed(
                lambda xb, yb, m=model: m.learning_step(xb, yb, torch.Generator().manual_seed(0)),
                batches,
                warmup=1,
            )
            step_seconds[name].append(seconds / len(batches))
    fp32, bf16 = min(step_seconds["float32"]), min(step_seconds["bfloat16"])

    variants = {
        "float32": ("conv/mnist_spiking_quick", ["solver.drive_dtype=null"]),
        "bfloat16": ("conv/mnist_spiking_quick", ["solver.drive_dtype=bfloat16"]),
        "spiking_free20_cold": ("conv/mnist_spiking_quick", ["solver.free_steps=20"]),
        "spiking_free20_warm": (
            "conv/mnist_spiking_quick",
            ["solver.free_steps=20", "solver.warm_start=true"],
        ),
        "rate_free30_cold": ("conv/mnist_quick", []),
        "rate_free15_cold": ("conv/mnist_quick", ["solver.free_steps=15"]),
        "rate_free15_warm": (
            "conv/mnist_quick",
            ["solver.free_steps=15", "solver.warm_start=true"],
        ),
    }
    accuracy = {}
    for name, (config_name, overrides) in variants.items():
        quick = load_config(config_name, overrides=overrides)
        with tempfile.TemporaryDirectory() as tmp:
            summary = train(quick, None, Path(tmp) / name, args.data_dir, True)
        accuracy[f"quick_test_acc_{name}"] = summary["test_acc"]
        accuracy[f"quick_epoch_seconds_{name}"] = summary["train_seconds"] / quick.train.epochs

    batches_per_epoch = (60000 - config.data.validation) // config.data.batch_size
    metrics = {
        **drive_ms,
        "pooled_kernel_max_relative_error": error,
        "step_seconds_float32": fp32,
        "step_seconds_bfloat16": bf16,
        "bfloat16_speedup": fp32 / bf16,
        "epoch_minutes_float32_estimate": fp32 * batches_per_epoch / 60,
        "epoch_minutes_bfloat16_estimate": bf16 * batches_per_epoch / 60,
        **accuracy,
    }
    record(
        "conv_speed",
        metrics,
        notes="2C2FC spiking conv EP, batch 64, one thread. Drives: one pass over all layers. "
        "Steps: best of two interleaved rounds of learning steps on MNIST batches. Accuracy "
        "hold and warm starts: the quick configs (3000 images, 3 epochs, 1000 test images; "
        "float32 = the spiking quick config with 40 free steps from zeros). Epoch "
        "estimates = step time x batches (no evaluation).",
    )
    print(metrics)


if __name__ == "__main__":
    main()
