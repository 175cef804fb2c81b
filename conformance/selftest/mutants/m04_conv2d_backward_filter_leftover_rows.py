"""conv2d_backward_filter that trims the rows/columns no VALID window covers from the wrong end.

Bug: when ``(H_padded - extent)`` is not a multiple of the stride, the last
``(H_padded - extent) % stride`` rows of the input are never read by any window. The
textbook route computes ``dw`` as the correlation of ``x`` with the zero-inserted ``dy``,
which yields ``K + leftover`` taps; this implementation keeps the LAST ``K`` of them (it
right-aligns the windows, as if the leftover rows were at the top), i.e. it correlates
``x[leftover:]`` with ``dy``. Gradient-of-conv derivations written for "(H - K) divisible by
the stride" (the case most lecture notes and blog posts draw, e.g. 4x4 input, 2x2 kernel,
stride 2) and strided im2col ports that anchor windows at the far edge ship exactly this.

Only differs when stride > 1 and ``(H + pads - (K-1)*d - 1) % stride != 0`` (VALID or
explicit padding; TF SAME never leaves rows over). Must be rejected by
``test_conv2d_backward_filter``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn, pad_hw, pair, window_view
from refcnn.padding import normalize_padding, window_geometry

TARGET = "test_conv2d_backward_filter"
K_EXPR = "test_conv2d_backward_filter"


@classic_form(refcnn.conv2d_backward_filter, new=("data_format", "groups"))
def conv2d_backward_filter(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    filter_shape: Any,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> npt.NDArray[Any]:
    """Mutant filter gradient: leftover rows trimmed from the top (see the module docstring)."""
    expected = refcnn.conv2d_backward_filter(
        dy, x, filter_shape, strides=strides, padding=padding, dilations=dilations
    )
    dy_arr, x_arr = np.asarray(dy), np.asarray(x)
    if dy_arr.size == 0 or x_arr.size == 0:
        return expected
    s, d = pair(strides), pair(dilations)
    kh, kw = int(filter_shape[0]), int(filter_shape[1])
    geometry = window_geometry(
        x_arr.shape[1:3], (kh, kw), s, d, normalize_padding("conv2d_backward_filter", padding)
    )
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    xp = pad_hw(x_arr.astype(acc), geometry.pads)
    oh, ow = geometry.out_hw
    used_h, used_w = (oh - 1) * s[0] + (kh - 1) * d[0] + 1, (ow - 1) * s[1] + (kw - 1) * d[1] + 1
    # BUG: the rows/columns no window reaches are at the END; this drops them from the start.
    xp = xp[:, xp.shape[1] - used_h :, xp.shape[2] - used_w :, :]
    windows = window_view(xp, (kh, kw), (oh, ow), s, d)
    dw = np.einsum("nijpqc,nijo->pqco", windows, dy_arr.astype(acc))
    return np.asarray(dw).astype(dy_arr.dtype)


install_refcnn(__name__)
