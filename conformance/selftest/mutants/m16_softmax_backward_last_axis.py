"""softmax_backward that reduces over the LAST axis whatever ``axis`` says.

Bug: ``dz = p * (dp - (dp * p).sum(axis=-1, keepdims=True))``: the ``axis`` argument reaches
the forward but not the reduction in the backward. Typical when a 2-D ``(N, K)`` softmax
gradient is generalized to N-D by adding an ``axis`` parameter and one of the reductions is
missed; ``keepdims=True`` makes the wrong reduction broadcast silently (and with square
shapes even ``keepdims=False`` would not crash).

Correct for the default ``axis=-1`` (and any axis equal to the last one); wrong for any
other class axis (e.g. NCHW-style ``axis=1`` on a 4-D array). Must be rejected by
``test_softmax_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_softmax_backward"
K_EXPR = "test_softmax_backward"


def softmax_backward(dp: npt.ArrayLike, p: npt.ArrayLike, axis: int = -1) -> npt.NDArray[Any]:
    """Mutant softmax gradient: reduction on the last axis (see the module docstring)."""
    expected = refcnn.softmax_backward(dp, p, axis=axis)  # validation, dtype
    dp_arr, p_arr = np.asarray(dp), np.asarray(p)
    if p_arr.dtype.kind != "f" or p_arr.size == 0:
        return expected
    acc = np.float32 if p_arr.dtype == np.float16 else p_arr.dtype
    dpa, pa = dp_arr.astype(acc), p_arr.astype(acc)
    dz = pa * (dpa - (dpa * pa).sum(axis=-1, keepdims=True))  # BUG: axis=-1, not axis
    result: npt.NDArray[Any] = dz.astype(p_arr.dtype)
    return result


install_refcnn(__name__)
