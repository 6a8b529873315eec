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
hardware in the loop: :func:`spike_time_backward`, dense). After the exact forward pass, the
backward reuses its sums and sort and is blocked like the search: blocks that a causal set
covers whole are matrix products, and only the block where a neuron fires needs a mask.
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
    exp_t, second = _input_factors(sorted_times, tau_ratio)  # the sums' terms are the factors
    inf = torch.full_like(sorted_times[:, :1], math.inf)
    next_times = torch.cat([sorted_times[:, 1:], inf], dim=1)
    n_finite = torch.isfinite(sorted_times).sum(dim=1)
    return _Sorted(sorted_times, order, next_times, exp_t, second, n_finite)


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

    def search(select, w, exp_t, t_exp_t, t_k, t_next, c_q, first_block: bool) -> None:
        """The pairs ``select`` indexes (in (B, J)), sorted weights ``w`` (..., L), one block;
        in the first block nothing is carried and every pair is searching (a sample without
        input spikes has a1 = 0 and cannot cross)."""
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
                terms = (x[:, None] for x in per_input)
                search((slice(None), cols), w, *terms, c[:, cols, None], r0 == 0)
        else:
            width = max(1, max_elements // (r1 - r0))
            pairs = searching.nonzero(as_tuple=True)
            for b, j in zip(pairs[0].split(width), pairs[1].split(width), strict=True):
                w = flat_w[s.order[b, r0:r1] * n_out + j[:, None]]  # (Q, L) sorted weights
                search((b, j), w, *(x[b] for x in per_input), c[b, j, None], r0 == 0)
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


def _input_factors(times: torch.Tensor, tau_ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two per-input factors of the gradients: (e^t, t e^t) for r = 1, (e^t, e^{t/2}) for
    r = 2; 0 for silent inputs."""
    finite = torch.isfinite(times)
    t = torch.where(finite, times, torch.zeros_like(times))
    e = torch.where(finite, t.clamp(max=700).exp(), torch.zeros_like(t))
    if tau_ratio == 1:
        return e, t * e
    return e, torch.where(finite, (t / 2).clamp(max=350).exp(), torch.zeros_like(t))


@dataclass
class _OutputFactors:
    """Per (sample, neuron) factors, (B, J) each, with which (A1, A2 the input factors)

        ∂L/∂w_ij = Σ_b [t_i < T_j] (A1_i w1_j + A2_i w2_j),
        ∂L/∂t_i = Σ_j w_ij [t_i < T_j] (A1_i in1_j + A2_i in2_j);

    ``vertex``: the time where |A1 w1 + A2 w2| peaks (the dw guard's candidate inputs)."""

    w1: torch.Tensor
    w2: torch.Tensor
    in1: torch.Tensor
    in2: torch.Tensor
    vertex: torch.Tensor


def _output_factors(
    out_safe: torch.Tensor,
    spiking: torch.Tensor,
    a1: torch.Tensor,
    second: torch.Tensor,
    c: torch.Tensor,
    tau_ratio: int,
    grad_out: torch.Tensor,
) -> _OutputFactors:
    """r = 1 (g = δ / (a1 (1 + W))): ∂L/∂w = -e^t (T - t) g, ∂L/∂t = -w e^t (T - t - 1) g.
    r = 2 (s = sqrt(a2² - 4 a1 c), k = (1 + (c/s) e^{T/2}) / a1): ∂L/∂w = 2 δ (k e^t -
    e^{t/2}/s), ∂L/∂t = w δ (2 k e^t - e^{t/2}/s)."""
    delta = torch.where(spiking, grad_out, torch.zeros_like(grad_out))
    if tau_ratio == 1:
        g = delta / (a1 * (1.0 + (second / a1 - out_safe)))
        factors = (-out_safe * g, g, -(out_safe - 1.0) * g, g)
        vertex = out_safe - 1.0  # e^t (T - t) peaks at t = T - 1
    else:
        root = (second * second - 4 * a1 * c).clamp(min=1e-30).sqrt()
        k = (1.0 + (c / root) * (out_safe / 2).exp()) / a1
        factors = (2 * k * delta, -2 * delta / root, 2 * k * delta, -delta / root)
        # k x² - x / s in x = e^{t/2} has its vertex at x = 1 / (2 k s)
        vertex = torch.where(k > 0, -2 * torch.log(2 * k * root), -math.inf)
    clean = [torch.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0) for f in factors]
    return _OutputFactors(*clean, torch.nan_to_num(vertex, nan=-math.inf))


def _largest_causal_term(
    sorted_times: torch.Tensor, out_safe: torch.Tensor, f: _OutputFactors, tau_ratio: int
) -> torch.Tensor:
    """max over causal inputs (t_i < T) of |∂L/∂w_ij| per (sample, neuron), (B, J).

    In x = e^{t/2} (r = 2) the term is a quadratic, for r = 1 it rises up to t = T - 1 and falls
    after: either way the maximum over the sorted inputs is at the first or last causal one or
    at the two around the vertex, found by binary search instead of a (B, N_in, N_out) scan."""
    n_in = sorted_times.shape[1]
    causal_count = torch.searchsorted(sorted_times, out_safe.contiguous())  # inputs before T
    around = torch.searchsorted(sorted_times, f.vertex.contiguous())
    largest = torch.zeros_like(out_safe)
    for index in (torch.zeros_like(around), causal_count - 1, around - 1, around):
        valid = (index >= 0) & (index < causal_count)
        t = sorted_times.gather(1, index.clamp(0, n_in - 1))
        a1, a2 = _input_factors(torch.where(valid, t, math.inf), tau_ratio)
        largest = torch.maximum(largest, (a1 * f.w1 + a2 * f.w2).abs())
    return largest


def _masked_terms(
    times: torch.Tensor,
    out_safe: torch.Tensor,
    f: _OutputFactors,
    weights: torch.Tensor,
    tau_ratio: int,
    dw_guard: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Over inputs ``times`` (B, L) and all pairs: the weight-gradient terms (B, L, J), the
    input gradients (B, L) and the guard's drops (B, J); ``weights`` (1 or B, L, J)."""
    a1, a2 = (a[..., None] for a in _input_factors(times, tau_ratio))
    causal = times[..., None] < out_safe[:, None, :]
    term_w = (a1 * f.w1[:, None, :] + a2 * f.w2[:, None, :]).mul_(causal)
    term_in = (a1 * f.in1[:, None, :] + a2 * f.in2[:, None, :]).mul_(causal)
    too_big = torch.zeros_like(out_safe, dtype=torch.bool)
    if dw_guard is not None:
        too_big = term_w.abs().amax(dim=1) > dw_guard
        keep = (~too_big)[:, None, :]
        term_w.mul_(keep)
        term_in.mul_(keep)
    return term_w, term_in.mul_(weights).sum(2), too_big


def _backward_from_sums(
    times: torch.Tensor,
    weights: torch.Tensor,
    out_times: torch.Tensor,
    c: torch.Tensor,
    tau_ratio: int,
    a1: torch.Tensor,
    second: torch.Tensor,
    sorted_times: torch.Tensor,
    order: torch.Tensor,
    grad_out: torch.Tensor,
    dw_guard: float | None,
    max_elements: int,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Backward with the forward's causal sums (a1, b or a2) and sort. Both gradients are sums
    over the causal set of two separable terms (:class:`_OutputFactors`).

    Blocked over the time-sorted inputs: for the (sample, neuron) pairs that fire after a
    block's last input, the whole block is causal and its share is matrix products (the input
    factors scattered to their input columns, against the output factors); only the pairs that
    fire inside a block need the per-input mask there (each pair in at most one block).
    """
    batch, n_in = times.shape
    n_out = weights.shape[1]
    spiking = torch.isfinite(out_times)
    out_safe = torch.where(spiking, out_times, torch.zeros_like(out_times))  # nothing causal
    f = _output_factors(out_safe, spiking, a1, second, c.expand(batch, n_out), tau_ratio, grad_out)
    grad_w = torch.zeros_like(weights)
    blocks = _blocks(batch, n_in, n_out, block)
    if len(blocks) == 1:  # one block: the mask over every pair, in the inputs' own order
        grad_in = torch.zeros_like(times)
        dropped = 0
        for cols in _chunks(batch, n_in, n_out, max_elements):
            f_cols = _OutputFactors(*(x[:, cols] for x in vars(f).values()))
            term_w, d_t, too_big = _masked_terms(
                times, out_safe[:, cols], f_cols, weights[None, :, cols], tau_ratio, dw_guard
            )
            grad_w[:, cols] = term_w.sum(0)
            grad_in += d_t
            dropped += int(too_big.sum())
        return grad_in, grad_w, dropped
    dropped = 0
    if dw_guard is not None:
        too_big = _largest_causal_term(sorted_times, out_safe, f, tau_ratio) > dw_guard
        dropped = int(too_big.sum())
        keep = ~too_big
        f = _OutputFactors(*(x * keep for x in (f.w1, f.w2, f.in1, f.in2)), f.vertex)
    finite = torch.isfinite(sorted_times)
    a_first, a_second = _input_factors(sorted_times, tau_ratio)
    grad_sorted = torch.zeros_like(times)  # ∂L/∂t in sorted order
    flat_w = weights.reshape(-1)
    for r0, r1 in blocks:
        if not bool(finite[:, r0].any()):
            break  # only silent inputs left
        block_t = sorted_times[:, r0:r1]
        last = torch.where(finite[:, r0:r1], block_t, -math.inf).amax(dim=1, keepdim=True)
        full = spiking & (last < out_safe)
        partial = spiking & ~full & (block_t[:, :1] < out_safe)
        cols = order[:, r0:r1]
        a1_blk, a2_blk = a_first[:, r0:r1], a_second[:, r0:r1]
        if int(partial.sum()) > DENSE_FRACTION * int(spiking.sum()):
            # most pairs fire inside this block: the mask over all of them at once
            for rows in _chunks(r1 - r0, n_out, batch, max_elements):
                w_rows = weights.index_select(0, cols[rows].reshape(-1))
                f_rows = _OutputFactors(*(x[rows] for x in vars(f).values()))
                term_w, d_t, _ = _masked_terms(
                    block_t[rows],
                    out_safe[rows],
                    f_rows,
                    w_rows.view(-1, r1 - r0, n_out),
                    tau_ratio,
                    None,
                )
                grad_w.index_add_(0, cols[rows].reshape(-1), term_w.view(-1, n_out))
                grad_sorted[rows, r0:r1] += d_t
            continue
        if bool(full.any()):
            scattered = torch.zeros(2 * batch, n_in, dtype=times.dtype, device=times.device)
            scattered.scatter_(1, cols.repeat(2, 1), torch.cat([a1_blk, a2_blk]))
            grad_w += scattered.t() @ torch.cat([f.w1 * full, f.w2 * full])
            sums = torch.cat([f.in1 * full, f.in2 * full]) @ weights.t()  # Σ_j w_ij in_j
            at_cols = sums.view(2, batch, n_in).gather(2, cols.expand(2, -1, -1))
            grad_sorted[:, r0:r1] += a1_blk * at_cols[0] + a2_blk * at_cols[1]
        pb, pj = partial.nonzero(as_tuple=True)
        for q in torch.arange(pb.numel(), device=times.device).split(
            max(1, max_elements // (r1 - r0))
        ):
            qb, qj = pb[q], pj[q]
            causal = block_t[qb] < out_safe[qb, qj, None]
            a1_q, a2_q = a1_blk[qb] * causal, a2_blk[qb] * causal
            term_w = a1_q * f.w1[qb, qj, None] + a2_q * f.w2[qb, qj, None]
            w_index = cols[qb] * n_out + qj[:, None]
            grad_w.view(-1).index_put_((w_index.reshape(-1),), term_w.reshape(-1), accumulate=True)
            d_t = flat_w[w_index] * (a1_q * f.in1[qb, qj, None] + a2_q * f.in2[qb, qj, None])
            in_index = qb[:, None] * n_in + torch.arange(r0, r1, device=times.device)
            grad_sorted.view(-1).index_put_(
                (in_index.reshape(-1),), d_t.reshape(-1), accumulate=True
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
        if sums:
            grad_in, grad_w, dropped = _backward_from_sums(
                times,
                weights,
                out_times,
                c,
                tau_ratio,
                *sums,
                grad_out,
                dw_guard,
                max_elements,
                block,
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
