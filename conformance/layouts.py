"""Memory layouts the implementation under test receives: the same values, other strides.

An implementation whose result depends on how its input is laid out in memory is wrong
(PyTorch 2.13's CPU conv2d, found by this suite, returned wrong values for a single-channel
NCHW view with channels-last strides). Besides C-contiguous arrays the harness passes the
same values as each layout below and holds every result to the same bounds. Each layout has
a one-line Python expression that rebuilds it, for the reproducer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["LAYOUTS", "relayout", "relayout_source"]

Array: TypeAlias = npt.NDArray[Any]

#: Every layout, ``"C"`` (contiguous, what the first call gets) first.
LAYOUTS = ("C", "fortran", "transposed", "negative_strides", "strided", "readonly")


def relayout(array: Array, layout: str) -> Array:
    """Return an array equal to ``array`` (values, shape, dtype) laid out as ``layout``.

    ``fortran``: column-major; ``transposed``: a view of a buffer that stores the last axis
    first (NHWC values in NCHW memory);
    ``negative_strides``: every axis reversed twice (views with negative strides);
    ``strided``: every other element of a buffer twice as long on the last axis;
    ``readonly``: a C-contiguous copy that cannot be written.
    """
    if layout not in _BUILDERS:
        msg = f"relayout: layout must be one of {LAYOUTS}, got {layout!r}"
        raise ValueError(msg)
    return np.asarray(_BUILDERS[layout](array))


def _strided(array: Array) -> Array:
    if array.ndim == 0:
        return np.array(array, copy=True)
    buffer = np.zeros((*array.shape[:-1], 2 * array.shape[-1]), dtype=array.dtype)
    buffer[..., ::2] = array
    return buffer[..., ::2]


def _readonly(array: Array) -> Array:
    frozen = np.array(array, copy=True)
    frozen.flags.writeable = False
    return frozen


def _last_axis_first(array: Array) -> Array:
    # A view whose memory holds the last axis outermost: an NHWC array stored as NCHW, the
    # layout PyTorch 2.13's float32 conv2d got wrong for C = 1.
    if array.ndim < 2:
        return np.array(array, copy=True)
    stored = np.array(np.moveaxis(array, -1, 0), order="C", copy=True)
    return np.asarray(np.moveaxis(stored, 0, -1))


def _reversed_twice(array: Array) -> Array:
    axes = tuple(range(array.ndim))
    return np.asarray(np.flip(np.flip(array, axes).copy(), axes))


_BUILDERS: dict[str, Callable[[Array], Array]] = {
    "C": lambda a: np.array(a, order="C", copy=True),
    # np.array(..., order=...), not np.asfortranarray/ascontiguousarray: those turn a 0-d
    # array into shape (1,).
    "fortran": lambda a: np.array(a, order="F", copy=True),
    "transposed": _last_axis_first,
    "negative_strides": _reversed_twice,
    "strided": _strided,
    "readonly": _readonly,
}


def relayout_source(name: str, layout: str) -> str:
    """Python source turning the variable ``name`` into ``layout`` (the reproducer's line)."""
    return f"{name} = relayout({name}, {layout!r})  # from conformance.layouts"
