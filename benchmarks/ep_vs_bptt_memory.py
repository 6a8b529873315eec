"""Benchmark: peak memory and time per batch of EP and BPTT on the same spiking conv net.

The network of ``configs/conv/mnist_spiking_quick.yaml`` (conv 5x5 8 ch + avg pool, conv 5x5
16 ch + avg pool, fc 64, fc 10; Sigma-Delta spikes), batch 16 of 28x28 inputs, float32, 1
thread. For T in {50, 100, 200, 400, 800}: EP = centred EP with T free steps and T/5 nudged
steps per phase (no graph: O(1) memory in T); BPTT = backpropagation with a surrogate spike
gradient through all T steps (O(T)). Each measurement runs in a fresh process: peak RSS growth
during one learning step. Writes ``benchmarks/results/ep_vs_bptt_memory.json`` (keys ``T``,
``ep_peak_mb``, ``bptt_peak_mb``, ``ep_seconds``, ``bptt_seconds``) and a PNG.

    python benchmarks/ep_vs_bptt_memory.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch
from common import RESULTS, record

STEPS = (50, 100, 200, 400, 800)


def _measure(method: str, steps: int) -> dict:
    """Child process: one learning step; peak RSS growth and seconds."""
    import torch.nn.functional as F

    from eqspike.algorithms import ALGORITHMS
    from eqspike.ep.estimators import BackpropThroughTime, EquilibriumPropagation, Phases
    from eqspike.train.config import load_config

    torch.set_num_threads(1)
    config = load_config("conv/mnist_spiking_quick")
    network = ALGORITHMS["conv_ep"].build(config, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 28, 28, generator=g)
    target = F.one_hot(torch.randint(0, 10, (16,), generator=g), 10).float()
    params = network.energy.params()
    if method == "ep":
        estimator, phases = EquilibriumPropagation(0.5, "centered"), Phases(steps, steps // 5)
    else:
        estimator, phases = BackpropThroughTime(), Phases(steps, 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    estimator.gradients(network.solver, params, x, target, phases)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mb": (peak - before) / 1024, "seconds": seconds}


def measure_in_child(method: str, steps: int) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import ep_vs_bptt_memory as m; "
        f"print(json.dumps(m._measure({method!r}, {steps})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{method} at T={steps} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {m: [measure_in_child(m, t) for t in STEPS] for m in ("ep", "bptt")}
    for m, rows in results.items():
        print(
            m,
            [
                (t, round(r["peak_mb"], 1), round(r["seconds"], 2))
                for t, r in zip(STEPS, rows, strict=True)
            ],
        )
    ep_mb = [r["peak_mb"] for r in results["ep"]]
    bptt_mb = [r["peak_mb"] for r in results["bptt"]]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(STEPS, ep_mb, "o-", label="EP (centred)")
    ax.plot(STEPS, bptt_mb, "s-", label="BPTT (surrogate)")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("peak memory growth (MB)")
    ax.set_title("Spiking conv net, batch 16")
    ax.legend()
    fig.tight_layout()
    png = RESULTS / "ep_vs_bptt_memory.png"
    fig.savefig(png, dpi=120)
    growth = (max(ep_mb) - min(ep_mb)) / max(min(ep_mb), 1e-9)
    record(
        "ep_vs_bptt_memory",
        {
            "T": list(STEPS),
            "ep_peak_mb": ep_mb,
            "bptt_peak_mb": bptt_mb,
            "ep_seconds": [r["seconds"] for r in results["ep"]],
            "bptt_seconds": [r["seconds"] for r in results["bptt"]],
            "ep_growth": growth,
            "bptt_over_ep_at_max_T": bptt_mb[-1] / max(ep_mb[-1], 1e-9),
            "png": str(png.relative_to(RESULTS.parent.parent)),
        },
        notes="Peak RSS growth of one learning step in a fresh process (float32, 1 thread, "
        "batch 16 random 28x28 inputs); EP: T free + 2 x T/5 nudged steps.",
        targets={"ep_growth": "<= 0.05"},
    )


if __name__ == "__main__":
    main()
