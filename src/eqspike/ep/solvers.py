"""Equilibrium solvers: relax the free layers of a Hopfield network, optionally β-nudged.

Total energy (the Lyapunov function of the dynamics), with states s_n kept in the box [0, 1]:

    F(s) = ½ Σ_n γ_n ‖s_n‖² − Φ(x, s) + β C(s),  C = ½ ‖s_N − y‖² (or a readout's cost)

(γ_n = 1 but for the conv energy's feedback gains, whose drives come normalised by γ_n.)

One projected Euler step of du/dt = −∂F/∂s with step ε is

    s_n ← σ( (1 − ε) s_n + ε (drive_n + nudge_n) ),     nudge_N = −β ∂C/∂s_N,  σ = clamp(·, 0, 1)

with −∂C/∂s_N = y − s_N for an output layer, and W_rᵀ(y − softmax(W_r s_N + b_r)) for the conv
energy's softmax readout (``params.nudge``; :mod:`eqspike.ep.conv`).

* ``ε = 1`` is the discrete-time "prototypical" dynamics s ← σ(∂Φ/∂s) of Ernoult et al. (2019);
* ``ε < 1`` is the continuous-time Hopfield dynamics of Scellier & Bengio (2017), whose code
  likewise clips the states to [0, 1] after each Euler step (ε = 0.5 there).

Updates are ``synchronous`` (every layer from the previous state) or ``asynchronous`` (odd
layers, then even layers from the fresh odd ones; Scellier et al. 2023). With ε = 1 the
asynchronous sweep is exact block-coordinate descent on F, so F never increases.
The input's drive W_1 x + b_1 is passed in precomputed; no graph is kept in :meth:`relax`.

**Warm start** (``warm_start``): a free phase may start from one bottom-up sweep,
s_n = σ(W_n s_{n−1} + b_n) with the layers above still at zero (:func:`feedforward_state`),
instead of from zeros: the feed-forward pass is close to the fixed point when the feedback is
weak, so fewer free steps reach it. Where F has one minimum it is the same fixed point; where it
has several, the two starts may settle in different ones (EP stays consistent: the nudged phases
start from whichever free state was reached).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from eqspike.ep.energy import Activities, MLPParams, squared_error
from eqspike.neurons.rate import hard_sigmoid

UpdateOrder = Literal["synchronous", "asynchronous"]


nudge_loss = squared_error  # C = ½ ‖s_N − y‖² per example (the Hopfield MLP's cost)


def feedforward_state(params: MLPParams, x: torch.Tensor) -> Activities:
    """One bottom-up sweep from zeros: each layer from the one below, no feedback yet."""
    with torch.no_grad():
        x_drive = params.input_drive(x)
        state = params.init_state(x)
        for n in range(len(state)):
            state[n] = hard_sigmoid(params.layer_drive(x_drive, state, n))
    return state


@dataclass(frozen=True)
class FixedPointSolver:
    """Projected-Euler relaxation of F; ``step_size`` = ε in (0, 1]; ``warm_start``: free
    phases start from :func:`feedforward_state`."""

    step_size: float = 1.0
    update: UpdateOrder = "synchronous"
    warm_start: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.step_size <= 1.0:
            raise ValueError(f"solver step_size must be in (0, 1], got {self.step_size}")
        if self.update not in ("synchronous", "asynchronous"):
            raise ValueError(
                f"solver update must be synchronous or asynchronous, got {self.update!r}"
            )

    def init(
        self, params: MLPParams, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> Activities:
        """The state a free phase starts from: every layer at zero, or the feed-forward sweep
        (``warm_start``). Stochastic solvers draw their random streams from ``generator``."""
        return feedforward_state(params, x) if self.warm_start else params.init_state(x)

    def start_phase(self, state: Activities) -> Activities:
        """Hook for solvers that average over a phase (rate states need nothing)."""
        return state

    def readout(self, state: Activities) -> Activities:
        """The states EP contrasts (the analogue states themselves)."""
        return state

    def output(self, state: Activities) -> torch.Tensor:
        """The top free layer (the prediction is ``params.prediction`` of it)."""
        return state[-1]

    def _layer_update(
        self,
        params: MLPParams,
        x_drive: torch.Tensor,
        state: Activities,
        n: int,
        beta: float,
        target: torch.Tensor | None,
    ) -> torch.Tensor:
        h = params.layer_drive(x_drive, state, n)
        if beta != 0.0 and n == len(state) - 1:
            h = h + beta * params.nudge(state[n], target)
        eps = self.step_size
        return hard_sigmoid(h if eps == 1.0 else (1.0 - eps) * state[n] + eps * h)

    def step(
        self,
        params: MLPParams,
        x_drive: torch.Tensor,
        state: Activities,
        beta: float = 0.0,
        target: torch.Tensor | None = None,
    ) -> Activities:
        """One update of every layer; differentiable (used by BPTT), never in-place."""
        n_layers = len(state)
        if self.update == "synchronous":
            return [
                self._layer_update(params, x_drive, state, n, beta, target) for n in range(n_layers)
            ]
        new = list(state)
        for parity in (0, 1):
            for n in range(parity, n_layers, 2):
                new[n] = self._layer_update(params, x_drive, new, n, beta, target)
        return new

    def relax(
        self,
        params: MLPParams,
        x_drive: torch.Tensor,
        state: Activities,
        steps: int,
        beta: float = 0.0,
        target: torch.Tensor | None = None,
    ) -> Activities:
        """``steps`` updates without autograd: memory O(1) in the number of steps."""
        with torch.no_grad():
            for _ in range(steps):
                state = self.step(params, x_drive, state, beta, target)
        return state

    def free_output(
        self, params: MLPParams, x: torch.Tensor, steps: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Output activities after the free phase (and no event statistics: dense, not spiking)."""
        x_drive = params.input_drive(x)
        return self.relax(params, x_drive, self.init(params, x), steps)[-1], {}

    def energy(
        self,
        params: MLPParams,
        x: torch.Tensor,
        state: Activities,
        beta: float = 0.0,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """F per example (shape (batch,)), the quantity the dynamics descend."""
        scales = params.layer_scales()
        f = 0.5 * sum(g * (s**2).flatten(1).sum(1) for g, s in zip(scales, state, strict=True))
        f = f - params.phi(x, state)
        if beta != 0.0:
            f = f + beta * params.cost(params.prediction(state[-1]), target)
        return f


SOLVERS = {"discrete", "continuous"}


def make_solver(
    kind: str,
    step_size: float = 0.5,
    update: UpdateOrder = "synchronous",
    warm_start: bool = False,
) -> FixedPointSolver:
    """``discrete`` (ε = 1) or ``continuous`` (ε = ``step_size``)."""
    if kind == "discrete":
        return FixedPointSolver(1.0, update, warm_start)
    if kind == "continuous":
        return FixedPointSolver(step_size, update, warm_start)
    raise ValueError(f"unknown solver {kind!r}; choose one of {sorted(SOLVERS)}")
