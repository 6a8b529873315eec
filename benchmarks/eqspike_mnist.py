"""Benchmark: EqSpike (spike-driven EP) on MNIST and its rate-based twin.

Trains ``configs/eqspike/mnist.yaml`` into ``pretrained/eqspike-mnist`` and its rate twin
``configs/eqspike/mnist_rate_twin.yaml`` (same 784-500-10 network, steps, β, optimiser and ε,
analogue states instead of spikes) into ``pretrained/eqspike-mnist-rate-twin``,
resuming each from its checkpoint, then records ``test_acc``, ``rate_twin_test_acc``,
``epochs``, ``epoch_seconds``, ``spikes_per_sample`` and ``hidden``. Long (EqSpike ~3 min per
epoch on one core): run in the background, parts separately if you like:

    nohup python benchmarks/eqspike_mnist.py --data-dir ../shared/data --part spiking > es.log &
    nohup python benchmarks/eqspike_mnist.py --data-dir ../shared/data --part twin > twin.log &
    python benchmarks/eqspike_mnist.py --data-dir ../shared/data --part record
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, record, train_or_resume

from eqspike.train.api import read_run_config
from eqspike.train.config import load_config
from eqspike.train.evaluate import evaluate_run

SPIKING = ROOT / "pretrained" / "eqspike-mnist"
TWIN = ROOT / "pretrained" / "eqspike-mnist-rate-twin"


def check_twin(spiking, twin) -> None:
    """The twin must differ from the spiking run only in using analogue states."""
    pairs = {
        "layers": (spiking.model.layers, twin.model.layers),
        "steps": (
            (spiking.solver.free_steps, spiking.solver.nudged_steps),
            (twin.solver.free_steps, twin.solver.nudged_steps),
        ),
        "beta": (spiking.estimator.beta, twin.estimator.beta),
        "epsilon": (spiking.neuron.epsilon, twin.solver.step_size),
        "optimizer": (spiking.optimizer, twin.optimizer),
        "data": (spiking.data, twin.data),
        "epochs": (spiking.train.epochs, twin.train.epochs),
    }
    wrong = [k for k, (a, b) in pairs.items() if a != b]
    if wrong:
        raise SystemExit(f"eqspike/mnist_rate_twin differs from eqspike/mnist in {wrong}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--part", choices=["spiking", "twin", "record", "all"], default="all")
    parser.add_argument("--stop-after-epoch", type=int, default=None)
    args = parser.parse_args()
    spiking = load_config("eqspike/mnist")
    if args.part in ("spiking", "all"):
        train_or_resume(spiking, SPIKING, args.data_dir, args.stop_after_epoch)
    twin = load_config("eqspike/mnist_rate_twin")
    check_twin(spiking, twin)
    if args.part in ("twin", "all"):
        train_or_resume(twin, TWIN, args.data_dir, args.stop_after_epoch)
    if args.part in ("record", "all"):
        summaries = {p: json.loads((p / "summary.json").read_text()) for p in (SPIKING, TWIN)}
        if any(s["status"] != "completed" for s in summaries.values()):
            print({str(p): (s["status"], s["epochs"]) for p, s in summaries.items()})
            print("a run is not finished; nothing recorded")
            return
        s, t = summaries[SPIKING], summaries[TWIN]
        rows = [json.loads(x) for x in (SPIKING / "metrics.jsonl").read_text().splitlines()]
        check = evaluate_run(SPIKING, "test", args.data_dir)
        config = read_run_config(SPIKING)
        record(
            "eqspike_mnist",
            {
                "test_acc": s["test_acc"],
                "test_acc_reevaluated": check["accuracy"],
                "rate_twin_test_acc": t["test_acc"],
                "epochs": s["epochs"],
                "epoch_seconds": s["train_seconds"] / s["epochs"],
                "train_samples_per_s": s["train_samples_per_s"],
                "rate_twin_train_samples_per_s": t["train_samples_per_s"],
                "spikes_per_sample": rows[-1]["test_spikes_per_sample"],
                "train_spikes_per_sample": rows[-1]["train_spikes_per_sample"],
                "hidden": config.model.layers[1],
            },
            notes="spikes_per_sample: inference (free phase, all layers incl. input) on the test "
            "set; train_spikes_per_sample: free + both nudged phases. Twin: rate_ep, continuous "
            "solver with step epsilon, same steps/beta/optimiser.",
            targets={"test_acc": ">= 0.976"},
        )


if __name__ == "__main__":
    main()
