"""``eqspike robustness RUN``: accuracy of a trained TTFS network under substrate distortions.

For each distortion (spec §7) and strength: the trained network evaluated on the distorted
substrate ("trained without"), and with ``retrain`` the same network fine-tuned for a few
epochs with the distortion present ("trained with"), starting from the trained weights — the
paper's Fig. 5 comparison. Frozen patterns (fixed-pattern noise, dead neurons, τ mismatch)
are averaged over several pattern seeds (mean ± std).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eqspike.errors import ConfigError
from eqspike.io import atomic_write_json
from eqspike.train.api import load, read_run_config, train
from eqspike.train.trainer import evaluation_sums, load_splits


@dataclass(frozen=True)
class Sweep:
    """One distortion: its strengths, and how a strength becomes config overrides."""

    name: str
    label: str
    strengths: tuple[float, ...]
    overrides: Callable[[float, float], list[str]]  # (strength, max |w| of the run) -> keys
    frozen_pattern: bool


def _key(key: str) -> Callable[[float, float], list[str]]:
    return lambda s, _w: [f"distortions.{key}={s}"]


SWEEPS: dict[str, Sweep] = {
    s.name: s
    for s in [
        Sweep(
            "spike_jitter",
            "spike-time jitter σ (τ_s)",
            (0, 0.05, 0.1, 0.2, 0.3, 0.5),
            _key("spike_jitter"),
            False,
        ),
        Sweep(
            "weight_bits",
            "weight resolution (magnitude bits, range = max |w|)",
            (0, 8, 6, 5, 4, 3, 2),
            lambda s, w: (
                []
                if s == 0
                else [f"distortions.weight_bits={int(s)}", f"distortions.weight_range={w}"]
            ),
            False,
        ),
        Sweep(
            "weight_range",
            "weight range (fraction of max |w|)",
            (1.0, 0.8, 0.6, 0.4, 0.3, 0.2),
            lambda s, w: [f"distortions.weight_range={s * w}"],
            False,
        ),
        Sweep(
            "weight_fixed_pattern",
            "fixed-pattern weight noise (relative σ)",
            (0, 0.05, 0.1, 0.2, 0.3, 0.5),
            _key("weight_fixed_pattern"),
            True,
        ),
        Sweep(
            "threshold_fixed_pattern",
            "fixed-pattern threshold noise (relative σ)",
            (0, 0.02, 0.05, 0.1, 0.2, 0.3),
            _key("threshold_fixed_pattern"),
            True,
        ),
        Sweep(
            "threshold_noise",
            "trial-to-trial threshold noise (relative σ)",
            (0, 0.02, 0.05, 0.1, 0.2, 0.3),
            _key("threshold_noise"),
            False,
        ),
        Sweep(
            "tau_mismatch",
            "τ_m mismatch (relative σ, integrator step 0.01)",
            (0, 0.05, 0.1, 0.2, 0.3),
            _key("tau_mismatch"),
            True,
        ),
        Sweep(
            "time_step",
            "forward-pass time step (τ_s; 0 = exact)",
            (0, 0.01, 0.05, 0.1, 0.2, 0.5),
            lambda s, _w: [] if s == 0 else [f"model.time_step={s}"],
            False,
        ),
        Sweep(
            "dead_neurons",
            "dead hidden neurons (fraction)",
            (0, 0.05, 0.1, 0.2, 0.3, 0.5),
            _key("dead_neurons"),
            True,
        ),
    ]
}


def _accuracy(run_dir: Path, overrides: list[str], data) -> float:
    run = load(run_dir, overrides=overrides)
    dtype = getattr(torch, run.config.train.dtype)
    batch = run.config.data.eval_batch_size
    sums = evaluation_sums(run.model, data.x, data.y, batch, torch.device("cpu"), dtype)
    return sums["acc"] / len(data)


def _scaled(lr: float | list[float], scale: float) -> float | list[float]:
    return [v * scale for v in lr] if isinstance(lr, list) else lr * scale


def _mean_std(values: list[float]) -> tuple[float, float]:
    tensor = torch.tensor(values, dtype=torch.float64)
    std = tensor.std().item() if len(values) > 1 else 0.0
    return tensor.mean().item(), std


def robustness_sweep(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    distortions: list[str] | None = None,
    retrain: bool = False,
    retrain_epochs: int = 20,
    pattern_seeds: int = 3,
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    overrides: list[str] | None = None,
    retrain_lr_scale: float = 0.2,
) -> dict[str, Any]:
    """Run the sweep; writes ``robustness.json`` and ``robustness_<distortion>.png``.

    ``overrides`` apply to every evaluation and retraining (e.g. ``model.t_max=8`` to shorten
    the time-stepped passes). Fine-tuning starts from the trained weights at
    ``retrain_lr_scale`` × the run's learning rate (the full rate first undoes some of the
    training)."""
    common = list(overrides or [])
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if config.algorithm != "ttfs":
        raise ConfigError(
            f"eqspike robustness sweeps hardware distortions of TTFS networks; {run_dir} is a "
            f"{config.algorithm!r} run."
        )
    names = distortions or list(SWEEPS)
    unknown = [n for n in names if n not in SWEEPS]
    if unknown:
        raise ConfigError(f"unknown distortion(s) {unknown}; choose from {sorted(SWEEPS)}.")
    out_dir = Path(out_dir or run_dir / "robustness")
    out_dir.mkdir(parents=True, exist_ok=True)
    test = load_splits(config, data_dir).test
    base = load(run_dir)
    max_w = max(p.detach().abs().max().item() for p in base.model.parameters())
    max_w = float(f"{max_w:.6g}")
    results: dict[str, Any] = {
        "run_dir": str(run_dir),
        "max_abs_weight": max_w,
        "retrain": retrain,
        "retrain_epochs": retrain_epochs if retrain else None,
        "retrain_from": "the trained weights (fine-tuning with the distortion present)",
        "retrain_lr_scale": retrain_lr_scale,
        "pattern_seeds": pattern_seeds,
        "overrides": common,
        "baseline_test_acc": _accuracy(run_dir, common, test),
        "distortions": {},
    }
    for name in names:
        sweep = SWEEPS[name]
        seeds = range(pattern_seeds if sweep.frozen_pattern else 1)
        rows = []
        for strength in sweep.strengths:
            start = time.perf_counter()
            keys = [*common, *sweep.overrides(strength, max_w)]
            without = [
                _accuracy(run_dir, [*keys, f"distortions.seed={1000 + s}"], test) for s in seeds
            ]
            row: dict[str, Any] = {"strength": strength, "overrides": keys}
            row["without_mean"], row["without_std"] = _mean_std(without)
            if retrain and len(keys) > len(common):
                retrained = []
                for s in seeds:
                    target = out_dir / "retrain" / f"{name}-{strength:g}-seed{s}"
                    if not (target / "summary.json").is_file():
                        train(
                            config,
                            [
                                *keys,
                                f"distortions.seed={1000 + s}",
                                f"train.epochs={retrain_epochs}",
                                f"train.init_from={run_dir}",
                                f"optimizer.lr={_scaled(config.optimizer.lr, retrain_lr_scale)}",
                                "train.plots=false",
                            ],
                            target,
                            data_dir,
                            quiet=True,
                        )
                    overrides = [*keys, f"distortions.seed={1000 + s}"]
                    retrained.append(_accuracy(target, overrides, test))
                row["with_mean"], row["with_std"] = _mean_std(retrained)
            elif retrain:  # strength 0: nothing to retrain with
                row["with_mean"], row["with_std"] = row["without_mean"], row["without_std"]
            rows.append(row)
            log(
                f"{name} = {strength:g}: {100 * row['without_mean']:.1f} %"
                + (f" -> retrained {100 * row['with_mean']:.1f} %" if "with_mean" in row else "")
                + f"  ({time.perf_counter() - start:.1f}s)"
            )
        png = out_dir / f"robustness_{name}.png"
        _plot(sweep, rows, results["baseline_test_acc"], png)
        results["distortions"][name] = {"label": sweep.label, "rows": rows, "png": str(png)}
        atomic_write_json(out_dir / "robustness.json", results)
    return results


def _plot(sweep: Sweep, rows: list[dict[str, Any]], baseline: float, path: Path) -> None:
    from eqspike.analysis.plots import plt, save_figure

    x = [r["strength"] for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    mean = [100 * r["without_mean"] for r in rows]
    std = [100 * r["without_std"] for r in rows]
    ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label="trained without")
    if rows and "with_mean" in rows[0]:
        mean = [100 * r["with_mean"] for r in rows]
        std = [100 * r["with_std"] for r in rows]
        ax.errorbar(x, mean, yerr=std, marker="s", capsize=3, label="trained with")
    ax.axhline(100 * baseline, color="grey", lw=0.8, ls="--", label="undistorted")
    ax.set_xlabel(sweep.label)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    save_figure(fig, path)
