"""In-memory datasets: MNIST, Fashion-MNIST (IDX files) and the generated Yin-Yang set.

Every dataset is a :class:`TensorDataset` of float inputs in [0, 1] and integer labels, held in
memory (MNIST is 188 MB as float32): batches are plain tensor indexing, no worker processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eqspike.data.download import FASHION_MNIST, MNIST, RemoteDataset, locate
from eqspike.data.idx import read_idx
from eqspike.errors import DataError


@dataclass(frozen=True)
class TensorDataset:
    """Inputs ``x`` of shape ``(N, *input_shape)`` in [0, 1] and labels ``y`` of shape ``(N,)``."""

    x: torch.Tensor
    y: torch.Tensor
    n_classes: int
    name: str

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.input_shape))

    def repeated(self, copies: int) -> TensorDataset:
        """Each sample's features tiled ``copies`` times, flattened: a population code for
        spiking inputs (with dithered phases the copies spike at different steps, so the
        next layer sees a smoother drive than from a few input neurons)."""
        x = self.x.flatten(1).repeat(1, copies)
        return TensorDataset(x, self.y, self.n_classes, f"{self.name}x{copies}")

    def subset(self, index: slice | torch.Tensor, name: str | None = None) -> TensorDataset:
        return TensorDataset(self.x[index], self.y[index], self.n_classes, name or self.name)


def _load_idx_pair(
    remote: RemoteDataset, split: str, data_dir: str | Path | None, download: bool
) -> TensorDataset:
    prefix = {"train": "train", "test": "t10k"}[split]
    files = locate(remote, data_dir, download)
    images_path = files[f"{prefix}-images-idx3-ubyte.gz"]
    labels_path = files[f"{prefix}-labels-idx1-ubyte.gz"]
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels; the files do not belong together. Replace them with a "
            "matching pair."
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{labels_path}: labels outside 0..9 ({labels.min()}..{labels.max()}).")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return TensorDataset(x, y, 10, f"{remote.folder}/{split}")


def load_mnist(
    split: str = "train", data_dir: str | Path | None = None, download: bool = True
) -> TensorDataset:
    """MNIST digits as ``(N, 1, 28, 28)`` floats in [0, 1]; ``split`` is train or test."""
    return _load_idx_pair(MNIST, split, data_dir, download)


def load_fashion_mnist(
    split: str = "train", data_dir: str | Path | None = None, download: bool = True
) -> TensorDataset:
    """Fashion-MNIST as ``(N, 1, 28, 28)`` floats in [0, 1]; ``split`` is train or test."""
    return _load_idx_pair(FASHION_MNIST, split, data_dir, download)


# --- Yin-Yang (Kriener, Göltz et al. 2021), reimplemented from the published algorithm ---------

YINYANG_SPLITS = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}
_R_SMALL, _R_BIG = 0.1, 0.5


def yinyang_class(x: float, y: float) -> int:
    """0 = yin, 1 = yang, 2 = dot, for a point inside the big circle of radius 0.5."""
    d_right = float(np.hypot(x - 0.5 - _R_BIG / 2, y - _R_BIG))
    d_left = float(np.hypot(x - 0.5 + _R_BIG / 2, y - _R_BIG))
    is_yin = (
        d_right <= _R_SMALL
        or _R_SMALL < d_left <= 0.5 * _R_BIG
        or (y > _R_BIG and d_right > 0.5 * _R_BIG)
    )
    if d_right < _R_SMALL or d_left < _R_SMALL:
        return 2
    return int(is_yin)


def generate_yinyang(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit-exact Yin-Yang samples: features ``[x, y, 1-x, 1-y]`` (float64) and labels.

    Each sample draws its class uniformly, then rejection-samples a point of that class inside
    the big circle, with ``numpy.random.RandomState(seed)`` consumed in the reference order.
    """
    rng = np.random.RandomState(seed)
    features = np.empty((size, 4), dtype=np.float64)
    labels = np.empty(size, dtype=np.int64)
    for i in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2 * _R_BIG
            if np.hypot(x - _R_BIG, y - _R_BIG) <= _R_BIG and yinyang_class(x, y) == goal:
                break
        features[i] = (x, y, 1 - x, 1 - y)
        labels[i] = goal
    return features, labels


def load_yinyang(
    split: str = "train", data_dir: str | Path | None = None, download: bool = True
) -> TensorDataset:
    """The standard Yin-Yang split (train 5000/seed 42, validation 1000/41, test 1000/40)."""
    if split not in YINYANG_SPLITS:
        raise DataError(f"Yin-Yang has no split {split!r}; choose one of {list(YINYANG_SPLITS)}.")
    size, seed = YINYANG_SPLITS[split]
    features, labels = generate_yinyang(size, seed)
    return TensorDataset(
        torch.from_numpy(features).float(), torch.from_numpy(labels), 3, f"yinyang/{split}"
    )


Loader = Callable[..., TensorDataset]

#: dataset name (as written in configs) -> loader(split, data_dir, download)
DATASETS: dict[str, Loader] = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "yinyang": load_yinyang,
}


def load_dataset(
    name: str, split: str, data_dir: str | Path | None = None, download: bool = True
) -> TensorDataset:
    """Load ``split`` of the dataset called ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}.")
    return DATASETS[name](split, data_dir, download)
