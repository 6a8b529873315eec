"""Download logic with the network replaced by a fake: mirrors in order, verification, atomicity."""

import gzip
import hashlib
import io
import urllib.error

import pytest

from eqspike.data import download
from eqspike.data.download import RemoteDataset, RemoteFile, locate
from eqspike.errors import DataError

PAYLOAD = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])  # IDX: 3 uint8 labels
GOOD = RemoteFile("labels-idx1-ubyte.gz", hashlib.sha256(PAYLOAD).hexdigest())
DATASET = RemoteDataset("toy", ("http://mirror-1/", "http://mirror-2/"), (GOOD,))


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fake_urlopen(served: dict[str, bytes], calls: list[str]):
    def urlopen(request, timeout):
        calls.append(request.full_url)
        if request.full_url not in served:
            raise urllib.error.URLError("unreachable")
        return FakeResponse(served[request.full_url])

    return urlopen


def test_second_mirror_used_and_file_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSPIKE_CACHE", str(tmp_path))
    calls: list[str] = []
    served = {"http://mirror-2/labels-idx1-ubyte.gz": gzip.compress(PAYLOAD)}
    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen(served, calls))
    paths = locate(DATASET, data_dir=None, download=True)
    assert calls == ["http://mirror-1/labels-idx1-ubyte.gz", "http://mirror-2/labels-idx1-ubyte.gz"]
    assert paths[GOOD.name] == tmp_path / "toy" / GOOD.name
    assert gzip.decompress(paths[GOOD.name].read_bytes()) == PAYLOAD
    assert [p.name for p in (tmp_path / "toy").iterdir()] == [GOOD.name]  # no temp files
    # Second call: found in the cache, no network.
    calls.clear()
    locate(DATASET, download=True)
    assert calls == []


def test_corrupt_download_rejected_and_nothing_left(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSPIKE_CACHE", str(tmp_path))
    bad = gzip.compress(PAYLOAD[:-1] + b"\x00")
    served = {u + GOOD.name: bad for u in DATASET.mirrors}
    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen(served, []))
    with pytest.raises(DataError, match="checksum mismatch") as info:
        locate(DATASET, download=True)
    assert "mirror-1" in str(info.value) and "mirror-2" in str(info.value)
    assert list((tmp_path / "toy").iterdir()) == []


def test_offline_error_lists_the_three_ways(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSPIKE_CACHE", str(tmp_path))
    monkeypatch.setattr(download.urllib.request, "urlopen", fake_urlopen({}, []))
    with pytest.raises(DataError) as info:
        locate(DATASET, download=True)
    message = str(info.value)
    assert "--data-dir" in message and "EQSPIKE_DATA" in message and "EQSPIKE_CACHE" in message


def test_user_folder_and_env_folder_take_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("EQSPIKE_CACHE", str(tmp_path / "cache"))
    user = tmp_path / "user" / "toy"
    user.mkdir(parents=True)
    (user / "labels-idx1-ubyte").write_bytes(PAYLOAD)  # raw (uncompressed) copies are accepted
    assert (
        locate(DATASET, tmp_path / "user", download=False)[GOOD.name] == user / "labels-idx1-ubyte"
    )
    monkeypatch.setenv("EQSPIKE_DATA", str(tmp_path / "user"))
    assert locate(DATASET, None, download=False)[GOOD.name].parent == user
