"""Benchmark: the STDP window of a trained EqSpike network (``eqspike stdp`` on the benchmark run).

    python benchmarks/eqspike_stdp.py --data-dir ../shared/data

Records the fitted window of the applied (centred) update (``a_plus``, ``tau_plus``,
``a_minus``, ``tau_minus``, in units of Δw per event and steps), the number of events, the
β = 0 control's fit and how much of the applied window's shape it shares, and the PNG path.
"""

from __future__ import annotations

import argparse
import shutil

import torch
from common import RESULTS, ROOT, record

from eqspike.analysis.stdp import nudged_samples, stdp_report
from eqspike.train.api import load
from eqspike.train.trainer import load_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run", default=str(ROOT / "pretrained" / "eqspike-mnist"))
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--synapses", type=int, default=200)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    run = load(args.run)
    test = load_splits(run.config, args.data_dir).test
    out = RESULTS / "eqspike_stdp"
    out.mkdir(parents=True, exist_ok=True)
    # Only samples the nudge moves: on the rest the trained outputs sit exactly on the bounds,
    # the nudge is zero and the two phases' increments cancel event by event.
    x, y = nudged_samples(run.model, test.x, test.y, args.samples)
    report = stdp_report(run.model, x, y, out, args.synapses)
    png = RESULTS / "eqspike_stdp.png"
    shutil.move(out / "stdp.png", png)
    shutil.rmtree(out)
    applied, control = report["applied"], report["control_beta0"]
    record(
        "eqspike_stdp",
        {
            **applied["fit"],
            "events": applied["events"],
            "control_beta0_fit": control["fit"],
            "control_beta0_events": control["events"],
            "shape_correlation_applied_vs_control": report["shape_correlation_applied_vs_control"],
            "checkpoint_epoch": run.meta.get("epoch"),
            "png": str(png.relative_to(ROOT)),
        },
        notes=f"{args.samples} test images, {args.synapses} sampled synapses per weight layer, "
        "events: nonzero per-step increments tagged with the nearest pre/post spikes, |Δt| <= 10.",
    )


if __name__ == "__main__":
    main()
