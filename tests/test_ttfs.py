"""Time-to-first-spike layers: Lambert W, closed forms, exact gradients, integrator, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import lambertw

from eqspike.train.api import train
from eqspike.train.config import load_config
from eqspike.ttfs.integrator import integrate_first_spikes
from eqspike.ttfs.lambertw import lambertw0
from eqspike.ttfs.network import TTFSNetwork, quantise_weights
from eqspike.ttfs.spike_times import first_spike_times, spike_time_backward, spike_times


@pytest.fixture(autouse=True)
def _float64_by_default():
    """The closed forms are checked in float64 (the TTFS default); restored afterwards so that
    other test modules keep torch's float32 default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# --- Lambert W0 --------------------------------------------------------------------------


def test_lambertw0_matches_scipy_to_1e12():
    z = np.concatenate([np.linspace(-math.exp(-1) + 1e-9, 10, 50001), np.logspace(1, 8, 200)])
    got = lambertw0(torch.tensor(z)).numpy()
    np.testing.assert_allclose(got, lambertw(z).real, rtol=1e-12, atol=1e-12)


def test_lambertw0_near_the_branch_point_and_edges():
    # Reference values from mpmath at 50 digits (scipy loses ~1e-9 this close to -1/e).
    close = {1e-16: -0.9999999768481082, 1e-14: -0.9999997670738203, 1e-12: -0.9999976683981106}
    for distance, exact in close.items():
        z = torch.tensor([-math.exp(-1) + distance])
        assert lambertw0(z).item() == pytest.approx(exact, abs=1e-13)
    edges = lambertw0(torch.tensor([-math.exp(-1), 0.0, math.inf, -0.5, math.nan]))
    assert edges[0] == -1.0 and edges[1] == 0.0 and edges[2] == math.inf
    assert torch.isnan(edges[3]) and torch.isnan(edges[4])  # outside the domain / NaN in
    w32 = lambertw0(torch.linspace(-0.36, 10, 1000, dtype=torch.float32))
    assert w32.dtype == torch.float32
    ref = lambertw(np.linspace(-0.36, 10, 1000, dtype=np.float32).astype(np.float64)).real
    np.testing.assert_allclose(w32.numpy(), ref, atol=1e-5)


# --- closed forms and gradients: the spec's reference values ------------------------------

REFERENCE = {
    1: (1.0, 1.00491, (-0.27783, -0.23526, -0.07292), (0.10101, 0.27682, 0.62217)),
    2: (0.5, 0.90955, (-0.20688, -0.14902, -0.00468), (0.20918, 0.30403, 0.48678)),
}


@pytest.mark.parametrize("tau_ratio", [1, 2])
def test_reference_spike_time_and_gradients(tau_ratio):
    c, spike, d_w, d_t = REFERENCE[tau_ratio]
    t = torch.tensor([[0.2, 0.5, 0.9]], requires_grad=True)
    w = torch.tensor([[1.5], [1.2], [1.0]], requires_grad=True)
    out = spike_times(t, w, c, tau_ratio)
    out.sum().backward()
    assert out.item() == pytest.approx(spike, abs=1e-5)
    np.testing.assert_allclose(w.grad.flatten().numpy(), d_w, atol=1e-5)
    np.testing.assert_allclose(t.grad.flatten().numpy(), d_t, atol=1e-5)
    if tau_ratio == 1:  # W0 at the solution is b/a1 - T
        e = torch.exp(t.detach().flatten())
        a1 = (w.detach().flatten() * e).sum()
        b = (w.detach().flatten() * t.detach().flatten() * e).sum()
        assert (b / a1 - out).item() == pytest.approx(-0.43566, abs=1e-5)


