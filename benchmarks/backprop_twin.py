"""Reference: what the conv EP configs' layers reach when trained by backprop.

The *feed-forward twin* of a conv EP config is the same network read bottom-up with no
feedback: s_n = σ(P(W_n ⋆ s_{n-1}) + b_n) with σ the hard sigmoid, the output layer (or the
softmax readout) on top. It is trained here by ordinary backprop of the config's own cost with
the config's own data split, batch size, augmentation, optimizer, per-layer learning rates,
schedule and epochs: only the free phase's feedback and the EP gradient estimate through the
spiking dynamics are gone. This is not an EP measurement. It says whether the layers and the
recipe can reach a target at all, so that a gap between an EP run and its target is put either
on the architecture and recipe or on what EP through spikes makes of them.

    OMP_NUM_THREADS=2 python benchmarks/backprop_twin.py conv/fashion conv/fashion_ce \
        --data-dir ../shared/data

writes ``benchmarks/results/backprop_twin.json``. For each config label ``<label>`` (the
config name after ``conv/``, plus ``--label-suffix``): ``<label>_test_accuracy``,
``<label>_validation_accuracy`` and ``<label>_train_accuracy`` per epoch (train: on the images
as trained, augmented where the config augments), ``<label>_final_test_accuracy``,
``<label>_epoch_seconds``, ``<label>_silent_fraction`` (per free layer, the fraction of
units with drive ≤ 0 on the first 2000 test images after the last epoch; ``_by_epoch``: after
each epoch) and ``<label>_overrides`` (the ``--set`` values it ran with).
Results of earlier invocations are kept. Any config key can be changed with ``--set`` (e.g.
``--set data.augment_shift=1``), and ``--epochs`` shortens the run (the cosine schedule
follows it). Second stages (``train.init_from``) are refused: give the first stage and the
stage's augmentation instead.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import kept_results, record

from eqspike.ep.conv import ConvParams
from eqspike.ep.recipe import ConvEPConfig, build_conv_ep
from eqspike.neurons.rate import hard_sigmoid
from eqspike.train.config import load_config
from eqspike.train.trainer import augment_training_batch, load_splits

NAME = "backprop_twin"


def feed_forward_drives(params: ConvParams, x: torch.Tensor) -> list[torch.Tensor]:
    """The drive of each free layer, each driven from below only (``layer_drive`` adds the
    feedback of layer n+1 only when that layer is in ``acts``)."""
    x_drive = params.input_drive(x)
    drives: list[torch.Tensor] = []
    acts: list[torch.Tensor] = []
    for n in range(params.arch.n_free):
        drives.append(params.layer_drive(x_drive, acts, n))
        acts.append(hard_sigmoid(drives[-1]))
    return drives


def feed_forward(params: ConvParams, x: torch.Tensor) -> torch.Tensor:
    """The twin's prediction: the output layer or the readout on top of the bottom-up sweep."""
    return params.prediction(hard_sigmoid(feed_forward_drives(params, x)[-1]))


def silent_fractions(params: ConvParams, x: torch.Tensor) -> list[float]:
    """Per free layer, the fraction of units whose drive is ≤ 0 (the hard sigmoid passes them
    no gradient); ``conv_fixed_point.py`` measures the same at the EP runs' fixed points."""
    with torch.no_grad():
        return [round(float((d <= 0).float().mean()), 4) for d in feed_forward_drives(params, x)]


