"""Benchmark: robustness of the trained Yin-Yang TTFS network to substrate distortions.

Runs ``eqspike robustness pretrained/ttfs-yinyang-seed0 --retrain`` (every distortion of
spec §7 over a range of strengths: the trained network on the distorted substrate, and the
same network fine-tuned with the distortion present) and records, per distortion, the
strengths and test accuracies ``<distortion>_without`` / ``<distortion>_with``, plus the PNGs
(the shape of the paper's Fig. 5). Needs the Yin-Yang run of ``ttfs_accuracy.py``.

    python benchmarks/ttfs_robustness.py --retrain-epochs 10
"""

from __future__ import annotations

import argparse

from common import ROOT, record

from eqspike.ttfs.robustness import robustness_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(ROOT / "pretrained" / "ttfs-yinyang-seed0"))
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--pattern-seeds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ttfs_robustness"))
    args = parser.parse_args()
    result = robustness_sweep(
        args.run,
        args.out,
        None,
        True,
        args.retrain_epochs,
        args.pattern_seeds,
        overrides=["model.t_max=8"],  # outputs spike before ~3 tau_s: shorter stepped passes
    )
    metrics = {"baseline_test_acc": result["baseline_test_acc"]}
    for name, sweep in result["distortions"].items():
        rows = sweep["rows"]
        metrics[f"{name}_strengths"] = [r["strength"] for r in rows]
        metrics[f"{name}_without"] = [round(r["without_mean"], 4) for r in rows]
        metrics[f"{name}_with"] = [round(r["with_mean"], 4) for r in rows]
    record(
        "ttfs_robustness",
        metrics,
        notes=f"Yin-Yang 4-120-3 ({args.run}); 'with' = fine-tuned {args.retrain_epochs} epochs "
        "from the trained weights (lr x 0.2) with the distortion present; frozen patterns "
        "averaged over "
        f"{args.pattern_seeds} seeds; full rows (std) and PNGs in {args.out}/.",
    )


if __name__ == "__main__":
    main()
