"""Gradient check: EP updates against BPTT gradients through the same dynamics.

By the GDU theorem (Ernoult et al. 2019), after k steps of the nudged phase the EP estimate
equals, as β → 0, the BPTT gradient truncated to the last k steps of the free dynamics. For each
EP variant and each parameter tensor this module measures, per nudged step k:

* normalised RMSE  ‖g_EP(k) − g_BPTT(k)‖ / ‖g_BPTT(k)‖,
* sign agreement   fraction of entries (where either is non-zero) with the same sign,

and, for the final update (k = K), the cosine similarity. Both-zero tensors count as agreeing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eqspike.ep.conv import ConvEnergy, ConvParams, LayerSpec
from eqspike.ep.energy import MLPParams
from eqspike.ep.estimators import BackpropThroughTime, EquilibriumPropagation
from eqspike.ep.network import EPNetwork


def _flat(params: MLPParams) -> list[torch.Tensor]:
    return params.flat()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = a.norm(), b.norm()
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float((a.flatten() @ b.flatten()) / (na * nb))


def nrmse(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    ref = reference.norm()
    diff = (estimate - reference).norm()
    if ref == 0:
        return 0.0 if diff == 0 else float("inf")
    return float(diff / ref)


def sign_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    mask = (a != 0) | (b != 0)
    if not mask.any():
        return 1.0
    return float((torch.sign(a[mask]) == torch.sign(b[mask])).double().mean())


@dataclass
class GradcheckReport:
    """Per-variant, per-tensor comparison with BPTT."""

    tensor_names: list[str]
    steps: list[int]
    variants: dict[str, dict[str, Any]]  # variant -> {cosine, nrmse, sign} per tensor (+ per step)
    beta: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "tensors": self.tensor_names,
            "steps": self.steps,
            "variants": self.variants,
        }

    def table(self) -> str:
        lines = [f"{'variant':<12} {'tensor':<12} {'cosine':>8} {'NRMSE':>8} {'sign':>6}"]
        for variant, data in self.variants.items():
            for name in self.tensor_names:
                final = data["per_tensor"][name]
                lines.append(
                    f"{variant:<12} {name:<12} {final['cosine']:8.4f} {final['nrmse']:8.4f} "
                    f"{final['sign']:6.3f}"
                )
        return "\n".join(lines)


def gradcheck(
    network: EPNetwork,
    x: torch.Tensor,
    labels: torch.Tensor,
    beta: float,
    variants: tuple[str, ...] = ("one_sided", "centered"),
) -> GradcheckReport:
    """Compare EP variants with truncated BPTT on one batch, step by step."""
    params = network.energy.params()
    phases, solver = network.phases, network.solver
    x = network.prepare_input(x)  # flat vectors for the MLP, images for conv energies
    target = network.target(labels)
    reference = BackpropThroughTime().trajectory(solver, params, x, target, phases)
    names = [f"W{n + 1}" for n in range(len(params.weights))] + [
        f"b{n + 1}" for n in range(len(params.biases))
    ]
    report: dict[str, dict[str, Any]] = {}
    for variant in variants:
        estimates = EquilibriumPropagation(beta, variant).trajectory(  # type: ignore[arg-type]
            solver, params, x, target, phases, torch.Generator().manual_seed(0)
        )
        per_step = {name: {"nrmse": [], "sign": []} for name in names}
        for est, ref in zip(estimates, reference, strict=True):
            for name, e, r in zip(names, _flat(est), _flat(ref), strict=True):
                per_step[name]["nrmse"].append(nrmse(e, r))
                per_step[name]["sign"].append(sign_agreement(e, r))
        final = {
            name: {
                "cosine": cosine(e, r),
                "nrmse": per_step[name]["nrmse"][-1],
                "sign": per_step[name]["sign"][-1],
            }
            for name, e, r in zip(names, _flat(estimates[-1]), _flat(reference[-1]), strict=True)
        }
        report[variant] = {
            "per_tensor": final,
            "per_step": per_step,
            "mean_cosine": sum(f["cosine"] for f in final.values()) / len(final),
        }
    return GradcheckReport(names, list(range(1, phases.nudged_steps + 1)), report, beta)


def plot_gradcheck(report: GradcheckReport, path: str | Path) -> Path:
    """NRMSE and sign agreement vs nudged step, one line per tensor, one column per variant."""
    from eqspike.analysis.plots import plt, save_figure

    variants = list(report.variants)
    fig, axes = plt.subplots(2, len(variants), figsize=(5 * len(variants), 6), squeeze=False)
    for col, variant in enumerate(variants):
        data = report.variants[variant]["per_step"]
        for name in report.tensor_names:
            axes[0, col].plot(report.steps, data[name]["nrmse"], label=name)
            axes[1, col].plot(report.steps, data[name]["sign"], label=name)
        axes[0, col].set(
            title=f"{variant} EP vs BPTT (β={report.beta:g})", ylabel="NRMSE", yscale="log"
        )
        axes[1, col].set(xlabel="nudged step k", ylabel="sign agreement", ylim=(0, 1.05))
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=7)
    return save_figure(fig, path)


def spiking_gradcheck(network: EPNetwork, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """The accumulated spike-driven update after k = 1..K nudged steps, against rate EP and BPTT
    through the spiking network's rate twin (the same energy and ε, analogue states).

    Returns cosines per tensor and step (``vs_rate_ep``, ``vs_bptt``) and the twin's own
    rate-EP vs BPTT cosines, so the spiking error can be told apart from EP's own bias.
    """
    from eqspike.ep.solvers import FixedPointSolver
    from eqspike.ep.spiking import SpikeDrivenEP

    solver, phases = network.solver, network.phases
    beta = network.estimator.beta
    params = network.energy.params()
    x = x.flatten(1)
    target = network.target(labels)
    twin = FixedPointSolver(solver.epsilon)
    spiking = SpikeDrivenEP(beta, getattr(network.estimator, "variant", "centered")).trajectory(
        solver, params, x, target, phases, torch.Generator().manual_seed(0)
    )
    rate = EquilibriumPropagation(beta, "centered").trajectory(twin, params, x, target, phases)
    bptt = BackpropThroughTime().trajectory(twin, params, x, target, phases)
    names = [f"W{n + 1}" for n in range(len(params.weights))] + [
        f"b{n + 1}" for n in range(len(params.biases))
    ]

    def per_step(a_list, b_list):
        table = {name: [] for name in names}
        for a, b in zip(a_list, b_list, strict=True):
            for name, u, v in zip(names, _flat(a), _flat(b), strict=True):
                table[name].append(cosine(u, v))
        return table

    return {
        "beta": beta,
        "epsilon": solver.epsilon,
        "steps": list(range(1, phases.nudged_steps + 1)),
        "tensors": names,
        "vs_rate_ep": per_step(spiking, rate),
        "vs_bptt": per_step(spiking, bptt),
        "rate_ep_vs_bptt": per_step(rate, bptt),
    }


def spiking_table(report: dict[str, Any]) -> str:
    lines = [
        f"{'tensor':<8} {'vs rate EP':>11} {'vs BPTT':>9} {'rate EP vs BPTT':>16}   (final step)"
    ]
    for name in report["tensors"]:
        lines.append(
            f"{name:<8} {report['vs_rate_ep'][name][-1]:11.4f} {report['vs_bptt'][name][-1]:9.4f} "
            f"{report['rate_ep_vs_bptt'][name][-1]:16.4f}"
        )
    return "\n".join(lines)


def plot_spiking_gradcheck(report: dict[str, Any], path: str | Path) -> Path:
    from eqspike.analysis.plots import plt, save_figure

    keys = ("vs_rate_ep", "vs_bptt", "rate_ep_vs_bptt")
    titles = ("spike-driven vs rate EP", "spike-driven vs BPTT", "rate EP vs BPTT (twin)")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), sharey=True)
    for ax, key, title in zip(axes, keys, titles, strict=True):
        for name in report["tensors"]:
            ax.plot(report["steps"], report[key][name], label=name)
        ax.set(title=title, xlabel="nudged step k", ylim=(-0.1, 1.05))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cosine of accumulated update")
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def random_conv_problem(
    pool: str = "avg",
    seed: int = 0,
    batch: int = 32,
    readout: bool = False,
    feedback_gain: float = 1.0,
) -> tuple[ConvParams, torch.Tensor, torch.Tensor]:
    """A small, well-conditioned random conv EP problem for gradient checks (float64):
    1x8x8 inputs, conv 3x3 with 4 channels + 2x2 ``pool``, fc 8, fc 3 (``readout``: a softmax
    readout); weights ×1.5 and biases +0.1 so that the layers are active and no unit rests on
    the hard sigmoid's kink (where the equilibrium, hence any gradient, is non-smooth).
    ``feedback_gain``: that of every interaction with feedback to scale."""
    g = torch.Generator().manual_seed(seed)
    layers = [
        LayerSpec("conv", channels=4, kernel=3, pool=pool),  # type: ignore[arg-type]
        LayerSpec("fc", units=8, feedback_gain=feedback_gain),
        LayerSpec("fc", units=3, feedback_gain=1.0 if readout else feedback_gain),
    ]
    energy = ConvEnergy((1, 8, 8), layers, g, readout).double()
    with torch.no_grad():
        for w, b in zip(energy.weights, energy.biases, strict=True):
            w.mul_(1.5)
            b.add_(0.1)
    x = torch.rand(batch, 1, 8, 8, generator=g, dtype=torch.float64)
    target = torch.nn.functional.one_hot(torch.randint(0, 3, (batch,), generator=g), 3).double()
    return energy.params(), x, target
