"""max_pool2d_backward that gives the window's gradient to EVERY element equal to its max.

Bug: ``mask = (window == window.max())`` and ``dx += mask * dy``: the CS231n-style naive
max-pool backward found in countless tutorials and NumPy CNNs. With random real-valued
inputs there are no ties and it is exact; PyTorch and TensorFlow route each window's
gradient to ONE element (the first maximum), so with ties (ReLU zeros, quantized or
integer-valued images, constant regions, overlapping windows re-reading one element) the
gradient is duplicated.

Only differs when some window holds two equal maxima. Must be rejected by
``test_max_pool2d_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import (
    classic_form,
    install_refcnn,
    pad_hw,
    pair,
    scatter_tap,
    window_view,
)
from refcnn.padding import normalize_padding, window_geometry

TARGET = "test_max_pool2d_backward"
K_EXPR = "test_max_pool2d_backward"


@classic_form(refcnn.max_pool2d_backward)
def max_pool2d_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
) -> npt.NDArray[Any]:
    """Mutant max-pool gradient: every tied maximum gets it (see the module docstring)."""
    expected = refcnn.max_pool2d_backward(dy, x, ksize, strides=strides, padding=padding)
    dy_arr, x_arr = np.asarray(dy), np.asarray(x)
    if dy_arr.size == 0:
        return expected
    kernel = pair(ksize)
    steps = kernel if strides is None else pair(strides)
    geometry = window_geometry(
        x_arr.shape[1:3], kernel, steps, (1, 1), normalize_padding("max_pool2d", padding)
    )
    y = refcnn.max_pool2d(x_arr, kernel, strides=steps, padding=padding)
    if x_arr.dtype.kind == "f":
        lowest: Any = -np.inf
    elif x_arr.dtype.kind in "iu":
        lowest = np.iinfo(x_arr.dtype).min
    else:
        lowest = float("-inf")
    xp = pad_hw(x_arr, geometry.pads, value=lowest)
    windows = window_view(xp, kernel, geometry.out_hw, steps)
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    g = dy_arr.astype(acc)
    dxp = np.zeros(xp.shape, dtype=acc)
    is_float = x_arr.dtype.kind == "f"
    y_is_nan = np.isnan(y) if is_float else np.zeros(y.shape, dtype=bool)
    for p in range(kernel[0]):
        for q in range(kernel[1]):
            tap = windows[:, :, :, p, q, :]
            # BUG: every element equal to the max (or every NaN when the max is NaN) gets the
            # gradient; only the first maximum in row-major window order should.
            hits = tap == y
            if is_float:
                hits |= np.isnan(tap) & y_is_nan
            scatter_tap(dxp, (p, q), np.where(hits, g, g.dtype.type(0)), steps)
    (top, _), (left, _) = geometry.pads
    h, w = x_arr.shape[1:3]
    return dxp[:, top : top + h, left : left + w, :].astype(dy_arr.dtype)


install_refcnn(__name__)
