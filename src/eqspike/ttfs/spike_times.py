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
W₀ (or the square root) is then evaluated once per (sample, neuron). The sorted inputs are
visited in blocks, and a (sample, neuron) pair leaves the search once it has crossed, so the
work follows the causal sets' sizes rather than B·N_in·N_out; no temporary exceeds
``max_elements``.

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
DEFAULT_MAX_ELEMENTS = 1 << 22  # per temporary: 32 MB in float64
DEFAULT_BLOCK = 64  # sorted inputs visited per step of the causal-set search
SMALL_LAYER = 1 << 18  # B·N_in·N_out up to which one block is faster (per-block overheads)
DENSE_FRACTION = 0.5  # above this share of pairs in play, a block runs over all pairs at once


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
    n_finite: torch.Tensor  # (B,): inputs that spike


def _sort_inputs(times: torch.Tensor, tau_ratio: int) -> _Sorted:
    sorted_times, order = times.sort(dim=1)
    finite = torch.isfinite(sorted_times)
    safe = torch.where(finite, sorted_times, torch.zeros_like(sorted_times))
    exp_t = torch.where(finite, safe.exp(), torch.zeros_like(safe))
    second = safe * exp_t if tau_ratio == 1 else torch.where(finite, (safe / 2).exp(), 0.0)
    inf = torch.full_like(sorted_times[:, :1], math.inf)
    next_times = torch.cat([sorted_times[:, 1:], inf], dim=1)
    return _Sorted(sorted_times, order, next_times, exp_t, second, finite.sum(dim=1))


