"""Proxy: how far the recurrent conv EP network trails its feed-forward twin, per recipe variant.

On the full Fashion-MNIST runs the recurrent network trails the backprop twin of its layers by
~2 points whether it is trained by spiking EP, rate EP or BPTT (BENCHMARKS.md), so the gap is
the recurrent network under this recipe, not EP's estimate. This benchmark screens recipe
changes for that gap cheaply: each variant of ``conv/fashion_ce_rate`` (rate EP, softmax
readout) trains on a proxy -- the first 6000 training images, 5 epochs, test on the first 2000
test images -- and so does its feed-forward twin (``backprop_twin.train_twin``: same layers,
data, optimizer and schedule, trained by backprop). The twin is what the variant's layers and
recipe give without feedback, so ``<variant>_gap`` (twin − EP, final test accuracy) separates
"the recurrent net lags" from "the recipe learns slowly on the proxy". A proxy is not the full
run: a variant that narrows the gap here is a candidate for a full run, not a result.
Variants named ``spiking…`` train ``conv/fashion_ce``'s Sigma-Delta dynamics instead (bfloat16
drives), against the same twin.

    OMP_NUM_THREADS=1 python benchmarks/conv_recurrent_gap.py baseline lr_x2 \
        --data-dir ../shared/data

(~9 min per variant in one thread) writes ``benchmarks/results/conv_recurrent_gap.json``; per
variant: ``_ep_test_accuracy`` / ``_ep_train_accuracy`` and ``_twin_test_accuracy`` /
``_twin_train_accuracy`` per epoch, ``_gap``, the EP net's ``_ep_silent_fraction`` at its
fixed point (per free layer, first 1000 test images, 100 asynchronous steps; see
``conv_fixed_point.py``) and ``_overrides``. Results of earlier invocations are kept, so
variants can run in parallel processes one after another. EP runs go to
``runs/conv_recurrent_gap/<variant>`` and resume from there if interrupted.
"""

from __future__ import annotations

import argparse

import torch
from backprop_twin import train_twin
from common import ROOT, kept_results, record, train_or_resume
from conv_fixed_point import fixed_point_metrics

from eqspike.ep.recipe import ConvEPConfig
from eqspike.train.config import load_config
from eqspike.train.metrics import MetricsLog

NAME = "conv_recurrent_gap"
BASE = "conv/fashion_ce_rate"
PROXY = [
    "data.train_subset=6000",
    "data.validation=1000",
    "data.test_subset=2000",
    "train.epochs=5",
    "solver.drive_dtype=float32",
]


def _layers(
    gains: tuple[float, ...] = (1, 1, 1, 1),
    biases: tuple[float, ...] = (0, 0, 0, 0),
    feedback: tuple[float, ...] = (1, 1, 1, 1),
) -> str:
    """The base config's layers, as a ``model.layers`` override, with per-layer
    ``init_gain`` / ``init_bias`` and, where not 1, ``feedback_gain``."""
    specs = []
    layers = load_config(BASE).model.layers
    for layer, g, b, fb in zip(layers, gains, biases, feedback, strict=True):
        if layer.kind == "conv":
            shape = f"kind: conv, channels: {layer.channels}, kernel: {layer.kernel}"
            shape += f", pool: {layer.pool}"
            if layer.padding:
                shape += f", padding: {layer.padding}"
        else:
            shape = f"kind: fc, units: {layer.units}"
        gain = "" if fb == 1 else f", feedback_gain: {fb}"
        specs.append(f"{{{shape}, init_gain: {g}, init_bias: {b}{gain}}}")
    return f"model.layers=[{', '.join(specs)}]"


# conv/fashion_ce's Sigma-Delta dynamics in place of the base's rate dynamics
SPIKING = [
    "solver.kind=sigma_delta",
    "solver.decay=0.3",
    "solver.contrast=analogue",
    "solver.drive_dtype=bfloat16",
]

VARIANTS: dict[str, list[str]] = {
    "baseline": [],
    "seed_1": ["seed=1"],  # the proxy's seed-to-seed spread
    "lr_x2": ["optimizer.lr=[0.001, 0.001, 0.0006, 0.006]"],
    "init_gain_0.5": [_layers(gains=(0.5, 0.5, 0.5, 0.5))],
    "fc_init_gain_0.5": [_layers(gains=(1, 1, 0.5, 1))],  # weaker feedback into conv2 at start
    "init_gain_1.5": [_layers(gains=(1.5, 1.5, 1.5, 1))],
    "init_bias_0.1": [_layers(biases=(0, 0.1, 0.1, 0))],  # conv2 and fc units start active
    # conv1 and conv2 hear the layer above at g times the plain energy's strength (g 0.5 or
    # 0.25); spiking_feedback_gain_0.5 is selectable but was not measured
    "feedback_gain_0.5": [_layers(feedback=(1, 0.5, 0.5, 1))],
    "feedback_gain_0.25": [_layers(feedback=(1, 0.25, 0.25, 1))],
    "spiking": SPIKING,
    "spiking_feedback_gain_0.5": [*SPIKING, _layers(feedback=(1, 0.5, 0.5, 1))],
    "spiking_feedback_gain_0.25": [*SPIKING, _layers(feedback=(1, 0.25, 0.25, 1))],
}


def measure(variant: str, data_dir: str | None) -> dict[str, object]:
    overrides = PROXY + VARIANTS[variant]
    config = load_config(BASE, overrides)
    assert isinstance(config, ConvEPConfig)
    out = ROOT / "runs" / NAME / variant
    train_or_resume(config, out, data_dir)
    log = MetricsLog(out)
    log.load(config.train.epochs)
    ep_test = [round(row["test_acc"], 4) for row in log.rows]
    twin = train_twin(config, data_dir)
    fixed = fixed_point_metrics(str(out), data_dir, samples=1000, steps=100)
    return {
        "ep_test_accuracy": ep_test,
        "ep_train_accuracy": [round(row["train_acc"], 4) for row in log.rows],
        "twin_test_accuracy": [round(a, 4) for a in twin["test"]],
        "twin_train_accuracy": [round(a, 4) for a in twin["train"]],
        "gap": round(twin["test"][-1] - ep_test[-1], 4),
        "ep_silent_fraction": fixed["silent_fraction"],
        "overrides": VARIANTS[variant],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS), metavar="VARIANT")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for variant in args.variants:
        result = measure(variant, args.data_dir)
        metrics, commands = kept_results(NAME)  # re-read: a parallel invocation may have added
        metrics.update({f"{variant}_{key}": value for key, value in result.items()})
        metrics["proxy"] = {"base": BASE, "overrides": PROXY}
        record(
            NAME,
            metrics,
            command=commands,
            notes="Proxy (6000 Fashion-MNIST training images, 5 epochs, first 2000 test "
            "images, one seed per variant unless named): rate-EP recurrent conv net vs its "
            "feed-forward twin trained by backprop, per recipe variant. Screening, not the "
            "full runs.",
        )
        print(f"{variant}: EP {result['ep_test_accuracy']} twin {result['twin_test_accuracy']}")


if __name__ == "__main__":
    main()
