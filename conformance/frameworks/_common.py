"""Framework-free helpers shared by the adapters: argument normalization and window geometry.

Every pad comes from :mod:`refcnn.padding`; the adapters only translate the resolved
``((top, bottom), (left, right))`` into their framework's vocabulary. Inputs are assumed
well-formed (validation is the caller's concern).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from refcnn.padding import AxisPads, Geometry, normalize_padding, window_geometry

__all__ = [
    "Array",
    "conv_geometry",
    "flatten_shape",
    "pair",
    "pool_geometry",
    "sample_count",
    "window_counts",
]

Array: TypeAlias = npt.NDArray[Any]


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``2`` -> ``(2, 2)``; ``(1, 2)`` -> ``(1, 2)``."""
    if isinstance(value, Sequence | np.ndarray):
        first, second = value
        return (int(first), int(second))
    return (int(value), int(value))


def conv_geometry(
    op: str,
    input_shape: Sequence[int],
    filter_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: Any,
    dilations: int | Sequence[int],
) -> tuple[str | AxisPads, Geometry]:
    """Return the normalized padding and resolved geometry of a conv (NHWC x, HWIO w)."""
    mode = normalize_padding(op, padding)
    geometry = window_geometry(
        (int(input_shape[1]), int(input_shape[2])),
        (int(filter_shape[0]), int(filter_shape[1])),
        pair(strides),
        pair(dilations),
        mode,
    )
    return mode, geometry


def pool_geometry(
    op: str,
    input_shape: Sequence[int],
    ksize: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
) -> tuple[str | AxisPads, Geometry]:
    """Return the normalized padding and geometry of a pool; ``strides=None`` is ``ksize``."""
    mode = normalize_padding(op, padding)
    geometry = window_geometry(
        (int(input_shape[1]), int(input_shape[2])),
        pair(ksize),
        pair(ksize if strides is None else strides),
        (1, 1),
        mode,
    )
    return mode, geometry


def flatten_shape(shape: Sequence[int], axis: int) -> tuple[int, int]:
    """ONNX Flatten's 2-D shape: ``(prod(shape[:axis]), prod(shape[axis:]))``."""
    axis = axis + len(shape) if axis < 0 else axis
    return (math.prod(shape[:axis]), math.prod(shape[axis:]))


def sample_count(shape: Sequence[int], axis: int) -> int:
    """Return the number of samples of a loss over ``axis``: the product of the other axes."""
    axis = axis % len(shape)
    return math.prod(n for i, n in enumerate(shape) if i != axis)


def window_counts(
    input_hw: tuple[int, int],
    geometry: Geometry,
    kernel_hw: tuple[int, int],
    strides: tuple[int, int],
) -> npt.NDArray[np.int64]:
    """Count the real (non-pad) input elements of each pooling window, shape (out_h, out_w).

    Integer bookkeeping of the pads that :mod:`refcnn.padding` resolved, for the adapters
    that emulate ``count_include_pad=False`` as a sum over a zero-padded input divided by it.
    """
    per_axis = []
    for size, kernel, stride, out, (before, _) in zip(
        input_hw, kernel_hw, strides, geometry.out_hw, geometry.pads, strict=True
    ):
        starts = np.arange(out, dtype=np.int64) * stride - before
        ends = starts + kernel
        per_axis.append(np.clip(ends, 0, size) - np.clip(starts, 0, size))
    return np.asarray(np.multiply.outer(per_axis[0], per_axis[1]), dtype=np.int64)
