"""Checkpoints: weights (safetensors) + trainer state (torch) + metadata (JSON), atomically.

Layout inside a run directory::

    checkpoints/epoch-0007/weights.safetensors   model.state_dict()
    checkpoints/epoch-0007/state.pt              optimizer, scheduler, RNG states, epoch
    checkpoints/epoch-0007/meta.json             epoch, metrics, versions, file list
    checkpoints/latest                           "epoch-0007" (written last, atomically)

A checkpoint folder is assembled under a temporary name and renamed into place, and ``latest``
only moves once it is complete: a crash at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from eqspike.errors import CheckpointError
from eqspike.io import atomic_write_json, atomic_write_text, current_umask

WEIGHTS, STATE, META, LATEST = "weights.safetensors", "state.pt", "meta.json", "latest"


@dataclass
class Checkpoint:
    path: Path
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def save_checkpoint(
    run_dir: Path,
    epoch: int,
    weights: dict[str, torch.Tensor],
    state: dict[str, Any],
    meta: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``checkpoints/epoch-XXXX`` atomically, point ``latest`` at it, prune old ones."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:04d}"
    final = root / name
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    tmp.chmod(0o777 & ~current_umask())
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
        save_file(tensors, str(tmp / WEIGHTS), metadata={"epoch": str(epoch)})
        torch.save(state, tmp / STATE)
        atomic_write_json(tmp / META, {"epoch": epoch, "files": [WEIGHTS, STATE], **meta})
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(root / LATEST, name + "\n")
    for old in epoch_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def epoch_dirs(run_dir: Path) -> list[Path]:
    """The run's complete epoch checkpoint folders, oldest first."""
    root = Path(run_dir) / "checkpoints"
    return sorted(p for p in root.glob("epoch-*") if p.is_dir())


def latest_checkpoint_path(run_dir: Path) -> Path | None:
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint folder, checking that its three files agree on the epoch."""
    import json

    path = Path(path)
    missing = [f for f in (WEIGHTS, STATE, META) if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    meta = json.loads((path / META).read_text())
    weights = load_file(str(path / WEIGHTS), device=str(map_location))
    state = torch.load(path / STATE, map_location=map_location, weights_only=False)
    if state.get("epoch") != meta.get("epoch"):
        raise CheckpointError(
            f"checkpoint {path}: state.pt is for epoch {state.get('epoch')} but meta.json says "
            f"{meta.get('epoch')}; the folder was modified by hand. Use another checkpoint."
        )
    return Checkpoint(path, weights, state, meta)
