"""Small image data sets as NHWC float64 arrays, read from local files only (never downloaded).

- :func:`load_digits`: scikit-learn's copy of the UCI handwritten digits (1797 images, 8x8,
  16 gray levels), shipped inside scikit-learn itself (``pip install refcnn[digits]``).
- :func:`load_mnist`: MNIST from the standard IDX files in a directory (raw or gzipped),
  parsed by :func:`read_idx_images` / :func:`read_idx_labels`.

Every loader returns images ``x`` of shape ``(N, H, W, 1)``, float64 scaled to ``[0, 1]``,
and labels ``y`` of shape ``(N,)``, int64.

IDX format (big-endian): a 4-byte magic ``0x00 0x00 <type> <ndim>`` with type ``0x08``
(unsigned byte), then ``ndim`` uint32 sizes, then the data in row-major order. Images are
``0x00000803`` (N, rows, cols), labels ``0x00000801`` (N). A malformed file is a
``ValueError`` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import importlib
import io
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refcnn._checks import as_choice, as_path

__all__ = ["load_digits", "load_mnist", "read_idx_images", "read_idx_labels", "synthetic_digits"]

Array = npt.NDArray[Any]
PathLike = str | os.PathLike[str]

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801

#: The most bytes deflate can produce per compressed byte: each 258-byte match costs at least
#: 2 bits, so a stream expands at most about 1032:1 (zlib's "technical details"). A gzip IDX
#: file whose header declares more than this times its size is truncated for sure, and is
#: refused before its data is allocated.
DEFLATE_MAX_RATIO = 1032

# Bytes per read while filling the result: bounds the temporaries gzip's reader allocates.
_READ_CHUNK = 2**18

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_digits() -> tuple[Array, Array]:
    """Return scikit-learn's handwritten digits as NHWC images and labels.

    Returns
    -------
    x : ndarray, shape (1797, 8, 8, 1), float64
        Pixel values ``0..16`` divided by 16, so in ``[0, 1]``.
    y : ndarray, shape (1797,), int64
        Digit classes ``0..9``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (``pip install refcnn[digits]``).
    """
    try:
        # Imported by name: an optional dependency without type stubs.
        sklearn_datasets = importlib.import_module("sklearn.datasets")
    except ImportError as err:
        msg = (
            "load_digits needs scikit-learn (it ships the digits data): pip install refcnn[digits]"
        )
        raise ImportError(msg) from err
    bunch = sklearn_datasets.load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    x = (images / 16.0).reshape(*images.shape, 1)
    y = np.asarray(bunch.target, dtype=np.int64)
    return x, y


def _read_into(handle: io.BufferedIOBase, out: memoryview) -> int:
    """Fill ``out`` from ``handle`` in bounded reads; return the bytes read (short at EOF)."""
    filled = 0
    while filled < len(out):
        count = handle.readinto(out[filled : filled + _READ_CHUNK])
        if not count:
            break
        filled += count
    return filled


def _check_header(file: Path, head: bytes, magic: int, what: str) -> tuple[int, ...]:
    """Return the dimensions from an IDX header (``head`` holds at most its bytes)."""
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(head) < 4:
        msg = f"{file}: truncated header: {len(head)} bytes, not even the 4-byte magic number"
        raise ValueError(msg)
    found = int.from_bytes(head[:4], "big")
    if found != magic:
        msg = (
            f"{file}: bad magic number 0x{found:08X}, expected 0x{magic:08X} "
            f"(IDX unsigned-byte {what}, {ndim}-D)"
        )
        raise ValueError(msg)
    if len(head) < header:
        msg = (
            f"{file}: truncated header: an IDX {what} file needs {header} header bytes, "
            f"got {len(head)} bytes in all"
        )
        raise ValueError(msg)
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim > 1 and min(dims[1:]) == 0:
        msg = f"{file}: bad dimensions {dims}: image rows and columns must be >= 1"
        raise ValueError(msg)
    return dims


def _read_idx_stream(
    file: Path, handle: io.BufferedIOBase, magic: int, what: str, *, size: int, compressed: bool
) -> Array:
    """Parse an open IDX stream: the header, then exactly the declared bytes, then 1 more.

    ``size`` is the file's size on disk. Uncompressed, that fixes the payload before anything
    is allocated, so a wrong size is reported exactly and at once. A gzip stream's payload is
    only known by inflating it, so its declared size is checked against the most deflate can
    produce from ``size`` bytes (:data:`DEFLATE_MAX_RATIO`); then it is read into the
    preallocated result, never further than one byte past the declared data.
    """
    header = 4 + 4 * (magic & 0xFF)
    head = handle.read(header)
    dims = _check_header(file, head, magic, what)
    expected = math.prod(dims)
    if not compressed:
        payload = size - header
        if payload < expected:
            msg = (
                f"{file}: truncated data: header says {dims} = {expected} bytes, "
                f"file holds {payload}"
            )
            raise ValueError(msg)
        if payload > expected:
            msg = (
                f"{file}: {payload - expected} unexpected trailing bytes after {dims} = "
                f"{expected} bytes of data"
            )
            raise ValueError(msg)
    elif header + expected > DEFLATE_MAX_RATIO * size:
        msg = (
            f"{file}: truncated data: header says {dims} = {expected} bytes, more than a "
            f"gzip file of {size} bytes can hold (deflate expands at most {DEFLATE_MAX_RATIO}:1)"
        )
        raise ValueError(msg)
    data = np.empty(expected, dtype=np.uint8)
    got = _read_into(handle, data.data)
    if got < expected:
        msg = f"{file}: truncated data: header says {dims} = {expected} bytes, file holds {got}"
        raise ValueError(msg)
    if handle.read(1):
        # One byte says there is more; counting it all would mean inflating all of it.
        msg = (
            f"{file}: unexpected trailing bytes (at least 1) after {dims} = {expected} "
            "bytes of data"
        )
        raise ValueError(msg)
    return data.reshape(dims)


def _read_idx(op: str, path: PathLike, magic: int, what: str) -> Array:
    """Parse one IDX file of unsigned bytes with the given magic number, raw or gzipped."""
    file = as_path(op, "path", path)
    with file.open("rb") as raw:  # a missing file is FileNotFoundError, not "corrupt"
        size = os.fstat(raw.fileno()).st_size
        if file.suffix != ".gz":
            return _read_idx_stream(file, raw, magic, what, size=size, compressed=False)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                return _read_idx_stream(file, handle, magic, what, size=size, compressed=True)
        except (OSError, EOFError, zlib.error) as err:
            msg = f"{file}: corrupt or truncated gzip file ({err})"
            raise ValueError(msg) from err


def read_idx_images(path: PathLike) -> Array:
    """Read an IDX image file (magic ``0x00000803``), raw or ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is gunzipped.

    Returns
    -------
    images : ndarray, shape (N, rows, cols), uint8
        A new array holding the file's data.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    TypeError
        If ``path`` is not a str or ``os.PathLike``.
    ValueError
        Naming the file: truncated header or data, trailing bytes, bad magic, zero-sized
        image dimensions, corrupt gzip stream.

    Notes
    -----
    The file is streamed, never read whole: first the header, then exactly the bytes it
    declares, then one more byte to detect trailing data. Peak memory is the declared data
    (plus a 256 KiB read buffer), whatever the file holds after it, so a gzip "bomb" (a few
    MB that inflate to GBs behind a small header) is refused after reading its header and
    data. A raw file's size is compared with the header before anything is allocated; a gzip
    file is refused up front if its header declares more than :data:`DEFLATE_MAX_RATIO`
    times the file's size, and otherwise reported truncated where its stream ends.
    """
    return _read_idx("read_idx_images", path, IDX_IMAGES_MAGIC, "images")


def read_idx_labels(path: PathLike) -> Array:
    """Read an IDX label file (magic ``0x00000801``), raw or ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is gunzipped.

    Returns
    -------
    labels : ndarray, shape (N,), uint8

    Raises
    ------
    ValueError
        As :func:`read_idx_images`.
    """
    return _read_idx("read_idx_labels", path, IDX_LABELS_MAGIC, "labels")


def _find(directory: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` inside ``directory`` (the raw file wins if both exist)."""
    for name in (stem, f"{stem}.gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    msg = f"load_mnist: neither {stem} nor {stem}.gz found in {directory} (refcnn never downloads)"
    raise FileNotFoundError(msg)


def load_mnist(path: PathLike, kind: str = "train") -> tuple[Array, Array]:
    """Read MNIST (or any data set in MNIST's IDX layout) from a local directory.

    Parameters
    ----------
    path : str or os.PathLike
        Directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or with ``.gz``.
    kind : {"train", "test"}
        Which pair to read (``"test"`` is the ``t10k-*`` files).

    Returns
    -------
    x : ndarray, shape (N, rows, cols, 1), float64
        Pixels divided by 255, so in ``[0, 1]`` (28x28 for MNIST).
    y : ndarray, shape (N,), int64
        Classes ``0..9``.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory or a file is missing (nothing is ever downloaded).
    TypeError
        If ``path`` is not a str or ``os.PathLike``.
    ValueError
        A ``kind`` other than ``"train"``/``"test"``, a malformed file (see
        :func:`read_idx_images`, which also says how a file is streamed), image and label
        counts that differ, or a label outside ``0..9``; the message names the file(s).
    """
    files = _MNIST_FILES[as_choice("load_mnist", "kind", kind, tuple(_MNIST_FILES))]
    directory = as_path("load_mnist", "path", path)
    if not directory.is_dir():
        msg = f"load_mnist: {directory} is not a directory"
        raise FileNotFoundError(msg)
    images_file, labels_file = (_find(directory, stem) for stem in files)
    images = read_idx_images(images_file)
    labels = read_idx_labels(labels_file)
    if images.shape[0] != labels.shape[0]:
        msg = (
            f"load_mnist: {images_file} holds {images.shape[0]} images but {labels_file} "
            f"holds {labels.shape[0]} labels"
        )
        raise ValueError(msg)
    if labels.size and int(labels.max()) > 9:
        msg = f"{labels_file}: label {int(labels.max())} outside 0..9"
        raise ValueError(msg)
    x = (images.astype(np.float64) / 255.0)[..., np.newaxis]
    return x, labels.astype(np.int64)


def synthetic_digits(n: int, *, seed: int = 0) -> tuple[Array, Array]:
    """Tiny deterministic stand-in for the digits (tests and demos without scikit-learn).

    Each class ``k`` is a fixed random 8x8 template (drawn once from seed 12345); a sample is
    its template plus uniform noise, clipped to ``[0, 1]``. Linearly separable by design.

    Parameters
    ----------
    n : int
        Number of samples; labels cycle through ``0..9`` and are then shuffled.
    seed : int
        Seeds the noise and the order.

    Returns
    -------
    x : ndarray, shape (n, 8, 8, 1), float64
    y : ndarray, shape (n,), int64
    """
    templates = (np.random.default_rng(12345).random((10, 8, 8)) > 0.6).astype(np.float64)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n, dtype=np.int64) % 10)
    noise = rng.uniform(-0.3, 0.3, size=(n, 8, 8))
    x = np.clip(templates[y] + noise, 0.0, 1.0)[..., np.newaxis]
    return x, y
