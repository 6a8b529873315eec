"""Datasets (MNIST, Fashion-MNIST, Yin-Yang), the IDX reader, downloads and spike encoders."""

from eqspike.data.datasets import (
    DATASETS,
    TensorDataset,
    generate_yinyang,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    load_yinyang,
)
from eqspike.data.download import cache_dir, locate
from eqspike.data.encoders import deterministic_rate, latency, poisson_rate
from eqspike.data.idx import parse_idx, read_idx

__all__ = [
    "DATASETS",
    "TensorDataset",
    "cache_dir",
    "deterministic_rate",
    "generate_yinyang",
    "latency",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_yinyang",
    "locate",
    "parse_idx",
    "poisson_rate",
    "read_idx",
]
