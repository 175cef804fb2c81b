"""relu that writes its result into its input (``np.maximum(x, 0, out=x)``).

Bug: the values are exactly right, but the caller's array is overwritten. "Save memory with
``out=``" is a classic micro-optimisation in NumPy layers (and PyTorch's ``inplace=True``
ReLU is the same idea); when the pre-activation is also cached for the backward pass, or
the same input feeds another branch, the in-place write corrupts it.

Values always agree; only a check that the inputs are unchanged after the call (or a call
on a read-only array) rejects it. Must be rejected by ``test_relu``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from conformance.selftest import install_refcnn

TARGET = "test_relu"
K_EXPR = "test_relu and not backward"


def relu(x: npt.ArrayLike) -> npt.NDArray[Any]:
    """Mutant relu: overwrites its input (see the module docstring)."""
    x_arr = np.asarray(x)
    np.maximum(x_arr, x_arr.dtype.type(0), out=x_arr)  # BUG: in place on the caller's array
    return x_arr


install_refcnn(__name__)
