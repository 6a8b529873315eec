"""EP estimates against BPTT through the same dynamics (the GDU property)."""

import pytest
import torch

from eqspike.ep import (
    BackpropThroughTime,
    EPNetwork,
    EquilibriumPropagation,
    HopfieldMLP,
    Phases,
    make_estimator,
    make_solver,
)
from eqspike.ep.gradcheck import cosine, gradcheck, plot_gradcheck


def small_problem(seed=0, sizes=(10, 20, 4)):
    g = torch.Generator().manual_seed(seed)
    energy = HopfieldMLP(list(sizes), generator=g).double()
    x = torch.rand(16, sizes[0], generator=g, dtype=torch.float64)
    labels = torch.randint(0, sizes[-1], (16,), generator=g)
    return energy, x, labels


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "kind,update",
    [("discrete", "synchronous"), ("continuous", "synchronous"), ("discrete", "asynchronous")],
)
def test_centred_ep_matches_bptt_at_small_beta(seed, kind, update):
    energy, x, labels = small_problem(seed)
    solver = make_solver(kind, 0.5, update)
    net = EPNetwork(energy, solver, make_estimator("centered", 1e-3), Phases(150, 20))
    report = gradcheck(net, x, labels, beta=1e-3)
    for name in report.tensor_names:
        assert report.variants["centered"]["per_tensor"][name]["cosine"] > 0.99, name


def test_centred_beats_one_sided_at_large_beta():
    energy, x, labels = small_problem(1)
    net = EPNetwork(
        energy, make_solver("discrete"), make_estimator("centered", 0.5), Phases(100, 20)
    )
    report = gradcheck(net, x, labels, beta=0.5)
    err = {v: report.variants[v]["per_tensor"]["W1"]["nrmse"] for v in ("one_sided", "centered")}
    assert err["centered"] < 0.5 * err["one_sided"]


def test_ep_step_k_tracks_bptt_truncated_at_k():
    """GDU: the whole trajectory, not only the end point, matches."""
    energy, x, labels = small_problem(2)
    net = EPNetwork(
        energy, make_solver("discrete"), make_estimator("centered", 1e-3), Phases(100, 10)
    )
    report = gradcheck(net, x, labels, beta=1e-3, variants=("centered",))
    per_step = report.variants["centered"]["per_step"]
    assert max(max(v["nrmse"][1:]) for v in per_step.values()) < 0.05


def test_bptt_gradients_equal_last_trajectory_point():
    energy, x, labels = small_problem(3)
    solver = make_solver("discrete")
    target = torch.nn.functional.one_hot(labels, 4).double()
    phases = Phases(60, 15)
    bptt = BackpropThroughTime(truncate=15).gradients(solver, energy.params(), x, target, phases)
    traj = BackpropThroughTime().trajectory(solver, energy.params(), x, target, Phases(45, 15))
    for a, b in zip(bptt.grads.weights, traj[-1].weights, strict=True):
        torch.testing.assert_close(a, b)


def test_random_sign_uses_generator_and_both_signs():
    energy, x, labels = small_problem(4)
    solver = make_solver("discrete")
    target = torch.nn.functional.one_hot(labels, 4).double()
    est = EquilibriumPropagation(0.05, "random_sign")
    signs = {est._signed_betas(torch.Generator().manual_seed(s))[0] for s in range(20)}
    assert signs == {0.05, -0.05}

    def run():
        generator = torch.Generator().manual_seed(7)
        return est.gradients(solver, energy.params(), x, target, Phases(50, 10), generator)

    a, b = run(), run()
    torch.testing.assert_close(a.grads.weights[0], b.grads.weights[0])


def test_beta_must_be_positive():
    with pytest.raises(ValueError, match="beta > 0"):
        EquilibriumPropagation(0.0)
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("magic")


def test_cosine_conventions():
    z = torch.zeros(3)
    assert cosine(z, z) == 1.0 and cosine(z, torch.ones(3)) == 0.0


def test_gradcheck_plot(tmp_path):
    energy, x, labels = small_problem()
    net = EPNetwork(energy, make_solver("discrete"), make_estimator("centered", 0.1), Phases(30, 5))
    path = plot_gradcheck(gradcheck(net, x, labels, 0.1), tmp_path / "g.png")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("variant", ["centered", "random_sign"])
def test_a_negative_phase_with_beta_of_one_or_more_is_refused(variant):
    """F_{-β} has the Hessian (1 − β) I in the output layer: no equilibrium for β ≥ 1."""
    from eqspike.errors import ConfigError
    from eqspike.train.config import load_config

    with pytest.raises(ValueError, match="beta < 1"):
        EquilibriumPropagation(1.0, variant)
    with pytest.raises(ConfigError, match="no stable equilibrium"):
        load_config("rate_ep/mnist", [f"estimator.kind={variant}", "estimator.beta=1.5"])
    EquilibriumPropagation(1.5, "one_sided")  # +β only: allowed


def test_unsettled_free_phase_is_measured_and_warned():
    """A free phase cut short shows in ``free_output_drift``; the network warns about it."""
    energy, x, labels = small_problem(0)
    target = torch.nn.functional.one_hot(labels, 4).double()
    solver = make_solver("continuous", 0.1)
    estimator = make_estimator("centered", 0.1)
    params = energy.params()
    short = estimator.gradients(solver, params, x, target, Phases(8, 5)).stats
    settled = estimator.gradients(solver, params, x, target, Phases(400, 5)).stats
    assert short["free_output_drift"] > 0.1
    assert settled["free_output_drift"] < 0.01
    net = EPNetwork(energy, solver, estimator, Phases(8, 5))
    (warning,) = net.activity_warnings({"train_free_output_drift": short["free_output_drift"]})
    assert "has not settled" in warning and "solver.free_steps (now 8)" in warning
    assert net.activity_warnings({"train_free_output_drift": settled["free_output_drift"]}) == []


@pytest.mark.parametrize("free_steps", [1, 2, 3, 5, 40])
def test_settling_check_keeps_the_number_of_free_steps(free_steps):
    """The drift windows are part of the free phase, not extra steps."""
    energy, x, labels = small_problem(0)
    target = torch.nn.functional.one_hot(labels, 4).double()
    solver = make_solver("continuous", 0.3)
    params = energy.params()
    one_sided = make_estimator("one_sided", 0.1)
    result = one_sided.gradients(solver, params, x, target, Phases(free_steps, 3))
    expected = solver.relax(params, params.input_drive(x), solver.init(params, x), free_steps)
    torch.testing.assert_close(result.output, expected[-1])
    assert ("free_output_drift" in result.stats) == (free_steps >= 2)
