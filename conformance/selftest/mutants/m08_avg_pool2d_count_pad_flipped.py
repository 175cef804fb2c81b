"""avg_pool2d with the ``count_include_pad`` flag inverted.

Bug: the divisor is the full ``KH * KW`` window when ``count_include_pad=False`` (the
default, TensorFlow/ONNX semantics) and the number of real elements when it is True. Model
converters and framework shims have shipped this repeatedly: one side names the flag
``exclude_padding``/``avgPoolExcludePadding`` (Core ML, some Caffe forks), the other
``count_include_pad`` (PyTorch, ONNX), and the flag is forwarded without being negated;
PyTorch's default (True) also differs from TensorFlow's behaviour (False).

Without padding both divisors are ``KH * KW``, so VALID pooling is exact; only windows that
overlap the padding (SAME, SAME_LOWER, explicit) differ. Must be rejected by
``test_avg_pool2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn

TARGET = "test_avg_pool2d"
K_EXPR = "test_avg_pool2d and not backward"


@classic_form(refcnn.avg_pool2d)
def avg_pool2d(
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> npt.NDArray[Any]:
    """Mutant average pooling: the divisor flag is inverted (see the module docstring)."""
    if isinstance(count_include_pad, bool | np.bool_):
        count_include_pad = not count_include_pad  # BUG: forwarded without the negation
    return refcnn.avg_pool2d(
        x, ksize, strides=strides, padding=padding, count_include_pad=count_include_pad
    )


install_refcnn(__name__)
