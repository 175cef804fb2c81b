"""conv2d and dense that read their inputs' memory as if it were C-contiguous.

Bug: windows built with ``as_strided`` from strides computed from the shape (C order), and a
dense that reinterprets ``x``'s buffer; both are right on C-contiguous arrays and wrong on
any other layout (PyTorch 2.13's CPU conv2d had a bug of this kind). The layout fuzzing must
reject both; refcnn passes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

import refcnn
from conformance.selftest import install_refcnn


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _as_if_c_contiguous(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # BUG: trusts the shape for the strides instead of a.strides; a non-contiguous view's
    # base buffer is read in C order (a negative-stride view reads before its start: the
    # copy of the base keeps it inside memory, and only the values are wrong).
    base = np.array(a.base if a.base is not None else a, copy=True).ravel(order="K")
    if base.size < a.size:
        return a
    return as_strided(base, shape=a.shape, strides=_c_strides(a.shape, a.itemsize))


def conv2d(x: Any, w: Any, b: Any = None, **kwargs: Any) -> Any:
    """refcnn.conv2d on x's memory read as C-contiguous."""
    x_arr = np.asarray(x)
    return refcnn.conv2d(np.array(_as_if_c_contiguous(x_arr)), w, b, **kwargs)


def dense(x: Any, w: Any, b: Any = None) -> Any:
    """refcnn.dense on w's memory read as C-contiguous."""
    w_arr = np.asarray(w)
    return refcnn.dense(x, np.array(_as_if_c_contiguous(w_arr)), b)


install_refcnn(__name__)
