import gzip
import struct

import numpy as np
import pytest
import torch

from eqspike.data import (
    deterministic_rate,
    latency,
    load_dataset,
    load_yinyang,
    parse_idx,
    poisson_rate,
    read_idx,
)
from eqspike.data.datasets import yinyang_class
from eqspike.errors import DataError


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(">u1").tobytes()


def test_idx_roundtrip_gz_and_raw(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    (tmp_path / "a").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz", expected_ndim=3), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), array)


def test_idx_truncated_file_names_file_and_sizes(tmp_path):
    data = idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))[:-100]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte.*7840 data bytes, found 7740.*truncated"
    ):
        read_idx(path)


def test_idx_bad_magic_and_dtype_and_ndim():
    with pytest.raises(DataError, match="bad magic number"):
        parse_idx(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00", "f")
    with pytest.raises(DataError, match="unknown IDX dtype code 0x07"):
        parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "f")
    with pytest.raises(DataError, match=r"header says 1 dimensions, expected 3.*mislabelled"):
        parse_idx(idx_bytes(np.zeros(5, dtype=np.uint8)), "labels-as-images", expected_ndim=3)


def test_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 4), dtype=np.uint8)))[:20])
    with pytest.raises(DataError, match=r"x\.gz is not a valid gzip file"):
        read_idx(path)


def test_missing_dataset_offline_lists_three_ways(tmp_path, monkeypatch):
    monkeypatch.delenv("EQSPIKE_DATA", raising=False)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", "train", tmp_path, download=False)
    message = str(info.value)
    assert "--data-dir" in message and "EQSPIKE_DATA" in message and "downloaded into" in message


def test_mismatched_image_label_counts(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    images = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    labels = idx_bytes(np.zeros(2, dtype=np.uint8))
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DataError, match=r"3 images but .* 2 labels"):
        load_dataset("mnist", "train", tmp_path, download=False)


def test_yinyang_class_counts_of_standard_splits():
    expected = {"train": [1681, 1702, 1617], "validation": [316, 336, 348], "test": [350, 316, 334]}
    for split, counts in expected.items():
        data = load_yinyang(split)
        assert np.bincount(data.y.numpy()).tolist() == counts
        assert data.x.shape[1] == 4
        torch.testing.assert_close(data.x[:, :2] + data.x[:, 2:], torch.ones(len(data), 2))


def test_yinyang_regions():
    assert yinyang_class(0.25, 0.5) == 2  # centre of the left dot
    assert yinyang_class(0.75, 0.5) == 2  # centre of the right dot
    assert yinyang_class(0.5, 0.9) == 1  # top half, far from the right dot -> yin (label 1)
    assert yinyang_class(0.5, 0.1) == 0


def test_mnist_loads_with_documented_statistics(mnist_root):
    data = load_dataset("mnist", "train", mnist_root, download=False)
    assert data.x.shape == (60000, 1, 28, 28)
    assert abs(data.x.mean().item() - 0.1307) < 1e-4 and abs(data.x.std().item() - 0.3081) < 1e-4
    assert np.bincount(data.y.numpy())[:3].tolist() == [5923, 6742, 5958]


def test_encoders():
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    counts = deterministic_rate(x, 100).sum(0)
    torch.testing.assert_close(counts, torch.tensor([[0.0, 25.0, 50.0, 100.0]]))
    spikes = poisson_rate(x.expand(2000, 4), 50, generator=torch.Generator().manual_seed(0))
    rates = spikes.mean((0, 1))
    assert torch.allclose(rates, x[0], atol=0.01)
    times = latency(x)
    assert torch.isinf(times[0, 0]) and times[0, 3] == 0.0 and times[0, 1] == 0.75
    with pytest.raises(ValueError, match=r"intensities in \[0, 1\]"):
        deterministic_rate(torch.tensor([2.0]), 10)


def test_repeated_features_tile_each_sample():
    from eqspike.data.datasets import TensorDataset

    data = TensorDataset(torch.arange(6.0).view(3, 1, 2), torch.tensor([0, 1, 0]), 2, "toy")
    tiled = data.repeated(3)
    assert tiled.x.shape == (3, 6) and torch.equal(tiled.y, data.y)
    assert tiled.x[1].tolist() == [2.0, 3.0, 2.0, 3.0, 2.0, 3.0]
