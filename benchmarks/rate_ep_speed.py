"""Benchmark: training samples/s of eqspike's rate EP vs a naive autograd-per-step version.

The naive baseline is the style of the public reference code: at every relaxation step it
rebuilds Φ (input term included) and calls ``torch.autograd.grad`` to get ∂Φ/∂s, and it gets
∂Φ/∂θ by autograd too. Same network (784-500-10), same steps (T=40, K=15, centred, β=0.5),
same batches, same process; both produce the same update (checked here).

    python benchmarks/rate_ep_speed.py --data-dir ../shared/data
"""

from __future__ import annotations

import torch
from common import record, speed_arguments, timed

from eqspike.data import load_mnist
from eqspike.ep import EPNetwork, HopfieldMLP, Phases, make_estimator, make_solver, phi
from eqspike.neurons import hard_sigmoid


def naive_centred_ep(energy: HopfieldMLP, x, target, phases: Phases, beta: float):
    """Reference-style EP: autograd of Φ at every step, nothing precomputed."""
    params = energy.params()

    def relax(state, steps, b):
        for _ in range(steps):
            leaves = [s.detach().requires_grad_(True) for s in state]
            total = phi(params, x, leaves)
            if b:
                total = total - b * 0.5 * ((leaves[-1] - target) ** 2).sum(1)
            grads = torch.autograd.grad(total.sum(), leaves)
            state = [hard_sigmoid(g).detach() for g in grads]
        return state

    zeros = [x.new_zeros(x.shape[0], n) for n in energy.sizes[1:]]
    free = relax(zeros, phases.free_steps, 0.0)
    plus = relax(free, phases.nudged_steps, beta)
    minus = relax(free, phases.nudged_steps, -beta)
    theta = energy.ordered_parameters()
    g_plus = torch.autograd.grad(phi(params, x, plus).mean(), theta)
    g_minus = torch.autograd.grad(phi(params, x, minus).mean(), theta)
    return [-(a - b) / (2 * beta) for a, b in zip(g_plus, g_minus, strict=True)]


def main() -> None:
    args = speed_arguments(__doc__.splitlines()[0], batches=150)
    data = load_mnist("train", args.data_dir)
    phases, beta, bs = Phases(40, 15), 0.5, 20
    energy = HopfieldMLP([784, 500, 10], generator=torch.Generator().manual_seed(0))
    net = EPNetwork(energy, make_solver("discrete"), make_estimator("centered", beta), phases)
    batches = [
        (data.x[i * bs : (i + 1) * bs].flatten(1), net.target(data.y[i * bs : (i + 1) * bs]))
        for i in range(args.batches)
    ]

    def fast(x, target):
        result = net.estimator.gradients(net.solver, energy.params(), x, target, phases)
        return [*result.grads.weights, *result.grads.biases]

    def naive(x, target):
        return naive_centred_ep(energy, x, target, phases, beta)

    t_fast, g_fast = timed(fast, batches)
    t_naive, g_naive = timed(naive, batches)
    max_diff = max((a - b).abs().max().item() for a, b in zip(g_fast, g_naive, strict=True))
    samples = args.batches * bs
    record(
        "rate_ep_speed",
        {
            "eqspike_samples_per_s": samples / t_fast,
            "naive_autograd_samples_per_s": samples / t_naive,
            "speedup_vs_autograd": t_naive / t_fast,
            "max_abs_update_difference": max_diff,
            "batches": args.batches,
            "torch_threads": args.threads,
        },
        notes="784-500-10, batch 20, T=40/K=15 centred EP (one learning step = free + two "
        "nudged phases + update); timing excludes the optimiser step, same for both.",
        targets={"speedup_vs_autograd": ">= 5"},
    )
    print(
        f"eqspike {samples / t_fast:.0f} samples/s, naive {samples / t_naive:.0f} samples/s, "
        f"speed-up {t_naive / t_fast:.1f}x, max |Δ update| {max_diff:.2e}"
    )


if __name__ == "__main__":
    main()
