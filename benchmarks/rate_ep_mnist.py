"""Benchmark: test accuracy and training speed of 784-500-10 rate-based EP on MNIST.

Trains ``configs/rate_ep/mnist.yaml`` with the project's trainer into ``pretrained/rate-ep-mnist``
(resuming if a checkpoint is there), then records test accuracy (target >= 0.976), epochs, wall
time and train samples/s. Long: ~15-25 s per epoch on one core; run it in the background:

    nohup python benchmarks/rate_ep_mnist.py --data-dir ../shared/data > rate_ep_mnist.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import ROOT, record

from eqspike.train.api import read_run_config, resume, train
from eqspike.train.checkpoint import latest_checkpoint_path
from eqspike.train.evaluate import evaluate_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(ROOT / "pretrained" / "rate-ep-mnist"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    out = Path(args.out)
    if latest_checkpoint_path(out) is not None:
        summary = resume(out, args.overrides, args.data_dir, quiet=False)
    else:
        summary = train("rate_ep/mnist", args.overrides, out, args.data_dir)
    config = read_run_config(out)
    check = evaluate_run(out, "test", args.data_dir)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    record(
        "rate_ep_mnist",
        {
            "test_acc": summary["test_acc"],
            "test_acc_reevaluated": check["accuracy"],
            "best_val_acc": summary.get("best_val_acc"),
            "epochs": summary["epochs"],
            "first_epoch_test_acc_ge_0.976": next(
                (r["epoch"] for r in rows if r["test_acc"] >= 0.976), None
            ),
            "wall_time_s": summary["train_seconds"],
            "epoch_seconds": summary["train_seconds"] / max(summary["epochs"], 1),
            "train_samples_per_s": summary["train_samples_per_s"],
            "torch_threads": config.train.threads,
        },
        notes="784-500-10, discrete-time dynamics T=40/K=15, centred EP beta=0.5, SGD 0.1/0.05 "
        "cosine, batch 20, 50k train / 10k validation; test_acc is the last epoch's.",
        targets={"test_acc": ">= 0.976"},
    )


if __name__ == "__main__":
    main()
