"""Per-sample event counts of a trained run, measured by running it (not by formula).

Two jobs per run — ``inference`` and ``training`` (one learning step per sample, no optimiser
step) — each counted twice:

* ``native``: the run's own algorithm on event-driven hardware: spikes, synaptic events
  (spikes × fan-out), neuron updates, weight-update events, per layer, from the simulators'
  counters over real samples;
* ``dense``: the reference job on a GPU/CPU: the rate-based twin of an EqSpike net (same
  sizes and steps) or the run itself for rate EP, its FLOPs counted by
  ``torch.utils.flop_counter`` over a real execution (matrix products; elementwise work is
  not counted and is stated as such). TTFS networks: the closed-form evaluation over all
  (input, output) pairs, counted from the real spike times.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from eqspike.ep.spiking import spike_fan_out


@dataclass
class JobEvents:
    """Events per sample of one job, per layer (``"all"`` where a count has no layer)."""

    layers: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, layer: str, kind: str, value: float) -> None:
        bucket = self.layers.setdefault(layer, {})
        bucket[kind] = bucket.get(kind, 0.0) + float(value)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for counts in self.layers.values():
            for kind, value in counts.items():
                out[kind] = out.get(kind, 0.0) + value
        return out


@dataclass
class RunEvents:
    algorithm: str
    samples: dict[str, int]
    native: dict[str, JobEvents]
    dense: dict[str, JobEvents]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for side in ("native", "dense"):
            for job, events in getattr(self, side).items():
                data[side][job]["totals"] = events.totals()
        return data


def _flops_per_sample(fn, batch: int) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / batch


def _layer_name(n: int, last: int) -> str:
    return "input" if n == 0 else ("output" if n == last else f"hidden{n}")


WEIGHT_BITS = 16  # bits read per synaptic event (weight) and written per neuron update (state)


def _add_memory(job: JobEvents, phase: str, synaptic: float, updates: float) -> None:
    """Memory traffic: one weight read per synaptic event, one state write per neuron update,
    in 64-bit words at ``WEIGHT_BITS`` bits each."""
    job.add(f"{phase}:memory", "memory_read_64b", (synaptic + updates) * WEIGHT_BITS / 64)


def _spiking_ep_native(
    stats: dict[str, float], sizes: list[int], training: bool, fan_out: list[int] | None = None
) -> JobEvents:
    """Per phase (free; nudged = both ±β phases; update) and per layer; ``fan_out`` per layer
    (default: the layered Hopfield net's)."""
    fan_out = fan_out or [spike_fan_out(sizes, n) for n in range(len(sizes))]
    job = JobEvents()
    last = len(sizes) - 1
    phases = {"free": "free_" if training else ""}
    if training:
        phases["nudged"] = ""
    for phase, prefix in phases.items():
        synaptic = 0.0
        for n in range(len(sizes)):
            spikes = stats.get(f"{prefix}spikes_layer{n}_per_sample", 0.0)
            if phase == "nudged":  # totals over all phases minus the free phase
                spikes -= stats.get(f"free_spikes_layer{n}_per_sample", 0.0)
            name = f"{phase}:{_layer_name(n, last)}"
            job.add(name, "spike_route", spikes)
            job.add(name, "synaptic_event", spikes * fan_out[n])
            synaptic += spikes * fan_out[n]
        updates = stats.get(f"{prefix}neuron_updates_per_sample", 0.0)
        if phase == "nudged":
            updates -= stats.get("free_neuron_updates_per_sample", 0.0)
        job.add(f"{phase}:all", "neuron_update", updates)
        _add_memory(job, phase, synaptic, updates)
    if training and "weight_update_events_per_sample" in stats:
        job.add("update:all", "weight_update", stats["weight_update_events_per_sample"])
    job.notes.append(
        "synaptic events = spikes of a layer x its fan-out (next layer, and previous layer "
        "unless it is the clamped input); input spikes are taken as delivered (event sensor); "
        "neuron updates: one per non-input neuron per time step; memory: a "
        f"{WEIGHT_BITS}-bit weight read per synaptic event and a {WEIGHT_BITS}-bit state write "
        "per neuron update"
    )
    return job


def _rate_twin(run) -> torch.nn.Module:
    """The rate-based EP network doing the spiking run's job (same sizes, steps, β)."""
    from eqspike.ep.estimators import Phases, make_estimator
    from eqspike.ep.network import EPNetwork
    from eqspike.ep.solvers import make_solver

    cfg = run.config
    epsilon = cfg.solver.step_size if cfg.algorithm == "conv_ep" else cfg.neuron.epsilon
    solver = make_solver("continuous", epsilon, "synchronous")
    estimator = make_estimator("centered", cfg.estimator.beta)
    twin = EPNetwork(
        run.model.energy, solver, estimator, Phases(cfg.solver.free_steps, cfg.solver.nudged_steps)
    )
    return twin


def is_spiking_run(run) -> bool:
    """EqSpike, or conv EP with Sigma-Delta dynamics."""
    cfg = run.config
    return cfg.algorithm == "eqspike" or (
        cfg.algorithm == "conv_ep" and cfg.solver.kind == "sigma_delta"
    )


def dense_reference(run) -> torch.nn.Module:
    """The network a GPU/CPU would run for the same job: the rate twin of a spiking EP run,
    the run's own network otherwise."""
    return _rate_twin(run) if is_spiking_run(run) else run.model


def count_ep_events(run, x: torch.Tensor, y: torch.Tensor, x_train, y_train) -> RunEvents:
    """Rate EP or EqSpike run: native events and the dense twin's FLOPs."""
    model = run.model
    sizes = model.sizes
    spiking = run.config.algorithm == "eqspike"
    conv_spiking = run.config.algorithm == "conv_ep" and run.config.solver.kind == "sigma_delta"
    native: dict[str, JobEvents] = {}
    dense: dict[str, JobEvents] = {}
    gen = torch.Generator().manual_seed(0)
    twin = dense_reference(run)
    dense_inf = JobEvents()
    dense_inf.add("all", "flop", _flops_per_sample(lambda: twin(x), len(x)))
    dense_train = JobEvents()
    dense_train.add(
        "all", "flop", _flops_per_sample(lambda: twin.learning_step(x_train, y_train), len(x_train))
    )
    note = "FLOPs of matrix products in a real run (torch.utils.flop_counter); elementwise "
    note += "state updates not counted"
    dense_inf.notes.append(note)
    dense_train.notes.append(note)
    dense = {"inference": dense_inf, "training": dense_train}
    if conv_spiking:
        arch = model.energy.arch
        fan_out = [0] + [arch.spike_fan_out(n) for n in range(1, len(sizes))]
        model(x)
        native["inference"] = _spiking_ep_native(model.last_forward_stats, sizes, False, fan_out)
        result = model.learning_step(x_train, y_train, gen)
        native["training"] = _spiking_ep_native(result.stats, sizes, True, fan_out)
        weights = sum(p.numel() for p in model.parameters())
        native["training"].add("update:all", "weight_update", weights / len(x_train))
        for job in native.values():
            job.notes.append(
                "conv: the input is an analogue drive (computed once, not spikes); a spike's "
                "fan-out counts the kernel positions it reaches (conv) or the units (fc); "
                "the update changes every weight once per batch"
            )
            if arch.readout:
                job.notes.append(
                    "softmax readout (model.loss: cross_entropy): its synaptic events are "
                    "counted as the top layer's spikes reaching its units; the softmax and the "
                    "nudge it feeds back are not counted"
                )
    elif spiking:
        model(x)
        native["inference"] = _spiking_ep_native(model.last_forward_stats, sizes, False)
        result = model.learning_step(x_train, y_train, gen)
        native["training"] = _spiking_ep_native(result.stats, sizes, True)
    else:
        # Rate EP on a digital accelerator: the dense products as MACs, one update per neuron
        # and step, every synapse updated once per learning step.
        steps = model.phases
        neurons = sum(sizes[1:])
        for job, flops, updates in (
            ("inference", dense_inf.totals()["flop"], neurons * steps.free_steps),
            (
                "training",
                dense_train.totals()["flop"],
                neurons * (steps.free_steps + 2 * steps.nudged_steps),
            ),
        ):
            events = JobEvents()
            events.add("all", "mac", flops / 2)
            events.add("all", "neuron_update", updates)
            if job == "training":
                events.add("all", "weight_update", sum(p.numel() for p in model.parameters()))
            events.notes.append("dense: MACs = counted FLOPs / 2; no spikes")
            native[job] = events
    model.zero_grad(set_to_none=True)
    details = {"sizes": sizes, "free_steps": model.phases.free_steps}
    details["nudged_steps"] = model.phases.nudged_steps
    if spiking or conv_spiking:
        details["spike_rates"] = {
            _layer_name(n, len(sizes) - 1): model.last_forward_stats.get(
                f"spikes_layer{n}_per_sample", 0.0
            )
            / (size * model.phases.free_steps)
            for n, size in enumerate(sizes)
        }
        details["dense_twin"] = "rate EP, continuous solver, step epsilon, same steps and beta"
    return RunEvents(
        run.config.algorithm,
        {"inference": len(x), "training": len(x_train)},
        native,
        dense,
        details,
    )


def count_ttfs_events(run, x: torch.Tensor, y: torch.Tensor, x_train, y_train) -> RunEvents:
    """TTFS run: spikes and synaptic events per layer from the real spike times; training adds
    the host's exact backward (~8 FLOPs per causal (input, output) pair)."""
    model = run.model
    native: dict[str, JobEvents] = {}
    dense: dict[str, JobEvents] = {}
    for job, xs in (("inference", x), ("training", x_train)):
        with torch.no_grad():
            times = model.encode(xs)
            layers = model.forward_times(times)
        events, reference = JobEvents(), JobEvents()
        inputs = times
        for n, out in enumerate(layers):
            if model.config.model.bias_times is not None:
                bias = torch.full_like(inputs[:, :1], model.config.model.bias_times[n])
                inputs = torch.cat([inputs, bias], dim=1)
            name = "forward:" + ("output" if n == len(layers) - 1 else f"hidden{n + 1}")
            n_out = out.shape[1]
            spikes_in = torch.isfinite(inputs).sum(1).double().mean().item()
            causal = (inputs[:, :, None] < out[:, None, :]).sum((1, 2)).double().mean().item()
            events.add(name, "synaptic_event", spikes_in * n_out)
            events.add(name, "spike_route", spikes_in)
            _add_memory(events, "forward", spikes_in * n_out, 0.0)
            reference.add(name, "flop", 4.0 * inputs.shape[1] * n_out + 40.0 * n_out)
            if job == "training":
                backward = name.replace("forward:", "backward:")
                events.add(backward, "flop", 8.0 * causal)  # on the host
                reference.add(backward, "flop", 8.0 * causal)
            inputs = out
        events.notes.append(
            "synaptic events = input spikes (incl. bias spike) x fan-out; neurons integrate "
            "per event (no separate time-stepped updates); training: forward on the substrate, "
            "exact backward on the host counted as FLOPs"
        )
        reference.notes.append(
            "dense closed form: a1, b sums over every (input, output) pair (4 FLOPs) + ~40 per "
            "neuron for W0; training adds ~8 FLOPs per causal pair"
        )
        native[job], dense[job] = events, reference
    return RunEvents(
        "ttfs",
        {"inference": len(x), "training": len(x_train)},
        native,
        dense,
        {"sizes": model.sizes, "tau_ratio": model.config.model.tau_ratio},
    )


def count_run_events(run, x, y, x_train, y_train) -> RunEvents:
    if run.config.algorithm == "ttfs":
        return count_ttfs_events(run, x, y, x_train, y_train)
    return count_ep_events(run, x, y, x_train, y_train)
