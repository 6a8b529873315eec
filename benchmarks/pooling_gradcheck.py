"""Benchmark: max vs average pooling in spiking conv EP — does EP still follow BPTT?

Small conv nets (1x8x8 input, conv 3x3 4 channels + 2x2 pooling, fc 8, fc 3) with random
weights, Sigma-Delta spiking dynamics (ε 0.5, decoder decay 0.8), centred EP (β 0.1, 150 free
/ 30 nudged steps) against BPTT through the same spiking dynamics (surrogate spike gradient,
last 30 steps from the free state), and the same with rate dynamics (β 1e-3) for reference.
Per pooling: the cosine per parameter tensor, averaged over tensors and over seeds 0-9
(degenerate ones skipped). Writes
``benchmarks/results/pooling_gradcheck.json`` (keys ``avg_cosine``, ``max_cosine``: spiking)
and ``pooling_gradcheck.png``.

    python benchmarks/pooling_gradcheck.py
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from common import RESULTS, record

from eqspike.ep.estimators import BackpropThroughTime, EquilibriumPropagation, Phases
from eqspike.ep.gradcheck import random_conv_problem
from eqspike.ep.sigma_delta import SigmaDeltaSolver
from eqspike.ep.solvers import FixedPointSolver

SEEDS = range(10)
NAMES = ["W_conv", "W_fc1", "W_fc2", "b_conv", "b_fc1", "b_fc2"]


def cosines(solver, beta: float, pool: str, seed: int) -> list[float] | None:
    """Per-tensor cosines; None when the problem is degenerate (the output layer saturated,
    so that the true gradient is zero and a cosine means nothing)."""
    params, x, target = random_conv_problem(pool, seed)
    phases = Phases(150, 30)
    ep = EquilibriumPropagation(beta, "centered").gradients(solver, params, x, target, phases)
    bptt = BackpropThroughTime().trajectory(solver, params, x, target, phases)[-1]
    if all(float(b.abs().max()) == 0.0 for b in bptt.flat()):
        return None
    return [
        F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        for a, b in zip(ep.grads.flat(), bptt.flat(), strict=True)
    ]


def main() -> None:
    torch.set_num_threads(1)
    table: dict[str, list[float]] = {}
    skipped: dict[str, int] = {}
    for dynamics, solver, beta in (
        ("spiking", SigmaDeltaSolver(0.5, 0.8), 0.1),
        ("rate", FixedPointSolver(0.5), 1e-3),
    ):
        for pool in ("avg", "max"):
            per_seed = [cosines(solver, beta, pool, seed) for seed in SEEDS]
            valid = [c for c in per_seed if c is not None]
            skipped[f"{dynamics}_{pool}"] = len(per_seed) - len(valid)
            table[f"{dynamics}_{pool}"] = [statistics.mean(c) for c in zip(*valid, strict=True)]
            print(dynamics, pool, [f"{c:.3f}" for c in table[f"{dynamics}_{pool}"]])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    width = 0.2
    for k, key in enumerate(table):
        ax.bar([i + (k - 1.5) * width for i in range(len(NAMES))], table[key], width, label=key)
    ax.set_xticks(range(len(NAMES)))
    ax.set_xticklabels(NAMES)
    ax.set_ylabel("cosine(EP, BPTT)")
    ax.set_title("Conv EP vs BPTT through the same dynamics (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = RESULTS / "pooling_gradcheck.png"
    fig.savefig(png, dpi=120)
    record(
        "pooling_gradcheck",
        {
            "avg_cosine": statistics.mean(table["spiking_avg"]),
            "max_cosine": statistics.mean(table["spiking_max"]),
            "rate_avg_cosine": statistics.mean(table["rate_avg"]),
            "rate_max_cosine": statistics.mean(table["rate_max"]),
            "per_tensor": {k: dict(zip(NAMES, v, strict=True)) for k, v in table.items()},
            "degenerate_seeds_skipped": skipped,
            "png": str(png.relative_to(RESULTS.parent.parent)),
        },
        notes="Cosine of the centred EP update with BPTT through the same dynamics, mean over "
        "parameter tensors and seeds 0-9 (seeds whose output layer saturates, so that the true "
        "gradient is zero, are skipped and counted); spiking: Sigma-Delta, beta 0.1; rate: "
        "beta 1e-3.",
    )


if __name__ == "__main__":
    main()
