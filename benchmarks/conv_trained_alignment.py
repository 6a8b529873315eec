"""Benchmark: does conv EP still follow the gradient once the network is trained?

``conv_alignment.py`` measures EP on an *untrained* net, where every layer settles within a few
steps. Training strengthens the recurrent loops, so the free phase needs longer to settle, and
an EP update taken from an unsettled free state points anywhere. This script loads a trained
conv run (default: ``pretrained/conv-fashion-40steps``, the Fashion-MNIST run whose accuracy
fell epoch after epoch with 40 free steps) and, on ``--batches`` batches of ``--batch-size``
(default 16) test images, compares centred EP's update under several spiking and rate solver
settings with the reference gradient: BPTT through the rate network (400 steps, the last 60
backpropagated). Metric: cosine with the reference, averaged over the parameter tensors and the
batches (float64), and of the updates summed over the batches with the summed reference (what
an optimiser follows). Also the free phase's last-step relative change of the output layer
for the rate settings, and the run's test accuracy (first ``--eval-samples`` images) with its
own free phase and with a free phase of ``SETTLED_STEPS`` steps: a network that learned from
unsettled free phases classifies with its transient, and loses accuracy once left to settle.

    python benchmarks/conv_trained_alignment.py --data-dir ../shared/data
    python benchmarks/conv_trained_alignment.py --data-dir ../shared/data \
        --run pretrained/conv-mnist-40steps
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import ROOT, record
from conv_alignment import mean_cosine

from eqspike.ep.estimators import BackpropThroughTime, EquilibriumPropagation, Phases
from eqspike.ep.sigma_delta import SigmaDeltaSolver
from eqspike.ep.solvers import FixedPointSolver
from eqspike.train.api import load
from eqspike.train.evaluate import evaluate_run
from eqspike.train.trainer import load_splits

SETTLED_STEPS = 200


def settings() -> dict[str, tuple[object, Phases, float]]:
    """name -> (solver, phases, β); spiking ones contrast the analogue states."""

    def spiking(eps: float, decay: float) -> SigmaDeltaSolver:
        return SigmaDeltaSolver(eps, decay, contrast="analogue")

    return {
        # the conv configs' settings until 2026-11-24
        "spiking_eps0.5_decay0.8_T40_K20_beta0.5": (spiking(0.5, 0.8), Phases(40, 20), 0.5),
        "spiking_eps0.5_decay0.8_T120_K40_beta0.5": (spiking(0.5, 0.8), Phases(120, 40), 0.5),
        "spiking_eps1_decay0.3_T40_K20_beta0.3": (spiking(1.0, 0.3), Phases(40, 20), 0.3),
        "spiking_eps1_decay0.3_T60_K20_beta0.3": (spiking(1.0, 0.3), Phases(60, 20), 0.3),
        "spiking_eps1_decay0.3_T80_K20_beta0.3": (spiking(1.0, 0.3), Phases(80, 20), 0.3),
        "spiking_eps1_decay0.5_T60_K20_beta0.3": (spiking(1.0, 0.5), Phases(60, 20), 0.3),
        # longer nudged phases and larger nudges: spike quantisation against the nudge's signal
        "spiking_eps1_decay0.3_T60_K40_beta0.3": (spiking(1.0, 0.3), Phases(60, 40), 0.3),
        "spiking_eps1_decay0.3_T60_K20_beta0.5": (spiking(1.0, 0.3), Phases(60, 20), 0.5),
        "spiking_eps1_decay0.3_T60_K40_beta0.5": (spiking(1.0, 0.3), Phases(60, 40), 0.5),
        "spiking_eps1_decay0.5_T60_K40_beta0.5": (spiking(1.0, 0.5), Phases(60, 40), 0.5),
        # a slower decoder with longer nudged phases: less quantisation noise in the contrast
        "spiking_eps1_decay0.6_T60_K40_beta0.3": (spiking(1.0, 0.6), Phases(60, 40), 0.3),
        "spiking_eps1_decay0.6_T60_K40_beta0.2": (spiking(1.0, 0.6), Phases(60, 40), 0.2),
        "spiking_eps1_decay0.8_T60_K40_beta0.3": (spiking(1.0, 0.8), Phases(60, 40), 0.3),
        "rate_eps0.5_T40_K20_beta0.3": (FixedPointSolver(0.5), Phases(40, 20), 0.3),
        "rate_eps0.5_T120_K40_beta0.3": (FixedPointSolver(0.5), Phases(120, 40), 0.3),
        "rate_eps1_T60_K20_beta0.3": (FixedPointSolver(1.0), Phases(60, 20), 0.3),
        "rate_eps1_T150_K80_beta0.3": (FixedPointSolver(1.0), Phases(150, 80), 0.3),
    }


def summed_cosine(estimates: list, references: list) -> float:
    """:func:`mean_cosine` of Σ_batches estimate with Σ_batches reference: what an optimiser
    that averages updates over batches follows. Quantisation noise that differs from batch to
    batch averages out of it; a bias shared by the batches does not."""

    def total(grads: list):
        return grads[0].replaced([sum(ts) for ts in zip(*(g.flat() for g in grads), strict=True)])

    return mean_cosine(total(estimates), total(references))


def output_settling(solver: FixedPointSolver, params, x: torch.Tensor, steps: int) -> float:
    """‖s_N(T) − s_N(T−1)‖ / ‖s_N(T)‖ of the rate dynamics after ``steps`` free steps."""
    x_drive = params.input_drive(x)
    state = solver.relax(params, x_drive, solver.init(params, x), steps - 1)
    last = solver.relax(params, x_drive, state, 1)
    return float((last[-1] - state[-1]).norm() / last[-1].norm().clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run", default=str(ROOT / "pretrained" / "conv-fashion-40steps"))
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument(
        "--settings", default=None, help="comma-separated setting names (default: all)"
    )
    args = parser.parse_args()
    chosen = settings()
    if args.settings:
        names = args.settings.split(",")
        unknown = set(names) - set(chosen)
        if unknown:
            parser.error(f"unknown settings {sorted(unknown)}; known: {sorted(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in names}
    torch.set_num_threads(1)
    loaded = load(args.run)
    test = load_splits(loaded.config, args.data_dir).test
    accuracies = {  # the first --eval-samples test images, as `eqspike eval --set` does it
        steps: evaluate_run(
            args.run,
            "test",
            args.data_dir,
            [f"solver.free_steps={steps}", f"data.test_subset={args.eval_samples}"],
        )["accuracy"]
        for steps in (loaded.model.phases.free_steps, SETTLED_STEPS)
    }
    net = loaded.model.double()
    params = net.energy.params()
    batches = []
    for k in range(args.batches):
        rows = slice(args.batch_size * k, args.batch_size * (k + 1))
        x = test.x[rows].double()
        target = net.target(test.y[rows]).double()
        reference = BackpropThroughTime(truncate=60).gradients(
            FixedPointSolver(0.5), params, x, target, Phases(400, 60)
        )
        batches.append((x, target, reference.grads))
    metrics: dict[str, float | int | str] = {
        "run": Path(args.run).name,
        "run_epochs": int(loaded.meta.get("epoch", 0)),
        "dataset": loaded.config.data.dataset,
    }
    for steps, value in accuracies.items():
        metrics[f"test_acc_free_steps_{steps}"] = value
        print(f"test accuracy with {steps} free steps: {value:.2%}", flush=True)
    for name, (solver, phases, beta) in chosen.items():
        start = time.perf_counter()
        estimator = EquilibriumPropagation(beta)
        estimates = [estimator.gradients(solver, params, x, t, phases).grads for x, t, _ in batches]
        cosines = [mean_cosine(e, g) for e, (_, _, g) in zip(estimates, batches, strict=True)]
        metrics[f"{name}_cosine"] = sum(cosines) / len(cosines)
        metrics[f"{name}_summed_cosine"] = summed_cosine(estimates, [g for _, _, g in batches])
        if isinstance(solver, FixedPointSolver):
            changes = [output_settling(solver, params, x, phases.free_steps) for x, _, _ in batches]
            metrics[f"{name}_output_change"] = sum(changes) / len(changes)
        seconds = time.perf_counter() - start
        print(
            f"{name:<44} cosine {metrics[f'{name}_cosine']:.3f}  summed over batches "
            f"{metrics[f'{name}_summed_cosine']:.3f}  ({seconds:.0f} s)",
            flush=True,
        )
    name = Path(args.run).name
    record(
        "conv_trained_alignment" + ("" if name == "conv-fashion-40steps" else f"_{name}"),
        metrics,
        notes="Centred EP on a trained conv run (float64): mean cosine over parameter tensors "
        f"and {args.batches} batches of {args.batch_size} test images with the rate network's BPTT "
        "gradient (400 steps, last 60). spiking_* = Sigma-Delta (membrane step eps, decoder "
        "decay), analogue contrast; T free / K nudged steps. *_summed_cosine: the same for the "
        "updates summed over the batches. *_output_change: relative change of "
        "the output layer at the last free step (rate dynamics).",
    )


if __name__ == "__main__":
    main()
