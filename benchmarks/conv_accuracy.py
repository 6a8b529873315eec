"""Benchmark: spiking conv EP (2C2FC) on MNIST and Fashion-MNIST — test error.

Parts (each resumable from its checkpoint; many CPU hours — run in the background across
sessions; ``--stop-after-epoch N``, or ``touch pretrained/conv-mnist/STOP`` while it runs, ends
a session cleanly after an epoch):

* ``mnist``: ``configs/conv/mnist.yaml`` into ``pretrained/conv-mnist`` (target error <= 0.0097);
* ``fashion``: ``configs/conv/fashion.yaml`` into ``pretrained/conv-fashion`` (<= 0.0889);
* ``record``: writes ``benchmarks/results/conv_accuracy.json`` (``mnist_test_error``,
  ``fashion_test_error``, ``epochs``, ``epoch_seconds``, hardware) from wherever the runs got,
  with each run's status (``stopped`` = unfinished).

    nohup python benchmarks/conv_accuracy.py --part mnist --data-dir ../shared/data &
    python benchmarks/conv_accuracy.py --part record --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, machine, record, train_or_resume

from eqspike.train.config import load_config

PRETRAINED = ROOT / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--part", choices=["mnist", "fashion", "record"], default="record")
    parser.add_argument("--stop-after-epoch", type=int, default=None)
    args = parser.parse_args()
    if args.part != "record":
        config = load_config(f"conv/{args.part}")
        out = PRETRAINED / f"conv-{args.part}"
        train_or_resume(config, out, args.data_dir, args.stop_after_epoch)
        return
    metrics = {}
    for part in ("mnist", "fashion"):
        summary_path = PRETRAINED / f"conv-{part}" / "summary.json"
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        metrics |= {
            f"{part}_test_error": 1.0 - summary["test_acc"],
            f"{part}_epochs": summary["epochs"],
            f"{part}_status": summary["status"],
            f"{part}_epoch_seconds": summary["train_seconds"] / max(1, summary["epochs"]),
        }
    metrics["hardware"] = machine()
    record(
        "conv_accuracy",
        metrics,
        notes="2C2FC spiking conv EP (Sigma-Delta, average pooling, centred EP). Runs resume "
        "from pretrained/conv-<dataset>; status 'stopped' = not finished.",
        targets={"mnist_test_error": "<= 0.0097", "fashion_test_error": "<= 0.0889"},
    )


if __name__ == "__main__":
    main()
