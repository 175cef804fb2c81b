"""sigmoid computed as ``1 / (1 + exp(-x))``: right values, but an overflow warning at x << 0.

``exp(100)`` overflows float32 to inf, NumPy warns, and ``1 / inf = 0`` is within the bound
of the true ``3.7e-44``. Values first: the gate counts the warning and passes, unless
``--strict-warnings``. ``tanh`` is wrong *and* warns: the value error must be what is shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.selftest import install_refcnn


def sigmoid(x: Any) -> Any:
    """The textbook formula, overflowing exp for very negative x."""
    x_arr = np.asarray(x)
    one = x_arr.dtype.type(1)
    return np.asarray(one / (one + np.exp(-x_arr)), dtype=x_arr.dtype)


def tanh(x: Any) -> Any:
    """Wrong by 1% and warning about it."""
    x_arr = np.asarray(x)
    with np.errstate(over="warn"):
        np.exp(np.asarray(1e6, dtype=np.float64))
    return np.asarray(np.tanh(x_arr) * x_arr.dtype.type(1.01), dtype=x_arr.dtype)


install_refcnn(__name__)
