"""tanh from the textbook formula ``(e^x - e^-x) / (e^x + e^-x)``.

Bug: numerically naive. ``exp`` overflows for |x| > ~89 in float32 (and in float16, computed
in float32) and ~710 in float64, giving ``inf / inf = nan`` (with an overflow warning) where
tanh is +-1; near 0 the subtraction cancels, losing ``eps / |x|`` relative precision. This
formula is how tanh is written in many from-scratch NumPy tutorials, activation-function
cheat sheets and "implement it yourself" exercises.

Exact to rounding for moderate |x|; differs for large |x| (NaN) and for tiny |x|
(relative error). Must be rejected by ``test_tanh``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_tanh"
K_EXPR = "test_tanh and not backward"


def tanh(x: npt.ArrayLike) -> npt.NDArray[Any]:
    """Mutant tanh: the overflowing exp formula (see the module docstring)."""
    expected = refcnn.tanh(x)
    x_arr = np.asarray(x)
    if x_arr.dtype.kind != "f":
        return expected
    acc = x_arr.astype(np.float32 if x_arr.dtype == np.float16 else x_arr.dtype)
    ep, em = np.exp(acc), np.exp(-acc)
    result: npt.NDArray[Any] = ((ep - em) / (ep + em)).astype(x_arr.dtype)  # BUG: overflows
    return result


install_refcnn(__name__)