@pytest.mark.parametrize("tau_ratio", [1, 2])
def test_gradients_match_finite_differences(tau_ratio):
    g = torch.Generator().manual_seed(tau_ratio)
    checked = 0
    for _ in range(20):
        t = (torch.rand(3, 6, generator=g) * 2).requires_grad_()
        w = (torch.randn(6, 4, generator=g) * 0.8 + 0.9).requires_grad_()
        c = 1.0 / tau_ratio
        out = spike_times(t, w, c, tau_ratio)
        if not torch.isfinite(out).all():
            continue

        # Random directions: a sum of the output times with random weights.
        mix = torch.randn(out.shape, generator=g)
        assert torch.autograd.gradcheck(
            lambda a, b, m=mix, c=c: (spike_times(a, b, c, tau_ratio) * m).sum(),
            (t, w),
            eps=1e-7,
            atol=1e-6,
            rtol=1e-5,
        )
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("tau_ratio", [1, 2])
def test_closed_form_agrees_with_a_fine_step_simulation(tau_ratio):
    g = torch.Generator().manual_seed(7)
    t = torch.rand(40, 6, generator=g) * 2
    w = torch.randn(6, 5, generator=g) * 0.8 + 0.6
    step = 1e-3
    exact = first_spike_times(t, w, 1.0 / tau_ratio, tau_ratio)
    simulated = integrate_first_spikes(t, w, 1.0, float(tau_ratio), step, t_max=12.0)
    both = torch.isfinite(exact) & torch.isfinite(simulated)
    assert both.float().mean() > 0.5  # most neurons spike in this regime
    # a neuron that spikes in one but not the other grazes threshold; allow a handful
    assert (torch.isfinite(exact) != torch.isfinite(simulated)).float().mean() < 0.03
    # input spikes move by up to step/2 and crossings are found on the grid: error below step
    assert (exact[both] - simulated[both]).abs().max() < 2 * step


def test_causal_set_search_matches_brute_force_enumeration():
    """Every prefix of the sorted inputs, closed form, validity t_k <= T_k < t_{k+1}: the
    smallest valid candidate (the spec's definition), against our interval test."""
    g = torch.Generator().manual_seed(3)
    t = torch.rand(30, 8, generator=g) * 3
    t[t > 2.6] = math.inf  # some silent inputs
    w = torch.randn(8, 6, generator=g) + 0.5
    ours = first_spike_times(t, w, 1.0, 1, max_elements=50, block=3)  # tiny chunks on purpose
    expected = torch.full_like(ours, math.inf)
    for b in range(30):
        order = t[b].argsort()
        ts, ws = t[b][order], w[order]
        for k in range(8):
            if not math.isfinite(ts[k]):
                break
            prefix = ts[: k + 1]
            e = torch.exp(prefix)
            a1 = (ws[: k + 1] * e[:, None]).sum(0)
            bb = (ws[: k + 1] * (prefix * e)[:, None]).sum(0)
            z = -(1 / a1) * torch.exp(bb / a1)
            cand = bb / a1 - lambertw0(z)
            nxt = ts[k + 1] if k + 1 < 8 else math.inf
            ok = (a1 > 0) & (z >= -math.exp(-1)) & (cand >= ts[k]) & (cand < nxt)
            expected[b] = torch.where(ok & (cand < expected[b]), cand, expected[b])
    assert torch.equal(torch.isfinite(ours), torch.isfinite(expected))
    both = torch.isfinite(ours)
    torch.testing.assert_close(ours[both], expected[both], rtol=1e-10, atol=1e-10)


def test_silent_and_infinite_inputs_give_no_nan():
    t = torch.tensor([[math.inf, math.inf, math.inf], [0.1, math.inf, 0.3]], requires_grad=True)
    w = torch.tensor([[2.0], [2.0], [2.0]], requires_grad=True)
    out = spike_times(t, w, 1.0, 1)
    assert out[0, 0] == math.inf and math.isfinite(out[1, 0].item())
    out[torch.isfinite(out)].sum().backward()
    assert torch.isfinite(t.grad).all() and torch.isfinite(w.grad).all()
    assert t.grad[0].abs().sum() == 0 and t.grad[1, 1] == 0  # silent / inf inputs: no gradient
    weak = spike_times(torch.tensor([[0.5]]), torch.tensor([[0.1]]), 1.0, 1)
    assert weak.item() == math.inf  # too weak to reach threshold


def test_dw_guard_drops_near_threshold_gradients():
    t = torch.tensor([[0.2, 0.5, 0.9]])
    w = torch.tensor([[1.5], [1.2], [1.0]])
    out = first_spike_times(t, w, 1.0, 1)
    delta = torch.ones_like(out) * 10.0
    _, free, dropped_free = spike_time_backward(t, w, out, torch.ones(1, 1), 1, delta, None)
    _, guarded, dropped = spike_time_backward(t, w, out, torch.ones(1, 1), 1, delta, 0.2)
    assert dropped_free == 0 and dropped == 1
    assert free.abs().sum() > 0 and guarded.abs().sum() == 0


