"""The shared trainer: learning, checkpoints, exact resume, divergence, CLI, data parallel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import eqspike
from eqspike.cli import main
from eqspike.errors import CheckpointError, ConfigError, DivergenceError
from eqspike.train.checkpoint import latest_checkpoint_path

QUICK = ["data.train_subset=400", "data.test_subset=200", "train.plots=false"]


def weights(run_dir):
    return load_file(str(latest_checkpoint_path(Path(run_dir)) / "weights.safetensors"))


def test_default_demo_learns_yinyang(tmp_path):
    summary = eqspike.train(None, ["train.epochs=12"], tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert summary["test_acc"] > 0.90
    run = Path(summary["run_dir"])
    for name in (
        "config.yaml",
        "environment.json",
        "metrics.jsonl",
        "metrics.csv",
        "curves.png",
        "summary.json",
        "train.log",
    ):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    assert rows[-1]["test_acc"] == summary["test_acc"]


def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path):
    opts = [*QUICK, "optimizer.kind=adam", "estimator.kind=random_sign"]
    eqspike.train(None, [*opts, "train.epochs=4"], tmp_path / "full", quiet=True)
    stopped = eqspike.train(
        None, [*opts, "train.epochs=4"], tmp_path / "split", quiet=True, stop_after_epoch=2
    )
    assert stopped["status"] == "stopped" and stopped["epochs"] == 2
    eqspike.resume(tmp_path / "split", quiet=True)
    full, split = weights(tmp_path / "full"), weights(tmp_path / "split")
    assert full.keys() == split.keys()
    for key in full:
        assert torch.equal(full[key], split[key]), key
    rows = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]


def test_resume_with_overrides_records_them_in_config_and_log(tmp_path):
    run = tmp_path / "r"
    eqspike.train(None, [*QUICK, "train.epochs=1"], run, quiet=True)
    eqspike.resume(run, ["train.epochs=2"], quiet=True)
    assert "epochs: 2" in (run / "config.yaml").read_text()
    assert "from epoch 2 on with --set train.epochs=2" in (run / "train.log").read_text()


def test_a_new_run_never_overwrites_an_existing_one(tmp_path):
    eqspike.train(None, [*QUICK, "train.epochs=1"], tmp_path / "r", quiet=True)
    before = weights(tmp_path / "r")
    with pytest.raises(CheckpointError, match=r"already holds a run.*--resume"):
        eqspike.train(None, [*QUICK, "train.epochs=1", "seed=5"], tmp_path / "r", quiet=True)
    after = weights(tmp_path / "r")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_checkpoints_are_complete_and_pruned(tmp_path):
    eqspike.train(
        None, [*QUICK, "train.epochs=3", "train.keep_checkpoints=2"], tmp_path / "r", quiet=True
    )
    root = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["epoch-0002", "epoch-0003", "latest"]
    meta = json.loads((root / "epoch-0003" / "meta.json").read_text())
    assert meta["epoch"] == 3 and "test_acc" in meta["metrics"]
    assert not list(root.glob(".*"))  # no temp folders left behind


def test_divergence_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    opts = [
        *QUICK,
        "optimizer.kind=sgd",
        "optimizer.lr=1e6",
        "train.max_abs_weight=50",
        "train.epochs=3",
    ]
    with pytest.raises(
        DivergenceError, match=r"diverged at epoch 1, batch \d+/20.*reached.*max_abs_weight"
    ) as info:
        eqspike.train(None, opts, tmp_path / "r", quiet=True)
    assert "epoch-0000" in str(info.value)
    assert latest_checkpoint_path(tmp_path / "r").name == "epoch-0000"
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "diverged"


def test_cli_train_eval_and_errors(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--set",
                "train.epochs=1",
                *[arg for o in QUICK for arg in ("--set", o)],
                "--out",
                str(tmp_path / "r"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "r")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == result["recorded_accuracy"]
    assert main(["train", "--set", "solver.kind=magic"]) == 2
    assert "solver.kind" in capsys.readouterr().err
    assert main(["train", "--set", "data.augment_hflip=true"]) == 2  # Yin-Yang: no images
    assert "data.augment_hflip=false" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2


def test_cli_gradcheck(tmp_path, capsys):
    assert (
        main(
            [
                "gradcheck",
                "demo/yinyang",
                "--set",
                "estimator.beta=0.001",
                "--batch",
                "8",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "gradcheck.json").read_text())
    assert data["variants"]["centered"]["mean_cosine"] > 0.99
    assert (tmp_path / "gradcheck.png").is_file()


def test_short_mnist_subset_run_learns(tmp_path, mnist_root):
    summary = eqspike.train(
        "rate_ep/mnist",
        [
            "data.train_subset=3000",
            "data.validation=0",
            "data.test_subset=1000",
            "train.epochs=4",
            "model.layers=[784,100,10]",
            "train.plots=false",
        ],
        tmp_path / "r",
        data_dir=mnist_root,
        quiet=True,
    )
    assert summary["test_acc"] > 0.85


def torchrun_cli(args: list[str]) -> None:
    """``eqspike ARGS`` in two gloo processes under torchrun (fails the test on error)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run(
        [*cmd, "-m", "eqspike.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def torchrun_train(config: list[str], overrides: list[str], out) -> None:
    """``eqspike train`` in two processes under torchrun."""
    sets = [arg for o in overrides for arg in ("--set", o)]
    torchrun_cli(["train", *config, *sets, "--out", str(out), "--quiet"])


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo tested on Linux")
def test_two_process_torchrun_equals_single_process(tmp_path):
    opts = [
        *QUICK,
        "train.epochs=2",
        "data.batch_size=20",
        "train.dtype=float64",
        "optimizer.kind=adam",
        "estimator.kind=random_sign",
    ]
    torchrun_train([], opts, tmp_path / "ddp")
    eqspike.train(None, opts, tmp_path / "single", quiet=True)
    ddp, single = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-9, atol=1e-11)
    env_info = json.loads((tmp_path / "ddp" / "environment.json").read_text())
    assert env_info["world_size"] == 2


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo tested on Linux")
def test_two_process_torchrun_ttfs_with_weight_bumps(tmp_path):
    """TTFS under torchrun: the ranks agree on weight bumps (one all-reduce of the flag and the
    mean bump) and on gradient steps, so training runs through and the run is written once."""
    opts = [
        "train.epochs=2",
        "model.layers=[4, 30, 3]",
        "model.init_mean=[-0.5, -0.5]",  # silent at first: the bump path is exercised
        "data.batch_size=50",
        "train.plots=false",
    ]
    torchrun_train(["ttfs/yinyang"], opts, tmp_path / "ddp")
    rows = [json.loads(r) for r in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_bumped"] > 0  # some batches were bumps, not steps
    assert rows[-1]["test_acc"] > 0.4


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo tested on Linux")
def test_two_process_torchrun_ttfs_noise_follows_the_example(tmp_path):
    """Input jitter, trial-to-trial threshold noise and spike jitter are drawn per example:
    two processes must give each example the noise one process gives it, and an odd last batch
    (25 examples: shares of 13 and 12) must still average to the batch's mean gradient."""
    opts = [
        "train.epochs=2",
        "model.layers=[4, 30, 3]",
        "data.train_subset=425",
        "data.batch_size=50",
        "encoding.jitter=0.3",
        "distortions.threshold_noise=0.05",
        "distortions.spike_jitter=0.02",
        "train.plots=false",
    ]
    torchrun_train(["ttfs/yinyang"], opts, tmp_path / "ddp")
    eqspike.train("ttfs/yinyang", opts, tmp_path / "single", quiet=True)
    rows = [json.loads(r) for r in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert all(row["train_bumped"] == 0 for row in rows)  # bumps average differently by design
    # a run started in one process and resumed in two continues the same trajectory
    eqspike.train("ttfs/yinyang", opts, tmp_path / "switch", quiet=True, stop_after_epoch=1)
    torchrun_cli(["train", "--resume", str(tmp_path / "switch"), "--quiet"])
    assert (
        "(epoch 1) in 2 data-parallel processes" in (tmp_path / "switch" / "train.log").read_text()
    )
    single = weights(tmp_path / "single")
    for other in ("ddp", "switch"):
        ddp = weights(tmp_path / other)
        for key in single:
            torch.testing.assert_close(ddp[key], single[key], rtol=1e-9, atol=1e-11)


def test_spiking_conv_resume_is_exact_with_bernoulli_bfloat16_and_warm_start(tmp_path, mnist_root):
    """The new solver options keep runs reproducible across a resume: Bernoulli streams come
    from the checkpointed generator, bfloat16 drives and the warm start are deterministic, and
    the shifts and mirrors are drawn from (seed, epoch, batch)."""
    opts = [
        "data.train_subset=96",
        "data.test_subset=50",
        "data.batch_size=32",
        "solver.free_steps=6",
        "solver.nudged_steps=3",
        "solver.neuron=bernoulli",
        "solver.drive_dtype=bfloat16",
        "solver.warm_start=true",
        "data.augment_shift=1",
        "data.augment_hflip=true",
        "train.epochs=2",
        "train.plots=false",
    ]
    data = str(mnist_root)
    eqspike.train("conv/mnist_spiking_quick", opts, tmp_path / "full", data, quiet=True)
    eqspike.train(
        "conv/mnist_spiking_quick", opts, tmp_path / "split", data, True, stop_after_epoch=1
    )
    eqspike.resume(tmp_path / "split", data_dir=data, quiet=True)
    full, split = weights(tmp_path / "full"), weights(tmp_path / "split")
    for key in full:
        assert torch.equal(full[key], split[key]), key


def test_cuda_runs_ask_for_deterministic_kernels(monkeypatch):
    """On CUDA the trainer switches on deterministic kernels (bit-for-bit replays from the
    config and seed); CPU runs are left alone. Checked without a GPU: the switches only."""
    from eqspike.train.trainer import configure_determinism

    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append(k))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_determinism("cpu", True)
    configure_determinism("cuda", False)
    assert calls == [] and torch.backends.cudnn.benchmark
    configure_determinism("cuda", True)
    assert calls == [{"warn_only": True}]
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_a_stop_file_ends_the_run_cleanly_after_its_epoch(tmp_path):
    """RUN/STOP (for a run in the background) stops after the current epoch with status
    'stopped', is removed, and the run resumes to the end."""
    run = tmp_path / "r"
    run.mkdir()
    (run / "STOP").touch()
    summary = eqspike.train(None, [*QUICK, "train.epochs=3"], run, quiet=True)
    assert summary["status"] == "stopped" and summary["epochs"] == 1
    assert not (run / "STOP").exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"
    resumed = eqspike.resume(run, quiet=True)
    assert resumed["status"] == "completed" and resumed["epochs"] == 3


def test_init_from_starts_a_new_schedule_from_another_runs_weights(tmp_path):
    """A second stage (fine-tuning, e.g. with augmentation) starts from the first stage's
    final weights with a fresh optimiser and schedule; a run that does not fit is refused."""
    eqspike.train(None, [*QUICK, "train.epochs=2"], tmp_path / "first", quiet=True)
    stage = [*QUICK, "train.epochs=1", "train.keep_checkpoints=2"]
    eqspike.train(
        None, [*stage, f"train.init_from={tmp_path / 'first'}"], tmp_path / "second", quiet=True
    )
    start = load_file(str(tmp_path / "second/checkpoints/epoch-0000/weights.safetensors"))
    first = weights(tmp_path / "first")
    assert start.keys() == first.keys()
    for key in first:
        assert torch.equal(start[key], first[key]), key
    with pytest.raises(ConfigError, match="do not fit this model"):
        eqspike.train(
            None,
            [*stage, "model.layers=[4,7,3]", f"train.init_from={tmp_path / 'first'}"],
            tmp_path / "third",
            quiet=True,
        )


def test_accuracy_at_chance_warns_with_the_fix():
    from eqspike.train.trainer import chance_warnings

    collapsed = chance_warnings({"train_acc": 0.098, "test_acc": 0.1}, 0.102)
    assert len(collapsed) == 1 and "most frequent class" in collapsed[0]
    assert "optimizer.lr" in collapsed[0]
    assert chance_warnings({"train_acc": 0.098, "test_acc": 0.62}, 0.102) == []
    assert chance_warnings({"train_acc": 0.41, "test_acc": 0.40}, 0.41) != []  # Yin-Yang-like
    assert chance_warnings({"train_acc": 0.6, "test_acc": 0.55}, 0.41) == []
    assert chance_warnings({"test_acc": 0.1}, 0.1) == []


def test_the_collapse_check_runs_every_epoch_and_reaches_the_log(tmp_path, monkeypatch):
    """The training loop passes each epoch's row and the training set's majority share to
    chance_warnings and logs what it returns."""
    from eqspike.train import trainer as trainer_module

    calls = []

    def spy(row, majority):
        calls.append((row["epoch"], majority))
        return ["collapse-check-reached-the-log"]

    monkeypatch.setattr(trainer_module, "chance_warnings", spy)
    eqspike.train(None, [*QUICK, "train.epochs=2"], tmp_path / "r", quiet=True)
    assert [epoch for epoch, _ in calls] == [1, 2] and 0.0 < calls[0][1] < 1.0
    log_text = (tmp_path / "r" / "train.log").read_text()
    assert log_text.count("collapse-check-reached-the-log") == 2


def test_summary_says_how_far_a_run_got_after_every_epoch(tmp_path, monkeypatch):
    """A run killed between epochs (SIGKILL, a lost machine) leaves a summary of its last
    finished epoch, marked unfinished, not one from an earlier session."""
    from eqspike.train import trainer as trainer_module

    seen = []
    real_barrier = trainer_module.dist_utils.barrier

    def barrier_spy(ctx):  # the trainer's barrier after each epoch's checkpoint (and others)
        path = tmp_path / "r" / "summary.json"
        if path.exists():
            seen.append(json.loads(path.read_text()))
        return real_barrier(ctx)

    monkeypatch.setattr(trainer_module.dist_utils, "barrier", barrier_spy)
    final = eqspike.train(None, [*QUICK, "train.epochs=2"], tmp_path / "r", quiet=True)
    assert [(s["status"], s["epochs"]) for s in seen] == [("unfinished", 1), ("unfinished", 2)]
    assert seen[-1]["test_acc"] == final["test_acc"] and final["status"] == "completed"
