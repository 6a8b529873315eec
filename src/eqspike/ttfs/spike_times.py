"""First-spike times of current-based LIF neurons in closed form, with exact gradients.

Units: times in τ_s, C = τ_s = 1, threshold θ, leak g_L = 1/r for τ_m = r·τ_s (r ∈ {1, 2}),
so the reduced threshold is c = g_L θ. A neuron sums exponential synaptic currents from the
inputs that spiked before it (its causal set C, inputs sorted by time, prefix k):

* r = 1: V(t) = e^{-t} (a1 t - b),  a1 = Σ_C w_i e^{t_i},  b = Σ_C w_i t_i e^{t_i};
  T = b/a1 - W₀(-(c/a1) e^{b/a1}).
* r = 2: V(t)/2 = a2 x - a1 x²,  x = e^{-t/2},  a2 = Σ_C w_i e^{t_i/2};
  T = 2 ln[2 a1 / (a2 + sqrt(a2² - 4 a1 c))].

**Causal set in O(B·N_in·N_out) memory.** Cumulative sums over the time-sorted inputs give
every prefix's (a1, b / a2). The spike lies in the first inter-spike interval [t_k, t_{k+1})
where the prefix-k potential reaches threshold: at the interval's end, or at its peak when the
peak falls inside. Because the potential is continuous and below threshold at t_k, this is the
spec's "smallest valid candidate" — found with one exponential per prefix and no Lambert W;
W₀ (or the square root) is then evaluated once per (sample, neuron). Work is chunked over
output neurons so that no temporary exceeds ``max_elements``.

Gradients (W = W₀ at the solution; both only over the causal set):

* r = 1: ∂T/∂w_i = -e^{t_i}(T - t_i) / (a1 (1+W)),  ∂T/∂t_i = -w_i e^{t_i}(T - t_i - 1) / (a1 (1+W))
* r = 2: with s = sqrt(a2² - 4 a1 c), k = (1 + (c/s) e^{T/2}) / a1:
  ∂T/∂w_i = 2 (k e^{t_i} - e^{t_i/2}/s),  ∂T/∂t_i = w_i (2 k e^{t_i} - e^{t_i/2}/s)

They need only the input times, the weights and the output time (W = b/a1 - T), so the
backward pass also serves output times measured elsewhere (a time-stepped integrator, or
hardware in the loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from eqspike.ttfs.lambertw import lambertw0

SUPPORTED_TAU_RATIOS = (1, 2)
DEFAULT_MAX_ELEMENTS = 1 << 22  # per temporary (B x N_in x chunk): 32 MB in float64


def check_tau_ratio(tau_ratio: float) -> int:
    if tau_ratio not in SUPPORTED_TAU_RATIOS:
        raise ValueError(
            f"tau_m / tau_s = {tau_ratio} has no closed-form spike time; supported ratios are "
            f"{SUPPORTED_TAU_RATIOS} (for others use the time-stepped integrator, "
            "model.time_step)."
        )
    return int(tau_ratio)


def check_input_times(times: torch.Tensor, n_inputs: int, name: str = "input spike times") -> None:
    """Clear errors for the inputs the closed forms cannot take (NaN, -∞, negative, wrong width);
    +∞ means "no spike" and is allowed."""
    if times.dim() != 2 or times.shape[1] != n_inputs:
        raise ValueError(
            f"{name} must have shape (batch, {n_inputs}); got {tuple(times.shape)}. Match "
            "model.layers[0] to the number of input features."
        )
    if torch.isnan(times).any():
        raise ValueError(f"{name} contain NaN; use +inf for an input that does not spike.")
    if (times < 0).any():
        bad = times[times < 0].min().item()
        raise ValueError(
            f"{name} must be >= 0 (spikes happen after the pattern starts); the smallest is "
            f"{bad:g}. Shift the encoding (t_early >= 0) or reflect jittered times."
        )


@dataclass
class _Sorted:
    """A batch's input times sorted per sample, with the exponentials the sums need."""

    times: torch.Tensor  # (B, I) ascending, +inf last
    order: torch.Tensor  # (B, I) permutation
    next_times: torch.Tensor  # (B, I): t_{k+1}, +inf after the last
    exp_t: torch.Tensor  # e^{t}, 0 where t = inf
    t_exp_t: torch.Tensor  # t e^{t} (r = 1) or e^{t/2} (r = 2), 0 where t = inf


def _sort_inputs(times: torch.Tensor, tau_ratio: int) -> _Sorted:
    sorted_times, order = times.sort(dim=1)
    finite = torch.isfinite(sorted_times)
    safe = torch.where(finite, sorted_times, torch.zeros_like(sorted_times))
    exp_t = torch.where(finite, safe.exp(), torch.zeros_like(safe))
    second = safe * exp_t if tau_ratio == 1 else torch.where(finite, (safe / 2).exp(), 0.0)
    inf = torch.full_like(sorted_times[:, :1], math.inf)
    next_times = torch.cat([sorted_times[:, 1:], inf], dim=1)
    return _Sorted(sorted_times, order, next_times, exp_t, second)