def test_bad_tau_ratio_and_bad_input_times_are_clear_errors():
    t, w = torch.tensor([[0.2, 0.5]]), torch.ones(2, 1)
    with pytest.raises(ValueError, match="supported ratios are"):
        spike_times(t, w, 1.0, 3)
    config = load_config("ttfs/yinyang")
    net = TTFSNetwork(config, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="NaN"):
        net.forward_times(torch.tensor([[0.1, math.nan, 0.2, 0.3]]))
    with pytest.raises(ValueError, match=">= 0"):
        net.forward_times(torch.tensor([[0.1, -0.5, 0.2, 0.3]]))
    with pytest.raises(ValueError, match="shape"):
        net.forward_times(torch.tensor([[0.1, 0.2]]))


def test_memory_of_the_exact_pass_is_bounded_by_chunking():
    """784-350 at batch 80 (the MNIST layer) in 2^20-element chunks: same result as one chunk
    on a smaller slice, and no (B, N_in, N_in, N_out) tensor (that would be 138 GB)."""
    g = torch.Generator().manual_seed(0)
    t = 0.15 + torch.rand(80, 784, generator=g) * 1.85
    w = torch.randn(784, 350, generator=g) * 0.05
    full = first_spike_times(t, w, 1.0, 1, max_elements=1 << 20)
    part = first_spike_times(t[:8], w[:, :20], 1.0, 1, max_elements=1 << 30)
    torch.testing.assert_close(full[:8, :20], part)


def test_weight_quantisation_is_straight_through():
    w = torch.tensor([0.01, 0.04, 1.0, 3.0, -3.0], requires_grad=True)
    q = quantise_weights(w, bits=6, limit=2.1)
    np.testing.assert_allclose(q.detach().numpy(), [0.0, 1 / 30, 1.0, 2.1, -2.1], atol=1e-12)
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones(5))


# --- network ------------------------------------------------------------------------------


def test_weight_bumping_replaces_the_step_when_outputs_are_silent():
    config = load_config("ttfs/yinyang", [f"model.init_mean=[{-1.0}, {-1.0}]"])
    net = TTFSNetwork(config, torch.Generator().manual_seed(0))
    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    first = net.learning_step(x, y, torch.Generator().manual_seed(1))
    assert first.weight_bump is not None and first.stats["bumped"] == 1.0
    assert all(w.grad is None for w in net.weights)
    assert first.weight_bump[1].max().item() == pytest.approx(5e-4)
    second = net.learning_step(x, y, torch.Generator().manual_seed(1))
    assert second.weight_bump[1].max().item() == pytest.approx(1e-3)  # doubles while repeating


def test_prediction_is_the_earliest_spike_and_silence_is_wrong():
    config = load_config("ttfs/yinyang")
    net = TTFSNetwork(config, torch.Generator().manual_seed(0))
    out = torch.tensor([[1.0, 0.5, 2.0], [math.inf, math.inf, math.inf], [3.0, math.inf, 2.5]])
    assert net.predict(out).tolist() == [1, -1, 2]
    loss = net.loss(out, torch.tensor([1, 0, 1]))
    assert loss[1] == 100.0 and loss[2] == 100.0 and math.isfinite(loss[0].item())


def test_short_yinyang_run_learns(tmp_path):
    overrides = ["train.epochs=12", "data.batch_size=50", "optimizer.lr=0.01", "train.plots=false"]
    summary = train(load_config("ttfs/yinyang", overrides), None, tmp_path / "run", None, True)
    assert summary["test_acc"] > 0.90  # measured 0.93


@pytest.mark.parametrize("tau_ratio", [1, 2])
def test_blocked_backward_matches_the_general_one(tau_ratio):
    """The autograd backward reuses the forward's sums and sort, blocked over the sorted
    inputs; it must equal the general closed forms evaluated densely (including which
    (sample, neuron) pairs the dw guard drops)."""
    g = torch.Generator().manual_seed(11)
    t = torch.rand(16, 30, generator=g) * 2
    t[t > 1.8] = math.inf
    w = (torch.randn(30, 12, generator=g) * 0.6 + 0.3).requires_grad_()
    t.requires_grad_()
    stats: dict = {}
    c = 1.0 / tau_ratio
    out = spike_times(t, w, c, tau_ratio, dw_guard=0.05, stats=stats, max_elements=64, block=4)
    delta = torch.randn(out.shape, generator=g)
    out.backward(delta)
    grad_in, grad_w, dropped = spike_time_backward(
        t.detach(), w.detach(), out.detach(), torch.full((1, 12), c), tau_ratio, delta, 0.05
    )
    assert dropped == stats["guard_dropped"] and 0 < dropped < torch.isfinite(out).sum()
    torch.testing.assert_close(w.grad, grad_w)
    torch.testing.assert_close(t.grad, grad_in)


