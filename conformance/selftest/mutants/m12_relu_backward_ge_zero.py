"""relu_backward that passes the gradient where ``x >= 0`` instead of ``x > 0``.

Bug: ``dx = dy * (x >= 0)``: the subgradient at exactly 0 is taken as 1. TensorFlow, PyTorch
and JAX all use 0 there (the mask is ``x > 0``). ``>=`` is common in from-scratch NumPy
networks and tutorials (and a cached-output variant ``y >= 0`` is always 1, which is worse).
Random real-valued inputs never hit 0 exactly, so it looks exact.

Only differs where ``x == 0`` exactly (zero-padded borders, the outputs of a previous ReLU or
max pool, integer-valued data). Must be rejected by ``test_relu_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_relu_backward"
K_EXPR = "test_relu_backward"


def relu_backward(dy: npt.ArrayLike, x: npt.ArrayLike) -> npt.NDArray[Any]:
    """Mutant relu gradient: 1 at x == 0 (see the module docstring)."""
    expected = refcnn.relu_backward(dy, x)  # validation, dtype and the x != 0 entries
    x_arr, dy_arr = np.asarray(x), np.asarray(dy)
    # BUG: the mask is x >= 0; written as "where x == 0 pass dy through, else the real rule"
    # so the mutant differs from refcnn at exact zeros only (NaN/inf handling stays refcnn's).
    return np.where(x_arr == 0, dy_arr, expected).astype(expected.dtype)


install_refcnn(__name__)
