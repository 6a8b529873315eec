"""Benchmark: what the free phase's fixed point does with the top-down feedback of a trained
conv EP network.

EP and BPTT through the relaxation both train the *recurrent* network, whose free state is
the fixed point s* = σ(∂Φ/∂s) with the feedback W_{n+1}ᵀ ⋆ P†(s_{n+1}) of every layer above.
The feed-forward twin (``backprop_twin.py``) has none. For each trained run this script
measures, on the first ``--samples`` test images, with the rate dynamics (for spiking runs:
the rate network their spikes approximate):

- ``fixed_point_acc``: accuracy at the fixed point (``--steps`` asynchronous steps);
  ``feedforward_acc``: the same weights read by one bottom-up sweep (no feedback);
- ``feedback_ratio``: ‖feedback drive‖ / ‖bottom-up drive‖ per free layer at s*;
- ``state_shift``: ‖s* − s_ff‖ / ‖s_ff‖ per free layer, how far the feedback moves the state
  away from the feed-forward sweep s_ff;
- ``silent_fraction`` / ``saturated_fraction``: units whose drive at s* is ≤ 0 / ≥ 1, where
  the hard sigmoid passes no gradient;
- ``last_step_change``: ‖s_N(T) − s_N(T−1)‖ / ‖s_N(T)‖ of the top layer after the run's own
  T free steps of its own update order (is a rate run's free phase settled? For spiking runs
  it describes the rate network only, not their spiking free phase).

    python benchmarks/conv_fixed_point.py --data-dir ../shared/data \
        pretrained/conv-fashion-ce-rate-bptt pretrained/conv-fashion-ce-rate \
        pretrained/conv-fashion-ce pretrained/conv-fashion-ce-finetune
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import kept_results, record

from eqspike.ep.solvers import FixedPointSolver, feedforward_state
from eqspike.train.api import load
from eqspike.train.trainer import load_splits


def _accuracy(params, top: torch.Tensor, labels: torch.Tensor) -> float:
    return round(float((params.prediction(top).argmax(1) == labels).float().mean()), 4)


def _norm_ratio(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a.norm() / b.norm().clamp_min(1e-12))


def fixed_point_metrics(run: str, data_dir: str | None, samples: int, steps: int) -> dict:
    """The metrics of the module docstring for one run directory."""
    loaded = load(run)
    test = load_splits(loaded.config, data_dir).test
    net = loaded.model
    params = net.energy.params().prepared()
    x = net.prepare_input(test.x[:samples])
    labels = test.y[:samples]
    settled = FixedPointSolver(1.0, "asynchronous")
    own = FixedPointSolver(1.0, loaded.config.solver.update)
    with torch.no_grad():
        x_drive = params.input_drive(x)
        fixed = settled.relax(params, x_drive, params.init_state(x), steps)
        forward = feedforward_state(params, x)
        before = own.relax(params, x_drive, params.init_state(x), net.phases.free_steps - 1)
        last = own.relax(params, x_drive, before, 1)
        metrics: dict[str, object] = {
            "epochs": int(loaded.meta.get("epoch", 0)),
            "fixed_point_acc": _accuracy(params, fixed[-1], labels),
            "feedforward_acc": _accuracy(params, forward[-1], labels),
            "last_step_change": round(_norm_ratio(last[-1] - before[-1], last[-1]), 6),
        }
        ratio, shift, silent, saturated = [], [], [], []
        for n in range(len(fixed)):
            drive = params.layer_drive(x_drive, fixed, n)
            bottom_up = params.layer_drive(x_drive, fixed[: n + 1], n)  # no layer above n
            ratio.append(round(_norm_ratio(drive - bottom_up, bottom_up), 4))
            shift.append(round(_norm_ratio(fixed[n] - forward[n], forward[n]), 4))
            silent.append(round(float((drive <= 0).float().mean()), 4))
            saturated.append(round(float((drive >= 1).float().mean()), 4))
    metrics.update(
        feedback_ratio=ratio,
        state_shift=shift,
        silent_fraction=silent,
        saturated_fraction=saturated,
    )
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="trained conv EP run directories")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--samples", type=int, default=2000, help="first N test images")
    parser.add_argument("--steps", type=int, default=200, help="asynchronous steps to s*")
    args = parser.parse_args()
    torch.set_num_threads(1)
    metrics, commands = kept_results("conv_fixed_point")  # earlier runs' keys stay
    if (metrics.get("samples"), metrics.get("steps")) not in (
        (None, None),
        (args.samples, args.steps),
    ):
        parser.error(
            f"benchmarks/results/conv_fixed_point.json was measured with --samples "
            f"{metrics['samples']} --steps {metrics['steps']}; use those, so that its runs compare"
        )
    metrics |= {"samples": args.samples, "steps": args.steps}
    for run in args.runs:
        if not (Path(run) / "config.yaml").is_file():
            parser.error(f"{run} is not a run directory (no config.yaml); give a trained run")
        name = Path(run).name
        for key, value in fixed_point_metrics(run, args.data_dir, args.samples, args.steps).items():
            metrics[f"{name}_{key}"] = value
            print(f"{name:<28} {key:<20} {value}", flush=True)
    record(
        "conv_fixed_point",
        metrics,
        command=commands,
        notes="Trained conv EP/BPTT runs at their latest checkpoint, rate dynamics, first "
        f"{args.samples} test images: accuracy at the fixed point vs one feed-forward sweep of "
        "the same weights; per free layer: feedback/bottom-up drive norm ratio, state shift of "
        "the fixed point from the sweep, fraction of units with drive <= 0 / >= 1; the top "
        "layer's relative change at the run's last free step.",
    )


if __name__ == "__main__":
    main()
