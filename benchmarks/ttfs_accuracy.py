"""Benchmark: accuracy of time-to-first-spike training (fast and deep) on Yin-Yang and MNIST.

Parts (each resumable; run them in the background, they take long; ``touch RUN/STOP`` ends one
cleanly after its current epoch):

* ``yinyang``: ``configs/ttfs/yinyang.yaml`` (4-120-3, 300 epochs) for seeds 0, 1, 2 into
  ``pretrained/ttfs-yinyang-seed<k>``: mean ± std test accuracy, epoch seconds, wall time.
* ``mnist``: ``configs/ttfs/mnist.yaml`` (784-350-10, float32) into ``pretrained/ttfs-mnist``;
  ``mnist-float64``: the same in float64 into ``pretrained/ttfs-mnist-float64`` (the first run,
  stopped at epoch 24; the float32 one replaced it, 1.3-1.6x faster with the same gradients).
* ``mnist16``: ``configs/ttfs/mnist16.yaml`` (16x16, 256-128-10) into ``pretrained/ttfs-mnist16``.
* ``record``: writes ``benchmarks/results/ttfs_accuracy.json`` from whatever the runs reached,
  with the epochs each got to (a run that is not finished is reported as such).

    nohup python benchmarks/ttfs_accuracy.py --part yinyang > ttfs_yy.log 2>&1 &
    nohup python benchmarks/ttfs_accuracy.py --part mnist16 --data-dir ../shared/data \
        --stop-after-epoch 40 > ttfs_m16.log 2>&1 &
    python benchmarks/ttfs_accuracy.py --part record --data-dir ../shared/data

A training part also runs data-parallel on both cores (``torch.distributed``, gloo): the global
batch stays the configured one, split between the processes, and the result equals the
single-process run (tests/test_trainer.py), so a run may switch between the two on resume:

    OMP_NUM_THREADS=1 nohup python -m torch.distributed.run --standalone --nproc_per_node=2 \
        benchmarks/ttfs_accuracy.py --part mnist --data-dir ../shared/data > ttfs_mnist.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from common import ROOT, record, train_or_resume

from eqspike.train.config import load_config
from eqspike.train.evaluate import evaluate_run

PRETRAINED = ROOT / "pretrained"
YINYANG_SEEDS = (0, 1, 2)
MNIST_PARTS = ("mnist", "mnist16", "mnist-float64")


def yinyang_dir(seed: int) -> Path:
    return PRETRAINED / f"ttfs-yinyang-seed{seed}"


def run_state(run_dir: Path, data_dir) -> dict[str, Any] | None:
    """Summary of a run plus a fresh re-evaluation of its latest checkpoint."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    config = load_config(run_dir / "config.yaml")
    check = evaluate_run(run_dir, "test", data_dir)
    return {
        "status": summary["status"],
        "epochs": summary["epochs"],
        "epochs_planned": config.train.epochs,
        "test_acc": summary["test_acc"],
        "test_acc_reevaluated": check["accuracy"],
        "epoch_seconds": summary["train_seconds"] / max(1, summary["epochs"]),
        "train_samples_per_s": summary["train_samples_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--part", choices=["yinyang", *MNIST_PARTS, "record"], default="record")
    parser.add_argument("--stop-after-epoch", type=int, default=None)
    args = parser.parse_args()
    if args.part == "yinyang":
        for seed in YINYANG_SEEDS:
            config = load_config("ttfs/yinyang", [f"seed={seed}", f"name=ttfs-yinyang-seed{seed}"])
            train_or_resume(config, yinyang_dir(seed), None, args.stop_after_epoch)
        return
    if args.part in MNIST_PARTS:
        dataset, _, dtype = args.part.partition("-")
        config = load_config(f"ttfs/{dataset}", [f"train.dtype={dtype}"] if dtype else [])
        train_or_resume(
            config, PRETRAINED / f"ttfs-{args.part}", args.data_dir, args.stop_after_epoch
        )
        return

    metrics: dict[str, Any] = {}
    yinyang = [run_state(yinyang_dir(s), None) for s in YINYANG_SEEDS]
    done = [r for r in yinyang if r and r["status"] == "completed"]
    if done:
        accs = [r["test_acc"] for r in done]
        metrics |= {
            "yinyang_test_acc": statistics.mean(accs),
            "yinyang_test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "yinyang_test_acc_per_seed": accs,
            "yinyang_seeds": len(done),
            "yinyang_epochs": done[0]["epochs"],
            "yinyang_epoch_seconds": statistics.mean(r["epoch_seconds"] for r in done),
            "yinyang_train_seconds_300_epochs": statistics.mean(
                r["epoch_seconds"] * r["epochs"] for r in done
            ),
        }
    for part in MNIST_PARTS:
        state = run_state(PRETRAINED / f"ttfs-{part}", args.data_dir)
        if state is None:
            continue
        key = part.replace("-", "_")
        metrics |= {
            f"{key}_test_acc": state["test_acc"],
            f"{key}_test_acc_reevaluated": state["test_acc_reevaluated"],
            f"{key}_epochs": state["epochs"],
            f"{key}_epochs_planned": state["epochs_planned"],
            f"{key}_status": state["status"],
            f"{key}_epoch_seconds": state["epoch_seconds"],
        }
    record(
        "ttfs_accuracy",
        metrics,
        notes="Yin-Yang: mean ± std over seeds 0-2, 300 epochs each. MNIST runs: the epochs "
        "reached within the CPU budget (status 'stopped' = unfinished; resume with --part). "
        "epoch_seconds: training only, 1 thread per process, averaged over the run's epochs; "
        "float64 except the 784-350-10 MNIST run (float32; mnist_float64_*: its float64 "
        "predecessor, stopped), which trained epochs 1-45 in one process and later ones in two "
        "data-parallel processes (torchrun; same result, see tests/test_trainer.py).",
        targets={
            "yinyang_test_acc": ">= 0.959",
            "mnist_test_acc": ">= 0.971",
            "mnist16_test_acc": ">= 0.969",
        },
    )


if __name__ == "__main__":
    main()