@pytest.mark.parametrize("tau_ratio", [1, 2])
def test_blocked_search_and_backward_do_not_depend_on_the_block_size(tau_ratio):
    """The causal-set search visits the sorted inputs in blocks and the τ_m = τ_s backward
    splits each block into fully causal pairs (matrix products) and pairs firing inside it
    (masked): any block size, chunking and silent inputs must give the same times and
    gradients as a single block."""
    g = torch.Generator().manual_seed(5)
    t = torch.rand(24, 40, generator=g) * 2.5
    t[t > 2.2] = math.inf
    t[3] = math.inf  # a sample with no input spike at all
    w = torch.randn(40, 9, generator=g) * 0.5 + 0.25
    delta = torch.randn(24, 9, generator=g)

    def run(block: int, max_elements: int):
        stats: dict = {}
        t_, w_ = t.clone().requires_grad_(), w.clone().requires_grad_()
        c = 1.0 / tau_ratio
        out = spike_times(t_, w_, c, tau_ratio, 0.5, None, stats, max_elements, block)
        out.backward(delta)
        return out.detach(), t_.grad, w_.grad, stats["guard_dropped"]

    reference = run(40, 1 << 30)  # one block
    assert 0.3 < torch.isfinite(reference[0]).float().mean() < 0.97  # spiking and silent pairs
    assert reference[3] > 0  # the dw guard drops some pairs
    for block, max_elements in ((1, 7), (5, 16), (16, 1 << 20)):
        out, grad_t, grad_w, dropped = run(block, max_elements)
        assert torch.equal(torch.isinf(out), torch.isinf(reference[0]))
        torch.testing.assert_close(out, reference[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_t, reference[1], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad_w, reference[2], rtol=1e-10, atol=1e-12)
        assert dropped == reference[3]


def _yinyang_net(overrides: list[str] | None = None) -> TTFSNetwork:
    return TTFSNetwork(load_config("ttfs/yinyang", overrides), torch.Generator().manual_seed(0))


def test_distortions_act_as_configured():
    x = torch.rand(64, 4, generator=torch.Generator().manual_seed(0))
    exact = _yinyang_net().eval()
    base = exact.forward_times(exact.encode(x))
    # time-stepped forward pass: spike times on the grid, close to the exact ones
    stepped = _yinyang_net(["model.time_step=0.01"]).eval()
    grid = stepped.forward_times(stepped.encode(x))
    both = torch.isfinite(base[0]) & torch.isfinite(grid[0])
    # grid detection (< step) plus inputs moved by <= step/2, amplified near grazing crossings
    assert (base[0][both] - grid[0][both]).abs().max() < 0.05
    # dead neurons never spike; the output layer stays alive
    dead = _yinyang_net(["distortions.dead_neurons=0.5"]).eval()
    hidden, _ = dead.forward_times(dead.encode(x))
    silent = torch.isinf(hidden).all(dim=0).float().mean().item()
    assert 0.3 < silent < 0.7
    # trial-to-trial threshold noise: every evaluation replays the same noise
    noisy = _yinyang_net(["distortions.threshold_noise=0.1"]).eval()
    first = noisy(x)
    noisy.eval()
    assert torch.equal(first, noisy(x)) and not torch.equal(first, exact(x))
    # quantised weights are what the forward pass uses
    bss2 = _yinyang_net(["distortions.weight_bits=6", "distortions.weight_range=2.1"])
    w = bss2.effective_weights(0).detach()
    assert w.abs().max() <= 2.1 + 1e-12
    torch.testing.assert_close(w * 30, torch.round(w * 30))


def test_silent_outputs_are_reported_with_the_fix():
    net = _yinyang_net()
    assert net.activity_warnings({"train_no_output_spike": 0.1}) == []
    (warning,) = net.activity_warnings({"train_no_output_spike": 0.9})
    assert "no output spike" in warning and "weight bumping" in warning


def test_float32_learning_step_follows_its_float64_twin():
    """One seed gives the same input jitter and substrate noise in either dtype, so a float32
    run (faster) computes the float64 run's gradients up to rounding."""
    noisy = ["distortions.threshold_noise=0.05", "distortions.spike_jitter=0.01"]
    x = torch.rand(128, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 3, (128,), generator=torch.Generator().manual_seed(2))
    grads = []
    for dtype in (torch.float64, torch.float32):
        net = _yinyang_net(noisy).to(dtype)
        result = net.learning_step(x.to(dtype), labels, torch.Generator().manual_seed(3))
        assert result.weight_bump is None
        grads.append(torch.cat([w.grad.flatten().double() for w in net.weights]))
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cosine > 0.9999, cosine
