"""The one training loop every algorithm shares.

An algorithm provides a model (see :mod:`eqspike.algorithms`); the trainer owns everything else:
data splits and batching (one shuffled order; with N processes each global batch is split
rank::world and per-example noise follows the example, so 1 or N processes train alike), per-batch
random generators derived from (seed, epoch, batch) so that a resumed run replays exactly, the
optimiser and schedule, gradient averaging across ranks, the divergence guard, evaluation,
metrics, plots, checkpoints every epoch, and the run summary.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from eqspike.data.augment import augment_batch
from eqspike.data.datasets import TensorDataset, load_dataset
from eqspike.errors import CheckpointError, ConfigError, DataError, DivergenceError
from eqspike.io import atomic_write_json, atomic_write_text
from eqspike.shard import batch_shard
from eqspike.train import distributed as dist_utils
from eqspike.train.checkpoint import latest_checkpoint_path, load_checkpoint, save_checkpoint
from eqspike.train.config import RunConfig, config_to_yaml
from eqspike.train.environment import environment
from eqspike.train.metrics import MetricsLog

log = logging.getLogger("eqspike")


@dataclass(frozen=True)
class Splits:
    train: TensorDataset
    validation: TensorDataset | None
    test: TensorDataset


def load_splits(config: RunConfig, data_dir: str | Path | None = None) -> Splits:
    """Train / validation / test sets as the ``data`` section describes."""
    cfg = config.data
    folder = data_dir or cfg.dir
    train = load_dataset(cfg.dataset, "train", folder, cfg.download)
    validation = None
    if cfg.validation == "native":
        try:
            validation = load_dataset(cfg.dataset, "validation", folder, cfg.download)
        except (DataError, KeyError) as exc:
            raise ConfigError(
                f"data.validation = 'native' but dataset {cfg.dataset!r} has no validation split; "
                "give a number of training samples to hold out instead (e.g. 10000)."
            ) from exc
    elif cfg.validation > 0:
        if cfg.validation >= len(train):
            raise ConfigError(
                f"data.validation = {cfg.validation} holds out the whole training set "
                f"({len(train)} samples); choose fewer."
            )
        validation = train.subset(slice(len(train) - cfg.validation, None), train.name + "[val]")
        train = train.subset(slice(0, len(train) - cfg.validation))
    if cfg.train_subset is not None:
        train = train.subset(slice(0, cfg.train_subset))
    test = load_dataset(cfg.dataset, "test", folder, cfg.download)
    if cfg.test_subset is not None:
        test = test.subset(slice(0, cfg.test_subset))
    if cfg.repeat_features > 1:
        train, test = (d.repeated(cfg.repeat_features) for d in (train, test))
        validation = validation.repeated(cfg.repeat_features) if validation else None
    return Splits(train, validation, test)


def batch_generator(seed: int, epoch: int, batch: int, stream: int = 0) -> torch.Generator:
    """The random stream of one batch, a pure function of (seed, epoch, batch); ``stream``
    separates independent uses (0: the model's noise, 1: shifts, 2: mirroring)."""
    entropy = [seed, epoch, batch] + ([stream] if stream else [])
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def augment_training_batch(
    config: RunConfig, x: torch.Tensor, epoch: int, batch: int
) -> torch.Tensor:
    """Batch ``batch`` of ``epoch`` with the config's augmentations (``data.augment_*``), each
    from its own stream of (seed, epoch, batch); ``x`` unchanged when the config has none."""
    cfg = config.data
    if not cfg.augments:
        return x
    return augment_batch(
        x,
        cfg.augment_shift,
        cfg.augment_hflip,
        batch_generator(config.seed, epoch, batch, 1),
        batch_generator(config.seed, epoch, batch, 2),
    )


def predict(model: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """Predicted classes: the model's own rule (``predict``, e.g. earliest spike, -1 for "no
    answer") or the argmax of its output scores."""
    rule = getattr(model, "predict", None)
    return rule(output) if rule is not None else output.argmax(1)


def resolve_device_type(kind: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (cuda when a GPU is visible) -> ``cpu`` or ``cuda``."""
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device = 'cuda' but no CUDA GPU is visible; use cpu or auto.")
    return kind


STOP_FILE = "STOP"  # create RUN/STOP to end a run cleanly after its current epoch


def configure_cpu(threads: int | None) -> None:
    """The run's torch CPU threads (on a shared CPU extra threads only spin), and denormal
    floats (decaying membranes, residuals: ~8x slower on CPUs, no information at these
    scales) flushed to zero. Training and evaluation both call it."""
    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


def configure_determinism(device_type: str, deterministic: bool) -> None:
    """On CUDA, ask for deterministic kernels: several ops this project uses (index_add_,
    index_put_ with accumulate, conv backward) otherwise sum in a run-dependent order.
    ``warn_only``: an op without a deterministic kernel warns instead of stopping the run."""
    if device_type != "cuda" or not deterministic:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's reproducible mode
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.name}-{stamp}"


@torch.no_grad()
def evaluation_sums(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, float]:
    """Sums over the samples of: correct predictions (``acc``), ``loss``, and the model's
    per-sample event counts (``last_forward_stats``, spiking models); divide by the count."""
    sums: dict[str, float] = {"acc": 0.0, "loss": 0.0}
    for chunk in torch.arange(len(y)).split(batch_size):
        xb, yb = x[chunk].to(device, dtype), y[chunk].to(device)
        output = model(xb)
        sums["loss"] += model.loss(output, yb).sum().item()
        sums["acc"] += (predict(model, output) == yb).sum().item()
        for key, value in getattr(model, "last_forward_stats", {}).items():
            sums[key] = sums.get(key, 0.0) + value * len(yb)
    return sums


def chance_warnings(row: dict[str, Any], majority: float) -> list[str]:
    """A network whose training and test accuracy are no better than always answering the
    most frequent class (``majority``: that class's share of the training set) has collapsed
    to one answer: no NaN, nothing to stop on, but nothing learned either (seen with the fc
    layers' learning rates raised 10x on conv EP). Say so, with the likely fix."""
    train, test = row.get("train_acc"), row.get("test_acc")
    if train is None or test is None or max(train, test) > majority + 0.01:
        return []
    return [
        f"training and test accuracy ({train:.1%} / {test:.1%}) are no better than always "
        f"answering the most frequent class ({majority:.1%}): the network has stopped telling "
        "inputs apart. If the learning rates were raised, lower optimizer.lr (the top layers' "
        "first) and start again; the checkpoints kept (train.keep_checkpoints, 2 by default) "
        "may still hold weights from before the collapse."
    ]


class Trainer:
    """Trains the model of ``config`` into ``run_dir`` (resuming from it if ``resume``)."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path | None = None,
        data_dir: str | Path | None = None,
        resume: bool = False,
        quiet: bool = False,
    ) -> None:
        from eqspike.algorithms import ALGORITHMS

        self.config = config
        self.quiet = quiet
        device_type = resolve_device_type(config.train.device)
        configure_determinism(device_type, config.train.deterministic)
        self.ctx = dist_utils.init_distributed(device_type)
        self.device = (
            torch.device("cuda", self.ctx.local_rank)
            if device_type == "cuda"
            else torch.device("cpu")
        )
        self.dtype = getattr(torch, config.train.dtype)
        configure_cpu(config.train.threads)
        world = self.ctx.world_size
        if config.data.batch_size % world:
            raise ConfigError(
                f"data.batch_size = {config.data.batch_size} is not divisible by the {world} "
                f"processes; use a multiple of {world}."
            )
        self.run_dir = self._agree_on_run_dir(run_dir)
        if not resume and latest_checkpoint_path(self.run_dir) is not None:
            raise CheckpointError(
                f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir} "
                "or train into another --out (nothing was overwritten)."
            )
        self._setup_logging()

        self.splits = load_splits(config, data_dir)
        config.check_data(self.splits.train.n_inputs, self.splits.train.n_classes)
        labels = self.splits.train.y
        self.majority_share = float(torch.bincount(labels).max()) / max(len(labels), 1)
        if config.data.augments and len(self.splits.train.input_shape) != 3:
            raise ConfigError(
                "data.augment_shift / data.augment_hflip move images, but "
                f"{config.data.dataset} samples have shape {self.splits.train.input_shape}; "
                "set data.augment_shift=0 and data.augment_hflip=false."
            )
        self.train_x, self.train_y = self._to_device(self.splits.train)

        generator = torch.Generator().manual_seed(config.seed)
        self.model: nn.Module = ALGORITHMS[config.algorithm].build(config, generator)
        self.model.to(device=self.device, dtype=self.dtype)
        self.params = [p for group in self.model.layer_parameters() for p in group]
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.metrics = MetricsLog(self.run_dir)
        self.start_epoch = 1
        self.elapsed_before = 0.0
        self._plotted_at = -math.inf
        if resume:
            self._restore()
        else:
            if config.train.init_from:
                self._initialise_from(Path(config.train.init_from))
            if self.ctx.is_main:
                self._write_run_files()
                self._save(0, {})

    def _initialise_from(self, run_dir: Path) -> None:
        path = latest_checkpoint_path(run_dir)
        if path is None:
            raise ConfigError(
                f"train.init_from = {str(run_dir)!r} holds no checkpoint; give a run directory "
                "(one with checkpoints/latest)."
            )
        weights = load_checkpoint(path, self.device).weights
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ConfigError(
                f"train.init_from: the weights of {path} do not fit this model "
                f"({str(exc).splitlines()[0]}); use a run with the same model.layers."
            ) from None
        self.model.to(device=self.device, dtype=self.dtype)

    # --- setup --------------------------------------------------------------------------

    def _agree_on_run_dir(self, run_dir: str | Path | None) -> Path:
        chosen = [str(run_dir or default_run_dir(self.config))]
        if self.ctx.enabled:
            torch.distributed.broadcast_object_list(chosen, src=0)
        path = Path(chosen[0])
        if self.ctx.is_main:
            path.mkdir(parents=True, exist_ok=True)
        dist_utils.barrier(self.ctx)
        return path

    def _setup_logging(self) -> None:
        log.setLevel(logging.INFO)
        log.handlers.clear()
        log.propagate = False
        if not self.ctx.is_main:
            log.addHandler(logging.NullHandler())
            return
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.WARNING if self.quiet else logging.INFO)
        console.setFormatter(logging.Formatter("%(message)s"))
        logfile = logging.FileHandler(self.run_dir / "train.log")
        logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(console)
        log.addHandler(logfile)

    def _to_device(self, data: TensorDataset) -> tuple[torch.Tensor, torch.Tensor]:
        return data.x.to(self.device, self.dtype), data.y.to(self.device)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config.optimizer
        layers = self.model.layer_parameters()
        groups = [
            {"params": ps, "lr": lr}
            for ps, lr in zip(layers, cfg.layer_lrs(len(layers)), strict=True)
        ]
        if cfg.kind == "sgd":
            return torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(groups, weight_decay=cfg.weight_decay)

    def _make_scheduler(self) -> torch.optim.lr_scheduler.LRScheduler:
        cfg = self.config.optimizer
        if cfg.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, self.config.train.epochs
            )
        if cfg.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, cfg.step_epochs, cfg.gamma)
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)

    def _write_run_files(self) -> None:
        atomic_write_text(self.run_dir / "config.yaml", config_to_yaml(self.config))
        env = environment(self.device) | {"world_size": self.ctx.world_size}
        atomic_write_json(self.run_dir / "environment.json", env)

    # --- checkpoints --------------------------------------------------------------------

    def _save(self, epoch: int, row: dict[str, Any]) -> None:
        state = {
            "epoch": epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "elapsed_s": self.elapsed_before,
        }
        meta = {"algorithm": self.config.algorithm, "name": self.config.name, "metrics": row}
        save_checkpoint(
            self.run_dir,
            epoch,
            self.model.state_dict(),
            state,
            meta,
            self.config.train.keep_checkpoints,
        )

    def _restore(self) -> None:
        path = latest_checkpoint_path(self.run_dir)
        if path is None:
            raise CheckpointError(
                f"cannot resume {self.run_dir}: it has no checkpoints/latest; start a new run "
                "instead (without --resume)."
            )
        ckpt = load_checkpoint(path, self.device)
        if "optimizer" not in ckpt.state:
            raise CheckpointError(
                f"cannot resume {self.run_dir}: {path.name} holds averaged weights "
                "(eqspike average) and no optimiser state; evaluate or export it, or start a "
                f"new run from it with --set train.init_from={self.run_dir}."
            )
        self.model.load_state_dict(ckpt.weights)
        self.optimizer.load_state_dict(ckpt.state["optimizer"])
        self.scheduler.load_state_dict(ckpt.state["scheduler"])
        torch.set_rng_state(ckpt.state["torch_rng"])
        self.elapsed_before = float(ckpt.state.get("elapsed_s", 0.0))
        self.start_epoch = ckpt.state["epoch"] + 1
        self.metrics.load(ckpt.state["epoch"])
        if self.ctx.is_main:
            # A longer run (train.epochs raised with --set) keeps its config up to date.
            atomic_write_text(self.run_dir / "config.yaml", config_to_yaml(self.config))
        log.info(
            "resuming %s from %s (epoch %d)%s",
            self.run_dir,
            path.name,
            ckpt.state["epoch"],
            self._process_note(),
        )

    def _process_note(self) -> str:
        """For the log: how many data-parallel processes train (a run may change it on resume,
        which changes its epoch times, not its result)."""
        world = self.ctx.world_size
        return f" in {world} data-parallel processes" if world > 1 else ""

    # --- training -----------------------------------------------------------------------

    def _diverged(self, epoch: int, batch: int, n_batches: int, what: str) -> DivergenceError:
        last = latest_checkpoint_path(self.run_dir)
        message = (
            f"training diverged at epoch {epoch}, batch {batch}/{n_batches}: {what}. "
            f"The last good checkpoint is kept: {last}. Lower the learning rate (optimizer.lr) "
            "or beta, then start again or resume with --resume."
        )
        if self.ctx.is_main:
            atomic_write_json(self.run_dir / "summary.json", self._summary("diverged", message))
        return DivergenceError(message)

    def _check_health(self, epoch: int, batch: int, n_batches: int, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            raise self._diverged(epoch, batch, n_batches, "the loss is NaN or infinite")
        for name, param in self.model.named_parameters():
            if param.grad is not None and not torch.isfinite(param.grad).all():
                raise self._diverged(epoch, batch, n_batches, f"non-finite update of {name}")

    def _check_weights(self, epoch: int, batch: int, n_batches: int) -> None:
        limit = self.config.train.max_abs_weight
        for name, param in self.model.named_parameters():
            peak = param.detach().abs().max()
            if not torch.isfinite(peak) or peak > limit:
                raise self._diverged(
                    epoch,
                    batch,
                    n_batches,
                    f"|{name}| reached {peak.item():.3g} (limit train.max_abs_weight = {limit:g})",
                )

    def _apply_weight_bump(self, result: Any) -> bool:
        """Models that can find a batch unfit to learn from (TTFS: too many silent neurons)
        return ``weight_bump`` (one tensor per parameter) instead of a gradient: the step is
        skipped and the bump added. Across ranks: if any rank bumps, all skip and add the mean
        bump (zero from ranks that did not), so the replicas stay identical."""
        if not getattr(self.model, "bumps_weights", False):
            return False
        bump = getattr(result, "weight_bump", None)
        if self.ctx.enabled:
            (flag,) = dist_utils.sum_across_ranks([float(bump is not None)], self.ctx, self.device)
        else:
            flag = float(bump is not None)
        if flag == 0:
            return False
        with torch.no_grad():
            for param, delta in zip(self.params, bump or [None] * len(self.params), strict=True):
                param.grad = torch.zeros_like(param) if delta is None else delta.clone()
            dist_utils.average_gradients(self.params, self.ctx)
            for param in self.params:
                param.add_(param.grad)
                param.grad = None
        return True

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        rank, world = self.ctx.rank, self.ctx.world_size
        # One shuffled order for every rank (that of a single process); each global batch is
        # split rank::world, so per-example noise can follow the example (eqspike.shard).
        sampler = DistributedSampler(range(len(self.train_y)), 1, 0, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), device=self.device)
        batches = [g for g in order.split(cfg.data.batch_size) if len(g) >= world]
        self.model.train()
        loss_sum = correct = seen = 0.0
        stat_sums: dict[str, float] = {}
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{cfg.train.epochs}",
            leave=False,
            file=sys.stderr,
            disable=True if self.quiet or not self.ctx.is_main else None,
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        for b, global_batch in enumerate(bar, start=1):
            idx = global_batch[rank::world]
            x, y = self.train_x[idx], self.train_y[idx]
            with batch_shard(rank, world, len(global_batch)):
                x = augment_training_batch(cfg, x, epoch, b)
                result = self.model.learning_step(x, y, batch_generator(cfg.seed, epoch, b))
            bumped = self._apply_weight_bump(result)
            if not bumped:  # each rank's mean gradient, weighted by its share of the batch
                share = len(idx) * world / len(global_batch)
                dist_utils.average_gradients(self.params, self.ctx, share)
            self._check_health(epoch, b, len(batches), result.loss)
            if not bumped:
                self.optimizer.step()
            self._check_weights(epoch, b, len(batches))
            loss_sum += result.loss.sum().item()
            correct += (predict(self.model, result.output) == y).sum().item()
            seen += len(y)
            for key, value in result.stats.items():
                stat_sums[key] = stat_sums.get(key, 0.0) + value * len(y)
            if b % 50 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        seconds = time.perf_counter() - start
        keys = sorted(stat_sums)
        loss_sum, correct, seen, *stat_values = dist_utils.sum_across_ranks(
            [loss_sum, correct, seen, *(stat_sums[k] for k in keys)], self.ctx, self.device
        )
        return {
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "epoch_seconds": seconds,
            "train_samples_per_s": seen / seconds,
        } | {f"train_{k}": v / seen for k, v in zip(keys, stat_values, strict=True)}

    def evaluate(self, data: TensorDataset) -> dict[str, float]:
        """Accuracy, loss and event counts per sample on ``data``, sharded over ranks."""
        self.model.eval()
        idx = torch.arange(self.ctx.rank, len(data), self.ctx.world_size)
        with batch_shard(self.ctx.rank, self.ctx.world_size, 0):  # noise independent per rank
            sums = evaluation_sums(
                self.model,
                data.x[idx],
                data.y[idx],
                self.config.data.eval_batch_size,
                self.device,
                self.dtype,
            )
        keys = sorted(sums)
        totals = dist_utils.sum_across_ranks([sums[k] for k in keys], self.ctx, self.device)
        return {k: v / len(data) for k, v in zip(keys, totals, strict=True)}

    def fit(self, stop_after_epoch: int | None = None) -> dict[str, Any]:
        """Train from ``start_epoch`` to ``train.epochs``; returns the run summary.

        ``stop_after_epoch`` ends this session early (status ``stopped``, resumable), e.g. to
        split a long run across sessions without changing its schedule. While it trains,
        summary.json says ``unfinished`` as of the last finished epoch.
        """
        cfg = self.config
        last_epoch = min(cfg.train.epochs, stop_after_epoch or cfg.train.epochs)
        if self.start_epoch == 1:
            log.info(
                "training %s (%s) on %s: %d train / %s validation / %d test samples -> %s%s",
                cfg.name,
                cfg.algorithm,
                cfg.data.dataset,
                len(self.splits.train),
                len(self.splits.validation) if self.splits.validation else 0,
                len(self.splits.test),
                self.run_dir,
                self._process_note(),
            )
        for epoch in range(self.start_epoch, last_epoch + 1):
            row: dict[str, Any] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            row |= self.train_epoch(epoch)
            self.scheduler.step()
            self.elapsed_before += row["epoch_seconds"]
            if self.splits.validation is not None:
                val = self.evaluate(self.splits.validation)
                row |= {"val_acc": val["acc"], "val_loss": val["loss"]}
            test = self.evaluate(self.splits.test)
            row |= {f"test_{k}": v for k, v in test.items()}
            warnings = getattr(self.model, "activity_warnings", lambda _: [])(row)
            for warning in [*warnings, *chance_warnings(row, self.majority_share)]:
                log.warning("epoch %d: %s", epoch, warning)
            self.metrics.rows.append(row)  # every rank keeps the history; rank 0 writes it
            stop = self._stop_requested()
            if stop:
                last_epoch = epoch
            if self.ctx.is_main:
                self._save(epoch, row)
                self.metrics.write()
                # Until fit() ends, the summary says how far the run got, so that one killed
                # between epochs (no chance to write "stopped") is not reported as older.
                atomic_write_json(self.run_dir / "summary.json", self._summary("unfinished"))
                # Curves cost ~0.3 s to draw: at most every 30 s, and always after the last epoch.
                now = time.perf_counter()
                if cfg.train.plots and (epoch == last_epoch or now - self._plotted_at > 30):
                    from eqspike.analysis.plots import plot_training_curves

                    plot_training_curves(self.metrics.rows, self.run_dir / "curves.png", cfg.name)
                    self._plotted_at = now
            dist_utils.barrier(self.ctx)
            log.info(
                "epoch %d/%d  loss %.4f  train %.2f%%%s  test %.2f%%  (%.1fs, %.0f samples/s)",
                epoch,
                cfg.train.epochs,
                row["train_loss"],
                100 * row["train_acc"],
                f"  val {100 * row['val_acc']:.2f}%" if "val_acc" in row else "",
                100 * row["test_acc"],
                row["epoch_seconds"],
                row["train_samples_per_s"],
            )
            if stop:
                log.info(
                    "stopped after epoch %d (%s); continue with: eqspike train --resume %s",
                    epoch,
                    STOP_FILE,
                    self.run_dir,
                )
                break
        summary = self._summary("completed" if last_epoch == cfg.train.epochs else "stopped")
        if self.ctx.is_main:
            atomic_write_json(self.run_dir / "summary.json", summary)
        log.info(
            "done: test accuracy %.2f%%, run directory %s",
            100 * summary.get("test_acc", math.nan),
            self.run_dir,
        )
        return summary

    def _stop_requested(self) -> bool:
        """Whether ``RUN/STOP`` exists (rank 0 looks, every rank follows); the file is removed
        so that a later resume runs on."""
        path = self.run_dir / STOP_FILE
        flag = float(self.ctx.is_main and path.exists())
        (total,) = dist_utils.sum_across_ranks([flag], self.ctx, self.device)
        if total > 0 and self.ctx.is_main:
            path.unlink(missing_ok=True)
        return total > 0

    def _summary(self, status: str, message: str | None = None) -> dict[str, Any]:
        rows = self.metrics.rows
        last = rows[-1] if rows else {}
        summary: dict[str, Any] = {
            "status": status,
            "name": self.config.name,
            "algorithm": self.config.algorithm,
            "run_dir": str(self.run_dir),
            "epochs": last.get("epoch", 0),
            "test_acc": last.get("test_acc"),
            "val_acc": last.get("val_acc"),
            "train_acc": last.get("train_acc"),
            "train_seconds": self.elapsed_before,
            "train_samples_per_s": (
                float(np.mean([r["train_samples_per_s"] for r in rows])) if rows else None
            ),
            "world_size": self.ctx.world_size,
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
        }
        # Event counts per sample (spiking runs): what the energy estimates are built from.
        summary |= {k: v for k, v in last.items() if "per_sample" in k}
        if any("val_acc" in r for r in rows):
            best = max(rows, key=lambda r: r.get("val_acc", -1))
            summary |= {"best_val_acc": best["val_acc"], "best_val_epoch": best["epoch"]}
        if message:
            summary["message"] = message
        return summary

    def close(self) -> None:
        for handler in list(log.handlers):
            handler.close()
            log.removeHandler(handler)
        dist_utils.shutdown(self.ctx)
