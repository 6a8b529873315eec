"""``eqspike energy RUN``: price a run's counted events on every device profile.

Event-driven profiles (digital, neuromorphic) price the run's native events; GPU profiles price
the dense reference job's FLOPs at the utilisation they state. Every figure comes with the
events that produced it, the kinds the profile does not price, and the profile's citation and
caveat. Ratios are GPU (datasheet) energy / profile energy for the same job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eqspike.hardware.counting import JobEvents, RunEvents, count_run_events
from eqspike.hardware.measure import cpu_energy, gpu_energy
from eqspike.hardware.profiles import DeviceProfile, load_profiles
from eqspike.io import atomic_write_json, atomic_write_text

PITFALLS = [
    "Counting only accumulates (synaptic events) ignores neuron updates, memory and addressing; "
    "a profile's 'not priced' list says what it leaves out.",
    "Loihi's 23.6 pJ per synaptic operation is a pre-silicon minimum; TrueNorth's 26 pJ is "
    "all-in (static power included): the two are not like for like.",
    "GPU datasheet figures assume peak throughput at TDP; small eager SNN kernels reach a few "
    "percent of peak: the utilisation assumed divides the energy per FLOP.",
    "The encoding layer of rate-coded inputs costs MACs or encoder updates unless an event "
    "sensor delivers the spikes; here input spikes are taken as delivered.",
]


def price(job: JobEvents, profile: DeviceProfile, utilisation: float | None = None) -> dict:
    """Energy of one job on one profile (pJ per sample), per layer, with what was not priced."""
    scale = 1.0
    if profile.kind == "gpu":
        scale = 1.0 / (utilisation or profile.utilisation or 1.0)
    per_layer: dict[str, float] = {}
    unpriced: dict[str, float] = {}
    for layer, counts in job.layers.items():
        for kind, count in counts.items():
            cost = profile.costs.get(kind)
            if kind == "neuron_update_inactive":
                continue
            if cost is None:
                unpriced[kind] = unpriced.get(kind, 0.0) + count
                continue
            per_layer[layer] = per_layer.get(layer, 0.0) + count * cost.pj * scale
    total = sum(per_layer.values())
    return {
        "pj_per_sample": total if per_layer else None,
        "uj_per_sample": total / 1e6 if per_layer else None,
        "per_layer_pj": per_layer,
        "not_priced": unpriced,
        "utilisation": (utilisation or profile.utilisation) if profile.kind == "gpu" else None,
    }


REFERENCE_GPU = "gpu_h100_datasheet"
BSS2_NETWORK = [256, 128, 10]  # the 16x16 MNIST network the BrainScaleS-2 figures describe


def _is_bss2_network(events: RunEvents) -> bool:
    """System-level per-classification figures describe one network, not any TTFS run."""
    return events.algorithm == "ttfs" and events.details.get("sizes") == BSS2_NETWORK


def price_run(
    events: RunEvents, profiles: list[DeviceProfile], utilisation: float | None = None
) -> dict[str, Any]:
    """Every profile × job, and the ratio against the H100 datasheet profile (else the first
    GPU profile). System-level per-classification figures apply only to the network they
    were measured on (the 16x16 MNIST TTFS net for BrainScaleS-2)."""
    rows: dict[str, Any] = {}
    for profile in profiles:
        side = events.dense if profile.kind in ("gpu", "cpu") else events.native
        row: dict[str, Any] = {
            "kind": profile.kind,
            "prices": "dense reference job" if side is events.dense else "native events",
            "citation": profile.citation,
            "caveat": profile.caveat,
        }
        for job, job_events in side.items():
            row[job] = price(job_events, profile, utilisation)
        if profile.per_classification is not None and _is_bss2_network(events):
            pc = profile.per_classification
            row["inference"] = {
                "pj_per_sample": pc.uj * 1e6 if pc.uj else None,
                "uj_per_sample": pc.uj,
                "per_layer_pj": {},
                "not_priced": {},
                "classifications_per_s": 1.0 / pc.seconds if pc.seconds else None,
                "network": pc.network,
                "missing": None if pc.uj else "the profile has no energy per classification",
            }
            row["training"] = {"pj_per_sample": None, "missing": "no training figure"}
        rows[profile.name] = row
    gpus = [p.name for p in profiles if p.kind == "gpu"]
    if REFERENCE_GPU in gpus:
        gpus.insert(0, REFERENCE_GPU)
    if gpus:
        reference = rows[gpus[0]]
        for row in rows.values():
            for job in ("inference", "training"):
                mine = row.get(job, {}).get("pj_per_sample")
                ref = reference.get(job, {}).get("pj_per_sample")
                row.setdefault("ratio_vs_gpu", {})[job] = ref / mine if mine and ref else None
    return {"reference_gpu": gpus[0] if gpus else None, "profiles": rows}


def _dense_runner(run, x: torch.Tensor, device: str):
    """A callable running the dense reference inference on ``device`` (returns samples)."""
    from eqspike.hardware.counting import dense_reference

    model = dense_reference(run).to(device)
    xs = x.to(device)

    def step() -> int:
        with torch.no_grad():
            model(xs)
        return len(xs)

    return step


def energy_report(
    run_dir: str | Path,
    profile_names: list[str] | None = None,
    profile_files: list[str | Path] | None = None,
    samples: int = 500,
    train_samples: int = 100,
    data_dir: str | Path | None = None,
    utilisation: float | None = None,
    out_dir: str | Path | None = None,
    measure: bool = True,
) -> dict[str, Any]:
    """Count, price, measure where possible; write energy.json, energy.md and energy.png."""
    from eqspike.train.api import load
    from eqspike.train.trainer import load_splits

    run = load(run_dir)
    splits = load_splits(run.config, data_dir)
    dtype = getattr(torch, run.config.train.dtype)
    x, y = splits.test.x[:samples].to(dtype), splits.test.y[:samples]
    xt, yt = splits.train.x[:train_samples].to(dtype), splits.train.y[:train_samples]
    events = count_run_events(run, x, y, xt, yt)
    profiles = load_profiles(profile_names, profile_files)
    priced = price_run(events, profiles, utilisation)
    measured: dict[str, Any] = {}
    if measure and run.config.algorithm in ("rate_ep", "eqspike", "conv_ep"):
        measured["gpu"] = (
            gpu_energy(_dense_runner(run, x, "cuda"))
            if torch.cuda.is_available()
            else {"joules_per_sample": None, "reason": "no CUDA GPU on this machine"}
        )
        measured["cpu"] = cpu_energy(_dense_runner(run, x, "cpu"))
        measured["job"] = "dense reference inference (FP32/64 as trained), batch = samples"
    report = {
        "run_dir": str(run_dir),
        "algorithm": run.config.algorithm,
        "events": events.to_json(),
        "energy": priced,
        "measured": measured,
        "assumptions": [
            f"events per sample averaged over {len(x)} test samples (inference) and "
            f"{len(xt)} training samples (training: one learning step each, no optimiser step)",
            *{
                note
                for side in (events.native, events.dense)
                for j in side.values()
                for note in j.notes
            },
            "GPU profiles: energy per FLOP at peak / utilisation "
            f"({utilisation or 'the profile default'})",
        ],
        "pitfalls": PITFALLS,
    }
    out = Path(out_dir or Path(run_dir) / "energy")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "energy.json", report)
    atomic_write_text(out / "energy.md", to_markdown(report))
    plot_energy(report, out / "energy.png")
    return report


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}"


def to_markdown(report: dict[str, Any]) -> str:
    energy = report["energy"]
    lines = [
        f"# Energy report: {report['run_dir']} ({report['algorithm']})",
        "",
        f"Ratios: energy on `{energy['reference_gpu']}` (datasheet, utilisation stated) / "
        "energy on the profile, same job.",
        "",
        "| profile | prices | inference µJ/sample | training µJ/sample | × below GPU (inference) "
        "| × below GPU (training) | not priced |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in energy["profiles"].items():
        inf, tr = row.get("inference", {}), row.get("training", {})
        ratio = row.get("ratio_vs_gpu", {})
        unpriced = sorted(set(inf.get("not_priced", {})) | set(tr.get("not_priced", {})))
        if inf.get("missing"):
            throughput = inf.get("classifications_per_s")
            extra = f"; {throughput:.0f} classifications/s" if throughput else ""
            lines.append(
                f"| {name} | system figures | missing | missing | — | — | {inf['missing']}{extra} |"
            )
            continue
        lines.append(
            f"| {name} | {row['prices']} | {_fmt(inf.get('uj_per_sample'))} | "
            f"{_fmt(tr.get('uj_per_sample'))} | {_fmt(ratio.get('inference'))} | "
            f"{_fmt(ratio.get('training'))} | {', '.join(unpriced) or '—'} |"
        )
    lines += ["", "## Events per sample", ""]
    for side in ("native", "dense"):
        for job, data in report["events"][side].items():
            totals = ", ".join(f"{k} {v:.4g}" for k, v in data["totals"].items())
            lines.append(f"- {side} {job}: {totals}")
    lines += ["", "## Measured", ""]
    for key, value in report["measured"].items():
        if isinstance(value, dict):
            got = value.get("joules_per_sample")
            text = f"{got:.3g} J/sample" if got is not None else f"missing: {value.get('reason')}"
            lines.append(f"- {key}: {text}")
    lines += ["", "## Assumptions", "", *[f"- {a}" for a in report["assumptions"]]]
    lines += ["", "## Pitfalls", "", *[f"- {p}" for p in report["pitfalls"]]]
    lines += ["", "## Profiles", ""]
    for name, row in energy["profiles"].items():
        lines.append(f"- **{name}**: {row['citation']}. Caveat: {row['caveat'] or '—'}")
    return "\n".join(lines) + "\n"


def plot_energy(report: dict[str, Any], path: Path) -> None:
    from eqspike.analysis.plots import plt, save_figure

    rows = report["energy"]["profiles"]
    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names)), 3.8))
    width = 0.4
    for k, job in enumerate(("inference", "training")):
        values = [rows[n].get(job, {}).get("uj_per_sample") or 0.0 for n in names]
        positions = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(positions, values, width, label=job)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("µJ per sample (log)")
    ax.set_title(f"{report['algorithm']}: energy per sample by device profile")
    ax.legend(fontsize=8)
    save_figure(fig, path)
