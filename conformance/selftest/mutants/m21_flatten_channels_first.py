"""flatten that orders the features of an NHWC map channels-first (PyTorch's NCHW order).

Bug: ``x.transpose(0, 3, 1, 2).reshape(N, -1)``: feature ``(h, w, c)`` lands in column
``(c * H + h) * W + w`` instead of the row-major ``(h * W + w) * C + c``. Code and weight
converters ported from PyTorch (where the map is NCHW, so ``x.view(N, -1)`` gives that order)
ship this constantly: the first dense layer after the flatten then reads permuted features,
and loading PyTorch dense weights into a Keras model needs exactly this permutation.

Exact when ``C == 1`` or ``H * W == 1`` (and for anything but a 4-D map flattened at
``axis=1``); the shape is always right and only the order differs. Must be rejected by
``test_flatten``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_flatten"
K_EXPR = "test_flatten and not backward"


def flatten(x: npt.ArrayLike, axis: int = 1) -> npt.NDArray[Any]:
    """Mutant flatten: channels-first feature order (see the module docstring)."""
    expected: npt.NDArray[Any] = refcnn.flatten(x, axis=axis)
    x_arr = np.asarray(x)
    if x_arr.ndim != 4 or axis not in (1, -3):
        return expected
    return np.array(x_arr.transpose(0, 3, 1, 2).reshape(expected.shape))  # BUG: NCHW order


install_refcnn(__name__)