def _chunks(batch: int, n_in: int, n_out: int, max_elements: int) -> list[slice]:
    width = max(1, min(n_out, max_elements // max(1, batch * n_in)))
    return [slice(j, min(j + width, n_out)) for j in range(0, n_out, width)]


def _first_crossing(
    s: _Sorted, weights: torch.Tensor, c: torch.Tensor, tau_ratio: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one chunk of outputs: (has_spike, a1, second sum) at the first crossing interval.

    ``weights`` (I, J), ``c`` broadcastable to (B, J). Returns tensors of shape (B, J).
    Layout (B, J, I): the prefix sums and the search for the first crossing run along the
    contiguous last axis (reductions along a middle axis are ~10x slower on CPU).
    """
    batch, n_in = s.order.shape
    n_out = weights.shape[1]
    index = s.order[:, None, :].expand(batch, n_out, n_in)
    w_sorted = torch.gather(weights.t()[None].expand(batch, n_out, n_in), 2, index)
    a1 = torch.cumsum(w_sorted * s.exp_t[:, None, :], dim=2)
    second = torch.cumsum(w_sorted.mul_(s.t_exp_t[:, None, :]), dim=2)  # b or a2
    del w_sorted
    c3 = c.unsqueeze(2)  # (B or 1, J, 1)
    t_k, t_next = s.times[:, None, :], s.next_times[:, None, :]
    next_finite = torch.isfinite(t_next)
    t_next_safe = torch.where(next_finite, t_next, torch.zeros_like(t_next))
    positive = a1 > 0  # a1 <= 0: the potential never rises to threshold (NaNs below compare False)
    if tau_ratio == 1:
        # U(t) = e^{-t}(a1 t - b); at the interval's end (0 when there is none) ...
        decay_next = torch.where(next_finite, (-t_next_safe).exp(), torch.zeros_like(t_next))
        crosses = (a1 * t_next_safe).sub_(second).mul_(decay_next) >= c3
        # ... or at the peak t* = 1 + b/a1 (U* = a1 e^{-t*}) when it lies inside the interval;
        # rare, so U* is evaluated only there.
        ratio = second / a1
        inside = (ratio >= t_k - 1.0) & (ratio < t_next - 1.0) & positive
        where = inside.nonzero(as_tuple=True)
        if where[0].numel():
            peak_value = a1[where] * torch.exp(-1.0 - ratio[where])
            crosses[where] |= peak_value >= c3.expand_as(a1)[where]
        del ratio, inside
        crosses &= positive
    else:
        # U(x) = a2 x - a1 x², x = e^{-t/2} decreasing in t; peak x* = a2/(2 a1), U* = a2²/(4 a1).
        a1_safe = torch.where(positive, a1, torch.ones_like(a1))
        x_next = (-t_next_safe / 2).exp()
        u_end = second * x_next - a1 * x_next * x_next
        x_peak = second / (2 * a1_safe)
        u_peak = second * second / (4 * a1_safe)
        x_k = torch.where(torch.isfinite(t_k), (-t_k / 2).exp(), torch.zeros_like(t_k))
        x_after = torch.where(next_finite, x_next, torch.zeros_like(x_next))
        peak_inside = (x_peak > 0) & (x_peak <= x_k) & (x_peak > x_after)
        crosses = positive & ((next_finite & (u_end >= c3)) | (peak_inside & (u_peak >= c3)))
    first_hit, first = crosses.to(torch.uint8).max(dim=2, keepdim=True)  # first True (0 if none)
    has_spike = first_hit.squeeze(2).bool()
    return has_spike, a1.gather(2, first).squeeze(2), second.gather(2, first).squeeze(2)


def _closed_form(
    a1: torch.Tensor, second: torch.Tensor, c: torch.Tensor, tau_ratio: int
) -> torch.Tensor:
    if tau_ratio == 1:
        ratio = second / a1
        z = (-(c / a1) * ratio.exp()).clamp(min=-math.exp(-1.0))
        return ratio - lambertw0(z)
    root = (second * second - 4 * a1 * c).clamp(min=0.0).sqrt()
    return 2 * torch.log(2 * a1 / (second + root))


@torch.no_grad()
def first_spike_times(
    times: torch.Tensor,
    weights: torch.Tensor,
    c: torch.Tensor | float = 1.0,
    tau_ratio: int = 1,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """Exact first-spike times ``(B, J)`` (+inf: no spike) of neurons with input spike times
    ``times`` ``(B, I)`` through ``weights`` ``(I, J)``; ``c = g_L θ`` per neuron or per
    (sample, neuron)."""
    return _exact_pass(times, weights, c, check_tau_ratio(tau_ratio), max_elements)[0]


def _exact_pass(
    times: torch.Tensor,
    weights: torch.Tensor,
    c: torch.Tensor | float,
    tau_ratio: int,
    max_elements: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spike times and the causal-set sums (a1, b or a2) at them, which the backward reuses."""
    c = torch.as_tensor(c, dtype=times.dtype, device=times.device)
    c = c.expand(times.shape[0], weights.shape[1]) if c.dim() < 2 else c
    s = _sort_inputs(times, tau_ratio)
    out = torch.full((times.shape[0], weights.shape[1]), math.inf, dtype=times.dtype)
    out = out.to(times.device)
    a1_all, second_all = torch.ones_like(out), torch.zeros_like(out)
    for cols in _chunks(*times.shape, weights.shape[1], max_elements):
        has_spike, a1, second = _first_crossing(s, weights[:, cols], c[:, cols], tau_ratio)
        a1 = torch.where(has_spike, a1, torch.ones_like(a1))
        spike = _closed_form(a1, second, c[:, cols], tau_ratio)
        out[:, cols] = torch.where(has_spike & torch.isfinite(spike), spike, math.inf)
        a1_all[:, cols], second_all[:, cols] = a1, second
    return out, a1_all, second_all


def _backward_equal_taus(
    times: torch.Tensor,
    weights: torch.Tensor,
    out_times: torch.Tensor,
    a1: torch.Tensor,
    b: torch.Tensor,
    grad_out: torch.Tensor,
    dw_guard: float | None,
    max_elements: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """τ_m = τ_s backward with the forward's causal sums: with g_j = δ_j / (a1 (1 + W)) and
    P_ij = [t_i < T_j] e^{t_i} (T_j - t_i),

        ∂L/∂w_ij = -Σ_b P_ij g_j,   ∂L/∂t_i = -Σ_j w_ij (P_ij - [t_i < T_j] e^{t_i}) g_j.
    """
    batch, n_in = times.shape
    spiking = torch.isfinite(out_times)
    out_safe = torch.where(spiking, out_times, torch.zeros_like(out_times))  # nothing causal
    lambert = b / a1 - out_safe
    g = torch.where(spiking, grad_out / (a1 * (1.0 + lambert)), torch.zeros_like(grad_out))
    finite_in = torch.isfinite(times)
    t_safe = torch.where(finite_in, times, torch.full_like(times, math.inf))
    exp_t = torch.where(finite_in, t_safe.clamp(max=700).exp(), torch.zeros_like(times))
    grad_in = torch.zeros_like(times)
    grad_w = torch.zeros_like(weights)
    dropped = 0
    for cols in _chunks(batch, n_in, weights.shape[1], max_elements):
        t_out = out_safe[:, None, cols]
        causal = t_safe[:, :, None] < t_out  # (B, I, J); never true for silent outputs
        gap = torch.where(finite_in, times, torch.zeros_like(times))[:, :, None]
        p = (t_out - gap).mul_(exp_t[:, :, None]).mul_(causal)
        g_chunk = g[:, cols]
        if dw_guard is not None:
            too_big = p.abs().amax(dim=1) * g_chunk.abs() > dw_guard
            dropped += int(too_big.sum())
            g_chunk = torch.where(too_big, torch.zeros_like(g_chunk), g_chunk)
        g3 = g_chunk[:, None, :]
        grad_w[:, cols] = -(p * g3).sum(0)
        w = weights[:, cols]
        e_causal = causal * exp_t[:, :, None]
        grad_in -= ((p - e_causal).mul_(g3) * w).sum(2)
    return grad_in, grad_w, dropped


def spike_time_backward(
    times: torch.Tensor,
    weights: torch.Tensor,
    out_times: torch.Tensor,
    c: torch.Tensor,
    tau_ratio: int,
    grad_out: torch.Tensor,
    dw_guard: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Vector-Jacobian products of the first-spike times: (∂L/∂t_in, ∂L/∂w, dropped).

    ``grad_out`` = δ_j = ∂L/∂T_j. With ``dw_guard``, a (sample, neuron) whose largest
    |δ_j ∂T_j/∂w_ij| exceeds it contributes nothing (near-threshold crossings, W → -1, make
    the gradient blow up); ``dropped`` counts them.
    """
    batch, n_in = times.shape
    spiking = torch.isfinite(out_times)
    delta = torch.where(spiking, grad_out, torch.zeros_like(grad_out))
    out_safe = torch.where(spiking, out_times, torch.zeros_like(out_times))
    c = c.expand(batch, weights.shape[1]) if c.dim() < 2 else c
    finite_in = torch.isfinite(times)
    t_safe = torch.where(finite_in, times, torch.zeros_like(times))
    exp_t = torch.where(finite_in, t_safe.exp(), torch.zeros_like(t_safe))[:, :, None]
    t3 = t_safe[:, :, None]
    grad_in = torch.zeros_like(times)
    grad_w = torch.zeros_like(weights)
    dropped = 0
    for cols in _chunks(batch, n_in, weights.shape[1], max_elements):
        w = weights[:, cols][None]  # (1, I, J)
        t_out = out_safe[:, None, cols]  # (B, 1, J)
        causal = (finite_in[:, :, None] & (times[:, :, None] < out_times[:, None, cols])).to(
            times.dtype
        )
        we = w * exp_t * causal  # w_i e^{t_i} over the causal set
        a1 = we.sum(1, keepdim=True)
        a1 = torch.where(a1 != 0, a1, torch.ones_like(a1))
        if tau_ratio == 1:
            b = (we * t3).sum(1, keepdim=True)
            lambert = b / a1 - t_out  # W at the solution
            scale = 1.0 / (a1 * (1.0 + lambert))
            d_w = -(exp_t * causal) * (t_out - t3) * scale
            d_t = -we * (t_out - t3 - 1.0) * scale
        else:
            half = torch.where(finite_in, (t_safe / 2).exp(), torch.zeros_like(t_safe))[:, :, None]
            a2 = (w * half * causal).sum(1, keepdim=True)
            c3 = c[:, None, cols]
            root = (a2 * a2 - 4 * a1 * c3).clamp(min=1e-30).sqrt()
            k = (1.0 + (c3 / root) * (t_out / 2).exp()) / a1
            d_w = 2 * (k * exp_t - half / root) * causal
            d_t = w * (2 * k * exp_t - half / root) * causal
        d = delta[:, None, cols]
        if dw_guard is not None:
            too_big = (d_w * d).abs().amax(dim=1, keepdim=True) > dw_guard
            dropped += int(too_big.sum())
            d = torch.where(too_big, torch.zeros_like(d), d)
        d_w = torch.nan_to_num(d_w * d, nan=0.0, posinf=0.0, neginf=0.0)
        d_t = torch.nan_to_num(d_t * d, nan=0.0, posinf=0.0, neginf=0.0)
        grad_w[:, cols] = d_w.sum(0)
        grad_in += d_t.sum(2)
    return grad_in, grad_w, dropped


class FirstSpikeTime(torch.autograd.Function):
    """T = first_spike_times(t_in, W) with the exact gradients above.

    ``out_times`` (optional) replaces the analytic forward pass by externally measured spike
    times (time-stepped integrator, hardware): the gradients are then the closed forms
    evaluated at those times. ``stats`` (a dict) receives the number of guard drops.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        times: torch.Tensor,
        weights: torch.Tensor,
        c: torch.Tensor,
        tau_ratio: int,
        dw_guard: float | None,
        out_times: torch.Tensor | None,
        stats: dict | None,
        max_elements: int,
    ) -> torch.Tensor:
        sums = None
        if out_times is None:
            out_times, a1, second = _exact_pass(times, weights, c, tau_ratio, max_elements)
            sums = (a1, second)
        ctx.save_for_backward(times, weights, out_times, c, *(sums or ()))
        ctx.config = (tau_ratio, dw_guard, stats, max_elements)
        return out_times

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        times, weights, out_times, c, *sums = ctx.saved_tensors
        tau_ratio, dw_guard, stats, max_elements = ctx.config
        if tau_ratio == 1 and sums:
            grad_in, grad_w, dropped = _backward_equal_taus(
                times, weights, out_times, *sums, grad_out, dw_guard, max_elements
            )
        else:
            grad_in, grad_w, dropped = spike_time_backward(
                times, weights, out_times, c, tau_ratio, grad_out, dw_guard, max_elements
            )
        if stats is not None:
            stats["guard_dropped"] = stats.get("guard_dropped", 0) + dropped
        return grad_in, grad_w, None, None, None, None, None, None


def spike_times(
    times: torch.Tensor,
    weights: torch.Tensor,
    c: torch.Tensor | float = 1.0,
    tau_ratio: int = 1,
    dw_guard: float | None = None,
    out_times: torch.Tensor | None = None,
    stats: dict | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> torch.Tensor:
    """Differentiable first-spike times (see :class:`FirstSpikeTime`)."""
    tau_ratio = check_tau_ratio(tau_ratio)
    c = torch.as_tensor(c, dtype=times.dtype, device=times.device)
    if c.dim() == 0:
        c = c.expand(1, weights.shape[1])
    elif c.dim() == 1:
        c = c[None]
    return FirstSpikeTime.apply(
        times, weights, c, tau_ratio, dw_guard, out_times, stats, max_elements
    )
