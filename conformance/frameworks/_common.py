"""Framework-free helpers shared by the adapters: argument normalization and window geometry.

Every pad comes from :mod:`refcnn.padding`; the adapters only translate the resolved
``((top, bottom), (left, right))`` into their framework's vocabulary. Inputs are assumed
well-formed (validation is the caller's concern).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from refcnn.padding import (
    AxisPads,
    Geometry,
    normalize_padding,
    transpose_geometry,
    window_geometry,
    windows,
)

__all__ = [
    "Array",
    "TransposeSizes",
    "conv_geometry",
    "conv_transpose_sizes",
    "flatten_shape",
    "is_channels_first",
    "pair",
    "per_axis",
    "pool_geometry",
    "sample_count",
    "spatial_sizes",
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


def is_channels_first(data_format: str | None) -> bool:
    """``"NCHW"``, ``"NCW"``, ``"NCDHW"``: channels-first; ``None`` and ``"N...C"``: last."""
    return isinstance(data_format, str) and data_format.upper().startswith("NC")


def per_axis(value: int | Sequence[int], rank: int) -> tuple[int, ...]:
    """``2`` -> ``(2,) * rank``; a sequence of ``rank`` ints as a tuple."""
    if isinstance(value, Sequence | np.ndarray):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def spatial_sizes(x: Any, channels_first: bool) -> tuple[int, ...]:
    """Return the spatial sizes of an array or framework tensor ``x`` in either layout."""
    shape = tuple(int(n) for n in x.shape)
    return shape[2:] if channels_first else shape[1:-1]


class TransposeSizes(NamedTuple):
    """A ``conv_transpose`` call's per-axis arguments and sizes, as every adapter needs them.

    ``sizes`` are the output's spatial sizes (``output_shape``'s, or ONNX ConvTranspose's
    rule) and ``befores`` the leading pads of the forward conv whose adjoint the call is,
    both from :mod:`refcnn.padding`.
    """

    rank: int
    channels_first: bool
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    kernel: tuple[int, ...]
    in_sizes: tuple[int, ...]
    sizes: tuple[int, ...]
    befores: tuple[int, ...]


def conv_transpose_sizes(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *,
    channels_first: bool,
    output_shape: Sequence[int] | None,
    strides: int | Sequence[int],
    padding: Any,
    output_padding: int | Sequence[int],
    dilations: int | Sequence[int],
) -> TransposeSizes:
    """Resolve a well-formed ``conv_transpose`` call from its input and filter shapes."""
    rank = len(x_shape) - 2
    stride, dilation = per_axis(strides, rank), per_axis(dilations, rank)
    extra = per_axis(output_padding, rank)
    kernel = tuple(int(k) for k in w_shape[:rank])
    sizes_in = tuple(int(n) for n in x_shape)
    in_sizes = sizes_in[2:] if channels_first else sizes_in[1:-1]
    mode = normalize_padding("conv_transpose", padding, rank)
    if output_shape is None:
        per_axis_geometry = [
            transpose_geometry(
                in_sizes[a],
                kernel[a],
                stride[a],
                dilation[a],
                mode if isinstance(mode, str) else mode[a],
                extra[a],
            )
            for a in range(rank)
        ]
        sizes = tuple(size for size, _ in per_axis_geometry)
        befores = tuple(before for _, before in per_axis_geometry)
    else:
        shape = tuple(int(n) for n in output_shape)
        if len(shape) == rank + 2:
            shape = shape[2:] if channels_first else shape[1:-1]
        sizes = shape
        befores = tuple(p[0] for p in windows(sizes, kernel, stride, dilation, mode).pads)
    return TransposeSizes(rank, channels_first, stride, dilation, kernel, in_sizes, sizes, befores)