def _chunks(batch: int, n_in: int, n_out: int, max_elements: int) -> list[slice]:
    """Slices of range(n_out) whose (batch, n_in, width) temporaries hold <= max_elements."""
    width = max(1, min(n_out, max_elements // max(1, batch * n_in)))
    return [slice(j, min(j + width, n_out)) for j in range(0, n_out, width)]


def _blocks(batch: int, n_in: int, n_out: int, block: int | None) -> list[tuple[int, int]]:
    """Ranges of sorted-input ranks visited together; ``block`` None: DEFAULT_BLOCK, or all
    inputs at once for a small layer."""
    if block is None:
        block = n_in if batch * n_in * n_out <= SMALL_LAYER else DEFAULT_BLOCK
    return [(r0, min(r0 + block, n_in)) for r0 in range(0, n_in, block)]


def _crossing_mask(
    a1: torch.Tensor,
    second: torch.Tensor,
    c: torch.Tensor,
    t_k: torch.Tensor,
    t_next: torch.Tensor,
    tau_ratio: int,
) -> torch.Tensor:
    """Whether the prefix-k potential reaches threshold c inside [t_k, t_{k+1}) (all (Q, L))."""
    next_finite = torch.isfinite(t_next)
    t_next_safe = torch.where(next_finite, t_next, torch.zeros_like(t_next))
    positive = a1 > 0  # a1 <= 0: the potential never rises to threshold (NaNs below compare False)
    if tau_ratio == 1:
        # U(t) = e^{-t}(a1 t - b); at the interval's end (0 when there is none) ...
        decay_next = torch.where(next_finite, (-t_next_safe).exp(), torch.zeros_like(t_next))
        crosses = (a1 * t_next_safe).sub_(second).mul_(decay_next) >= c
        # ... or at the peak t* = 1 + b/a1 (U* = a1 e^{-t*}) when it lies inside the interval;
        # rare, so U* is evaluated only there.
        ratio = second / a1
        inside = (ratio >= t_k - 1.0) & (ratio < t_next - 1.0) & positive
        where = inside.nonzero(as_tuple=True)
        if where[0].numel():
            peak_value = a1[where] * torch.exp(-1.0 - ratio[where])
            crosses[where] |= peak_value >= c.expand_as(a1)[where]
        return crosses & positive
    # U(x) = a2 x - a1 x², x = e^{-t/2} decreasing in t; peak x* = a2/(2 a1), U* = a2²/(4 a1).
    a1_safe = torch.where(positive, a1, torch.ones_like(a1))
    x_next = (-t_next_safe / 2).exp()
    u_end = second * x_next - a1 * x_next * x_next
    x_peak = second / (2 * a1_safe)
    u_peak = second * second / (4 * a1_safe)
    x_k = torch.where(torch.isfinite(t_k), (-t_k / 2).exp(), torch.zeros_like(t_k))
    x_after = torch.where(next_finite, x_next, torch.zeros_like(x_next))
    peak_inside = (x_peak > 0) & (x_peak <= x_k) & (x_peak > x_after)
    return positive & ((next_finite & (u_end >= c)) | (peak_inside & (u_peak >= c)))


def _first_crossing(
    s: _Sorted,
    weights: torch.Tensor,
    c: torch.Tensor,
    tau_ratio: int,
    max_elements: int,
    block: int | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(has_spike, a1, second sum) at each (sample, neuron)'s first crossing interval, (B, J).

    The sorted inputs are visited in blocks of ``block``; a (sample, neuron) pair leaves the
    search at the block where it crosses, carrying its prefix sums from block to block. Neurons
    fire after a fraction of their inputs (the trained MNIST hidden layer's causal sets hold 172
    of 784 inputs on average), so the work is well below B·N_in·N_out. While most pairs are
    still searching, a block runs over all of them in a (B, J, L) layout that broadcasts the
    per-input terms; later blocks gather the rows of the pairs left.
    """
    batch, n_in = s.order.shape
    n_out = weights.shape[1]
    options = {"dtype": s.exp_t.dtype, "device": s.exp_t.device}
    flat_w = weights.reshape(-1)
    has_spike = torch.zeros(batch, n_out, dtype=torch.bool, device=s.exp_t.device)
    searching = torch.ones_like(has_spike)
    a1_at, second_at = torch.ones(batch, n_out, **options), torch.zeros(batch, n_out, **options)
    base_a1, base_second = torch.zeros_like(a1_at), torch.zeros_like(a1_at)

    def search(select, w, exp_t, t_exp_t, t_k, t_next, c_q) -> None:
        """The pairs ``select`` indexes (in (B, J)), sorted weights ``w`` (..., L), one block."""
        a1 = torch.cumsum(w * exp_t, dim=-1)
        second = torch.cumsum(w.mul_(t_exp_t), dim=-1)
        if not first_block:  # carry the sums; pairs that already fired are out
            a1.add_(base_a1[select].unsqueeze(-1))
            second.add_(base_second[select].unsqueeze(-1))
        crosses = _crossing_mask(a1, second, c_q, t_k, t_next, tau_ratio)
        if not first_block:
            crosses &= searching[select].unsqueeze(-1)
        hit, first = crosses.to(torch.uint8).max(dim=-1, keepdim=True)  # first True
        hit = hit.squeeze(-1).bool()
        has_spike[select] |= hit
        searching[select] &= ~hit
        for at, sums in ((a1_at, a1), (second_at, second)):
            at[select] = torch.where(hit, sums.gather(-1, first).squeeze(-1), at[select])
        base_a1[select], base_second[select] = a1[..., -1], second[..., -1]

    for r0, r1 in _blocks(batch, n_in, n_out, block):
        first_block = r0 == 0  # (a silent sample's pairs cannot cross: a1 = 0)
        # a sample whose spiking inputs are used up cannot make its neurons spike any more
        searching &= (s.n_finite > r0)[:, None]
        left = int(searching.sum())
        if left == 0:
            break
        per_input = [x[:, r0:r1] for x in (s.exp_t, s.t_exp_t, s.times, s.next_times)]
        if left > DENSE_FRACTION * batch * n_out:
            for cols in _chunks(batch, r1 - r0, n_out, max_elements):
                index = s.order[:, None, r0:r1].expand(batch, cols.stop - cols.start, r1 - r0)
                w = torch.gather(weights.t()[None, cols].expand(batch, -1, -1), 2, index)
                search((slice(None), cols), w, *(x[:, None] for x in per_input), c[:, cols, None])
        else:
            width = max(1, max_elements // (r1 - r0))
            pairs = searching.nonzero(as_tuple=True)
            for b, j in zip(pairs[0].split(width), pairs[1].split(width), strict=True):
                w = flat_w[s.order[b, r0:r1] * n_out + j[:, None]]  # (Q, L) sorted weights
                search((b, j), w, *(x[b] for x in per_input), c[b, j, None])
    return has_spike, a1_at, second_at


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
    block: int | None = None,
) -> torch.Tensor:
    """Exact first-spike times ``(B, J)`` (+inf: no spike) of neurons with input spike times
    ``times`` ``(B, I)`` through ``weights`` ``(I, J)``; ``c = g_L θ`` per neuron or per
    (sample, neuron)."""
    return _exact_pass(times, weights, c, check_tau_ratio(tau_ratio), max_elements, block)[0]


def _exact_pass(
    times: torch.Tensor,
    weights: torch.Tensor,
    c: torch.Tensor | float,
    tau_ratio: int,
    max_elements: int,
    block: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Spike times, the causal-set sums (a1, b or a2) at them and the sorted input times and
    their order: what the backward reuses."""
    c = torch.as_tensor(c, dtype=times.dtype, device=times.device)
    c = c.expand(times.shape[0], weights.shape[1])  # per neuron or per (sample, neuron)
    s = _sort_inputs(times, tau_ratio)
    has_spike, a1, second = _first_crossing(s, weights, c, tau_ratio, max_elements, block)
    spike = _closed_form(a1, second, c, tau_ratio)
    out = torch.where(has_spike & torch.isfinite(spike), spike, math.inf)
    return out, a1, second, s.times, s.order


def _largest_causal_term(sorted_times: torch.Tensor, out_times: torch.Tensor) -> torch.Tensor:
    """max over causal inputs (t_i < T) of e^{t_i} (T - t_i), per (sample, neuron), (B, J).

    f(t) = e^t (T - t) rises for t < T - 1 and falls after, so the maximum is at one of the two
    inputs around T - 1: found by binary search instead of a (B, N_in, N_out) scan."""
    n_in = sorted_times.shape[1]
    pos = torch.searchsorted(sorted_times, (out_times - 1.0).contiguous())
    largest = torch.zeros_like(out_times)
    for index, valid in ((pos - 1, pos > 0), (pos, pos < n_in)):
        t = sorted_times.gather(1, index.clamp(0, n_in - 1))
        causal = valid & (t < out_times) & torch.isfinite(t)
        t = torch.where(causal, t, torch.zeros_like(t))
        term = torch.where(causal, t.exp() * (out_times - t), torch.zeros_like(t))
        largest = torch.maximum(largest, term)
    return largest


def _causal_terms(
    times: torch.Tensor, out_times: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """P_ij = [t_i < T_j] e^{t_i} (T_j - t_i) and [t_i < T_j] e^{t_i}, both (B, L, J), for
    inputs ``times`` (B, L) (+inf: silent) and pairs firing at ``out_times`` (B, J) (0 where
    silent, so that nothing is causal)."""
    finite = torch.isfinite(times)
    t = torch.where(finite, times, torch.zeros_like(times))
    e = torch.where(finite, t.clamp(max=700).exp(), torch.zeros_like(t))
    t_out = out_times[:, None, :]
    e_causal = e[..., None] * (times[..., None] < t_out)
    return (t_out - t[..., None]).mul_(e_causal), e_causal


def _masked_grads(
    p: torch.Tensor, e_causal: torch.Tensor, g: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """P_ij g_j (B, L, J) and Σ_j w_ij (P_ij - [t_i < T_j] e^{t_i}) g_j (B, L); ``weights``
    (1 or B, L, J)."""
    g3 = g[:, None, :]
    term = p.mul_(g3)
    return term, (term - e_causal * g3).mul_(weights).sum(2)


def _backward_equal_taus(
    times: torch.Tensor,
    weights: torch.Tensor,
    out_times: torch.Tensor,
    a1: torch.Tensor,
    b: torch.Tensor,
    sorted_times: torch.Tensor,
    order: torch.Tensor,
    grad_out: torch.Tensor,
    dw_guard: float | None,
    max_elements: int,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """τ_m = τ_s backward with the forward's causal sums: with g_j = δ_j / (a1 (1 + W)) and
    P_ij = [t_i < T_j] e^{t_i} (T_j - t_i),

        ∂L/∂w_ij = -Σ_b P_ij g_j,   ∂L/∂t_i = -Σ_j w_ij (P_ij - [t_i < T_j] e^{t_i}) g_j.

    Blocked over the time-sorted inputs: for the (sample, neuron) pairs that fire after a
    block's last input, the whole block is causal and its share is two matrix products
    (e^{t} and t e^{t} scattered to their input columns, against T g and g); only the pairs
    that fire inside a block need the per-input mask there (each pair in at most one block).
    """
    batch, n_in = times.shape
    n_out = weights.shape[1]
    spiking = torch.isfinite(out_times)
    out_safe = torch.where(spiking, out_times, torch.zeros_like(out_times))  # nothing causal
    lambert = b / a1 - out_safe
    g = torch.where(spiking, grad_out / (a1 * (1.0 + lambert)), torch.zeros_like(grad_out))
    finite = torch.isfinite(sorted_times)
    t_safe = torch.where(finite, sorted_times, torch.zeros_like(sorted_times))
    exp_t = torch.where(finite, t_safe.clamp(max=700).exp(), torch.zeros_like(t_safe))
    dropped = 0
    grad_w = torch.zeros_like(weights)
    blocks = _blocks(batch, n_in, n_out, block)
    if len(blocks) == 1:  # one block: the mask over every pair, in the inputs' own order
        grad_in = torch.zeros_like(times)
        for cols in _chunks(batch, n_in, n_out, max_elements):
            p, e_causal = _causal_terms(times, out_safe[:, cols])
            g_cols = g[:, cols]
            if dw_guard is not None:
                too_big = p.amax(dim=1) * g_cols.abs() > dw_guard
                dropped += int(too_big.sum())
                g_cols = torch.where(too_big, torch.zeros_like(g_cols), g_cols)
            term, d_t = _masked_grads(p, e_causal, g_cols, weights[None, :, cols])
            grad_w[:, cols] = -term.sum(0)
            grad_in -= d_t
        return grad_in, grad_w, dropped
    if dw_guard is not None:
        too_big = _largest_causal_term(sorted_times, out_safe) * g.abs() > dw_guard
        dropped = int(too_big.sum())
        g = torch.where(too_big, torch.zeros_like(g), g)
    u = out_safe * g  # P g = e^{t} (u - t g) over the causal set
    grad_sorted = torch.zeros_like(times)  # ∂L/∂t in sorted order
    flat_w = weights.reshape(-1)
    for r0, r1 in blocks:
        if not bool(finite[:, r0].any()):
            break  # only silent inputs left
        block_t = sorted_times[:, r0:r1]
        last = torch.where(finite[:, r0:r1], block_t, -math.inf).amax(dim=1, keepdim=True)
        full = spiking & (last < out_safe)
        partial = spiking & ~full & (block_t[:, :1] < out_safe)
        e_blk, te_blk, cols = exp_t[:, r0:r1], t_safe[:, r0:r1] * exp_t[:, r0:r1], order[:, r0:r1]
        if int(partial.sum()) > DENSE_FRACTION * int(spiking.sum()):
            # most pairs fire inside this block: the mask over all of them at once
            for rows in _chunks(r1 - r0, n_out, batch, max_elements):
                w_rows = weights.index_select(0, cols[rows].reshape(-1))
                p, e_causal = _causal_terms(sorted_times[rows, r0:r1], out_safe[rows])
                w_rows = w_rows.view(-1, r1 - r0, n_out)
                term, d_t = _masked_grads(p, e_causal, g[rows], w_rows)
                grad_w.index_add_(0, cols[rows].reshape(-1), -term.view(-1, n_out))
                grad_sorted[rows, r0:r1] -= d_t
            continue
        if bool(full.any()):
            fu, fg = u * full, g * full
            scattered = torch.zeros(2 * batch, n_in, dtype=times.dtype, device=times.device)
            scattered.scatter_(1, cols.repeat(2, 1), torch.cat([e_blk, -te_blk]))
            grad_w -= scattered.t() @ torch.cat([fu, fg])  # Σ_b e (T g) - t e g
            sums = torch.cat([fu - fg, fg]) @ weights.t()  # Σ_j w_ij (T-1) g, Σ_j w_ij g
            at_cols = sums.view(2, batch, n_in).gather(2, cols.expand(2, -1, -1))
            grad_sorted[:, r0:r1] -= e_blk * (at_cols[0] - t_safe[:, r0:r1] * at_cols[1])
        pb, pj = partial.nonzero(as_tuple=True)
        for q in torch.arange(pb.numel(), device=times.device).split(
            max(1, max_elements // (r1 - r0))
        ):
            qb, qj = pb[q], pj[q]
            t_out, g_q = out_safe[qb, qj, None], g[qb, qj, None]
            t_q = t_safe[qb, r0:r1]
            e_q = exp_t[qb, r0:r1] * (sorted_times[qb, r0:r1] < t_out)
            w_index = cols[qb] * n_out + qj[:, None]
            term = e_q * (t_out - t_q) * g_q  # P g
            grad_w.view(-1).index_put_((w_index.reshape(-1),), -term.reshape(-1), accumulate=True)
            d_t = flat_w[w_index] * (term - e_q * g_q)
            in_index = qb[:, None] * n_in + torch.arange(r0, r1, device=times.device)
            grad_sorted.view(-1).index_put_(
                (in_index.reshape(-1),), -d_t.reshape(-1), accumulate=True
            )
    grad_in = torch.zeros_like(times).scatter_(1, order, grad_sorted)
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
        block: int | None,
    ) -> torch.Tensor:
        sums = None
        if out_times is None:
            out_times, *sums = _exact_pass(times, weights, c, tau_ratio, max_elements, block)
        ctx.save_for_backward(times, weights, out_times, c, *(sums or ()))
        ctx.config = (tau_ratio, dw_guard, stats, max_elements, block)
        return out_times

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        times, weights, out_times, c, *sums = ctx.saved_tensors
        tau_ratio, dw_guard, stats, max_elements, block = ctx.config
        if tau_ratio == 1 and sums:
            grad_in, grad_w, dropped = _backward_equal_taus(
                times, weights, out_times, *sums, grad_out, dw_guard, max_elements, block
            )
        else:
            grad_in, grad_w, dropped = spike_time_backward(
                times, weights, out_times, c, tau_ratio, grad_out, dw_guard, max_elements
            )
        if stats is not None:
            stats["guard_dropped"] = stats.get("guard_dropped", 0) + dropped
        return grad_in, grad_w, None, None, None, None, None, None, None


def spike_times(
    times: torch.Tensor,
    weights: torch.Tensor,
    c: torch.Tensor | float = 1.0,
    tau_ratio: int = 1,
    dw_guard: float | None = None,
    out_times: torch.Tensor | None = None,
    stats: dict | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    block: int | None = None,
) -> torch.Tensor:
    """Differentiable first-spike times (see :class:`FirstSpikeTime`); ``block``: sorted
    inputs per step of the causal-set search (speed only, any value gives the same result)."""
    tau_ratio = check_tau_ratio(tau_ratio)
    c = torch.as_tensor(c, dtype=times.dtype, device=times.device)
    if c.dim() == 0:
        c = c.expand(1, weights.shape[1])
    elif c.dim() == 1:
        c = c[None]
    return FirstSpikeTime.apply(
        times, weights, c, tau_ratio, dw_guard, out_times, stats, max_elements, block
    )
