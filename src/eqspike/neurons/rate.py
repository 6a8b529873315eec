"""Rate (analogue) neuron nonlinearities used by Equilibrium Propagation."""

from __future__ import annotations

import torch


def hard_sigmoid(u: torch.Tensor) -> torch.Tensor:
    """σ(u) = clamp(u, 0, 1): the activation of Scellier & Bengio (2017) and Ernoult et al. (2019).

    Its derivative is 1 on [0, 1] and 0 outside (what autograd gives for ``clamp``), so a state
    kept in the box [0, 1] has σ(u) = u and every closed form below needs no σ'.
    """
    return u.clamp(0.0, 1.0)
