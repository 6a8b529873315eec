"""Energy module: event counters, device profiles, pricing, measurement fallbacks."""

from __future__ import annotations

import math

import pytest
import torch

from eqspike.ep.spiking import EventCounts, spike_fan_out
from eqspike.errors import ConfigError
from eqspike.hardware import measure
from eqspike.hardware.counting import JobEvents, RunEvents, count_ttfs_events
from eqspike.hardware.profiles import DeviceProfile, load_profile, load_profiles
from eqspike.hardware.report import price, price_run, to_markdown


def test_event_counter_on_a_known_raster():
    """784-500-10 style net [3, 4, 2]: input spikes reach the hidden layer only, hidden spikes
    reach the output (the input is clamped), output spikes reach the hidden layer."""
    sizes = [3, 4, 2]
    assert [spike_fan_out(sizes, n) for n in range(3)] == [4, 2, 4]
    counts = EventCounts()
    raster = [[2, 1, 0], [0, 3, 1]]  # spikes per layer at two steps, for 1 sample
    for step in raster:
        counts.add(sizes, [float(s) for s in step], rows=1)
    per_sample = counts.per_sample(1)
    assert per_sample["spikes_per_sample"] == 7
    assert per_sample["synaptic_events_per_sample"] == 2 * 4 + 1 * 2 + 3 * 2 + 1 * 4
    assert per_sample["neuron_updates_per_sample"] == 2 * (4 + 2)


def test_ttfs_counts_from_real_spike_times():
    """Two samples through a known 3-input, 2-output layer: synaptic events = spiking inputs x
    fan-out; the backward's FLOPs follow the causal (input before output) pairs."""
    from eqspike.train.config import load_config
    from eqspike.ttfs.network import TTFSNetwork

    config = load_config(
        "ttfs/yinyang",
        [
            "model.layers=[3, 2]",
            "model.bias_times=null",
            "model.init_mean=[1.0]",
            "model.init_std=[0.0]",
            "stabiliser.max_missing=[1.0]",
            "encoding.silent_background=true",
        ],
    )
    net = TTFSNetwork(config, torch.Generator().manual_seed(0)).double().eval()
    # features 0 / 0.5 / 1 -> times 0.15, 1.075, 2.0 (= t_late: silent)
    x = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.0, 0.5]], dtype=torch.float64)

    class Run:
        model = net

    events = count_ttfs_events(Run, x, None, x, None)
    inference = events.native["inference"].totals()
    assert inference["spike_route"] == pytest.approx((2 + 3) / 2)  # spiking inputs per sample
    assert inference["synaptic_event"] == pytest.approx((2 + 3) / 2 * 2)
    out = net(x)
    times = net.encode(x)
    causal = (times[:, :, None] < out[:, None, :]).sum().item() / 2
    assert events.native["training"].totals()["flop"] == pytest.approx(8 * causal)


def test_shipped_profiles_load_and_carry_citations():
    profiles = {p.name: p for p in load_profiles()}
    assert {"loihi", "truenorth", "horowitz45_fp32", "gpu_h100_datasheet"} <= set(profiles)
    assert profiles["loihi"].costs["synaptic_event"].pj == 23.6
    assert profiles["gpu_h100_datasheet"].costs["flop"].pj == 10.5
    assert all(p.citation for p in profiles.values())
    assert profiles["brainscales2"].per_classification.uj is None  # not invented


def test_bad_profile_is_a_clear_error(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "name: mine\ndescription: x\nkind: digital\ncitation: me\ncosts:\n  sneeze: {pj: 1}\n"
    )
    with pytest.raises(ConfigError, match="unknown event kinds"):
        load_profile(path)
    with pytest.raises(ConfigError, match="unknown device profile"):
        load_profiles(["nope"])


def _profile(kind="neuromorphic", **costs) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {
            "name": f"test_{kind}",
            "description": "",
            "kind": kind,
            "citation": "test",
            "utilisation": 0.5 if kind == "gpu" else None,
            "costs": {k: {"pj": v} for k, v in costs.items()},
        }
    )


