"""log_softmax computed as ``log(softmax(z))``.

Bug: the probabilities are formed first and then logged, so any probability that underflows
(``z_i - max(z)`` below ~-745 in float64, ~-103 in float32, ~-17 in float16) gives
``log(0) = -inf`` (with a divide-by-zero warning) where the true value is the finite
``z_i - logsumexp(z)``; before underflow, subnormal probabilities lose digits, and the
dominant entry's ``log(1 - tiny)`` loses relative precision. This is the definition, and
it is how log-softmax / NLL is written in many tutorials and early framework versions (it is
why frameworks ship a fused ``log_softmax``).

Exact to rounding for logits spread over a few units; wrong for wide logits. Must be rejected
by ``test_log_softmax``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_log_softmax"
K_EXPR = "test_log_softmax"


def log_softmax(z: npt.ArrayLike, axis: int = -1) -> npt.NDArray[Any]:
    """Mutant log-softmax: log of the (underflowing) softmax (see the module docstring)."""
    expected = refcnn.log_softmax(z, axis=axis)  # validation, dtype
    z_arr = np.asarray(z)
    if z_arr.dtype.kind != "f" or z_arr.size == 0:
        return expected
    result: npt.NDArray[Any] = np.log(refcnn.softmax(z_arr, axis=axis))  # BUG: log after exp
    return result


install_refcnn(__name__)
