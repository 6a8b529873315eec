"""Closed-form drives and parameter gradients of the Hopfield energy against autograd."""

import pytest
import torch

from eqspike.ep import HopfieldMLP, drives, input_drive, make_solver, phi, phi_param_grads


@pytest.fixture
def net():
    torch.manual_seed(0)
    energy = HopfieldMLP([7, 6, 5, 3], generator=torch.Generator().manual_seed(0)).double()
    x = torch.rand(4, 7, dtype=torch.float64)
    acts = [torch.rand(4, n, dtype=torch.float64) for n in (6, 5, 3)]
    return energy, x, acts


def test_drives_match_autograd_of_phi(net):
    energy, x, acts = net
    params = energy.params()
    leaves = [a.clone().requires_grad_(True) for a in acts]
    expected = torch.autograd.grad(phi(params, x, leaves).sum(), leaves)
    got = drives(params, input_drive(params, x), acts)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_param_grads_match_autograd_of_phi(net):
    energy, x, acts = net
    params = energy.params()
    expected = torch.autograd.grad(phi(params, x, acts).mean(), energy.ordered_parameters())
    got = phi_param_grads(x, acts)
    for g, e in zip([*got.weights, *got.biases], expected, strict=True):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize(
    "kind,update,step", [("continuous", "synchronous", 0.2), ("discrete", "asynchronous", 1.0)]
)
def test_energy_never_increases_along_free_dynamics(net, kind, update, step):
    energy, x, _ = net
    with torch.no_grad():
        for w in energy.weights:
            w.mul_(3.0)  # strong couplings: many units saturate, a harder case
    solver = make_solver(kind, step, update)
    params = energy.params()
    state = params.init_state(x)
    x_drive = input_drive(params, x)
    values = [solver.energy(params, x, state)]
    for _ in range(60):
        state = solver.step(params, x_drive, state)
        values.append(solver.energy(params, x, state))
    values = torch.stack(values)
    assert (values[1:] <= values[:-1] + 1e-12).all()
    assert values[-1].sum() < values[0].sum()


def test_nudged_phase_lowers_the_cost(net):
    energy, x, _ = net
    solver = make_solver("discrete", update="asynchronous")
    params = energy.params()
    target = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0]), 3).double()
    x_drive = input_drive(params, x)
    free = solver.relax(params, x_drive, params.init_state(x), 50)
    nudged = solver.relax(params, x_drive, free, 50, beta=0.5, target=target)
    cost = lambda s: ((s[-1] - target) ** 2).sum()  # noqa: E731
    assert cost(nudged) < cost(free)


def test_solver_rejects_bad_options():
    with pytest.raises(ValueError, match=r"step_size must be in \(0, 1\]"):
        make_solver("continuous", 1.5)
    with pytest.raises(ValueError, match="unknown solver 'foo'"):
        make_solver("foo")
