"""softmax_cross_entropy_backward that is the textbook ``softmax(z) - onehot(y)``.

Bug: the backward drops the class weights and the label smoothing (it still masks ignored
samples and averages over them): ``dz = m * (p - onehot(y)) / sum(m)``. The textbook
gradient is the special case ``w = 1``, ``e = 0``; in general it is
``dz = p * S - c`` with ``c[b, k] = m[b] w[k] t[b, k]``, ``S[b] = sum_k c[b, k]``, over the
weighted divisor. Hand-written fused softmax-cross-entropy layers routinely implement the
options in the forward pass and keep the textbook backward (TensorFlow's fused kernel
returns ``p - y`` even for labels that do not sum to 1), and a loss curve still goes down.

Exact with the defaults (``weights=None``, ``label_smoothing=0``), with or without
``ignore_index``. Must be rejected by ``test_softmax_cross_entropy_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_softmax_cross_entropy_backward"
K_EXPR = "test_softmax_cross_entropy_backward"


def softmax_cross_entropy_backward(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: npt.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> npt.NDArray[Any]:
    """Mutant gradient: the textbook special case for every case (see the module docstring)."""
    # Validate every argument as the real thing would.
    refcnn.softmax_cross_entropy_backward(
        logits,
        labels,
        axis=axis,
        reduction=reduction,
        weights=weights,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    result: npt.NDArray[Any] = refcnn.softmax_cross_entropy_backward(
        logits,
        labels,
        axis=axis,
        reduction=reduction,
        weights=None,
        ignore_index=ignore_index,
        label_smoothing=0.0,  # BUG: options dropped
    )
    return result


install_refcnn(__name__)
