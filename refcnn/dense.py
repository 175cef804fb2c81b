"""Fully connected (dense) layer and the flatten that feeds it.

Conventions: ``x`` is ``(N, I)`` (a batch of row vectors), the kernel ``w`` is ``(I, O)`` as in
Keras ``Dense`` and TensorFlow (PyTorch's ``Linear.weight`` is its transpose, ``(O, I)``), so
the layer is ``x @ w + b``. :func:`flatten` is ONNX ``Flatten(axis)``: the dimensions before
``axis`` become the rows, the rest the columns; ``axis=1`` keeps the batch, as Keras
``Flatten`` and ``torch.flatten(x, 1)`` do. Flattening an NHWC map is row-major, so feature
``(h, w, c)`` lands in column ``(h * W + w) * C + c``, the channels-last order a Keras model
expects (a PyTorch NCHW model orders the same features ``(c * H + h) * W + w``).

All ops here need only ``+`` and ``*``: integer dtypes stay integer and ``object`` arrays of
``fractions.Fraction`` are exact. float16 is accumulated in float32 and rounded once.
Infinities follow IEEE arithmetic (``inf * 0`` is NaN) without a NumPy warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    accumulation_dtype,
    as_array,
    as_axis,
    as_index_tuple,
    cast_result,
    ieee_arithmetic,
    require_same_dtype,
)

__all__ = ["DenseGradients", "dense", "dense_backward", "flatten", "flatten_backward"]

Array = npt.NDArray[Any]


class DenseGradients(NamedTuple):
    """Gradients of a dense layer with respect to its input, kernel and bias."""

    dx: Array
    dw: Array
    db: Array


def _flat_shape(op: str, shape: tuple[int, ...], axis: Any) -> tuple[int, int]:
    """ONNX ``Flatten`` output shape; ``axis`` is an int in ``[-ndim, ndim]``."""
    split = as_axis(op, "axis", axis, shape, inclusive=True)
    return math.prod(shape[:split]), math.prod(shape[split:])


def flatten(x: npt.ArrayLike, axis: int = 1) -> Array:
    """Flatten to 2-D: the axes before ``axis`` become rows, the rest columns (ONNX Flatten).

    Parameters
    ----------
    x : ndarray, shape (d_0, ..., d_{n-1})
        Any dtype ``as_array`` accepts (float, int, object/Fraction).
    axis : int
        In ``[-n, n]``; negative counts from the end. 0 gives one row, ``n`` one column.

    Returns
    -------
    y : ndarray, shape (d_0 * ... * d_{axis-1}, d_axis * ... * d_{n-1})
        Same dtype as ``x``; a new array, never a view that could write back into ``x``.
        An empty product is 1 (so ``axis=0`` gives ``(1, size)``).

    Notes
    -----
    Row-major (C order)::

        y[r, c] = x[i_0, ..., i_{n-1}]  with  r = sum_{a < axis} i_a * prod_{a < b < axis} d_b,
                                              c = sum_{a >= axis} i_a * prod_{b > a} d_b
    """
    op = "flatten"
    x_arr = as_array(op, "x", x)
    return np.array(x_arr.reshape(_flat_shape(op, x_arr.shape, axis)))


def flatten_backward(dy: npt.ArrayLike, input_shape: Sequence[int], axis: int = 1) -> Array:
    """Gradient of :func:`flatten`: ``dy`` reshaped back to the input's shape.

    Parameters
    ----------
    dy : ndarray, shape (R, C)
        Upstream gradient, exactly the forward output's shape.
    input_shape : sequence of int
        Shape of the forward input.
    axis : int
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``; a new array.

    Notes
    -----
    ``dx[i_0, ..., i_{n-1}] = dy[r, c]`` with ``r, c`` as in :func:`flatten` (flatten is a
    permutation-free relabelling of entries, so its adjoint is the inverse reshape).
    """
    op = "flatten_backward"
    dy_arr = as_array(op, "dy", dy, ndim=2, layout="(R, C)")
    shape = as_index_tuple(op, "input_shape", input_shape, length=None)
    expected = _flat_shape(op, shape, axis)
    if dy_arr.shape != expected:
        msg = (
            f"{op}: dy must have shape {expected} (flatten of input_shape {shape} at axis "
            f"{axis}), got {dy_arr.shape}"
        )
        raise ValueError(msg)
    return np.array(dy_arr.reshape(shape))


def dense(x: npt.ArrayLike, w: npt.ArrayLike, b: npt.ArrayLike | None = None) -> Array:
    """Fully connected layer ``x @ w + b``.

    Parameters
    ----------
    x : ndarray, shape (N, I)
        Input batch.
    w : ndarray, shape (I, O)
        Kernel (Keras/TensorFlow layout); same dtype as ``x``.
    b : ndarray, shape (O,), optional
        Bias, one per output unit; same dtype as ``x``.

    Returns
    -------
    y : ndarray, shape (N, O)
        Same dtype as ``x``. ``I = 0`` gives ``b`` (or zeros) in every row.

    Notes
    -----
    ``y[n, o] = b[o] + sum_i x[n, i] * w[i, o]``.
    """
    op = "dense"
    x_arr = as_array(op, "x", x, ndim=2, layout="(N, I)")
    w_arr = as_array(op, "w", w, ndim=2, layout="(I, O)")
    require_same_dtype(op, x=x_arr, w=w_arr)
    if x_arr.shape[1] != w_arr.shape[0]:
        msg = (
            f"{op}: x has I={x_arr.shape[1]} input features (shape {x_arr.shape}) but w expects "
            f"{w_arr.shape[0]} (shape {w_arr.shape}, (I, O))"
        )
        raise ValueError(msg)
    b_arr = None
    if b is not None:
        b_arr = as_array(op, "b", b, ndim=1, layout="(O,)")
        require_same_dtype(op, x=x_arr, b=b_arr)
        if b_arr.shape != (w_arr.shape[1],):
            msg = f"{op}: b must have shape ({w_arr.shape[1]},) (one per output), got {b_arr.shape}"
            raise ValueError(msg)
    acc = accumulation_dtype(x_arr.dtype)
    with ieee_arithmetic():  # inf inputs: inf * 0 is NaN, sums past the range are inf
        y = x_arr.astype(acc, copy=False) @ w_arr.astype(acc, copy=False)
        if b_arr is not None:
            y = y + b_arr.astype(acc, copy=False)
    return cast_result(y, x_arr.dtype)


def dense_backward(dy: npt.ArrayLike, x: npt.ArrayLike, w: npt.ArrayLike) -> DenseGradients:
    """All three gradients of :func:`dense`: ``(dx, dw, db)``.

    Parameters
    ----------
    dy : ndarray, shape (N, O)
        Upstream gradient, exactly the forward output's shape.
    x : ndarray, shape (N, I)
        The forward input.
    w : ndarray, shape (I, O)
        The forward kernel. All three share one dtype.

    Returns
    -------
    DenseGradients
        ``dx`` shape (N, I), ``dw`` shape (I, O), ``db`` shape (O,), same dtype as ``dy``.

    Notes
    -----
    ::

        dx[n, i] = sum_o dy[n, o] * w[i, o]      (dx = dy @ w^T)
        dw[i, o] = sum_n x[n, i] * dy[n, o]      (dw = x^T @ dy)
        db[o]    = sum_n dy[n, o]

    The bias gradient does not depend on whether the forward call had a bias.
    """
    op = "dense_backward"
    dy_arr = as_array(op, "dy", dy, ndim=2, layout="(N, O)")
    x_arr = as_array(op, "x", x, ndim=2, layout="(N, I)")
    w_arr = as_array(op, "w", w, ndim=2, layout="(I, O)")
    require_same_dtype(op, dy=dy_arr, x=x_arr, w=w_arr)
    if x_arr.shape[1] != w_arr.shape[0]:
        msg = (
            f"{op}: x has I={x_arr.shape[1]} input features (shape {x_arr.shape}) but w expects "
            f"{w_arr.shape[0]} (shape {w_arr.shape}, (I, O))"
        )
        raise ValueError(msg)
    expected = (x_arr.shape[0], w_arr.shape[1])
    if dy_arr.shape != expected:
        msg = f"{op}: dy must have shape {expected} (the forward output (N, O)), got {dy_arr.shape}"
        raise ValueError(msg)
    acc = accumulation_dtype(dy_arr.dtype)
    dy_acc, x_acc, w_acc = (a.astype(acc, copy=False) for a in (dy_arr, x_arr, w_arr))
    dtype = dy_arr.dtype
    with ieee_arithmetic():  # as in dense
        return DenseGradients(
            cast_result(dy_acc @ w_acc.T, dtype),
            cast_result(x_acc.T @ dy_acc, dtype),
            cast_result(np.sum(dy_acc, axis=0), dtype),
        )
