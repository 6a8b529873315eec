"""Benchmark: how well conv EP's update follows the gradient, by nudging β, nudged steps K and
what the spiking network contrasts.

On the ``conv/mnist_spiking_quick`` network (untrained, seed 0, float64) and three batches of 16
MNIST test images, the reference is the rate network's gradient by BPTT (300 steps, the last 60
backpropagated). For β ∈ {0.1, 0.3, 0.5, 0.7, 0.9} and K ∈ {20, 40} nudged steps after 40 free
steps, centred EP is run with rate dynamics, with Sigma-Delta spikes contrasting the spikes
averaged over each phase (the spec's decoded states, ``solver.contrast: spikes``), and
contrasting the neurons' own analogue states (``contrast: analogue``). Metric: cosine with the
reference, averaged over the parameter tensors and the batches. Also BPTT through the spiking
dynamics against the rate reference (how close the spiking network's own gradient is).

    python benchmarks/conv_alignment.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from common import RESULTS, record

from eqspike.algorithms import ALGORITHMS
from eqspike.ep.estimators import BackpropThroughTime, EquilibriumPropagation, Phases
from eqspike.ep.sigma_delta import SigmaDeltaSolver
from eqspike.ep.solvers import FixedPointSolver
from eqspike.train.config import load_config
from eqspike.train.trainer import load_splits

BETAS = (0.1, 0.3, 0.5, 0.7, 0.9)
NUDGED = (20, 40)
FREE = 40


def mean_cosine(estimate, reference) -> float:
    cosines = [
        F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        for a, b in zip(estimate.flat(), reference.flat(), strict=True)
    ]
    return sum(cosines) / len(cosines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config("conv/mnist_spiking_quick")
    net = ALGORITHMS["conv_ep"].build(config, torch.Generator().manual_seed(0)).double()
    params = net.energy.params()
    test = load_splits(config, args.data_dir).test
    batches = [
        (test.x[16 * k : 16 * (k + 1)].double(), net.target(test.y[16 * k : 16 * (k + 1)]))
        for k in range(args.batches)
    ]
    rate = FixedPointSolver(0.5)
    references = [
        BackpropThroughTime(truncate=60).gradients(rate, params, x, t.double(), Phases(300, 60))
        for x, t in batches
    ]
    dynamics = {
        "rate": rate,
        "spikes": SigmaDeltaSolver(0.5, 0.8, contrast="spikes"),
        "analogue": SigmaDeltaSolver(0.5, 0.8, contrast="analogue"),
    }
    metrics: dict[str, float] = {}
    spiking_bptt = [
        mean_cosine(
            BackpropThroughTime(truncate=20)
            .gradients(dynamics["spikes"], params, x, t.double(), Phases(FREE, 20))
            .grads,
            ref.grads,
        )
        for (x, t), ref in zip(batches, references, strict=True)
    ]
    metrics["spiking_bptt_vs_rate_bptt"] = sum(spiking_bptt) / len(spiking_bptt)
    for name, solver in dynamics.items():
        for k in NUDGED:
            for beta in BETAS:
                values = [
                    mean_cosine(
                        EquilibriumPropagation(beta)
                        .gradients(solver, params, x, t.double(), Phases(FREE, k))
                        .grads,
                        ref.grads,
                    )
                    for (x, t), ref in zip(batches, references, strict=True)
                ]
                key = f"{name}_K{k}_beta{beta}"
                metrics[key] = sum(values) / len(values)
                print(f"{name:<9} K {k:<3} beta {beta:<4} cosine {metrics[key]:.3f}")

    fig, axes = plt.subplots(1, len(NUDGED), figsize=(10, 4), sharey=True)
    for ax, k in zip(axes, NUDGED, strict=True):
        for name in dynamics:
            ax.plot(BETAS, [metrics[f"{name}_K{k}_beta{b}"] for b in BETAS], "o-", label=name)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set(title=f"{FREE} free + {k} nudged steps", xlabel="β")
    axes[0].set_ylabel("cosine with the rate gradient (BPTT)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "conv_alignment.png", dpi=120)
    record(
        "conv_alignment",
        metrics,
        notes="Centred EP on conv/mnist_spiking_quick (untrained, float64), mean cosine over "
        "tensors and 3 batches of 16 MNIST test images with the rate network's BPTT gradient. "
        "rate = rate dynamics; spikes = Sigma-Delta, spikes averaged per phase contrasted; "
        "analogue = Sigma-Delta, the neurons' analogue states averaged per phase contrasted. "
        "Plot: conv_alignment.png.",
    )


if __name__ == "__main__":
    main()
