"""avg_pool2d_backward that upsamples ``dy`` with ``np.repeat`` (assumes windows tile the input).

Bug: ``dx = repeat(repeat(dy / count, KH, axis=1), KW, axis=2)`` placed from the padded
origin: the gradient of average pooling only when ``strides == ksize`` (non-overlapping,
gap-free windows). The ``np.repeat``/``np.kron`` upsampling trick is the standard
"vectorized" avg-pool backward in NumPy CNN tutorials and blog posts, and it is exact for the
default ``strides=None`` (= ksize), the case they all test. Divisors, padding and crop are
right.

Only differs when ``strides != ksize`` on some axis (overlapping windows, or gaps between
windows). Must be rejected by ``test_avg_pool2d_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn, pair
from refcnn.padding import normalize_padding, window_geometry

TARGET = "test_avg_pool2d_backward"
K_EXPR = "test_avg_pool2d_backward"


@classic_form(refcnn.avg_pool2d_backward)
def avg_pool2d_backward(
    dy: npt.ArrayLike,
    input_shape: Any,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> npt.NDArray[Any]:
    """Mutant avg-pool gradient: repeat-upsampling (see the module docstring)."""
    expected = refcnn.avg_pool2d_backward(
        dy,
        input_shape,
        ksize,
        strides=strides,
        padding=padding,
        count_include_pad=count_include_pad,
    )
    dy_arr = np.asarray(dy)
    kernel = pair(ksize)
    steps = kernel if strides is None else pair(strides)
    if dy_arr.size == 0:
        return expected
    n, h, w, c = (int(v) for v in input_shape)
    geometry = window_geometry(
        (h, w), kernel, steps, (1, 1), normalize_padding("avg_pool2d_backward", padding)
    )
    counts = []
    for axis, size in ((0, h), (1, w)):
        start = np.arange(geometry.out_hw[axis]) * steps[axis] - geometry.pads[axis][0]
        if count_include_pad:
            counts.append(np.full(start.shape, kernel[axis]))
        else:
            counts.append(np.minimum(start + kernel[axis], size) - np.maximum(start, 0))
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    divisor = np.multiply.outer(counts[0], counts[1]).astype(acc)[None, :, :, None]
    share = dy_arr.astype(acc) / divisor
    # BUG: window (i, j) is assumed to cover padded rows [i*KH, (i+1)*KH); it covers
    # [i*SH, i*SH + KH), the same thing only when strides == ksize.
    up = np.repeat(np.repeat(share, kernel[0], axis=1), kernel[1], axis=2)
    (top, bottom), (left, right) = geometry.pads
    padded = np.zeros((n, h + top + bottom, w + left + right, c), dtype=acc)
    rows, cols = min(up.shape[1], padded.shape[1]), min(up.shape[2], padded.shape[2])
    padded[:, :rows, :cols, :] = up[:, :rows, :cols, :]
    return padded[:, top : top + h, left : left + w, :].astype(dy_arr.dtype)


install_refcnn(__name__)
