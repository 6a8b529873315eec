"""Benchmark: training samples/s of EqSpike and of its rate twin, same batches, same process.

    python benchmarks/eqspike_speed.py --data-dir ../shared/data [--threads 1]

One learning step = free phase + both nudged phases + the update (no optimiser step), on the
784-500-10 network of configs/eqspike/mnist.yaml and its twin configs/eqspike/mnist_rate_twin.yaml.
"""

from __future__ import annotations

import torch
from common import record, speed_arguments, timed

from eqspike.algorithms import ALGORITHMS
from eqspike.data import load_mnist
from eqspike.train.config import load_config


def main() -> None:
    args = speed_arguments(__doc__.splitlines()[0], batches=100)
    data = load_mnist("train", args.data_dir)
    metrics = {}
    for key, name in (("eqspike", "eqspike/mnist"), ("rate_twin", "eqspike/mnist_rate_twin")):
        config = load_config(name)
        bs = config.data.batch_size
        batches = [
            (data.x[i * bs : (i + 1) * bs], data.y[i * bs : (i + 1) * bs])
            for i in range(args.batches)
        ]
        network = ALGORITHMS[config.algorithm].build(config, torch.Generator().manual_seed(0))
        seconds, _ = timed(network.learning_step, batches)
        metrics[f"{key}_train_samples_per_s"] = bs * len(batches) / seconds
    metrics["rate_twin_speedup"] = (
        metrics["rate_twin_train_samples_per_s"] / metrics["eqspike_train_samples_per_s"]
    )
    metrics["torch_threads"] = args.threads
    record("eqspike_speed", metrics, notes="batch 20, eps 0.2, 60 free / 30 nudged steps")
    print(metrics)


if __name__ == "__main__":
    main()
