"""NIR export: the graph of a TTFS run, read back, runs the same first spikes."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from eqspike.cli import main
from eqspike.export import export_nir, ttfs_weights_from_graph
from eqspike.train.api import load
from eqspike.train.trainer import load_splits

RUN = Path(__file__).resolve().parent.parent / "pretrained" / "ttfs-yinyang-seed0"


def simulate_cuba_lif_first_spikes(
    graph: nir.NIRGraph, input_times: np.ndarray, dt: float, t_end: float
) -> np.ndarray:
    """An independent simulation of the graph's CubaLIF layers from their NIR parameters, exact
    between steps (the linear ODE's propagator; Euler misjudges neurons whose peak grazes the
    threshold), spikes detected at step ends; each neuron spikes at most once, as in the model.
    Returns the output layer's first spike times."""
    n_layers = len(graph.metadata["layers"]) - 1
    batch = input_times.shape[0]
    steps = int(t_end / dt)
    spiked = {"input": np.zeros_like(input_times, dtype=bool)}
    first = {}
    state = {}
    for n in range(n_layers):
        lif = graph.nodes[f"lif{n}"]
        size = len(lif.tau_syn)
        state[n] = (np.zeros((batch, size)), np.zeros((batch, size)))
        first[n] = np.full((batch, size), np.inf)
        spiked[f"lif{n}"] = np.zeros((batch, size), dtype=bool)
    for k in range(steps):
        t = k * dt
        events = {"input": (input_times >= t) & (input_times < t + dt)}
        for n in range(n_layers):
            lif = graph.nodes[f"lif{n}"]
            current, v = state[n]
            drive = np.zeros_like(current)
            for src, dst in graph.edges:
                if dst == f"lif{n}":
                    upstream = next(s for s, d in graph.edges if d == src)
                    drive += events[upstream].astype(float) @ graph.nodes[src].weight.T
            current = current + lif.w_in * drive / lif.tau_syn  # a delta spike: a jump
            decay_syn, decay_mem = np.exp(-dt / lif.tau_syn), np.exp(-dt / lif.tau_mem)
            rate = 1 / lif.tau_mem - 1 / lif.tau_syn
            gain = dt * decay_mem if np.allclose(rate, 0) else (decay_syn - decay_mem) / rate
            v = lif.v_leak + (v - lif.v_leak) * decay_mem + lif.r / lif.tau_mem * current * gain
            current = current * decay_syn
            fire = (v > lif.v_threshold) & ~spiked[f"lif{n}"]
            first[n][fire] = t + dt
            spiked[f"lif{n}"] |= fire
            events[f"lif{n}"] = fire
            state[n] = (current, np.where(fire, lif.v_reset, v))
    return first[n_layers - 1]


@pytest.mark.skipif(not RUN.exists(), reason="pretrained TTFS run not in this checkout")
def test_ttfs_nir_round_trip_runs_the_same_first_spikes(tmp_path):
    tau_s = 2e-3
    path = export_nir(RUN, tmp_path / "yinyang.nir", tau_s)
    graph = nir.read(path)
    run = load(RUN)
    for w, original in zip(ttfs_weights_from_graph(graph), run.model.weights, strict=True):
        torch.testing.assert_close(w, original.detach().double())
    lif = graph.nodes["lif0"]
    assert np.allclose(lif.tau_syn, tau_s) and np.allclose(lif.v_threshold, 1.0)

    test = load_splits(run.config, None).test
    x = test.x[:12].double()
    with torch.no_grad():
        times = run.model.encode(x)
        expected = run.model.forward_times(times)[-1].numpy() * tau_s
    bias = graph.metadata["bias_channels"]
    inputs = np.concatenate(
        [times.numpy() * tau_s, np.tile([bias[k] for k in sorted(bias, key=int)], (12, 1))], 1
    )
    dt = 1e-3 * tau_s
    simulated = simulate_cuba_lif_first_spikes(graph, inputs, dt, t_end=5 * tau_s)
    finite = np.isfinite(expected)
    assert finite.sum() > 20
    assert np.array_equal(np.isfinite(simulated), finite)
    # spikes are detected at step ends, each layer adds up to one step: 3 steps here
    assert np.abs(simulated[finite] - expected[finite]).max() <= 3 * dt
    assert (simulated.argmin(1) == expected.argmin(1)).all()


def test_export_of_an_ep_run_is_a_clear_error(tmp_path, capsys):
    run = Path(__file__).resolve().parent.parent / "pretrained" / "eqspike-mnist"
    if not run.exists():
        pytest.skip("pretrained EqSpike run not in this checkout")
    assert main(["export", str(run), "--nir", str(tmp_path / "x.nir")]) == 2
    assert "no NIR primitive" in capsys.readouterr().err
    assert not (tmp_path / "x.nir").exists()
