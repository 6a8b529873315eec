"""eqspike in ten minutes of reading and about one of CPU: run it top to bottom.

    python examples/tutorial.py [--out tutorial-runs]

Everything here runs on the built-in Yin-Yang dataset (generated, no download):

1. train rate-based Equilibrium Propagation from a shipped config, with overrides;
2. load the run back and use the network as an ordinary ``nn.Module``;
3. check EP's update against backpropagation through time on the same dynamics;
4. price the trained network on neuromorphic device profiles against a GPU;
5. train a time-to-first-spike network with exact spike-time gradients;
6. export it as a NIR graph for neuromorphic toolchains.

Each step prints what it measured; the run directories hold configs, metrics, curves and
checkpoints. The same steps exist on the command line (``eqspike --help``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import eqspike
from eqspike.ep.gradcheck import gradcheck
from eqspike.export import export_nir
from eqspike.hardware.report import energy_report
from eqspike.train.trainer import load_splits
from eqspike.ttfs.plots import yinyang_decision_map


def main(out: Path) -> None:
    # 1. Rate EP on Yin-Yang: the shipped demo config with two values overridden.
    summary = eqspike.train(
        "demo/yinyang", overrides=["train.epochs=8", "train.plots=false"], run_dir=out / "ep"
    )
    print(f"1. rate EP on Yin-Yang: test accuracy {summary['test_acc']:.3f}")

    # 2. The trained network is an nn.Module: forward() relaxes the free phase.
    run = eqspike.load(out / "ep")
    test = load_splits(run.config).test
    with torch.no_grad():
        outputs = run.model(test.x[:500])  # output activities, (batch, classes)
    accuracy = (outputs.argmax(1) == test.y[:500]).float().mean().item()
    print(f"2. reloaded, first 500 test samples: accuracy {accuracy:.3f}")

    # 3. EP vs BPTT through the same dynamics (the GDU property): cosine per tensor.
    report = gradcheck(run.model, test.x[:64], test.y[:64], beta=0.01, variants=("centered",))
    cosines = [t["cosine"] for t in report.variants["centered"]["per_tensor"].values()]
    print(f"3. centred EP vs BPTT (beta 0.01): cosines {[round(c, 4) for c in cosines]}")

    # 4. Events counted from the run, priced on every shipped device profile.
    energy = energy_report(out / "ep", samples=200, train_samples=20, measure=False)
    profiles = energy["energy"]["profiles"]
    print(f"4. energy report: {len(profiles)} device profiles priced -> {out / 'ep' / 'energy'}")

    # 5. Time-to-first-spike learning (fast and deep), exact gradients, fewer epochs than the
    #    paper's 300 to keep this short.
    summary = eqspike.train(
        "ttfs/yinyang",
        overrides=["train.epochs=30", "train.plots=false"],
        run_dir=out / "ttfs",
    )
    print(f"5. TTFS on Yin-Yang after 30 epochs: test accuracy {summary['test_acc']:.3f}")
    ttfs = eqspike.load(out / "ttfs")
    x = load_splits(ttfs.config).test.x[:1000].double()
    y = load_splits(ttfs.config).test.y[:1000]
    yinyang_decision_map(ttfs.model, x, y, out / "ttfs" / "decision_map.png")

    # 6. The TTFS network as a NIR graph (Affine + CubaLIF layers), model time unit 6 µs.
    path = export_nir(out / "ttfs", out / "ttfs.nir", tau_s=6e-6)
    print(f"6. NIR graph written: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tutorial-runs"))
    main(parser.parse_args().out)
