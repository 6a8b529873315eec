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
* ``mnist-finetune2``: a third MNIST stage, ``configs/conv/mnist_finetune2.yaml``, from the
  second stage's final weights into ``pretrained/conv-mnist-finetune2``;
* ``record``: writes ``benchmarks/results/conv_accuracy.json`` (``mnist_test_error``,
  ``fashion_test_error``: the recipe's result so far -- the latest stage that has begun;
  ``<dataset>_first_stage_test_error``; ``epochs``, ``epoch_seconds``, hardware) from
  wherever the runs got, with each run's status (``stopped`` = unfinished).

    nohup python benchmarks/conv_accuracy.py --part mnist --data-dir ../shared/data &
    python benchmarks/conv_accuracy.py --part record --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json

from common import ROOT, machine, record, train_or_resume

from eqspike.train.config import load_config

PRETRAINED = ROOT / "pretrained"


# Each dataset's recipe: its stages in order; a later stage starts from the one before.
STAGES = {"mnist": ("", "finetune", "finetune2"), "fashion": ("", "finetune")}
PARTS = tuple(f"{d}-{s}" if s else d for d, stages in STAGES.items() for s in stages)


def run_name(dataset: str, stage: str) -> str:
    return f"conv-{dataset}-{stage}" if stage else f"conv-{dataset}"


def train_part(part: str, data_dir: str | None, stop_after: int | None) -> None:
    """Train (or resume) one stage; a later stage starts from its completed previous one."""
    dataset, _, stage = part.partition("-")
    config = load_config(f"conv/{dataset}_{stage}" if stage else f"conv/{dataset}")
    out = PRETRAINED / run_name(dataset, stage)
    if stage:
        stages = STAGES[dataset]
        previous = PRETRAINED / run_name(dataset, stages[stages.index(stage) - 1])
        summary = read_summary(previous.name)
        if (summary is None or summary["status"] != "completed") and not out.exists():
            status = "missing" if summary is None else summary["status"]
            before = previous.name.removeprefix("conv-")
            raise SystemExit(
                f"{part} starts from the finished previous stage, but {previous} has not "
                f"completed (status: {status}); "
                f"finish it first: python benchmarks/conv_accuracy.py --part {before}"
            )
        train_cfg = config.train.model_copy(update={"init_from": str(previous)})
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
    for dataset, stages in STAGES.items():
        first = read_summary(run_name(dataset, ""))
        if first is None:
            continue
        metrics |= stage_metrics(dataset, first)
        metrics[f"{dataset}_first_stage_test_error"] = metrics[f"{dataset}_test_error"]
        for stage in stages[1:]:
            summary = read_summary(run_name(dataset, stage))
            if summary is None:
                break
            metrics |= stage_metrics(f"{dataset}_{stage}", summary)
            metrics[f"{dataset}_test_error"] = metrics[f"{dataset}_{stage}_test_error"]
    metrics["hardware"] = machine()
    record(
        "conv_accuracy",
        metrics,
        notes="2C2FC spiking conv EP (Sigma-Delta, average pooling, centred EP). Runs resume "
        "from pretrained/conv-<dataset>[-<stage>]; status 'stopped' = not finished. "
        "<dataset>_test_error is the recipe's result so far: the latest stage that has begun "
        "(<dataset>_<stage>_*: finetune, finetune2), else the first stage's.",
        targets={"mnist_test_error": "<= 0.0097", "fashion_test_error": "<= 0.0889"},
    )


if __name__ == "__main__":
    main()
