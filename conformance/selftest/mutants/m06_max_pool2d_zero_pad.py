"""max_pool2d that pads with zeros instead of -inf.

Bug: the input is zero-padded (``np.pad(..., constant_values=0)``) and then pooled VALID, so
a pad can win the max. numpy-ml's pooling layer and many NumPy CNN tutorials pad max pooling
exactly like convolution, with zeros; the result is right whenever every border window holds
a non-negative element (ReLU outputs, the usual test images in [0, 1]).

Only differs with padding (SAME, SAME_LOWER or explicit) when a window touching the pad
holds only negative values: it pools to 0 instead of its (negative) max. Must be rejected by
``test_max_pool2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn, pad_hw, pair
from refcnn.padding import normalize_padding, window_geometry

TARGET = "test_max_pool2d"
K_EXPR = "test_max_pool2d and not backward"


@classic_form(refcnn.max_pool2d)
def max_pool2d(
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
) -> npt.NDArray[Any]:
    """Mutant max pooling: zero padding can win the max (see the module docstring)."""
    expected = refcnn.max_pool2d(x, ksize, strides=strides, padding=padding)  # validation
    x_arr = np.asarray(x)
    kernel = pair(ksize)
    steps = kernel if strides is None else pair(strides)
    geometry = window_geometry(
        x_arr.shape[1:3], kernel, steps, (1, 1), normalize_padding("max_pool2d", padding)
    )
    if geometry.pads == ((0, 0), (0, 0)) or expected.size == 0:
        return expected
    xp = pad_hw(x_arr, geometry.pads, value=0)  # BUG: max pooling must pad with -inf
    return refcnn.max_pool2d(xp, kernel, strides=steps, padding="VALID")


install_refcnn(__name__)
