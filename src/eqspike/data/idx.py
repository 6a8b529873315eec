"""Reader for the IDX format of MNIST-like datasets (LeCun et al.), gzip-compressed or raw.

Layout: 2 zero bytes, a dtype code, the number of dimensions d, then d big-endian uint32 sizes,
then the data in C order, big-endian. Everything is checked against the header so that a
truncated, corrupt or mislabelled file fails with a message that names the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from eqspike.errors import DataError

#: IDX dtype codes -> numpy big-endian dtypes.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FIX = (
    "Delete the file so it is downloaded again, or point --data-dir / EQSPIKE_DATA at a "
    "folder with intact copies."
)


def read_idx_bytes(path: str | Path) -> bytes:
    """Return the decompressed bytes of an IDX file (``.gz`` or raw)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror}. {_FIX}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path} is not a valid gzip file ({exc}); it is probably truncated. {_FIX}"
            ) from exc
    return raw


def parse_idx(data: bytes, source: str = "<bytes>", expected_ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes into an array, checking magic number, dtype, dimensions and length."""
    if len(data) < 4:
        raise DataError(f"{source}: only {len(data)} bytes, too short for an IDX header. {_FIX}")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{source}: bad magic number (first bytes {data[:4].hex()}, expected 0000 followed "
            f"by a dtype code and the number of dimensions); this is not an IDX file. {_FIX}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(
            f"{source}: unknown IDX dtype code 0x{code:02X} (allowed: {allowed}). {_FIX}"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise DataError(
            f"{source}: header says {ndim} dimensions, expected {expected_ndim} "
            f"(images have 3, labels 1); the file may be mislabelled. {_FIX}"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{source}: header truncated ({len(data)} bytes < {header_len}). {_FIX}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found != expected:
        raise DataError(
            f"{source}: header promises shape {shape} of {dtype.name} = {expected} data bytes, "
            f"found {found}; the file is {'truncated' if found < expected else 'corrupt'}. {_FIX}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read and validate an IDX file (gz or raw) into a native-endian numpy array."""
    return parse_idx(read_idx_bytes(path), str(path), expected_ndim)
