"""The ``eqspike`` command line: train, eval, gradcheck, list.

Every command turns an :class:`~eqspike.errors.EqspikeError` (bad config, missing data,
divergence...) into a short message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from eqspike.errors import EqspikeError

EPILOG = """examples:
  eqspike train                                   # built-in Yin-Yang demo, no download
  eqspike train configs/rate_ep/mnist.yaml --data-dir ../shared/data
  eqspike train rate_ep/mnist --set train.epochs=5 --set optimizer.lr=[0.05,0.02]
  eqspike train --resume runs/rate-ep-mnist-20261123-120000
  eqspike eval pretrained/rate-ep-mnist --data-dir ../shared/data
  eqspike gradcheck demo/yinyang --set estimator.beta=0.01
  torchrun --nproc_per_node=2 -m eqspike.cli train rate_ep/mnist   # data parallel

data: --data-dir DIR (DIR/mnist/...), else $EQSPIKE_DATA, else the cache (~/.cache/eqspike,
or $EQSPIKE_CACHE), else a download from the standard mirrors."""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable; values are YAML)",
    )
    parser.add_argument(
        "--data-dir", help="folder holding <dataset>/ IDX files (else $EQSPIKE_DATA)"
    )


def _run_arguments(
    parser: argparse.ArgumentParser,
    run_help: str,
    samples: int | None = None,
    out: str = "RUN/analysis",
) -> None:
    """The arguments every command that analyses a trained run shares."""
    parser.add_argument("run", help=run_help)
    parser.add_argument("--data-dir", help="folder holding <dataset>/ IDX files")
    if samples is not None:
        parser.add_argument(
            "--samples", type=int, default=samples, help=f"test samples (default {samples})"
        )
    parser.add_argument("--out", help=f"output folder (default {out})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eqspike",
        description="Train spiking/energy-based networks with local learning rules.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train from a config (no config: a short Yin-Yang demo)",
        description="Train a network from a YAML config (path or shipped name, see `eqspike "
        "list`). Writes a run directory with config, metrics, curves, checkpoints and summary.",
    )
    train.add_argument("config", nargs="?", help="YAML file or shipped config name (default: demo)")
    _add_common(train)
    train.add_argument("--out", help="run directory (default: runs/<name>-<timestamp>)")
    train.add_argument("--resume", metavar="RUN", help="continue RUN from its latest checkpoint")
    train.add_argument("--quiet", action="store_true", help="only warnings and the final line")
    train.add_argument(
        "--stop-after-epoch",
        type=int,
        metavar="N",
        help="end this session after epoch N (resume later with --resume; schedule unchanged)",
    )

    evaluate = sub.add_parser(
        "eval",
        help="re-evaluate a run's latest checkpoint on the test set",
        description="Load RUN's config and latest checkpoint and measure accuracy and loss.",
    )
    evaluate.add_argument("run", help="run directory (e.g. pretrained/rate-ep-mnist)")
    evaluate.add_argument("--data-dir", help="folder holding <dataset>/ IDX files")
    evaluate.add_argument(
        "--split", choices=["test", "validation", "train"], default="test", help="which split"
    )
    evaluate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluate with a changed setting, e.g. --set solver.readout_steps=40",
    )

    average = sub.add_parser(
        "average",
        help="average the weights of a run's epoch checkpoints into a new run directory",
        description="Stochastic weight averaging after the fact: the mean of the weights of "
        "RUN's checkpoints for --epochs, written with RUN's config to --out (evaluate it with "
        "`eqspike eval OUT`). Keep the epochs by training with --set train.keep_checkpoints=K.",
    )
    average.add_argument("run", help="run directory whose checkpoints to average")
    average.add_argument("--epochs", required=True, help="a range (6-10) or a list (3,5,8)")
    average.add_argument("--out", required=True, help="new run directory for the average")

    grad = sub.add_parser(
        "gradcheck",
        help="compare EP updates with BPTT gradients (table + PNG)",
        description="Run EP (one-sided and centred) and BPTT through the same dynamics on one "
        "batch and report, per parameter tensor, NRMSE and sign agreement per nudged step and "
        "the cosine of the final update. Uses float64.",
    )
    grad.add_argument("config", help="YAML file or shipped config name")
    _add_common(grad)
    grad.add_argument("--batch", type=int, default=32, help="samples in the batch (default 32)")
    grad.add_argument("--out", default="gradcheck", help="output folder (default ./gradcheck)")

    raster = sub.add_parser(
        "raster",
        help="spike rasters and firing-rate histograms of a trained spiking run",
        description="Run the free phase of RUN's latest checkpoint on test images, recording "
        "every spike; write raster.png, rates.png and spikes.json into RUN/analysis (or --out).",
    )
    _run_arguments(raster, "run directory of an eqspike run", samples=100)

    stdp = sub.add_parser(
        "stdp",
        help="STDP analysis of a trained EqSpike run (JSON + PNG)",
        description="Record weight-update events of sampled synapses during real nudged phases "
        "of RUN on test images, bin mean Δw by Δt = t_post − t_pre, fit exponential windows, "
        "compare with a β = 0 control and a single-synapse pairing protocol.",
    )
    _run_arguments(stdp, "run directory of an eqspike run", samples=100)
    stdp.add_argument("--synapses", type=int, default=200, help="sampled synapses per layer")
    stdp.add_argument("--max-lag", type=int, default=10, help="largest |Δt| in steps")
    stdp.add_argument(
        "--nudged-only",
        action="store_true",
        help="only test samples whose output the nudge moves (a trained network's outputs sit "
        "on the bounds for most samples, where the nudge is exactly zero)",
    )

    robust = sub.add_parser(
        "robustness",
        help="accuracy of a trained TTFS run under hardware distortions (JSON + PNGs)",
        description="Evaluate RUN's latest checkpoint with each substrate distortion at a range "
        "of strengths (trained without it); with --retrain, also fine-tune RUN with the "
        "distortion present and evaluate again (trained with it). Writes robustness.json and "
        "robustness_<distortion>.png into RUN/robustness (or --out).",
    )
    _run_arguments(robust, "run directory of a ttfs run", out="RUN/robustness")
    robust.add_argument(
        "--distortion",
        action="append",
        dest="distortions",
        help="only this distortion (repeatable); default all",
    )
    robust.add_argument("--retrain", action="store_true", help="also train with the distortion")
    robust.add_argument(
        "--retrain-epochs", type=int, default=20, help="fine-tuning epochs (default 20)"
    )
    robust.add_argument(
        "--pattern-seeds", type=int, default=3, help="frozen patterns averaged (default 3)"
    )
    robust.add_argument(
        "--set",
        action="append",
        dest="overrides",
        metavar="KEY=VALUE",
        help="config override for every evaluation and retraining (e.g. model.t_max=8)",
    )

    plot = sub.add_parser(
        "plot",
        help="plots of a trained TTFS run: output spike times per class, Yin-Yang decisions",
        description="Write output_spike_times.png (and for Yin-Yang decision_map.png) for RUN's "
        "latest checkpoint on test samples into RUN/analysis (or --out).",
    )
    _run_arguments(plot, "run directory of a ttfs run", samples=1000)

    energy = sub.add_parser(
        "energy",
        help="energy per sample of a trained run on device profiles vs a GPU (JSON, MD, PNG)",
        description="Count RUN's events on real samples (inference and one learning step "
        "each), price them on every device profile, measure GPU (NVML) / CPU (RAPL) energy "
        "where available, and write energy.json, energy.md and energy.png into RUN/energy.",
    )
    _run_arguments(energy, "run directory (rate_ep, eqspike, conv_ep or ttfs)", 500, "RUN/energy")
    energy.add_argument(
        "--profile", action="append", dest="profiles", help="only this shipped profile (repeat)"
    )
    energy.add_argument(
        "--profile-file", action="append", dest="profile_files", help="your own profile YAML"
    )
    energy.add_argument(
        "--train-samples", type=int, default=100, help="training samples (default 100)"
    )
    energy.add_argument(
        "--gpu-utilisation", type=float, help="fraction of GPU peak assumed (profile default)"
    )
    energy.add_argument("--no-measure", action="store_true", help="skip NVML / RAPL")

    export = sub.add_parser(
        "export",
        help="write a trained network as a NIR graph (TTFS runs: Affine + CubaLIF layers)",
        description="Write RUN's latest checkpoint as a NIR file (HDF5) that neuromorphic "
        "toolchains read (nir.read). Times are in seconds: --tau-s sets the model time unit "
        "(BrainScaleS-2: 6e-6).",
    )
    export.add_argument("run", help="run directory of a ttfs run")
    export.add_argument("--nir", required=True, metavar="FILE", help="output file, e.g. net.nir")
    export.add_argument(
        "--tau-s", type=float, default=1.0, help="synaptic time constant in seconds (default 1)"
    )

    sub.add_parser("list", help="list the shipped configs", description="List shipped configs.")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from eqspike.train.api import resume, train

    if args.resume:
        if args.config:
            raise EqspikeError(
                "give either a config or --resume RUN, not both (RUN has its config)"
            )
        summary = resume(
            args.resume, args.overrides, args.data_dir, args.quiet, args.stop_after_epoch
        )
    else:
        summary = train(
            args.config, args.overrides, args.out, args.data_dir, args.quiet, args.stop_after_epoch
        )
    if os.environ.get("RANK", "0") == "0":
        acc = summary.get("test_acc")
        print(
            f"test accuracy: {100 * acc:.2f}%" if acc is not None else "test accuracy: n/a",
            f"| run directory: {summary['run_dir']}",
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from eqspike.train.evaluate import evaluate_run

    result = evaluate_run(args.run, args.split, args.data_dir, args.overrides)
    print(json.dumps(result, indent=2))
    return 0


def cmd_average(args: argparse.Namespace) -> int:
    from eqspike.train.average import average_run, parse_epochs

    path = average_run(args.run, parse_epochs(args.epochs), args.out)
    print(f"averaged epochs {args.epochs} of {args.run}: {path}")
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from eqspike.ep.gradcheck_cli import run_gradcheck

    table, out = run_gradcheck(
        args.config, args.overrides, args.data_dir, args.batch, Path(args.out)
    )
    print(table)
    print(f"written: {out / 'gradcheck.json'}, {out / 'gradcheck.png'}")
    return 0


def cmd_raster(args: argparse.Namespace) -> int:
    from eqspike.analysis.spikes import spike_report

    run, x, _, out = _spiking_run_and_data(args)
    summary = spike_report(run.model, x, out)
    print(json.dumps(summary["layers"], indent=2))
    print(f"written: {out / 'raster.png'}, {out / 'rates.png'}, {out / 'spikes.json'}")
    return 0


def _test_split(args: argparse.Namespace, run):
    import torch

    from eqspike.train.trainer import load_splits

    test = load_splits(run.config, args.data_dir).test
    return test.x.to(getattr(torch, run.config.train.dtype)), test.y


def _spiking_run_and_data(args: argparse.Namespace):
    import torch

    from eqspike.train.api import load
    from eqspike.train.trainer import load_splits

    if args.samples < 1:
        raise EqspikeError(f"--samples must be >= 1, got {args.samples}")
    run = load(args.run)
    if run.config.algorithm != "eqspike":
        raise EqspikeError(f"{args.run} is a {run.config.algorithm} run; this needs an eqspike run")
    test = load_splits(run.config, args.data_dir).test
    out = Path(args.out or Path(args.run) / "analysis")
    out.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, run.config.train.dtype)
    return run, test.x[: args.samples].to(dtype), test.y[: args.samples], out


def cmd_stdp(args: argparse.Namespace) -> int:
    from eqspike.analysis.stdp import nudged_samples, stdp_report

    run, x, y, out = _spiking_run_and_data(args)
    if args.nudged_only:
        x, y = nudged_samples(run.model, *_test_split(args, run), args.samples)
        print(f"{len(y)} test samples whose output the nudge moves")
    report = stdp_report(run.model, x, y, out, args.synapses, args.max_lag)
    for key in ("applied", "control_beta0"):
        print(f"{key}: {report[key]['events']} events, fit {report[key]['fit']}")
    shared = report["shape_correlation_applied_vs_control"]
    print(f"shape correlation applied vs control: {shared:.3f}")
    print(f"written: {out / 'stdp.json'}, {out / 'stdp.png'}")
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from eqspike.ttfs.robustness import robustness_sweep

    result = robustness_sweep(
        args.run,
        args.out,
        args.distortions,
        args.retrain,
        args.retrain_epochs,
        args.pattern_seeds,
        args.data_dir,
        overrides=args.overrides,
    )
    out = Path(args.out or Path(args.run) / "robustness")
    print(f"baseline test accuracy {100 * result['baseline_test_acc']:.2f} %")
    print(f"written: {out / 'robustness.json'} and {len(result['distortions'])} PNGs")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import torch

    from eqspike.train.api import load
    from eqspike.train.trainer import load_splits
    from eqspike.ttfs.plots import output_spike_raster, yinyang_decision_map

    run = load(args.run)
    if run.config.algorithm != "ttfs":
        raise EqspikeError(f"eqspike plot draws TTFS runs; {args.run} is {run.config.algorithm!r}")
    test = load_splits(run.config, args.data_dir).test
    dtype = getattr(torch, run.config.train.dtype)
    x, y = test.x[: args.samples].to(dtype), test.y[: args.samples]
    out = Path(args.out or Path(args.run) / "analysis")
    out.mkdir(parents=True, exist_ok=True)
    written = [output_spike_raster(run.model, x, y, out / "output_spike_times.png")["png"]]
    if run.config.data.dataset == "yinyang":
        written.append(yinyang_decision_map(run.model, x, y, out / "decision_map.png")["png"])
    print("written:", ", ".join(written))
    return 0


def cmd_energy(args: argparse.Namespace) -> int:
    from eqspike.hardware.report import energy_report

    if args.gpu_utilisation is not None and not 0 < args.gpu_utilisation <= 1:
        raise EqspikeError(
            f"--gpu-utilisation {args.gpu_utilisation}: give a fraction of peak in (0, 1]"
        )
    energy_report(
        args.run,
        args.profiles,
        args.profile_files,
        args.samples,
        args.train_samples,
        args.data_dir,
        args.gpu_utilisation,
        args.out,
        not args.no_measure,
    )
    out = Path(args.out or Path(args.run) / "energy")
    print((out / "energy.md").read_text().split("\n## Events")[0])
    print(f"written: {out / 'energy.json'}, {out / 'energy.md'}, {out / 'energy.png'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from eqspike.export import export_nir

    path = export_nir(args.run, args.nir, args.tau_s)
    print(f"written: {path}")
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    from eqspike.train.config import read_raw_config, shipped_configs

    for name, path in shipped_configs().items():
        raw = read_raw_config(path)
        first = next(
            (ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")),
            "",
        )
        print(f"{name:<28} {raw.get('algorithm', '?'):<10} {first}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "average": cmd_average,
    "gradcheck": cmd_gradcheck,
    "raster": cmd_raster,
    "stdp": cmd_stdp,
    "robustness": cmd_robustness,
    "plot": cmd_plot,
    "energy": cmd_energy,
    "export": cmd_export,
    "list": cmd_list,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except EqspikeError as exc:
        print(f"eqspike {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        return 0
    except KeyboardInterrupt:
        print(
            "interrupted; the last finished epoch is checkpointed (resume with --resume RUN)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
