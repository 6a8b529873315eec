"""Gradient estimators: turn the phases of a relaxation into parameter gradients.

Every estimator implements the same two methods:

* :meth:`gradients` — the estimate of ∂L/∂θ (to be placed in ``param.grad``; the optimiser
  then descends it), with the free-phase output and loss;
* :meth:`trajectory` — the cumulative estimate after each of the K nudged (or backpropagated)
  steps, which is what :mod:`eqspike.ep.gradcheck` compares (Ernoult et al. 2019, GDU theorem).

EP variants (Scellier & Bengio 2017; Laborieux et al. 2021), with ∂Φ/∂θ from closed forms:

    one-sided     g = −(1/β)  [∂Φ/∂θ(s^β) − ∂Φ/∂θ(s⁰)]
    random-sign   the same with β → ±β, the sign drawn per batch (cancels the O(β) bias on average)
    centred       g = −(1/2β) [∂Φ/∂θ(s^{+β}) − ∂Φ/∂θ(s^{−β})]   (both nudged phases start at s⁰)

BPTT backpropagates L = C(s_T) through the same solver steps (autograd), the reference.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import torch

from eqspike.ep.energy import Activities, MLPParams
from eqspike.ep.solvers import FixedPointSolver

EPVariant = Literal["one_sided", "random_sign", "centered"]


@dataclass
class EstimatorResult:
    """Gradient estimate and what the trainer reports about the batch."""

    grads: MLPParams
    output: torch.Tensor  # free-phase output activities, (batch, n_out)
    loss: torch.Tensor  # C at the free fixed point, per example
    stats: dict[str, float] = field(default_factory=dict)  # e.g. spike counts per sample


@dataclass(frozen=True)
class Phases:
    """How long each phase runs."""

    free_steps: int
    nudged_steps: int


def free_phase(
    solver: FixedPointSolver,
    params: MLPParams,
    x: torch.Tensor,
    steps: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, Activities]:
    x_drive = params.input_drive(x).detach()
    state = solver.relax(params, x_drive, solver.init(params, x, generator), steps)
    return x_drive, state


def drift_window(free_steps: int) -> int:
    """Steps per window of the settling check: 10, or a quarter of a short free phase (0: a
    one-step free phase has no check)."""
    return 0 if free_steps < 2 else max(1, min(10, free_steps // 4))


def output_drift(earlier: torch.Tensor, later: torch.Tensor) -> float:
    """‖m₂ − m₁‖ / ‖m₂‖ for the output layer's mean over the free phase's last two windows of
    :func:`drift_window` steps: how far the free phase is from settling (window means, so that
    spike noise averages out). EP's update is the gradient only from a settled free state; on
    trained conv nets, free phases still drifting gave updates nearly orthogonal to the
    gradient, and nets that classify only with their transient
    (``benchmarks/conv_trained_alignment.py``)."""
    return float((later - earlier).norm() / later.norm().clamp_min(1e-12))


class RecordingEstimator:
    """Estimators that compute the update and, on request, its value after every nudged step
    in one pass (``_run(..., record) -> (result, history)``) get both public methods here."""

    def _run(self, solver, params, x, target, phases, generator, record):
        raise NotImplementedError

    def gradients(
        self,
        solver,
        params: MLPParams,
        x: torch.Tensor,
        target: torch.Tensor,
        phases: Phases,
        generator: torch.Generator | None = None,
    ) -> EstimatorResult:
        """The estimate of ∂L/∂θ on a batch, with the free-phase output and loss."""
        return self._run(solver, params, x, target, phases, generator, False)[0]

    def trajectory(
        self,
        solver,
        params: MLPParams,
        x: torch.Tensor,
        target: torch.Tensor,
        phases: Phases,
        generator: torch.Generator | None = None,
    ) -> list[MLPParams]:
        """The estimate after each nudged step k = 1..K."""
        return self._run(solver, params, x, target, phases, generator, True)[1]


def check_negative_beta_phase(variant: str, beta: float) -> None:
    """Variants with a -β phase need β < 1: F = ½‖s‖² − Φ − β C has the Hessian (1 − β) I in
    the output layer, so for β ≥ 1 the -β phase has no equilibrium inside the box (the output
    runs to its bounds) and EP's update stops following the gradient (measured on the conv
    MNIST net: mean cosine with BPTT +0.79 at β 0.5, −0.31 at β 0.9, 40/20 steps)."""
    if variant in ("centered", "random_sign") and beta >= 1.0:
        raise ValueError(
            f"estimator.beta = {beta} with the {variant} variant: its -beta phase has no stable "
            "equilibrium for beta >= 1 (the output layer's energy 1/2 s^2 - beta/2 (s - y)^2 is "
            "not convex); use beta < 1 (0.1-0.5 is typical), or kind: one_sided"
        )


def ep_update(params, solver, x, target, state_a, state_b, betas: tuple[float, float]):
    """EP's estimate of ∂L/∂θ from two phases with nudging β_a, β_b (β_b = 0: the free state):

        (∂F/∂θ(a) − ∂F/∂θ(b)) / (β_a − β_b),   F = ½‖s‖² − Φ + β C

    Φ's share is −(∂Φ/∂θ(a) − ∂Φ/∂θ(b)) / (β_a − β_b); a cost that holds parameters (a
    softmax readout) adds (β_a ∂C/∂θ(a) − β_b ∂C/∂θ(b)) / (β_a − β_b) for them.
    """
    beta_a, beta_b = betas
    scale = -1.0 / (beta_a - beta_b)
    a, b = solver.readout(state_a), solver.readout(state_b)
    grads = params.param_grad_difference(x, a, b, scale)
    cost_a = params.cost_grads(a[-1], target)
    if cost_a is None:  # the cost holds no parameters (an output layer)
        return grads
    cost_b = params.cost_grads(b[-1], target)
    weight_a, weight_b = -beta_a * scale, beta_b * scale
    return params.replaced(
        [
            g + weight_a * ga + weight_b * gb
            for g, ga, gb in zip(grads.flat(), cost_a.flat(), cost_b.flat(), strict=True)
        ]
    )


@dataclass(frozen=True)
class EquilibriumPropagation(RecordingEstimator):
    """EP with a nudging strength ``beta`` > 0 and a variant (one-sided, random-sign, centred)."""

    beta: float
    variant: EPVariant = "centered"

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(
                f"EP needs beta > 0 (got {self.beta}): the nudged phase must differ from the free "
                "phase; use e.g. beta: 0.1-1.0 (the sign is handled by the variant)."
            )
        if self.variant not in ("one_sided", "random_sign", "centered"):
            raise ValueError(
                f"unknown EP variant {self.variant!r}; choose one_sided, random_sign or centered"
            )
        check_negative_beta_phase(self.variant, self.beta)

    def _signed_betas(self, generator: torch.Generator | None) -> tuple[float, float]:
        """(β_a, β_b) of the two phases that are contrasted; β_b = 0 means the free state."""
        if self.variant == "centered":
            return self.beta, -self.beta
        if self.variant == "random_sign":
            sign = 1.0 if torch.randint(0, 2, (1,), generator=generator).item() else -1.0
            return sign * self.beta, 0.0
        return self.beta, 0.0

    def _run(
        self,
        solver: FixedPointSolver,
        params: MLPParams,
        x: torch.Tensor,
        target: torch.Tensor,
        phases: Phases,
        generator: torch.Generator | None,
        record: bool,
    ) -> tuple[EstimatorResult, list[MLPParams]]:
        window = drift_window(phases.free_steps)
        x_drive, free = free_phase(solver, params, x, phases.free_steps - 2 * window, generator)
        window_means = []
        with torch.no_grad():
            for _ in range(2 if window else 0):
                total = torch.zeros_like(solver.output(free))
                for _ in range(window):
                    free = solver.step(params, x_drive, free)
                    total += solver.output(free)
                window_means.append(total / window)
        betas = beta_a, beta_b = self._signed_betas(generator)
        state_a = solver.start_phase(free)
        state_b = solver.start_phase(free) if beta_b != 0.0 else free
        history = []
        with torch.no_grad():
            for _ in range(phases.nudged_steps):
                state_a = solver.step(params, x_drive, state_a, beta_a, target)
                if beta_b != 0.0:
                    state_b = solver.step(params, x_drive, state_b, beta_b, target)
                if record:
                    history.append(ep_update(params, solver, x, target, state_a, state_b, betas))
            grads = ep_update(params, solver, x, target, state_a, state_b, betas)
        output = params.prediction(solver.output(free))
        stats = {"free_output_drift": output_drift(*window_means)} if window else {}
        phase_stats = getattr(solver, "phase_stats", None)
        if phase_stats is not None:  # spiking solvers: events of the free and nudged phases
            stats |= phase_stats(free, "free_")
            nudged = [phase_stats(state_a)]
            if beta_b != 0.0:
                nudged.append(phase_stats(state_b))
            for key in nudged[0]:
                stats[key] = stats[f"free_{key}"] + sum(n[key] for n in nudged)
        return EstimatorResult(grads, output, params.cost(output, target), stats), history


# Tensors autograd keeps per layer and step (drive, pre-activation, state, spike phase, masks).
_SAVED_PER_LAYER_STEP = 12


def bptt_memory_estimate(params, x: torch.Tensor, steps: int) -> int:
    """Bytes BPTT keeps to backpropagate through ``steps`` steps (an estimate: every layer's
    state saved ~12 times per step; measured within 2x on the conv benchmark)."""
    state_elements = sum(s.numel() for s in params.init_state(x[:1])) * x.shape[0]
    return steps * state_elements * _SAVED_PER_LAYER_STEP * x.element_size()


def available_memory() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_bptt_memory(params, x: torch.Tensor, steps: int) -> None:
    """Refuse, before allocating, a BPTT unroll that would not fit in memory."""
    need, free = bptt_memory_estimate(params, x, steps), available_memory()
    if free is not None and need > 0.8 * free:
        raise MemoryError(
            f"BPTT through {steps} steps at batch {x.shape[0]} needs ~{need / 2**30:.1f} GiB "
            f"(estimate) but {free / 2**30:.1f} GiB are free; use fewer steps "
            "(estimator.bptt_truncate), a smaller batch, or EP, whose memory does not grow "
            "with the number of steps."
        )


@dataclass(frozen=True)
class BackpropThroughTime:
    """Exact gradient of L = C(s_T) through the solver's own steps (the reference estimator).

    ``truncate`` = K backpropagates only through the last K steps, starting from the state the
    first T − K steps reach without a graph (memory O(K)); ``None`` goes through all T steps.
    """

    truncate: int | None = None

    def gradients(
        self,
        solver: FixedPointSolver,
        params: MLPParams,
        x: torch.Tensor,
        target: torch.Tensor,
        phases: Phases,
        generator: torch.Generator | None = None,
    ) -> EstimatorResult:
        steps = phases.free_steps
        graph_steps = steps if self.truncate is None else min(self.truncate, steps)
        check_bptt_memory(params, x, graph_steps)
        leaves = [p.detach().requires_grad_(True) for p in params.flat()]
        live = params.replaced(leaves)
        _, state = free_phase(solver, params, x, steps - graph_steps, generator)
        with torch.enable_grad():
            x_drive = live.input_drive(x)
            for _ in range(graph_steps):
                state = solver.step(live, x_drive, state)
            prediction = live.prediction(solver.output(state))
            loss = live.cost(prediction, target)
            grads = torch.autograd.grad(loss.mean(), leaves, allow_unused=True)
        grads = [
            torch.zeros_like(p) if g is None else g for g, p in zip(grads, leaves, strict=True)
        ]
        output = prediction.detach()
        return EstimatorResult(params.replaced(grads), output, loss.detach())

    def trajectory(
        self,
        solver: FixedPointSolver,
        params: MLPParams,
        x: torch.Tensor,
        target: torch.Tensor,
        phases: Phases,
        generator: torch.Generator | None = None,
    ) -> list[MLPParams]:
        """BPTT truncated to the last k steps, k = 1..K, after T free steps without a graph.

        Each of the K steps gets its own zero perturbation δ_t of θ, so ∂L/∂δ_t is the gradient
        contribution of step t; the k-step truncation is the sum over the last k of them.
        """
        _, state = free_phase(solver, params, x, phases.free_steps, generator)
        flat = params.flat()
        deltas = [
            [torch.zeros_like(p, requires_grad=True) for p in flat]
            for _ in range(phases.nudged_steps)
        ]
        with torch.enable_grad():
            for delta in deltas:
                perturbed = [p.detach() + d for p, d in zip(flat, delta, strict=True)]
                live = params.replaced(perturbed)
                state = solver.step(live, live.input_drive(x), state)
            loss = live.cost(live.prediction(solver.output(state)), target).mean()
            per_step = torch.autograd.grad(
                loss, [d for delta in deltas for d in delta], allow_unused=True
            )
        n_params = len(flat)
        cumulative: list[torch.Tensor] = [torch.zeros_like(p) for p in flat]
        out = []
        for k in range(phases.nudged_steps):
            step_grads = per_step[
                (phases.nudged_steps - 1 - k) * n_params : (phases.nudged_steps - k) * n_params
            ]
            cumulative = [
                c if g is None else c + g for c, g in zip(cumulative, step_grads, strict=True)
            ]
            out.append(params.replaced(cumulative))
        return out


ESTIMATORS = ("one_sided", "random_sign", "centered", "bptt")


def make_estimator(kind: str, beta: float = 0.5, bptt_truncate: int | None = None):
    """An estimator by config name: one of :data:`ESTIMATORS`."""
    if kind == "bptt":
        return BackpropThroughTime(bptt_truncate)
    if kind in ESTIMATORS:
        return EquilibriumPropagation(beta, kind)  # type: ignore[arg-type]
    raise ValueError(f"unknown estimator {kind!r}; choose one of {list(ESTIMATORS)}")
