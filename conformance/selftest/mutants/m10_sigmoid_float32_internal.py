"""sigmoid that computes in float32 whatever the input dtype, then casts back.

Bug: ``sigmoid(x.astype(np.float32)).astype(x.dtype)``: float64 inputs silently lose half
their digits (the result carries float32's ~6e-8 relative error but float64's dtype, so
nothing looks wrong). Seen wherever a float32-only kernel sits behind a dtype-generic API:
GPU/BLAS-backed layers that upcast only their output, ``np.float32`` literals or buffers
preallocated as float32 in "optimized" NumPy code, ``torch.tensor(x, dtype=torch.float)``
inside a wrapper.

float32 and float16 inputs are exact; float64 inputs are off by ~1e-8 relative, which only a
float64 tolerance at float64 precision catches. Must be rejected by ``test_sigmoid``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_sigmoid"
K_EXPR = "test_sigmoid and not backward"


def sigmoid(x: npt.ArrayLike) -> npt.NDArray[Any]:
    """Mutant sigmoid: float64 is computed in float32 (see the module docstring)."""
    x_arr = np.asarray(x)
    if x_arr.dtype != np.float64:
        return refcnn.sigmoid(x)
    result: npt.NDArray[Any] = refcnn.sigmoid(x_arr.astype(np.float32))  # BUG: silent downcast
    return result.astype(np.float64)


install_refcnn(__name__)
