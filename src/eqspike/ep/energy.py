"""The Hopfield energy of a layered network, with closed-form drives and parameter gradients.

Layers 0..N, layer 0 the clamped input x, weights W_n of shape (size_n, size_{n-1}), biases b_n.
The primitive function (Ernoult et al. 2019) of activities a = (a_1, ..., a_N), a_0 = x, is

    Φ(x, a; θ) = Σ_n a_nᵀ W_n a_{n-1} + b_nᵀ a_n                     (one value per example)

and the Hopfield energy (Scellier & Bengio 2017) of states u with a_n = ρ(u_n) is
E(u) = ½ Σ_n ‖u_n‖² − Φ(x, ρ(u)). Everything a solver or estimator needs is closed form:

    drive_n = ∂Φ/∂a_n = W_n a_{n-1} + W_{n+1}ᵀ a_{n+1} + b_n      (two matmuls per layer)
    ∂Φ/∂W_n = a_n a_{n-1}ᵀ,    ∂Φ/∂b_n = a_n                       (batch-averaged)

The input term W_1 x + b_1 is computed once per batch (:meth:`HopfieldMLP.input_drive`).
Functions take the parameters explicitly (:class:`MLPParams`) so that BPTT can differentiate
through them and tests can compare with autograd of :func:`phi`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

Activities = list[torch.Tensor]


def squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """C = ½ ‖s_N − y‖² per example (target one-hot): the cost of an output *layer*."""
    return 0.5 * ((output - target) ** 2).sum(1)


class MLPParams(NamedTuple):
    """Weights ``W_n`` of shape (size_n, size_{n-1}) and biases ``b_n``, for n = 1..N.

    Solvers and estimators talk to an energy only through these methods, which every
    parameter type implements (the conv energy's :class:`~eqspike.ep.conv.ConvParams` too).
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        return input_drive(self, x)

    def layer_drive(self, x_drive: torch.Tensor, acts: Activities, n: int) -> torch.Tensor:
        return layer_drive(self, x_drive, acts, n)

    def phi(self, x: torch.Tensor, acts: Activities) -> torch.Tensor:
        return phi(self, x, acts)

    def param_grad_difference(
        self, x: torch.Tensor, acts_a: Activities, acts_b: Activities, scale: float
    ) -> MLPParams:
        return phi_param_grad_difference(x, acts_a, acts_b, scale)

    def layer_scales(self) -> tuple[float, ...]:
        """γ_n of F = Σ_n γ_n ½‖s_n‖² − Φ per free layer: all 1 for the Hopfield MLP (the
        conv energy's feedback gains make them differ)."""
        return (1.0,) * len(self.weights)

    def prediction(self, top: torch.Tensor) -> torch.Tensor:
        """What the network predicts from its top free layer: the output layer itself."""
        return top

    def nudge(self, top: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """−∂C/∂s_N = y − s_N, the direction β pulls the output layer in."""
        return target - top

    def cost(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return squared_error(prediction, target)

    def cost_grads(self, top: torch.Tensor, target: torch.Tensor) -> None:
        """∂C/∂θ: none, the squared error holds no parameters."""
        return None

    def init_state(self, x: torch.Tensor) -> Activities:
        """All free layers at zero (both reference codes start there)."""
        return [x.new_zeros(x.shape[0], w.shape[0]) for w in self.weights]

    def flat(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def replaced(self, tensors: list[torch.Tensor]) -> MLPParams:
        """The same structure holding ``tensors`` (in :meth:`flat` order)."""
        n = len(self.weights)
        return MLPParams(tuple(tensors[:n]), tuple(tensors[n:]))


def input_drive(params: MLPParams, x: torch.Tensor) -> torch.Tensor:
    """The clamped input's contribution to layer 1: W_1 x + b_1 (computed once per batch)."""
    return torch.addmm(params.biases[0], x, params.weights[0].t())


def drives(params: MLPParams, x_drive: torch.Tensor, acts: Activities) -> Activities:
    """∂Φ/∂a_n for every layer, all from the same activities (synchronous update)."""
    return [layer_drive(params, x_drive, acts, n) for n in range(len(acts))]


def layer_drive(params: MLPParams, x_drive: torch.Tensor, acts: Activities, n: int) -> torch.Tensor:
    """∂Φ/∂a_n of layer n: bottom-up W_n a_{n-1} + b_n plus top-down W_{n+1}ᵀ a_{n+1}."""
    h = x_drive if n == 0 else torch.addmm(params.biases[n], acts[n - 1], params.weights[n].t())
    if n + 1 < len(acts):
        h = h + acts[n + 1] @ params.weights[n + 1]
    return h


def phi(params: MLPParams, x: torch.Tensor, acts: Activities) -> torch.Tensor:
    """Φ(x, a) per example, shape (batch,): the oracle the closed forms are tested against."""
    below = [x, *acts[:-1]]
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for w, b, a, a_below in zip(params.weights, params.biases, acts, below, strict=True):
        total = total + ((a_below @ w.t()) * a).sum(1) + a @ b
    return total


def phi_param_grads(x: torch.Tensor, acts: Activities) -> MLPParams:
    """Batch-averaged ∂Φ/∂θ: (a_nᵀ a_{n-1} / B, mean a_n) for every layer."""
    below = [x, *acts[:-1]]
    batch = x.shape[0]
    weights = tuple(a.t() @ a_below / batch for a, a_below in zip(acts, below, strict=True))
    biases = tuple(a.mean(0) for a in acts)
    return MLPParams(weights, biases)


def phi_param_grad_difference(
    x: torch.Tensor, acts_a: Activities, acts_b: Activities, scale: float
) -> MLPParams:
    """``scale * (∂Φ/∂θ(a) − ∂Φ/∂θ(b))``, the contrastive core of every EP estimator."""
    grads_a, grads_b = phi_param_grads(x, acts_a), phi_param_grads(x, acts_b)
    return MLPParams(
        tuple(scale * (ga - gb) for ga, gb in zip(grads_a.weights, grads_b.weights, strict=True)),
        tuple(scale * (ga - gb) for ga, gb in zip(grads_a.biases, grads_b.biases, strict=True)),
    )


class HopfieldMLP(nn.Module):
    """Parameters of a layered Hopfield network ``sizes = [n_in, hidden..., n_out]``.

    Initialisation ``glorot_uniform``: W ~ U(±gain·√(6 / (fan_in + fan_out))) (Scellier & Bengio);
    ``torch_default``: U(±gain/√fan_in). Biases start at zero.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        init: str = "glorot_uniform",
        gains: Sequence[float] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"layer sizes must be >= 2 positive integers, got {list(sizes)}")
        self.sizes = list(sizes)
        gains = list(gains) if gains is not None else [1.0] * (len(sizes) - 1)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out, gain in zip(sizes[:-1], sizes[1:], gains, strict=True):
            if init == "glorot_uniform":
                bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            elif init == "torch_default":
                bound = gain / math.sqrt(fan_in)
            else:
                raise ValueError(f"unknown init {init!r}; choose glorot_uniform or torch_default")
            w = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(fan_out)))

    def params(self) -> MLPParams:
        return MLPParams(tuple(self.weights), tuple(self.biases))

    @property
    def n_layers(self) -> int:
        """Number of free (non-input) layers N."""
        return len(self.sizes) - 1

    def ordered_parameters(self) -> list[nn.Parameter]:
        """Parameters in the order of :class:`MLPParams` flattening (weights, then biases)."""
        return [*self.weights, *self.biases]
