"""softmax_cross_entropy whose weighted/ignoring ``"mean"`` divides by N, not by summed weights.

Bug: ``loss = sum_b m[b] * w[y[b]] * nll[b] / N`` with ``N`` the number of samples. PyTorch
(and ONNX ``SoftmaxCrossEntropyLoss``) divide by ``sum_b m[b] * w[y[b]]``, the summed class
weight of the counted (non-ignored) targets. Dividing by the batch size is Keras'
``"sum_over_batch_size"`` rule, and ports between the two, as well as hand-written weighted
losses, mix them up; it also makes ignored samples (padding tokens, void pixels) dilute the
mean.

Exact without weights and with no ignored sample (the divisor is then N either way), and
for probability labels (PyTorch divides those by N too). Differs as soon as class weights
are not all 1 or a label equals ``ignore_index``, with ``reduction="mean"`` (the default).
Must be rejected by ``test_softmax_cross_entropy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_softmax_cross_entropy"
K_EXPR = "test_softmax_cross_entropy and not backward"


def softmax_cross_entropy(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: npt.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> npt.NDArray[Any]:
    """Mutant softmax cross-entropy: the mean divides by N (see the module docstring)."""
    options: dict[str, Any] = {
        "axis": axis,
        "weights": weights,
        "ignore_index": ignore_index,
        "label_smoothing": label_smoothing,
    }
    expected: npt.NDArray[Any] = refcnn.softmax_cross_entropy(
        logits, labels, reduction=reduction, **options
    )
    z, y = np.asarray(logits), np.asarray(labels)
    if reduction != "mean" or y.dtype.kind not in "iu" or y.size == 0:
        return expected
    total = refcnn.softmax_cross_entropy(logits, labels, reduction="sum", **options)
    acc = np.float32 if z.dtype == np.float16 else z.dtype
    # BUG: divides by the sample count N; the divisor is sum_b m[b] * w[y[b]].
    return np.asarray(total.astype(acc) / y.size).astype(z.dtype)


install_refcnn(__name__)
