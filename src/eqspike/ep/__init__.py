"""Equilibrium Propagation: energies, equilibrium solvers, gradient estimators, gradient check."""

from eqspike.ep.energy import HopfieldMLP, MLPParams, drives, input_drive, phi, phi_param_grads
from eqspike.ep.estimators import (
    ESTIMATORS,
    BackpropThroughTime,
    EquilibriumPropagation,
    Phases,
    make_estimator,
)
from eqspike.ep.network import EPNetwork
from eqspike.ep.solvers import SOLVERS, FixedPointSolver, make_solver, nudge_loss

__all__ = [
    "ESTIMATORS",
    "SOLVERS",
    "BackpropThroughTime",
    "EPNetwork",
    "EquilibriumPropagation",
    "FixedPointSolver",
    "HopfieldMLP",
    "MLPParams",
    "Phases",
    "drives",
    "input_drive",
    "make_estimator",
    "make_solver",
    "nudge_loss",
    "phi",
    "phi_param_grads",
]
