"""dense_backward whose kernel gradient is computed in the (O, I) layout and reshaped to (I, O).

Bug: ``dw = (dy.T @ x).reshape(w.shape)``. ``dy.T @ x`` is PyTorch's ``Linear.weight``
gradient, shape ``(O, I)``; this layer's kernel is Keras' ``(I, O)``, and "fixing" the shape
mismatch with ``reshape`` instead of ``.T`` scrambles the entries. Layout slips between the
two conventions are a perennial source of bugs in weight converters and from-scratch layers;
with ``reshape`` no shape check can catch it.

Exact when ``I == 1`` or ``O == 1`` (then reshape is a transpose), and ``dw.sum()`` is
always right; ``dx`` and ``db`` are exact. Must be rejected by ``test_dense_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_dense_backward"
K_EXPR = "test_dense_backward"


def dense_backward(dy: npt.ArrayLike, x: npt.ArrayLike, w: npt.ArrayLike) -> Any:
    """Mutant dense gradients: dw reshaped from (O, I) (see the module docstring)."""
    expected = refcnn.dense_backward(dy, x, w)
    dy_arr, x_arr, w_arr = np.asarray(dy), np.asarray(x), np.asarray(w)
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    dw_oi = dy_arr.astype(acc).T @ x_arr.astype(acc)
    dw = np.asarray(dw_oi.reshape(w_arr.shape)).astype(dy_arr.dtype)  # BUG: needs .T
    return refcnn.DenseGradients(expected.dx, dw, expected.db)


install_refcnn(__name__)
