"""Benchmark: spiking conv EP (2C2FC) on MNIST and Fashion-MNIST — test error.

Parts (each resumable from its checkpoint; many CPU hours — run in the background across
sessions; ``--stop-after-epoch N``, or ``touch pretrained/conv-mnist/STOP`` while it runs, ends
a session cleanly after an epoch):

* ``mnist``: ``configs/conv/mnist.yaml`` (one-pixel shifts from epoch 1) into
  ``pretrained/conv-mnist`` (target error <= 0.0097); ``mnist-seed1``: the same with seed 1;
* ``fashion`` / ``fashion-finetune``: the first Fashion-MNIST recipe (squared-error output,
  ``configs/conv/fashion.yaml``, then ``configs/conv/fashion_finetune.yaml``), recorded as
  ``fashion_mse_*``;
* ``mnist-noshift``: the first MNIST recipe, ``configs/conv/mnist_noshift.yaml`` (no shifts),
  recorded as ``mnist_noshift_*``;
* ``mnist-finetune``: the second stage of ``mnist-noshift``, ``configs/conv/mnist_finetune.yaml``
  (10 epochs with augmented images, from the first stage's final weights) into
  ``pretrained/conv-mnist-finetune``; a later stage starts only once the one before completed;
* ``mnist-finetune2``: a third stage, ``configs/conv/mnist_finetune2.yaml``, from the
  second stage's final weights into ``pretrained/conv-mnist-finetune2``;
* ``fashion-ce`` / ``fashion-ce-finetune`` / ``fashion-ce-finetune2``: a candidate
  Fashion-MNIST recipe with a softmax readout (``configs/conv/fashion_ce.yaml``, then two
  shifts + mirrors stages), recorded as ``fashion_ce_*`` beside the ``fashion`` recipe;
* ``fashion-ce-aug``: a one-stage candidate with shifts + mirrors from epoch 1
  (``configs/conv/fashion_ce_aug.yaml``), recorded as ``fashion_ce_aug_*``;
* ``fashion-feedback`` then ``fashion-feedback-finetune``: the Fashion-MNIST recipe checked
  against the target (<= 0.0889), recorded as ``fashion_*``: ``fashion-ce-aug`` with the
  feedback between the free layers at a quarter of its strength
  (``configs/conv/fashion_feedback.yaml``, 30 epochs), then a second stage of 6 epochs with a
  less noisy spiking update (decoder decay 0.6, 40 nudged steps;
  ``configs/conv/fashion_feedback_finetune.yaml``);
* ``record``: writes ``benchmarks/results/conv_accuracy.json`` (``mnist_test_error``,
  ``fashion_test_error``: the recipe's result so far -- the latest stage that has begun;
  ``<dataset>_first_stage_test_error`` for recipes of several stages; ``epochs``,
  ``epoch_seconds``, hardware) from wherever the runs got, with each run's status
  (``stopped`` or ``unfinished`` = not finished).

    nohup python benchmarks/conv_accuracy.py --part mnist --data-dir ../shared/data &
    python benchmarks/conv_accuracy.py --part record --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import ROOT, machine, record, train_or_resume

from eqspike.train.config import load_config

PRETRAINED = ROOT / "pretrained"


# Each recipe: its stages' shipped configs in order; a later stage starts from the one before.
# ``mnist`` and ``fashion`` are the recipes the targets are checked against: ``fashion`` is
# ``fashion_ce_aug`` with feedback gains 0.25, then a second stage with a less noisy update.
# ``mnist_seed1`` repeats ``mnist`` with another seed; ``mnist_noshift`` (the first MNIST recipe,
# three stages), ``fashion_mse`` (the first Fashion recipe, squared-error output),
# ``fashion_ce`` (softmax readout) and ``fashion_ce_aug`` (it with shifts + mirrors from epoch 1
# and 2x its rates) are recorded beside them under their own keys.
RECIPES = {
    "mnist": ("conv/mnist",),
    "mnist_seed1": ("conv/mnist_seed1",),
    "mnist_noshift": ("conv/mnist_noshift", "conv/mnist_finetune", "conv/mnist_finetune2"),
    "fashion": ("conv/fashion_feedback", "conv/fashion_feedback_finetune"),
    "fashion_mse": ("conv/fashion", "conv/fashion_finetune"),
    "fashion_ce": ("conv/fashion_ce", "conv/fashion_ce_finetune", "conv/fashion_ce_finetune2"),
    "fashion_ce_aug": ("conv/fashion_ce_aug",),
}


def part_name(config_name: str) -> str:
    """``conv/fashion_ce_finetune`` -> ``fashion-ce-finetune`` (the ``--part`` spelling)."""
    return config_name.removeprefix("conv/").replace("_", "-")


PARTS = tuple(part_name(c) for stages in RECIPES.values() for c in stages)


def run_dir(config_name: str) -> Path:
    return PRETRAINED / load_config(config_name).name


def train_part(part: str, data_dir: str | None, stop_after: int | None) -> None:
    """Train (or resume) one stage; a later stage starts from its completed previous one."""
    stages = next(s for s in RECIPES.values() if part in map(part_name, s))
    index = [part_name(c) for c in stages].index(part)
    config = load_config(stages[index])
    out = run_dir(stages[index])
    if index > 0:
        previous = run_dir(stages[index - 1])
        summary = read_summary(previous)
        if (summary is None or summary["status"] != "completed") and not out.exists():
            status = "missing" if summary is None else summary["status"]
            raise SystemExit(
                f"{part} starts from the finished previous stage, but {previous} has not "
                f"completed (status: {status}); finish it first: "
                f"python benchmarks/conv_accuracy.py --part {part_name(stages[index - 1])}"
            )
        train_cfg = config.train.model_copy(update={"init_from": str(previous)})
        config = config.model_copy(update={"train": train_cfg})
    train_or_resume(config, out, data_dir, stop_after)


def read_summary(run: Path) -> dict | None:
    path = run / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def stage_metrics(prefix: str, summary: dict) -> dict:
    return {
        f"{prefix}_test_error": 1.0 - summary["test_acc"],
        f"{prefix}_epochs": summary["epochs"],
        f"{prefix}_status": summary["status"],
        f"{prefix}_epoch_seconds": summary["train_seconds"] / max(1, summary["epochs"]),
    }


def recipe_metrics(recipe: str, stages: tuple[str, ...]) -> dict:
    """``<recipe>_*`` for the first stage, ``<recipe>_<stage>_*`` for each later one begun;
    ``<recipe>_test_error`` is the latest begun stage's."""
    first = read_summary(run_dir(stages[0]))
    if first is None:
        return {}
    metrics = stage_metrics(recipe, first)
    if len(stages) > 1:  # a one-stage recipe's first stage is the recipe: no second key for it
        metrics[f"{recipe}_first_stage_test_error"] = metrics[f"{recipe}_test_error"]
    for config_name in stages[1:]:
        summary = read_summary(run_dir(config_name))
        if summary is None:
            break
        stage = config_name.rsplit("_", 1)[-1]  # conv/mnist_finetune2 -> finetune2
        metrics |= stage_metrics(f"{recipe}_{stage}", summary)
        metrics[f"{recipe}_test_error"] = metrics[f"{recipe}_{stage}_test_error"]
    return metrics


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
    for recipe, stages in RECIPES.items():
        metrics |= recipe_metrics(recipe, stages)
    metrics["hardware"] = machine()
    record(
        "conv_accuracy",
        metrics,
        notes="2C2FC spiking conv EP (Sigma-Delta, average pooling, centred EP). Runs resume "
        "from pretrained/<config name>; status 'stopped' or 'unfinished' = not finished. "
        "<recipe>_test_error is the recipe's result so far: the latest stage that has begun "
        "(<recipe>_<stage>_*: finetune, finetune2), else the first stage's. mnist_* is "
        "configs/conv/mnist.yaml (shifts from epoch 1), mnist_seed1_* the same with seed 1, "
        "mnist_noshift_* the first MNIST recipe (no shifts, then two shifted stages); "
        "fashion_* is configs/conv/fashion_feedback.yaml (softmax readout, shifts + mirrors, "
        "feedback gains 0.25) then fashion_feedback_finetune.yaml (decoder decay 0.6, 40 "
        "nudged steps); fashion_mse_* the first Fashion recipe (configs/conv/fashion.yaml, "
        "squared-error output, then fashion_finetune.yaml), fashion_ce_* a softmax-readout "
        "recipe, fashion_ce_aug_* it with augmentation from epoch 1; only mnist_* and "
        "fashion_* are checked against the targets.",
        targets={"mnist_test_error": "<= 0.0097", "fashion_test_error": "<= 0.0889"},
    )


if __name__ == "__main__":
    main()
