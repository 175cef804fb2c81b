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
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["load_digits", "load_mnist", "read_idx_images", "read_idx_labels", "synthetic_digits"]

Array = npt.NDArray[Any]
PathLike = str | os.PathLike[str]

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801

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


def _read_bytes(path: Path) -> bytes:
    """Whole file contents, gunzipped when the name ends in ``.gz``."""
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as err:
        msg = f"{path}: corrupt or truncated gzip file ({err})"
        raise ValueError(msg) from err


def _read_idx(path: PathLike, magic: int, what: str) -> Array:
    """Parse one IDX file of unsigned bytes with the given magic number."""
    file = Path(path)
    data = _read_bytes(file)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        msg = f"{file}: truncated header: {len(data)} bytes, not even the 4-byte magic number"
        raise ValueError(msg)
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        msg = (
            f"{file}: bad magic number 0x{found:08X}, expected 0x{magic:08X} "
            f"(IDX unsigned-byte {what}, {ndim}-D)"
        )
        raise ValueError(msg)
    if len(data) < header:
        msg = (
            f"{file}: truncated header: an IDX {what} file needs {header} header bytes, "
            f"got {len(data)} bytes in all"
        )
        raise ValueError(msg)
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if ndim > 1 and min(dims[1:]) == 0:
        msg = f"{file}: bad dimensions {dims}: image rows and columns must be >= 1"
        raise ValueError(msg)
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header
    if payload < expected:
        msg = f"{file}: truncated data: header says {dims} = {expected} bytes, file holds {payload}"
        raise ValueError(msg)
    if payload > expected:
        msg = (
            f"{file}: {payload - expected} unexpected trailing bytes after {dims} = "
            f"{expected} bytes of data"
        )
        raise ValueError(msg)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(path: PathLike) -> Array:
    """Read an IDX image file (magic ``0x00000803``), raw or ``.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a name ending in ``.gz`` is gunzipped.

    Returns
    -------
    images : ndarray, shape (N, rows, cols), uint8
        Read-only view of the file's data.

    Raises
    ------
    ValueError
        Naming the file: truncated header or data, trailing bytes, bad magic, zero-sized
        image dimensions, corrupt gzip stream.
    """
    return _read_idx(path, IDX_IMAGES_MAGIC, "images")


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
    return _read_idx(path, IDX_LABELS_MAGIC, "labels")


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
    ValueError
        A malformed file (see :func:`read_idx_images`), image and label counts that differ,
        or a label outside ``0..9``; the message names the file(s).
    """
    if kind not in _MNIST_FILES:
        msg = f"load_mnist: kind must be 'train' or 'test', got {kind!r}"
        raise ValueError(msg)
    directory = Path(path)
    if not directory.is_dir():
        msg = f"load_mnist: {directory} is not a directory"
        raise FileNotFoundError(msg)
    images_file, labels_file = (_find(directory, stem) for stem in _MNIST_FILES[kind])
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
