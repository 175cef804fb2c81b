"""conv2d whose SAME rule puts the odd extra padding pixel BEFORE the data instead of after.

Bug: ``before = total - total // 2`` (ceil) instead of ``total // 2`` (floor). This is ONNX's
``SAME_LOWER`` (and Caffe/early-PyTorch "symmetric, round up") where TensorFlow's ``SAME``
(= ONNX ``SAME_UPPER``) is meant; converters between the two have shipped it repeatedly, and
hand-written NumPy convolutions often compute ``pad = (k - 1) // 2`` rounded the wrong way.

Only differs when the total padding on an axis is odd: an even kernel with stride 1, or
stride > 1 with ``(ceil(H/s) - 1) * s + k - H`` odd. Odd kernels at stride 1 are exact.
Must be rejected by ``test_conv2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn, pair

TARGET = "test_conv2d"
K_EXPR = "test_conv2d and not backward"


@classic_form(refcnn.conv2d, new=("data_format", "groups"))
def conv2d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> npt.NDArray[Any]:
    """Mutant conv2d: SAME rounds the leading pad up (see the module docstring)."""
    x_arr, w_arr = np.asarray(x), np.asarray(w)
    if isinstance(padding, str) and padding.upper() == "SAME" and x_arr.ndim == w_arr.ndim == 4:
        s, d = pair(strides), pair(dilations)
        pads = []
        for axis in range(2):
            size, kernel = x_arr.shape[1 + axis], w_arr.shape[axis]
            out = -(-size // s[axis])
            extent = (kernel - 1) * d[axis] + 1
            total = max((out - 1) * s[axis] + extent - size, 0)
            before = total - total // 2  # BUG: TF puts the odd pixel after (total // 2 before)
            pads.append((before, total - before))
        padding = (pads[0], pads[1])
    return refcnn.conv2d(x, w, b, strides=strides, padding=padding, dilations=dilations)


install_refcnn(__name__)
