"""Weight averaging of a run's epoch checkpoints (stochastic weight averaging, post hoc).

Late in training, at small learning rates, the weights keep wandering around a minimum and the
test accuracy moves by a few tenths of a point from epoch to epoch. The mean of the last K
epochs' weights, θ̄ = (1/K) Σₖ θ_k, sits nearer the centre of that region (Izmailov et al.
2018, "Averaging weights leads to wider optima"). Our networks have no batch statistics to
recompute, so the average is a model as it stands.

Keep the epochs you want to average: train with ``--set train.keep_checkpoints=K`` (the trainer
prunes older ones). The result is a run directory holding the source's config and one checkpoint
with the averaged weights, which ``eqspike eval``, ``train.init_from`` and everything else that
loads a run's latest checkpoint accept; it cannot be resumed (it has no optimiser state).
"""

from __future__ import annotations

from pathlib import Path

import torch

from eqspike.errors import CheckpointError
from eqspike.io import atomic_write_json, atomic_write_text
from eqspike.train.checkpoint import epoch_dirs, load_checkpoint, save_checkpoint

AVERAGE_FILE = "averaged.json"


def available_epochs(run_dir: Path) -> list[int]:
    """Epochs whose checkpoint folders exist in ``run_dir``."""
    return [int(p.name.removeprefix("epoch-")) for p in epoch_dirs(run_dir)]


def parse_epochs(text: str) -> list[int]:
    """``"6-10"`` -> [6, 7, 8, 9, 10]; ``"3,5,8"`` -> [3, 5, 8]."""
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            epochs = list(range(first, last + 1))
        else:
            epochs = [int(part) for part in text.split(",")]
    except ValueError:
        raise CheckpointError(
            f"--epochs {text!r}: give a range such as 6-10 or a list such as 3,5,8"
        ) from None
    if not epochs or min(epochs) < 1:
        raise CheckpointError(f"--epochs {text!r}: give at least one epoch, each >= 1")
    return epochs


def average_weights(weights: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts with the same keys and shapes (accumulated in float64)."""
    keys = weights[0].keys()
    for other in weights[1:]:
        if other.keys() != keys or any(other[k].shape != weights[0][k].shape for k in keys):
            raise CheckpointError(
                "the checkpoints hold different tensors (keys or shapes); average only epochs "
                "of one run."
            )
    averaged = {}
    for key in keys:
        first = weights[0][key]
        if first.is_floating_point():
            averaged[key] = (sum(w[key].double() for w in weights) / len(weights)).to(first.dtype)
        elif all(torch.equal(w[key], first) for w in weights[1:]):
            averaged[key] = first  # counters, masks: the same in every epoch, kept as they are
        else:
            raise CheckpointError(
                f"tensor {key!r} ({first.dtype}) differs between the epochs and cannot be "
                "averaged; average only runs whose non-float state is fixed."
            )
    return averaged


def average_run(run_dir: str | Path, epochs: list[int], out: str | Path) -> Path:
    """Write ``out``: ``run_dir``'s config with the mean of the given epochs' weights."""
    run_dir, out = Path(run_dir), Path(out)
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml).")
    have = available_epochs(run_dir)
    missing = [e for e in epochs if e not in have]
    if missing:
        raise CheckpointError(
            f"{run_dir} has no checkpoint for epoch(s) {missing}; it keeps epochs {have}. "
            "Train with --set train.keep_checkpoints=K to keep the last K epochs."
        )
    if out.resolve() == run_dir.resolve():
        raise CheckpointError("--out must be a new directory, not the run being averaged.")
    if (out / "checkpoints").exists():
        raise CheckpointError(f"{out} already holds checkpoints; choose another --out.")
    loaded = [load_checkpoint(run_dir / "checkpoints" / f"epoch-{e:04d}") for e in epochs]
    averaged = average_weights([c.weights for c in loaded])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", config.read_text())
    record = {"source": str(run_dir), "epochs": epochs}
    atomic_write_json(out / AVERAGE_FILE, record)
    state = {"epoch": max(epochs), "averaged": record}
    meta = {**{k: loaded[-1].meta.get(k) for k in ("algorithm", "name")}, "averaged": record}
    return save_checkpoint(out, max(epochs), averaged, state, meta, keep=1)
