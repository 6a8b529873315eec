"""Benchmark: the fast-and-deep energy claim — the 16x16 MNIST network (256-128-10) on the
BrainScaleS-2 profile against a CPU and a GPU.

* events per classification counted from the trained network's real spike times
  (``pretrained/ttfs-mnist16``): input spikes, synaptic events per layer;
* BrainScaleS-2: classifications/s from the profile (10,000 images in ~1.09 s); its energy per
  classification only if the profile carries the figure (reported as missing otherwise);
* CPU: classifications/s of our exact forward pass measured here (batch 1000, 1 thread, float64
  and float32); CPU energy from RAPL where readable, else missing;
* GPU: datasheet estimate (H100 FP32 energy per FLOP at the profile's utilisation) of the dense
  closed-form evaluation; measured (NVML) only on a machine with a GPU.

    python benchmarks/energy_ttfs.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time

import torch
from common import ROOT, record

from eqspike.hardware.counting import count_ttfs_events
from eqspike.hardware.measure import cpu_energy, gpu_energy
from eqspike.hardware.profiles import load_profiles
from eqspike.hardware.report import price
from eqspike.train.api import load
from eqspike.train.trainer import load_splits


def throughput(model, x: torch.Tensor, repeats: int = 3) -> float:
    with torch.no_grad():
        model(x[:50])
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return repeats * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run", default=str(ROOT / "pretrained" / "ttfs-mnist16"))
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = load(args.run)
    test = load_splits(run.config, args.data_dir).test
    x64 = test.x[: args.samples].to(torch.float64)
    events = count_ttfs_events(run, x64, None, x64[:200], None)
    profiles = {p.name: p for p in load_profiles()}
    bss2 = profiles["brainscales2"].per_classification
    gpu = profiles["gpu_h100_datasheet"]
    gpu_pj = price(events.dense["inference"], gpu)["pj_per_sample"]
    cpu64 = throughput(run.model, x64)
    run32 = load(args.run, overrides=["train.dtype=float32"])
    cpu32 = throughput(run32.model, x64.float())
    measured_cpu = cpu_energy(lambda: (run.model(x64), len(x64))[1])
    if torch.cuda.is_available():
        on_gpu = load(args.run, device="cuda").model
        x_gpu = x64.cuda()
        measured_gpu = gpu_energy(lambda: (on_gpu(x_gpu), len(x_gpu))[1])
    else:
        measured_gpu = {"joules_per_sample": None, "reason": "no CUDA GPU on this machine"}
    totals = events.native["inference"].totals()
    record(
        "energy_ttfs",
        {
            "synaptic_events_per_classification": totals["synaptic_event"],
            "input_and_hidden_spikes_per_classification": totals["spike_route"],
            "bss2_classifications_per_s": 1.0 / bss2.seconds if bss2 and bss2.seconds else None,
            "bss2_energy_per_classification_uj": bss2.uj if bss2 else None,
            "cpu_classifications_per_s_float64": cpu64,
            "cpu_classifications_per_s_float32": cpu32,
            "cpu_energy_per_classification_uj": (
                measured_cpu["joules_per_sample"] * 1e6
                if measured_cpu["joules_per_sample"] is not None
                else None
            ),
            "cpu_energy_missing_reason": measured_cpu.get("reason"),
            "gpu_datasheet_energy_per_classification_uj": gpu_pj / 1e6,
            "gpu_datasheet_utilisation": gpu.utilisation,
            "gpu_measured_energy_per_classification_uj": (
                measured_gpu["joules_per_sample"] * 1e6
                if measured_gpu["joules_per_sample"] is not None
                else None
            ),
            "gpu_measured_missing_reason": measured_gpu.get("reason"),
            "run_epochs": run.meta.get("epoch"),
        },
        notes="BrainScaleS-2 throughput from the profile (spec: 10,000 images in ~1.09 s); "
        "its energy per classification was not available to us and is reported as missing. "
        "CPU throughput measured here (1 thread, batch 1000, exact closed-form pass). GPU: "
        "datasheet energy of the dense closed form at the stated utilisation.",
    )
    print(f"BSS2 {1 / bss2.seconds:.0f}/s vs CPU {cpu64:.0f}/s (float64), {cpu32:.0f}/s (float32)")


if __name__ == "__main__":
    main()
