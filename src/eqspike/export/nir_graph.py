"""Export trained networks to NIR (the Neuromorphic Intermediate Representation).

**TTFS networks** map exactly onto NIR primitives: each layer is a ``nir.Affine`` (the weights,
zero bias) feeding a ``nir.CubaLIF``. With times in seconds (τ_s given by the user; the library
computes in units of τ_s) the library's neuron

    τ_s dI/dt = −I + τ_s Σ_i w_i δ(t − t_i),    τ_m dV/dt = −V + (τ_m/τ_s) I,    spike at V = θ

is NIR's CubaLIF with ``tau_syn = τ_s``, ``tau_mem = τ_m``, ``r = τ_m/τ_s``, ``v_leak = 0``,
``v_threshold = θ``, ``v_reset = 0`` and ``w_in = τ_s`` (so that an input spike makes the
current jump by w). Each neuron spikes at most once per pattern (CubaLIF has no refractory
period: a simulator must silence a neuron after its first spike); the prediction is the output
neuron that spikes first (``metadata``). The round-trip test simulates the written graph from
its NIR parameters alone and gets the library's spike times to within its step.

Bias spikes (``model.bias_times``: one extra spike into each layer at a fixed time) become extra
input channels: the input node has ``n_in + n_layers`` channels, channel ``n_in + l`` carrying
the bias spike of layer l at the time stated in the metadata; layers above the first get them
through an extra ``nir.Affine`` from the input (weights only in that channel's column).

The weights exported are what the substrate runs (:meth:`TTFSNetwork.effective_weights`:
quantised and with fixed-pattern noise when the run's config has those distortions).

EP networks (rate, EqSpike, conv) have no NIR counterpart yet: their neurons (a hard-sigmoid of a
leaky membrane, spiking through a Sigma-Delta or Bernoulli encoder, with symmetric feedback) are
not NIR primitives, and a graph of approximations would not run what we trained. Their weights
are in the run's safetensors checkpoints.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from eqspike.errors import EqspikeError


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def ttfs_graph(network: Any, tau_s: float = 1.0) -> nir.NIRGraph:
    """The NIR graph of a TTFS network (a :class:`~eqspike.ttfs.network.TTFSNetwork`), with
    times in seconds for the model time unit ``tau_s``."""
    if not tau_s > 0:
        raise EqspikeError(f"tau_s must be > 0 seconds, got {tau_s}")
    m, sizes = network.config.model, network.sizes
    n_layers = len(sizes) - 1
    bias_times = m.bias_times
    n_in = sizes[0] + (n_layers if bias_times is not None else 0)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array([n_in]))}
    edges: list[tuple[str, str]] = []
    source = "input"
    for n in range(n_layers):
        with torch.no_grad():
            w = network.effective_weights(n)  # (inputs [+ bias row], outputs)
        n_out = w.shape[1]
        main = _np(w[: sizes[n]].t())  # (out, in)
        if n == 0 and bias_times is not None:  # the input node holds all bias channels
            main = np.concatenate([main, np.zeros((n_out, n_layers))], axis=1)
            main[:, sizes[0]] = _np(w[sizes[n]])
        nodes[f"affine{n}"] = nir.Affine(weight=main, bias=np.zeros(n_out))
        edges.append((source, f"affine{n}"))
        if n > 0 and bias_times is not None:
            bias = np.zeros((n_out, n_in))
            bias[:, sizes[0] + n] = _np(w[sizes[n]])
            nodes[f"bias{n}"] = nir.Affine(weight=bias, bias=np.zeros(n_out))
            edges.append(("input", f"bias{n}"))
            edges.append((f"bias{n}", f"lif{n}"))
        ones = np.ones(n_out)
        tau_m = m.tau_ratio * tau_s
        nodes[f"lif{n}"] = nir.CubaLIF(
            tau_syn=tau_s * ones,
            tau_mem=tau_m * ones,
            r=(tau_m / tau_s) * ones,
            v_leak=0.0 * ones,
            v_threshold=m.threshold * ones,
            v_reset=0.0 * ones,
            w_in=tau_s * ones,
        )
        edges.append((f"affine{n}", f"lif{n}"))
        source = f"lif{n}"
    nodes["output"] = nir.Output(output_type=np.array([sizes[-1]]))
    edges.append((source, "output"))
    e = network.config.encoding
    metadata = {
        "eqspike_algorithm": "ttfs",
        "tau_s_seconds": tau_s,
        "layers": list(sizes),
        "decoding": "class = index of the earliest output spike (first spikes only)",
        "spikes_per_neuron": "at most one per pattern (the model's refractory period outlasts "
        "it; NIR's CubaLIF has none, so a simulator must stop a neuron after its first spike)",
        "input_encoding": (
            f"feature v in [0, 1] spikes once at (t_early + v' (t_late - t_early)) tau_s, "
            f"t_early={e.t_early}, t_late={e.t_late}, v' = 1 - v if invert={e.invert}"
        ),
        "bias_channels": (
            {str(sizes[0] + n): t * tau_s for n, t in enumerate(bias_times)}
            if bias_times is not None
            else {}
        ),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def ttfs_weights_from_graph(graph: nir.NIRGraph) -> list[torch.Tensor]:
    """The library's weight matrices ``(inputs [+ bias row], outputs)`` back from a graph that
    :func:`ttfs_graph` wrote (the inverse map; what a round trip checks)."""
    sizes = list(graph.metadata["layers"])
    bias = bool(graph.metadata.get("bias_channels"))
    weights = []
    for n in range(len(sizes) - 1):
        main = np.asarray(graph.nodes[f"affine{n}"].weight)
        w = main[:, : sizes[n]].T
        if bias:
            column = sizes[0] + n
            row = (
                main[:, column] if n == 0 else np.asarray(graph.nodes[f"bias{n}"].weight)[:, column]
            )
            w = np.concatenate([w, row[None, :]], axis=0)
        weights.append(torch.from_numpy(np.ascontiguousarray(w)))
    return weights


def export_nir(run_dir: str | Path, path: str | Path, tau_s: float = 1.0) -> Path:
    """Write RUN's network as a NIR file (HDF5), atomically."""
    from eqspike.train.api import load

    run = load(run_dir)
    if run.config.algorithm != "ttfs":
        raise EqspikeError(
            f"{run_dir} is a {run.config.algorithm!r} run: NIR export covers TTFS runs "
            "(feed-forward current-based LIF = nir.CubaLIF). EP neurons (hard-sigmoid membranes "
            "with Sigma-Delta/Bernoulli spikes and symmetric feedback) have no NIR primitive; "
            "their weights are in RUN/checkpoints/latest/weights.safetensors."
        )
    graph = ttfs_graph(run.model, tau_s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