def accuracy(params: ConvParams, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    with torch.no_grad():
        correct = sum(
            (feed_forward(params, x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
            for i in range(0, len(y), batch)
        )
    return correct / len(y)


def train_twin(config: ConvEPConfig, data_dir: str | None) -> dict[str, list]:
    """Train the twin of ``config`` by backprop; per-epoch accuracies, seconds and silent
    fractions."""
    if config.optimizer.schedule != "cosine" or config.optimizer.kind != "adam":
        raise SystemExit("backprop_twin follows Adam + cosine recipes only (the conv configs').")
    torch.manual_seed(config.seed)
    network = build_conv_ep(config, torch.Generator().manual_seed(config.seed))
    splits = load_splits(config, data_dir)
    prepare = network.prepare_input
    train_x, train_y = prepare(splits.train.x.float()), splits.train.y
    test_x, test_y = prepare(splits.test.x.float()), splits.test.y
    val = splits.validation
    val_x = prepare(val.x.float()) if val is not None else None
    cfg = config.optimizer
    layers = network.layer_parameters()
    groups = [
        {"params": ps, "lr": lr} for ps, lr in zip(layers, cfg.layer_lrs(len(layers)), strict=True)
    ]
    optimizer = torch.optim.Adam(groups)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.train.epochs)
    history: dict[str, list] = {
        "test": [],
        "validation": [],
        "train": [],
        "seconds": [],
        "silent": [],
    }
    for epoch in range(1, config.train.epochs + 1):
        order = torch.randperm(
            len(train_y), generator=torch.Generator().manual_seed(config.seed + epoch)
        )
        start, correct = time.perf_counter(), 0
        for b, idx in enumerate(order.split(config.data.batch_size), start=1):
            x, y = train_x[idx], train_y[idx]
            x = augment_training_batch(config, x, epoch, b)
            params = network.energy.params()
            prediction = feed_forward(params, x)
            loss = params.cost(prediction, F.one_hot(y, prediction.shape[1]).float()).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += (prediction.argmax(1) == y).sum().item()
        schedule.step()
        params = network.energy.params()
        history["seconds"].append(time.perf_counter() - start)
        history["train"].append(correct / len(train_y))
        history["test"].append(accuracy(params, test_x, test_y))
        history["silent"].append(silent_fractions(params, test_x[:2000]))
        if val_x is not None:
            history["validation"].append(accuracy(params, val_x, val.y))
        print(
            f"{config.name} epoch {epoch}: train {history['train'][-1]:.4f} test "
            f"{history['test'][-1]:.4f} val {(history['validation'] or [float('nan')])[-1]:.4f} "
            f"({history['seconds'][-1]:.0f} s)",
            flush=True,
        )
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", help="conv EP configs (shipped name or path)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label-suffix", default="", help="appended to each config's label")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    metrics, commands = kept_results(NAME)  # earlier invocations' metrics and commands
    for name in args.configs:
        overrides = list(args.set) + ([f"train.epochs={args.epochs}"] if args.epochs else [])
        config = load_config(name, overrides)
        if not isinstance(config, ConvEPConfig):
            raise SystemExit(f"{name} is not a conv EP config (algorithm: conv_ep).")
        if config.train.init_from:
            raise SystemExit(
                f"{name} is a later stage (train.init_from); give its first stage and its "
                "augmentation with --set data.augment_shift=1 --set data.augment_hflip=true."
            )
        label = name.removeprefix("conv/").removesuffix(".yaml") + args.label_suffix
        history = train_twin(config, args.data_dir)
        metrics[f"{label}_test_accuracy"] = [round(a, 4) for a in history["test"]]
        metrics[f"{label}_validation_accuracy"] = [round(a, 4) for a in history["validation"]]
        metrics[f"{label}_train_accuracy"] = [round(a, 4) for a in history["train"]]
        metrics[f"{label}_final_test_accuracy"] = round(history["test"][-1], 4)
        metrics[f"{label}_silent_fraction"] = history["silent"][-1]
        metrics[f"{label}_silent_fraction_by_epoch"] = history["silent"]
        metrics[f"{label}_overrides"] = overrides
        metrics[f"{label}_epoch_seconds"] = round(
            sum(history["seconds"]) / len(history["seconds"]), 1
        )
        record(
            NAME,
            metrics,
            command=commands,
            notes="Feed-forward twins of conv EP configs trained by backprop (not EP): what "
            "each architecture + recipe reaches with exact gradients; one seed each.",
        )


if __name__ == "__main__":
    main()