def test_pricing_a_synthetic_run_with_known_counts():
    native = JobEvents()
    native.add("hidden1", "synaptic_event", 1000)
    native.add("output", "synaptic_event", 100)
    native.add("all", "neuron_update", 50)
    native.add("all", "weight_update", 7)
    dense = JobEvents()
    dense.add("all", "flop", 2e6)
    events = RunEvents(
        "eqspike",
        {"inference": 1, "training": 1},
        {"inference": native, "training": native},
        {"inference": dense, "training": dense},
    )
    chip = _profile(synaptic_event=2.0, neuron_update=10.0)
    gpu = _profile("gpu", flop=1.0)
    priced = price(native, chip)
    assert priced["pj_per_sample"] == 1100 * 2.0 + 50 * 10.0
    assert priced["per_layer_pj"] == {"hidden1": 2000.0, "output": 200.0, "all": 500.0}
    assert priced["not_priced"] == {"weight_update": 7}
    assert price(dense, gpu)["pj_per_sample"] == 2e6 / 0.5  # utilisation 50 %
    assert price(dense, gpu, utilisation=0.1)["pj_per_sample"] == pytest.approx(2e7)
    table = price_run(events, [chip, gpu])
    ratio = table["profiles"]["test_neuromorphic"]["ratio_vs_gpu"]["inference"]
    assert ratio == pytest.approx(4e6 / 2700)
    report = {
        "run_dir": "r",
        "algorithm": "eqspike",
        "events": events.to_json(),
        "energy": table,
        "measured": {},
        "assumptions": ["a"],
        "pitfalls": ["p"],
    }
    assert "test_neuromorphic" in to_markdown(report) and "weight_update" in to_markdown(report)


def test_gpu_measurement_is_skipped_cleanly_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the NVML path is exercised by `eqspike energy`")
    result = measure.gpu_energy(lambda: 1)
    assert result["joules_per_sample"] is None and "GPU" in result["reason"]


def test_cpu_measurement_reads_rapl_counters(tmp_path, monkeypatch):
    package = tmp_path / "intel-rapl:0"
    package.mkdir()
    counter = package / "energy_uj"
    counter.write_text("1000000")
    monkeypatch.setattr(measure, "RAPL_ROOT", tmp_path)

    def work() -> int:  # each call "uses" 0.5 J for 10 samples
        counter.write_text(str(int(counter.read_text()) + 500_000))
        return 10

    result = measure.cpu_energy(work, min_seconds=0.01)
    assert result["joules_per_sample"] == pytest.approx(0.05)
    monkeypatch.setattr(measure, "RAPL_ROOT", tmp_path / "missing")
    missing = measure.cpu_energy(work, min_seconds=0.01)
    assert missing["joules_per_sample"] is None and "RAPL" in missing["reason"]
    assert not math.isnan(result["seconds"])


def test_conv_spike_fan_out_and_spiking_conv_counts():
    """Hand-counted fan-outs of a conv net, and per-layer spike counts of the Sigma-Delta
    solver that add up over the phases of a learning step."""
    from eqspike.ep.conv import ConvEnergy, LayerSpec
    from eqspike.ep.estimators import EquilibriumPropagation, Phases
    from eqspike.ep.sigma_delta import SigmaDeltaSolver

    layers = [
        LayerSpec("conv", channels=4, kernel=3, pool="avg"),  # (1, 8, 8) -> (4, 3, 3)
        LayerSpec("fc", units=5),
        LayerSpec("fc", units=2),
    ]
    energy = ConvEnergy((1, 8, 8), layers, torch.Generator().manual_seed(0))
    arch = energy.arch
    # layer 1 (conv maps): up into fc 5; down only into the clamped input -> 5
    # layer 2 (fc 5): up 2, down into the 36 conv units; layer 3: down 5
    assert [arch.spike_fan_out(n) for n in (1, 2, 3)] == [5, 2 + 36, 5]
    two_conv = ConvEnergy(
        (1, 12, 12),
        [LayerSpec("conv", channels=2, kernel=3), LayerSpec("conv", channels=3, kernel=2)],
    ).arch  # (2, 5, 5) -> (3, 2, 2)
    # layer 1: up 3 channels x 2x2 kernel = 12; layer 2: down 4 (avg unpool) x 2 x 2x2 = 32
    assert two_conv.spike_fan_out(1) == 12 and two_conv.spike_fan_out(2) == 32
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 8, 8, generator=g)
    target = torch.nn.functional.one_hot(torch.randint(0, 2, (6,), generator=g), 2).float()
    solver = SigmaDeltaSolver(0.5)
    result = EquilibriumPropagation(0.5, "centered").gradients(
        solver, energy.params(), x, target, Phases(20, 5)
    )
    stats = result.stats
    assert stats["free_neuron_updates_per_sample"] == 20 * (36 + 5 + 2)
    assert stats["neuron_updates_per_sample"] == (20 + 2 * 5) * (36 + 5 + 2)
    total = sum(stats[f"spikes_layer{n}_per_sample"] for n in (1, 2, 3))
    assert stats["spikes_per_sample"] == pytest.approx(total)
    assert stats["spikes_per_sample"] >= stats["free_spikes_per_sample"] > 0
