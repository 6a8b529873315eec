"""The EP network as an ``nn.Module``: energy (Hopfield MLP or conv) + solver + estimator.

``forward(x)`` relaxes the free phase and returns the prediction (the output layer's
activities, or a softmax readout's logits), so the network
drops into a user's PyTorch code; :meth:`EPNetwork.learning_step` fills ``param.grad`` with the
estimator's gradient so any ``torch.optim`` optimiser (and an all-reduce across ranks) applies it.
"""

from __future__ import annotations

import torch
from torch import nn

from eqspike.ep.conv import ConvEnergy
from eqspike.ep.energy import HopfieldMLP
from eqspike.ep.estimators import EstimatorResult, Phases, drift_window
from eqspike.ep.precision import drive_params
from eqspike.ep.solvers import FixedPointSolver

# Output drift between the free phase's last two windows (estimators.output_drift) above which
# it counts as unsettled. Measured on 128 training images: the stalled 40-step conv runs 0.28
# (Fashion) and 0.44 (MNIST); the restarted spiking conv run 0.047 (spike noise); rate EP on the
# MNIST MLP 0.0002.
UNSETTLED_OUTPUT_DRIFT = 0.1


class EPNetwork(nn.Module):
    """A layered Hopfield network trained by an EP (or BPTT) estimator."""

    def __init__(
        self,
        energy: HopfieldMLP | ConvEnergy,
        solver: FixedPointSolver,
        estimator,
        phases: Phases,
        drive_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.energy = energy
        self.solver = solver
        self.estimator = estimator
        self.phases = phases
        self.drive_dtype = drive_dtype  # None: drives in the parameters' dtype
        self.last_forward_stats: dict[str, float] = {}

    def relaxation_params(self):
        """The parameters the solver relaxes with: the energy's own, or a view computing the
        drives in ``drive_dtype`` (:mod:`eqspike.ep.precision`); updates stay full precision."""
        return drive_params(self.energy.params(), self.drive_dtype)

    @property
    def sizes(self) -> list[int]:
        return self.energy.sizes

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Flat feature vectors for the Hopfield MLP (checked against its input size); images
        as they are for conv energies."""
        prepare = getattr(self.energy, "prepare_input", None)
        if prepare is not None:  # conv energies take images as they are
            return prepare(x)
        x = x.flatten(1)
        if x.shape[1] != self.sizes[0]:
            raise ValueError(
                f"the network's input layer has {self.sizes[0]} units but the data has "
                f"{x.shape[1]} features per sample; set model.layers[0] to {x.shape[1]}."
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Free-phase prediction, shape (batch, n_out): the output layer's activities, or the
        logits of a softmax readout of the top layer.

        Event statistics of the pass (spikes per sample... for spiking solvers) are left in
        :attr:`last_forward_stats`.
        """
        params = self.relaxation_params()
        top, self.last_forward_stats = self.solver.free_output(
            params, self.prepare_input(x), self.phases.free_steps
        )
        return params.prediction(top)

    def target(self, labels: torch.Tensor) -> torch.Tensor:
        """One-hot targets y for the output layer."""
        return nn.functional.one_hot(labels, self.sizes[-1]).to(self.energy.weights[0].dtype)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """C per example: ½ ‖s_N − y‖², or a softmax readout's cross-entropy."""
        return self.energy.params().cost(output, self.target(labels))

    def layer_parameters(self) -> list[list[nn.Parameter]]:
        """[W_n, b_n] per layer, for per-layer learning rates."""
        return [[w, b] for w, b in zip(self.energy.weights, self.energy.biases, strict=True)]

    def learning_step(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> EstimatorResult:
        """Estimate ∂L/∂θ on a batch and store it in ``param.grad`` (the optimiser steps)."""
        target = self.target(labels)
        result = self.estimator.gradients(
            self.solver,
            self.relaxation_params(),
            self.prepare_input(x),
            target,
            self.phases,
            generator,
        )
        grads = (*result.grads.weights, *result.grads.biases)
        for param, grad in zip(self.energy.ordered_parameters(), grads, strict=True):
            param.grad = grad.detach().clone() if param.grad is None else param.grad.copy_(grad)
        return result

    def activity_warnings(self, row: dict[str, float]) -> list[str]:
        """A free phase that has not settled; layers whose spikes died out or saturated during
        the epoch's free phases."""
        warnings = []
        steps = self.phases.free_steps
        drift = row.get("train_free_output_drift")
        window = drift_window(steps)
        if drift is not None and drift > UNSETTLED_OUTPUT_DRIFT:
            warnings.append(
                f"the free phase has not settled: the output's mean over its last {window} "
                f"steps differs by {drift:.1%} from the {window} before (mean over the epoch). "
                "EP's update follows the gradient only from a settled state; raise "
                f"solver.free_steps (now {steps}) or lower the learning rate."
            )
        for n, size in enumerate(self.sizes):
            count = row.get(f"train_free_spikes_layer{n}_per_sample")
            if count is None or n == 0:
                continue
            rate = count / (steps * size)
            name = "output layer" if n == len(self.sizes) - 1 else f"hidden layer {n}"
            if rate < 1e-3:
                warnings.append(
                    f"{name} is silent (mean spike probability {rate:.2g} per step): spikes died "
                    f"out. Raise model.gains[{n - 1}] or lower the learning rate; check that the "
                    "input reaches it (free_steps long enough)."
                )
            elif rate > 0.98:
                warnings.append(
                    f"{name} fires at almost every step (mean {rate:.3f}): saturated, no rate "
                    f"information. Lower model.gains[{n - 1}] or the learning rate."
                )
        return warnings
