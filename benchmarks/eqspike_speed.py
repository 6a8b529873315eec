"""Benchmark: training samples/s of EqSpike and of its rate twin, same batches, same process.

    python benchmarks/eqspike_speed.py --data-dir ../shared/data [--threads 1]

One learning step = free phase + both nudged phases + the update (no optimiser step), on the
784-500-10 network of configs/eqspike/mnist.yaml and its twin configs/eqspike/mnist_rate_twin.yaml.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import record

from eqspike.algorithms import ALGORITHMS
from eqspike.data import load_mnist
from eqspike.train.config import load_config


def samples_per_s(network, batches) -> float:
    for x, y in batches[:3]:
        network.learning_step(x, y)
    start = time.perf_counter()
    for x, y in batches:
        network.learning_step(x, y)
    return sum(len(y) for _, y in batches) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
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
        metrics[f"{key}_train_samples_per_s"] = samples_per_s(network, batches)
    metrics["rate_twin_speedup"] = (
        metrics["rate_twin_train_samples_per_s"] / metrics["eqspike_train_samples_per_s"]
    )
    metrics["torch_threads"] = args.threads
    record("eqspike_speed", metrics, notes="batch 20, eps 0.2, 60 free / 30 nudged steps")
    print(metrics)


if __name__ == "__main__":
    main()
