"""cross_entropy whose ``"mean"`` divides by the number of ELEMENTS (N * K), not of samples.

Bug: ``loss = np.mean(-y * np.log(p))``: the mean is taken over every entry of the
``(N, K)`` array instead of summing over the class axis and averaging over the N samples, so
the loss (and hence the effective learning rate) is K times too small. It is the single most
common cross-entropy slip in from-scratch NumPy code and blog posts, and Keras'
``categorical_crossentropy`` vs ``BinaryCrossentropy`` on one-hot targets differs the same
way.

The default ``reduction="sum"`` and ``"none"`` are exact; ``"mean"`` is off by a factor K
(exact only when K == 1). Must be rejected by ``test_cross_entropy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_cross_entropy"
K_EXPR = "test_cross_entropy and not backward"


def cross_entropy(
    p: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> npt.NDArray[Any]:
    """Mutant cross-entropy: mean over all elements (see the module docstring)."""
    expected: npt.NDArray[Any] = refcnn.cross_entropy(p, y, axis=axis, reduction=reduction, eps=eps)
    p_arr = np.asarray(p)
    if reduction != "mean" or p_arr.size == 0:
        return expected
    per_sample = refcnn.cross_entropy(p, y, axis=axis, reduction="none", eps=eps)
    acc = np.float32 if p_arr.dtype == np.float16 else p_arr.dtype
    total = np.sum(per_sample.astype(acc))
    # BUG: divides by every element of p; the mean is over samples (p.size / K of them).
    return np.asarray(total / p_arr.size).astype(p_arr.dtype)


install_refcnn(__name__)
