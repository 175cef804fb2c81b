"""IDX files for tests: encoding, writing raw or gzipped, and a streaming-built gzip bomb."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

MIB = 2**20

__all__ = ["idx_bytes", "make_images", "parse_idx", "write", "write_gzip_bomb"]


def idx_bytes(array: np.ndarray, *, magic: int | None = None) -> bytes:
    """Encode a uint8 array as an IDX file: magic, big-endian uint32 sizes, data."""
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_images(n: int, rows: int = 4, cols: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, rows, cols), dtype=np.uint8)


def write_gzip_bomb(path: Path, *, n: int = 10, gib: int = 3) -> Path:
    """A valid gzip IDX file: a header for ``n`` 28x28 images, their data, then ``gib`` GiB of 0.

    Written member by member (gzip files may hold several, read as one stream) from one
    compressed MiB of zeros, so building the ~3 MB file costs milliseconds, not a 3 GB
    inflate: deflate packs a MiB of zeros into about a KiB.
    """
    header = (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
    zeros = bytes(MIB)
    member = gzip.compress(zeros, mtime=0)
    with path.open("wb") as handle:
        # The first member starts the trailing zeros itself: the reader must stop mid-member.
        handle.write(gzip.compress(header + make_images(n, 28, 28).tobytes() + zeros, mtime=0))
        for _ in range(gib * 1024 - 1):
            handle.write(member)
    return path


def parse_idx(data: bytes, magic: int) -> np.ndarray | None:
    """The IDX format read straight from its definition: the array, or None if malformed.

    An oracle for the streaming reader: magic ``0x0000 08 <ndim>``, ``ndim`` big-endian
    uint32 sizes (image rows and columns >= 1), then exactly their product of bytes.
    """
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        return None
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if ndim > 1 and min(dims[1:]) == 0:
        return None
    if len(data) - header != int(np.prod(dims, dtype=object)):
        return None
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
