"""Benchmark: spiking conv EP (2C2FC) on MNIST and Fashion-MNIST — test error.

Parts (each resumable from its checkpoint; many CPU hours — run in the background across
sessions; ``--stop-after-epoch N``, or ``touch pretrained/conv-mnist/STOP`` while it runs, ends
a session cleanly after an epoch):

* ``mnist``: ``configs/conv/mnist.yaml`` into ``pretrained/conv-mnist`` (target error <= 0.0097);
* ``fashion``: ``configs/conv/fashion.yaml`` into ``pretrained/conv-fashion`` (<= 0.0889);
* ``mnist-finetune`` / ``fashion-finetune``: the recipe's second stage,
  ``configs/conv/<dataset>_finetune.yaml`` (10 epochs with augmented images, from the first
  stage's final weights) into ``pretrained/conv-<dataset>-finetune``; starts only once the
  first stage has completed;
* ``record``: writes ``benchmarks/results/conv_accuracy.json`` (``mnist_test_error``,
  ``fashion_test_error``: the recipe's result so far -- the second stage's where it has begun,
  else the first's; ``<dataset>_first_stage_test_error``; ``epochs``, ``epoch_seconds``,
  hardware) from wherever the runs got, with each run's status (``stopped`` = unfinished).

    nohup python benchmarks/conv_accuracy.py --part mnist --data-dir ../shared/data &
    python benchmarks/conv_accuracy.py --part record --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, machine, record, train_or_resume

from eqspike.train.config import load_config

PRETRAINED = ROOT / "pretrained"


PARTS = ("mnist", "fashion", "mnist-finetune", "fashion-finetune")


def train_part(part: str, data_dir: str | None, stop_after: int | None) -> None:
    """Train (or resume) one stage; a second stage starts from its completed first stage."""
    dataset, _, stage = part.partition("-")
    config = load_config(f"conv/{dataset}_{stage}" if stage else f"conv/{dataset}")
    out = PRETRAINED / f"conv-{part}"
    if stage:
        first = PRETRAINED / f"conv-{dataset}"
        summary = read_summary(first.name)
        if (summary is None or summary["status"] != "completed") and not out.exists():
            status = "missing" if summary is None else summary["status"]
            raise SystemExit(
                f"{part} fine-tunes the finished first stage, but {first} has not completed "
                f"(status: {status}); "
                f"finish it first: python benchmarks/conv_accuracy.py --part {dataset}"
            )
        train_cfg = config.train.model_copy(update={"init_from": str(first)})
        config = config.model_copy(update={"train": train_cfg})
    train_or_resume(config, out, data_dir, stop_after)


def read_summary(run: str) -> dict | None:
    path = PRETRAINED / run / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def stage_metrics(prefix: str, summary: dict) -> dict:
    return {
        f"{prefix}_test_error": 1.0 - summary["test_acc"],
        f"{prefix}_epochs": summary["epochs"],
        f"{prefix}_status": summary["status"],
        f"{prefix}_epoch_seconds": summary["train_seconds"] / max(1, summary["epochs"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--part", choices=[*PARTS, "record"], default="record")
    parser.add_argument("--stop-after-epoch", type=int, default=None)
    args = parser.parse_args()
    if args.part != "record":
        train_part(args.part, args.data_dir, args.stop_after_epoch)
        return
    metrics = {}
    for dataset in ("mnist", "fashion"):
        first = read_summary(f"conv-{dataset}")
        second = read_summary(f"conv-{dataset}-finetune")
        if first is None:
            continue
        metrics |= stage_metrics(dataset, first)
        if second is not None:
            metrics[f"{dataset}_first_stage_test_error"] = metrics[f"{dataset}_test_error"]
            metrics |= stage_metrics(f"{dataset}_finetune", second)
            metrics[f"{dataset}_test_error"] = metrics[f"{dataset}_finetune_test_error"]
    metrics["hardware"] = machine()
    record(
        "conv_accuracy",
        metrics,
        notes="2C2FC spiking conv EP (Sigma-Delta, average pooling, centred EP). Runs resume "
        "from pretrained/conv-<dataset>[-finetune]; status 'stopped' = not finished. "
        "<dataset>_test_error is the recipe's result so far: the fine-tuning stage's where it "
        "has begun (<dataset>_finetune_*), else the first stage's.",
        targets={"mnist_test_error": "<= 0.0097", "fashion_test_error": "<= 0.0889"},
    )


if __name__ == "__main__":
    main()
