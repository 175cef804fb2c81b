"""conv2d_backward_bias that groups ``dy`` by channel with ``reshape`` instead of a transpose.

Bug: ``db = dy.reshape(O, -1).sum(axis=1)``. The intent is "one row per output channel, sum
the rest", but in NHWC memory the channel is the FASTEST axis, so ``reshape(O, -1)`` puts
consecutive (mixed-channel) elements in each row; the right grouping is
``dy.reshape(-1, O).sum(axis=0)`` (or a transpose first). Reshape-for-transpose is one of the
most common NumPy CNN-tutorial bugs (it appears in im2col/col2im code and NCHW<->NHWC
conversions); the shape is always right, so nothing crashes.

Correct when ``O == 1`` and the grand total ``db.sum()`` is always right, so a test with a
single filter or one that checks only the sum passes. Must be rejected by
``test_conv2d_backward_bias``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn

TARGET = "test_conv2d_backward_bias"
K_EXPR = "test_conv2d_backward_bias"


@classic_form(refcnn.conv2d_backward_bias, new=("data_format", "groups"))
def conv2d_backward_bias(dy: npt.ArrayLike) -> npt.NDArray[Any]:
    """Mutant bias gradient: rows grouped by reshape (see the module docstring)."""
    expected = refcnn.conv2d_backward_bias(dy)
    dy_arr = np.asarray(dy)
    if dy_arr.size == 0:
        return expected
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    db = dy_arr.astype(acc).reshape(dy_arr.shape[3], -1).sum(axis=1)  # BUG: reshape(-1, O)
    return np.asarray(db).astype(dy_arr.dtype)


install_refcnn(__name__)
