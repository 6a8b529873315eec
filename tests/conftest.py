"""Shared fixtures: where the real MNIST files are (EQSPIKE_DATA), and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eqspike.data.download import MNIST


def mnist_dir() -> Path | None:
    root = os.environ.get("EQSPIKE_DATA")
    if not root:
        return None
    for folder in (Path(root) / "mnist", Path(root)):
        if all((folder / f.name).is_file() for f in MNIST.files):
            return Path(root)
    return None


@pytest.fixture
def mnist_root() -> Path:
    root = mnist_dir()
    if root is None:
        pytest.skip("MNIST not available: set EQSPIKE_DATA to a folder holding mnist/ IDX files")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never download: the cache points at an empty temp folder."""
    monkeypatch.setenv("EQSPIKE_CACHE", str(tmp_path_factory.mktemp("cache")))
