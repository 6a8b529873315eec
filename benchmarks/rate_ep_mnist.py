"""Benchmark: test accuracy and training speed of rate-based EP on MNIST.

Trains a config (default ``rate_ep/mnist``, 784-500-10) with the project's trainer into
``pretrained/<config name>`` (resuming if a checkpoint is there), then records test accuracy
(target >= 0.976), epochs, wall time and train samples/s. Long (784-500-10: ~17 s per epoch on
one core; 784-500-500-10: ~2.5 min); run it in the background, e.g.

    nohup python benchmarks/rate_ep_mnist.py --data-dir ../shared/data > rate_ep_mnist.log 2>&1 &
    python benchmarks/rate_ep_mnist.py --config rate_ep/mnist_2h --name rate_ep_mnist_2h ...

``--stop-after-epoch N`` ends the session early; the next call resumes and, once the run is
complete, records the result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import ROOT, record

from eqspike.train.api import read_run_config, resume, train
from eqspike.train.checkpoint import latest_checkpoint_path
from eqspike.train.config import load_config
from eqspike.train.evaluate import evaluate_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--config", default="rate_ep/mnist")
    parser.add_argument("--name", default="rate_ep_mnist", help="results/<name>.json")
    parser.add_argument("--out", help="run directory (default pretrained/<config name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--stop-after-epoch", type=int, default=None)
    args = parser.parse_args()
    config = load_config(args.config, args.overrides)
    out = Path(args.out or ROOT / "pretrained" / config.name)
    if latest_checkpoint_path(out) is not None:
        summary = resume(out, args.overrides, args.data_dir, False, args.stop_after_epoch)
    else:
        summary = train(config, None, out, args.data_dir, False, args.stop_after_epoch)
    if summary["status"] != "completed":
        print(f"stopped after epoch {summary['epochs']}; run again to resume. Nothing recorded.")
        return
    config = read_run_config(out)
    check = evaluate_run(out, "test", args.data_dir)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    model, solver, est = config.model, config.solver, config.estimator
    record(
        args.name,
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
        notes=f"{'-'.join(map(str, model.layers))}, {solver.kind}-time {solver.update} dynamics "
        f"T={solver.free_steps}/K={solver.nudged_steps}, {est.kind} beta={est.beta}, "
        f"{config.optimizer.kind} lr={config.optimizer.lr} {config.optimizer.schedule}, batch "
        f"{config.data.batch_size}, validation {config.data.validation}; test_acc is the last "
        "epoch's.",
        targets={"test_acc": ">= 0.976"},
    )


if __name__ == "__main__":
    main()
