"""Finding dataset files locally, or downloading them into a cache (several mirrors, atomic).

Search order for a dataset folder (e.g. ``mnist``):
1. the folder the user names (``--data-dir`` / ``data.dir``), as ``DIR/<name>/`` or ``DIR`` itself;
2. ``$EQSPIKE_DATA`` (same two layouts);
3. the cache, ``$EQSPIKE_CACHE`` or ``~/.cache/eqspike``, as ``CACHE/<name>/``.
If nothing is found and downloading is allowed, each mirror is tried in order; a file is written
to a temporary name, verified (SHA-256 of the decompressed bytes, the standard content whatever
the compression), then renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eqspike.data.idx import read_idx_bytes
from eqspike.errors import DataError
from eqspike.io import current_umask

DATA_ENV = "EQSPIKE_DATA"
CACHE_ENV = "EQSPIKE_CACHE"


@dataclass(frozen=True)
class RemoteFile:
    """One dataset file: its name and the SHA-256 of its decompressed content."""

    name: str
    sha256_decompressed: str


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset available from several mirrors; each mirror is a URL prefix."""

    folder: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]


MNIST = RemoteDataset(
    folder="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    files=(
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
)

FASHION_MNIST = RemoteDataset(
    folder="fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    files=(
        RemoteFile(
            "train-images-idx3-ubyte.gz",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        RemoteFile(
            "train-labels-idx1-ubyte.gz",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        RemoteFile(
            "t10k-images-idx3-ubyte.gz",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        RemoteFile(
            "t10k-labels-idx1-ubyte.gz",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
)


def cache_dir() -> Path:
    """The download cache: ``$EQSPIKE_CACHE`` or ``~/.cache/eqspike``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "eqspike")


def _candidate_folders(dataset: RemoteDataset, data_dir: str | Path | None) -> list[Path]:
    roots = [Path(p).expanduser() for p in (data_dir, os.environ.get(DATA_ENV)) if p]
    candidates = []
    for root in roots:
        candidates += [root / dataset.folder, root]
    candidates.append(cache_dir() / dataset.folder)
    return candidates


def _has_all(folder: Path, dataset: RemoteDataset) -> bool:
    return all(_local_name(folder, f.name) is not None for f in dataset.files)


def _local_name(folder: Path, name: str) -> Path | None:
    """A file may be stored gzip-compressed or raw (``name`` without ``.gz``)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def locate(
    dataset: RemoteDataset, data_dir: str | Path | None = None, download: bool = True
) -> dict[str, Path]:
    """Return ``{file name: local path}`` for every file of ``dataset``, downloading if needed."""
    for folder in _candidate_folders(dataset, data_dir):
        if _has_all(folder, dataset):
            return {f.name: _local_name(folder, f.name) for f in dataset.files}  # type: ignore[misc]
    searched = "\n".join(f"  - {p}" for p in _candidate_folders(dataset, data_dir))
    if not download:
        raise DataError(
            f"{dataset.folder} not found; looked in:\n{searched}\n" + _how_to_provide(dataset)
        )
    target = cache_dir() / dataset.folder
    return {f.name: _download(dataset, f, target) for f in dataset.files}


def _how_to_provide(dataset: RemoteDataset) -> str:
    names = ", ".join(f.name for f in dataset.files)
    return (
        f"Provide the {dataset.folder} files ({names}) in one of three ways:\n"
        f"  1. pass --data-dir DIR (or data.dir in a config) with DIR/{dataset.folder}/ in it;\n"
        f"  2. set {DATA_ENV}=DIR with the same layout;\n"
        f"  3. go online once: they are downloaded into {cache_dir() / dataset.folder} "
        f"(change with {CACHE_ENV})."
    )


def _download(dataset: RemoteDataset, remote: RemoteFile, target: Path) -> Path:
    final = target / remote.name
    existing = _local_name(target, remote.name)
    if existing is not None:
        return existing
    target.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in dataset.mirrors:
        url = mirror + remote.name
        try:
            _fetch_verified(url, final, remote)
            return final
        except (urllib.error.URLError, OSError, TimeoutError, DataError) as exc:
            failures.append(f"  - {url}: {exc}")
    raise DataError(
        f"Could not download {remote.name} from any mirror:\n"
        + "\n".join(failures)
        + "\n"
        + _how_to_provide(dataset)
    )


def _fetch_verified(url: str, final: Path, remote: RemoteFile) -> None:
    """Download ``url`` to a temp file beside ``final``, check its content, then rename."""
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "eqspike"})
        with urllib.request.urlopen(request, timeout=30) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=remote.name) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        digest = hashlib.sha256(read_idx_bytes(tmp)).hexdigest()
        if digest != remote.sha256_decompressed:
            raise DataError(
                f"checksum mismatch (decompressed SHA-256 {digest}, expected "
                f"{remote.sha256_decompressed})"
            )
        tmp.chmod(0o666 & ~current_umask())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
