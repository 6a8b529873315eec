"""The energy of a convolutional convergent network, with closed-form drives (conv EP).

Layers s_0 = x (clamped input), s_1 … s_N. Each layer n is reached from the one below by an
*interaction*: a convolution followed by 2×2 stride-2 pooling P_n (``conv``), or a dense map
on the flattened layer below (``fc``). The primitive function is

    Φ(x, s; θ) = Σ_conv n ⟨P_n(W_n ⋆ s_{n-1} + b_n), s_n⟩ + Σ_fc n ⟨W_n s_{n-1} + b_n, s_n⟩

and every drive is closed form — no autograd in the relaxation loop:

    ∂Φ/∂s_n = P_n(W_n ⋆ s_{n-1} + b_n) + W_{n+1}ᵀ ⋆ P_{n+1}†(s_{n+1})       (conv above conv)

with Wᵀ⋆ a transposed convolution and P† the pooling's adjoint: nearest-neighbour upsampling
÷ 4 for average pooling; max-unpooling at the argmax of the current pre-pool drive for max
pooling (the exact derivative of ⟨maxpool(z), s⟩ almost everywhere). Parameter gradients:

    ∂Φ/∂W_n = s_{n-1} ⋆ P_n†(s_n)  (the conv weight gradient),   ∂Φ/∂b_n = Σ_{h,w} P_n†(s_n)

**Feedback gain** (``feedback_gain`` g_n of interaction n, default 1): each layer's share of
the energy is weighted, F = Σ_n γ_n (½‖s_n‖² − ⟨up_n, s_n⟩) + β C(s_N), with γ_N = 1 at the top
free layer and γ_{n−1} = γ_n / g_n below it. F stays a true energy, so EP stays exact, and its
fixed point is

    s_n = σ( up_n + g_{n+1} down_{n+1} )        (up: the drive from below, down: the feedback)

i.e. layer n hears the layer above at g_{n+1} times the strength with which it drives it.
g < 1 pulls the recurrent network towards its feed-forward twin; EP's update of interaction n
is then γ_n times the usual contrast (the nudge reaches layer n attenuated by γ_n⁻¹), which
:func:`conv_param_grads` applies. :meth:`ConvParams.layer_drive` returns the *normalised*
drive (1/γ_n) ∂Φ_γ/∂s_n, so every solver keeps s_n ← σ(drive_n).

**Softmax readout** (``readout=True``; Laborieux et al. 2021): the last (fc) interaction is
not a layer of the dynamics but a readout o = W_r s_N + b_r of the top free layer s_N, with the
cost C = −log softmax(o)_y. Φ leaves it out, so the free phase never sees it; the nudge pulls
the top layer along −∂C/∂s_N = W_rᵀ(y − softmax(o)), and EP's update of W_r, b_r is the
cost's own gradient (β_a ∂C/∂θ_r(s^a) − β_b ∂C/∂θ_r(s^b)) / (β_a − β_b), the readout's share
of ∂F/∂θ (:meth:`ConvParams.cost_grads`). The default, an output *layer* with the squared
error ½‖s_N − y‖², has hard-sigmoid outputs that a nudge cannot move once they saturate
(on the trained Fashion-MNIST net that holds for ~2 % of the errors, BENCHMARKS.md).

Functions take (architecture, parameters) explicitly so that tests compare with autograd of
:func:`conv_phi`, as for the Hopfield MLP (:mod:`eqspike.ep.energy`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from eqspike.ep.energy import squared_error

Pooling = Literal["avg", "max"]


@dataclass(frozen=True)
class LayerSpec:
    """One interaction: ``conv`` (``channels``, ``kernel``, ``pool``) or ``fc`` (``units``);
    ``init_gain`` scales its initial weights, ``init_bias`` is its initial bias,
    ``feedback_gain`` scales the feedback it sends down to the layer below (module docstring)."""

    kind: Literal["conv", "fc"]
    channels: int = 0
    kernel: int = 5
    pool: Pooling = "avg"
    padding: int = 0
    units: int = 0
    init_gain: float = 1.0
    init_bias: float = 0.0
    feedback_gain: float = 1.0


class ConvParams(NamedTuple):
    """Weights and biases of every interaction, with the architecture they belong to; the
    same methods as :class:`~eqspike.ep.energy.MLPParams`, so any solver and estimator that
    works on the Hopfield MLP works on conv energies."""

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    arch: ConvArchitecture
    # Kernels the drives use, precomputed once per batch by :meth:`prepared` (the pooled
    # kernels of average-pooled conv layers, else None); None: computed at every call.
    drive_kernels: tuple[torch.Tensor | None, ...] | None = None

    def prepared(self) -> ConvParams:
        """The same parameters with their drive kernels computed once (no graph): what a
        relaxation of 100+ steps should use."""
        with torch.no_grad():
            kernels = tuple(
                pooled_kernel(w) if spec.kind == "conv" and spec.pool == "avg" else None
                for spec, w in zip(self.arch.layers, self.weights, strict=True)
            )
        return self._replace(drive_kernels=kernels)

    def _kernel(self, n: int) -> torch.Tensor | None:
        return None if self.drive_kernels is None else self.drive_kernels[n]

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """The clamped input's drive of layer 1 (computed once per batch)."""
        spec, w, b = self.arch.layers[0], self.weights[0], self.biases[0]
        return interaction_up(spec, w, b, x, self._kernel(0))[0]

    def layer_drive(self, x_drive: torch.Tensor, acts: list[torch.Tensor], n: int) -> torch.Tensor:
        """∂Φ/∂s_n: the drive from below (``x_drive`` for n = 0) plus the feedback from above."""
        layers, w, b = self.arch.layers, self.weights, self.biases
        if n == 0:
            h = x_drive
        else:
            h = interaction_up(layers[n], w[n], b[n], acts[n - 1], self._kernel(n))[0]
        if n + 1 < len(acts):
            spec = layers[n + 1]
            indices = None
            if spec.kind == "conv" and spec.pool == "max":
                indices = interaction_up(spec, w[n + 1], b[n + 1], acts[n])[1]
            feedback = interaction_down(
                spec, w[n + 1], acts[n + 1], acts[n], indices, self._kernel(n + 1)
            )
            h = h + (feedback if spec.feedback_gain == 1.0 else spec.feedback_gain * feedback)
        return h

    def phi(self, x: torch.Tensor, acts: list[torch.Tensor]) -> torch.Tensor:
        return conv_phi(self.arch, self, x, acts)

    def layer_scales(self) -> tuple[float, ...]:
        """γ_n of every free layer: F = Σ_n γ_n ½‖s_n‖² − Φ (all 1 without feedback gains)."""
        return self.arch.layer_scales

    def param_grad_difference(
        self, x: torch.Tensor, acts_a: list[torch.Tensor], acts_b: list[torch.Tensor], scale: float
    ) -> ConvParams:
        a = conv_param_grads(self.arch, self, x, acts_a)
        b = conv_param_grads(self.arch, self, x, acts_b)
        return self.replaced([scale * (ga - gb) for ga, gb in zip(a.flat(), b.flat(), strict=True)])

    def init_state(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every free layer at zero (a softmax readout has no state)."""
        free = self.arch.shapes[1 : 1 + self.arch.n_free]
        return [x.new_zeros(x.shape[0], *shape) for shape in free]

    def prediction(self, top: torch.Tensor) -> torch.Tensor:
        """The output layer itself, or the readout's logits W_r s_N + b_r."""
        if not self.arch.readout:
            return top
        return torch.addmm(self.biases[-1], top.flatten(1), self.weights[-1].t())

    def nudge(self, top: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """−∂C/∂s_N: y − s_N, or W_rᵀ(y − softmax(o)) through the readout."""
        if not self.arch.readout:
            return target - top
        error = target - torch.softmax(self.prediction(top), dim=1)
        return (error @ self.weights[-1]).view_as(top)

    def cost(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """C per example: ½‖s_N − y‖², or the cross-entropy of the readout's softmax."""
        if not self.arch.readout:
            return squared_error(prediction, target)
        return -(target * torch.log_softmax(prediction, dim=1)).sum(1)

    def cost_grads(self, top: torch.Tensor, target: torch.Tensor) -> ConvParams | None:
        """Batch-averaged ∂C/∂θ at the top layer ``top``: the readout's (p − y) s_Nᵀ and
        p − y, zero for every other interaction; None without a readout."""
        if not self.arch.readout:
            return None
        error = torch.softmax(self.prediction(top), dim=1) - target
        flat = [torch.zeros_like(p) for p in self.flat()]
        n = len(self.weights)
        flat[n - 1] = error.t() @ top.flatten(1) / top.shape[0]
        flat[-1] = error.mean(0)
        return self.replaced(flat)

    def flat(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def replaced(self, tensors: list[torch.Tensor]) -> ConvParams:
        n = len(self.weights)
        return ConvParams(tuple(tensors[:n]), tuple(tensors[n:]), self.arch)


@dataclass(frozen=True)
class ConvArchitecture:
    """Layer specs plus the state shape of every layer (input first), checked at construction."""

    input_shape: tuple[int, int, int]
    layers: tuple[LayerSpec, ...]
    shapes: tuple[tuple[int, ...], ...]
    readout: bool = False  # the last interaction is a softmax readout, not a free layer

    @classmethod
    def build(
        cls, input_shape: tuple[int, int, int], layers: list[LayerSpec], readout: bool = False
    ) -> ConvArchitecture:
        if readout and (len(layers) < 2 or layers[-1].kind != "fc"):
            raise ValueError(
                "a softmax readout needs an fc last layer (one unit per class) above at least "
                f"one free layer; got {[spec.kind for spec in layers]}"
            )
        shapes: list[tuple[int, ...]] = [tuple(input_shape)]
        trace = [f"input {tuple(input_shape)}"]
        for n, spec in enumerate(layers, start=1):
            below = shapes[-1]
            if spec.kind == "conv":
                if len(below) != 3:
                    raise ValueError(
                        f"layer {n} is conv but the layer below is flat {below}; put conv "
                        "layers before fc layers"
                    )
                _, height, width = below
                sizes = [d + 2 * spec.padding - spec.kernel + 1 for d in (height, width)]
                if any(size < 2 or size % 2 for size in sizes):
                    span = height + 2 * spec.padding
                    fits = [k for k in range(1, span) if (span - k + 1) % 2 == 0]
                    raise ValueError(
                        f"layer {n}: a {spec.kernel}x{spec.kernel} kernel on {below} gives "
                        f"{sizes[0]}x{sizes[1]} maps, which 2x2 pooling cannot halve (shapes so "
                        f"far: {' -> '.join(trace)}); kernels that fit: {fits[:6]}"
                    )
                shapes.append((spec.channels, sizes[0] // 2, sizes[1] // 2))
            else:
                shapes.append((spec.units,))
            trace.append(f"{spec.kind} {shapes[-1]}")
        _check_feedback_gains(layers, readout)
        return cls(tuple(input_shape), tuple(layers), tuple(shapes), readout)

    @functools.cached_property
    def layer_scales(self) -> tuple[float, ...]:
        """γ_n per free layer (module docstring): γ_N = 1 at the top, γ_{n−1} = γ_n / g_n."""
        scales = [1.0]
        for spec in reversed(self.layers[1 : self.n_free]):
            scales.append(scales[-1] / spec.feedback_gain)
        return tuple(reversed(scales))

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_free(self) -> int:
        """Layers the dynamics relax: all but a softmax readout."""
        return self.n_layers - 1 if self.readout else self.n_layers

    def spike_fan_out(self, layer: int) -> int:
        """Synapses a spike of free layer ``layer`` (1 … N) drives, event-driven: up through the
        next interaction (conv: C_out·k² pre-pool units; fc: its units) and down through its own
        (conv: P† spreads over 4 pre-pool positions for average pooling, 1 for max, then
        C_in·k²; fc: the layer below's units), except down into the clamped input."""
        total = 0
        if layer < self.n_layers:  # up
            spec = self.layers[layer]
            total += spec.channels * spec.kernel**2 if spec.kind == "conv" else spec.units
        if layer >= 2:  # down (layer 1 feeds back only into the clamped input)
            spec, below = self.layers[layer - 1], self.shapes[layer - 1]
            if spec.kind == "conv":
                total += (4 if spec.pool == "avg" else 1) * below[0] * spec.kernel**2
            else:
                total += math.prod(below)
        return total


def _check_feedback_gains(layers: list[LayerSpec], readout: bool) -> None:
    """A feedback gain must be positive, and only interactions between two free layers have
    feedback to scale."""
    for n, spec in enumerate(layers, start=1):
        if spec.feedback_gain <= 0:
            raise ValueError(f"layer {n}: feedback_gain must be > 0, got {spec.feedback_gain}")
        if spec.feedback_gain == 1.0:
            continue
        if n == 1:
            raise ValueError(
                "layer 1: feedback_gain has nothing to scale (its feedback would go into the "
                "clamped input); set it on layers 2 and up"
            )
        if readout and n == len(layers):
            raise ValueError(
                f"layer {n}: feedback_gain has nothing to scale (the softmax readout is outside "
                "the dynamics and sends no feedback); remove it"
            )


def init_conv_params(arch: ConvArchitecture, generator: torch.Generator | None) -> ConvParams:
    """U(±g/√fan_in) weights (g = ``init_gain``, 1: PyTorch's default scale) and constant
    biases (``init_bias``, default 0), layer by layer."""
    weights, biases = [], []
    for spec, below, shape in zip(arch.layers, arch.shapes[:-1], arch.shapes[1:], strict=True):
        if spec.kind == "conv":
            fan_in = below[0] * spec.kernel**2
            size = (spec.channels, below[0], spec.kernel, spec.kernel)
        else:
            fan_in = math.prod(below)
            size = (spec.units, fan_in)
        bound = spec.init_gain / math.sqrt(fan_in)
        weights.append((torch.rand(size, generator=generator) * 2 - 1) * bound)
        biases.append(torch.full((shape[0],), float(spec.init_bias)))
    return ConvParams(tuple(weights), tuple(biases), arch)


# --- one interaction: forward drive, adjoint feedback, parameter gradient ------------------


def interaction_up(
    spec: LayerSpec,
    w: torch.Tensor,
    b: torch.Tensor,
    below: torch.Tensor,
    kernel: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Drive the interaction sends up, P(W ⋆ s + b) or W s + b, and the max-pool argmax.

    ``kernel``: ``pooled_kernel(w)`` when the caller has it already (average pooling)."""
    if spec.kind == "fc":
        return torch.addmm(b, below.flatten(1), w.t()), None
    if spec.pool == "avg":  # P(W ⋆ s) = (W ∗ box/4) ⋆ s at stride 2: 2.8x fewer MACs at k = 5
        kernel = pooled_kernel(w) if kernel is None else kernel
        return F.conv2d(below, kernel, b, stride=2, padding=spec.padding), None
    z = F.conv2d(below, w, b, padding=spec.padding)
    return F.max_pool2d(z, 2, return_indices=True)


def pooled_kernel(w: torch.Tensor) -> torch.Tensor:
    """The (k+1)×(k+1) kernel of conv-then-2×2-average-pool: W ∗ box₂ₓ₂ / 4 (full convolution).

    avg_pool(W ⋆ s) equals a stride-2 convolution of s with it (each pooled output sums the
    four shifted copies of W), and its adjoint is the stride-2 transposed convolution, so the
    relaxation never materialises the pre-pool map.
    """
    return 0.25 * (
        F.pad(w, (0, 1, 0, 1))
        + F.pad(w, (1, 0, 0, 1))
        + F.pad(w, (0, 1, 1, 0))
        + F.pad(w, (1, 0, 1, 0))
    )


def pool_adjoint(
    spec: LayerSpec, s: torch.Tensor, indices: torch.Tensor | None, size: torch.Size
) -> torch.Tensor:
    """P†(s): nearest upsampling ÷ 4 (average) or max-unpooling at ``indices`` (max)."""
    if spec.pool == "avg":
        return F.interpolate(s, scale_factor=2, mode="nearest") / 4.0
    return F.max_unpool2d(s, indices, 2, output_size=size[-2:])


def _pre_pool_size(spec: LayerSpec, below: torch.Tensor, w: torch.Tensor) -> torch.Size:
    k = w.shape[-1]
    h, v = (d + 2 * spec.padding - k + 1 for d in below.shape[-2:])
    return torch.Size((below.shape[0], w.shape[0], h, v))


def interaction_down(
    spec: LayerSpec,
    w: torch.Tensor,
    above: torch.Tensor,
    below: torch.Tensor,
    indices: torch.Tensor | None,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feedback the interaction sends down: Wᵀ ⋆ P†(s_above) or Wᵀ s_above, shaped as below."""
    if spec.kind == "fc":
        return (above @ w).view_as(below)
    if spec.pool == "avg":  # Wᵀ ⋆ P†(s) as one stride-2 transposed conv with the pooled kernel
        kernel = pooled_kernel(w) if kernel is None else kernel
        size = [(n - 1) * 2 - 2 * spec.padding + kernel.shape[-1] for n in above.shape[-2:]]
        extra = [want - got for want, got in zip(below.shape[-2:], size, strict=True)]
        return F.conv_transpose2d(
            above, kernel, stride=2, padding=spec.padding, output_padding=tuple(extra)
        )
    unpooled = pool_adjoint(spec, above, indices, _pre_pool_size(spec, below, w))
    return F.conv_transpose2d(unpooled, w, padding=spec.padding)


def interaction_param_grads(
    spec: LayerSpec,
    w: torch.Tensor,
    b: torch.Tensor,
    above: torch.Tensor,
    below: torch.Tensor,
    indices: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-averaged ∂Φ/∂W and ∂Φ/∂b of the interaction."""
    batch = below.shape[0]
    if spec.kind == "fc":
        return above.t() @ below.flatten(1) / batch, above.mean(0)
    unpooled = pool_adjoint(spec, above, indices, _pre_pool_size(spec, below, w))
    grad_w = torch.nn.grad.conv2d_weight(below, w.shape, unpooled, padding=spec.padding)
    return grad_w / batch, unpooled.sum((0, 2, 3)) / batch


# --- the whole network ---------------------------------------------------------------------


def conv_drives(
    arch: ConvArchitecture, params: ConvParams, x: torch.Tensor, acts: list[torch.Tensor]
) -> list[torch.Tensor]:
    """The normalised drives (1/γ_n) ∂Φ/∂s_n of every layer from the same states (one pass
    over the interactions)."""
    states = [x, *acts]
    drives = [torch.zeros_like(a) for a in acts]
    for n, spec in enumerate(arch.layers[: arch.n_free]):
        w, b = params.weights[n], params.biases[n]
        up, indices = interaction_up(spec, w, b, states[n])
        drives[n] = drives[n] + up
        if n > 0:
            down = interaction_down(spec, w, acts[n], states[n], indices)
            drives[n - 1] = drives[n - 1] + spec.feedback_gain * down
    return drives


def conv_phi(
    arch: ConvArchitecture, params: ConvParams, x: torch.Tensor, acts: list[torch.Tensor]
) -> torch.Tensor:
    """Φ(x, s) = Σ_n γ_n ⟨up_n, s_n⟩ per example, shape (batch,): the oracle of the closed
    forms (a softmax readout is not part of it)."""
    states = [x, *acts]
    total = x.new_zeros(x.shape[0])
    for n, spec in enumerate(arch.layers[: arch.n_free]):
        up, _ = interaction_up(spec, params.weights[n], params.biases[n], states[n])
        total = total + arch.layer_scales[n] * (up * acts[n]).flatten(1).sum(1)
    return total


def conv_param_grads(
    arch: ConvArchitecture, params: ConvParams, x: torch.Tensor, acts: list[torch.Tensor]
) -> ConvParams:
    """Batch-averaged ∂Φ/∂θ at the states ``acts`` (max pooling: argmax of those states);
    zero for a softmax readout, which Φ does not contain."""
    states = [x, *acts]
    weights, biases = [], []
    for n, spec in enumerate(arch.layers[: arch.n_free]):
        w, b = params.weights[n], params.biases[n]
        indices = interaction_up(spec, w, b, states[n])[1] if spec.pool == "max" else None
        gw, gb = interaction_param_grads(spec, w, b, acts[n], states[n], indices)
        scale = arch.layer_scales[n]
        weights.append(gw if scale == 1.0 else scale * gw)
        biases.append(gb if scale == 1.0 else scale * gb)
    if arch.readout:
        weights.append(torch.zeros_like(params.weights[-1]))
        biases.append(torch.zeros_like(params.biases[-1]))
    return ConvParams(tuple(weights), tuple(biases), arch)


class ConvEnergy(nn.Module):
    """Parameters of a conv convergent network (``layers`` are :class:`LayerSpec`;
    ``readout``: the last one is a softmax readout, trained with the cross-entropy)."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        layers: list[LayerSpec],
        generator: torch.Generator | None = None,
        readout: bool = False,
    ) -> None:
        super().__init__()
        self.arch = ConvArchitecture.build(input_shape, layers, readout)
        init = init_conv_params(self.arch, generator)
        self.weights = nn.ParameterList(nn.Parameter(w) for w in init.weights)
        self.biases = nn.ParameterList(nn.Parameter(b) for b in init.biases)

    def params(self) -> ConvParams:
        return ConvParams(tuple(self.weights), tuple(self.biases), self.arch)

    @property
    def sizes(self) -> list[int]:
        """Units per layer (input first), flattened: what the network reports and one-hot
        targets use."""
        return [math.prod(shape) for shape in self.arch.shapes]

    def ordered_parameters(self) -> list[nn.Parameter]:
        return [*self.weights, *self.biases]

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images of the architecture's input shape (a clear error otherwise)."""
        if tuple(x.shape[1:]) != self.arch.input_shape:
            raise ValueError(
                f"the conv network expects inputs of shape {self.arch.input_shape}, got "
                f"{tuple(x.shape[1:])}; set model.input_shape to match the data."
            )
        return x
