"""Post-hoc weight averaging (`eqspike average`): the mean of chosen epochs, a usable run."""

import pytest
import torch
from safetensors.torch import load_file

import eqspike
from eqspike.cli import main
from eqspike.errors import CheckpointError
from eqspike.train.average import average_run, parse_epochs
from eqspike.train.evaluate import evaluate_run

QUICK = ["data.train_subset=400", "data.test_subset=200", "train.plots=false"]


def epoch_weights(run_dir, epoch):
    return load_file(str(run_dir / "checkpoints" / f"epoch-{epoch:04d}" / "weights.safetensors"))


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("avg") / "run"
    opts = [*QUICK, "train.epochs=3", "train.keep_checkpoints=3"]
    eqspike.train(None, opts, run, quiet=True)
    return run


def test_average_is_the_mean_of_the_chosen_epochs_and_evaluates(source_run, tmp_path):
    out = tmp_path / "avg"
    assert main(["average", str(source_run), "--epochs", "2-3", "--out", str(out)]) == 0
    averaged = load_file(str(out / "checkpoints" / "epoch-0003" / "weights.safetensors"))
    second, third = epoch_weights(source_run, 2), epoch_weights(source_run, 3)
    assert averaged.keys() == third.keys()
    for key in third:
        torch.testing.assert_close(averaged[key], (second[key] + third[key]) / 2)
        assert not torch.equal(second[key], third[key])  # the average is not a copy of one epoch
    result = evaluate_run(out)
    assert result["epoch"] == 3 and 0.0 <= result["accuracy"] <= 1.0
    # a weights-only run: resuming is refused with the way forward, init_from accepts it
    with pytest.raises(CheckpointError, match=r"averaged weights.*train.init_from"):
        eqspike.resume(out, quiet=True)
    summary = eqspike.train(
        None, [*QUICK, "train.epochs=1", f"train.init_from={out}"], tmp_path / "next", quiet=True
    )
    assert summary["status"] == "completed"


def test_average_refuses_missing_epochs_and_bad_ranges(source_run, tmp_path, capsys):
    code = main(["average", str(source_run), "--epochs", "3,7", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code != 0 and "no checkpoint for epoch(s) [7]" in err and "keep_checkpoints" in err
    assert not (tmp_path / "x").exists()  # nothing written
    with pytest.raises(CheckpointError, match="new directory"):
        average_run(source_run, [2, 3], source_run)
    with pytest.raises(CheckpointError, match="range such as 6-10"):
        parse_epochs("six")
    assert parse_epochs("6-8") == [6, 7, 8] and parse_epochs("3,5") == [3, 5]


def test_non_float_tensors_must_agree():
    from eqspike.train.average import average_weights

    same = {"w": torch.ones(2), "mask": torch.tensor([1, 0])}
    other = {"w": torch.zeros(2), "mask": torch.tensor([1, 0])}
    assert torch.equal(average_weights([same, other])["mask"], torch.tensor([1, 0]))
    assert torch.equal(average_weights([same, other])["w"], torch.full((2,), 0.5))
    with pytest.raises(CheckpointError, match=r"'mask'.*cannot be averaged"):
        average_weights([same, {"w": torch.zeros(2), "mask": torch.tensor([0, 1])}])
