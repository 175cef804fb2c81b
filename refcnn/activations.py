"""Elementwise activations (ReLU, logistic sigmoid, tanh) and their gradients.

Every ``*_backward(dy, x)`` takes the forward *input* ``x``, not the forward output. From the
input the derivative keeps its full relative precision for large ``|x|``: ``1 - tanh(x)**2``
computed from the output is exactly 0 once ``tanh(x)`` rounds to 1 (``|x| > 19`` in float64),
while the true value ``4 e / (1 + e)**2`` with ``e = exp(-2|x|)`` is still representable.
(TensorFlow's ``SigmoidGrad``/``TanhGrad`` and PyTorch's formulas take the output; ``ReluGrad``
and PyTorch's ``threshold_backward`` take the input.)

Dtypes: ReLU is exact arithmetic and keeps any real dtype, integers and ``object`` arrays of
``fractions.Fraction`` included. Sigmoid and tanh need ``exp``, which has no integer or exact
rational form, so they accept real floating dtypes only and raise ``TypeError`` otherwise;
float16 is computed in float32 and rounded once. NaN propagates everywhere; infinities follow
IEEE arithmetic (``inf * 0`` is NaN), and no NumPy floating-point warning is emitted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    accumulation_dtype,
    as_array,
    as_floating,
    cast_result,
    check_upstream_shape,
    require_same_dtype,
)

__all__ = [
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
]

Array = npt.NDArray[Any]


def _check_pair(op: str, dy: Array, x: Array) -> None:
    require_same_dtype(op, dy=dy, x=x)
    check_upstream_shape(op, dy, x.shape, "the shape of x")


def _zero(dtype: np.dtype[Any]) -> Any:
    # Object arrays hold Fractions (or ints): a plain int 0 keeps them exact.
    return 0 if dtype.kind == "O" else dtype.type(0)


def relu(x: npt.ArrayLike) -> Array:
    """Rectified linear unit, ``max(x, 0)`` elementwise.

    Parameters
    ----------
    x : ndarray, any shape
        Real floating, integer or object (Fraction) dtype.

    Returns
    -------
    y : ndarray, shape of x
        Same dtype as ``x``; NaN stays NaN.

    Notes
    -----
    ``y[i] = x[i] if x[i] > 0 else 0``.
    """
    x_arr = as_array("relu", "x", x)
    return np.asarray(np.maximum(x_arr, _zero(x_arr.dtype))).astype(x_arr.dtype, copy=False)


def relu_backward(dy: npt.ArrayLike, x: npt.ArrayLike) -> Array:
    """Gradient of :func:`relu` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape of x
        Upstream gradient; same dtype as ``x``.
    x : ndarray, any shape
        The forward *input*.

    Returns
    -------
    dx : ndarray, shape of x

    Notes
    -----
    ``dx[i] = dy[i] if x[i] > 0 else 0 if x[i] <= 0 else NaN`` (the last case is ``x[i]``
    NaN). The derivative at exactly 0 is taken as 0, as in PyTorch and TensorFlow. ``dy`` is
    *selected*, not multiplied, so ``dy = inf`` or NaN where ``x <= 0`` still gives 0.
    At NaN ``x`` the frameworks disagree (PyTorch passes ``dy`` through, TensorFlow gives 0);
    here NaN propagates, since the derivative at NaN is undefined.
    """
    op = "relu_backward"
    dy_arr = as_array(op, "dy", dy)
    x_arr = as_array(op, "x", x)
    _check_pair(op, dy_arr, x_arr)
    # Neither comparison holds only for NaN, and then x itself (NaN) is the answer.
    inactive = np.where(x_arr <= 0, _zero(x_arr.dtype), x_arr)
    return np.where(x_arr > 0, dy_arr, inactive).astype(x_arr.dtype, copy=False)


def _logistic_parts(x: Array) -> tuple[Array, Array]:
    """``(e, x >= 0)`` with ``e = exp(-|x|)`` in (0, 1]: never the exp of a positive number."""
    with np.errstate(under="ignore"):
        return np.exp(-np.abs(x)), x >= 0


def sigmoid(x: npt.ArrayLike) -> Array:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, stable for any ``|x|``.

    Parameters
    ----------
    x : ndarray, any shape
        Real floating dtype.

    Returns
    -------
    y : ndarray, shape of x
        Same dtype as ``x``, in [0, 1].

    Notes
    -----
    With ``e = exp(-|x[i]|)``: ``y[i] = 1 / (1 + e)`` for ``x[i] >= 0`` and ``e / (1 + e)``
    for ``x[i] < 0``. Both branches only ever exponentiate a non-positive number, so nothing
    overflows (``exp(-x)`` overflows for ``x < -709`` in float64 and ``x < -88`` in float32)
    and small outputs keep their relative precision (``sigmoid(-800)`` is ``exp(-800)``
    rounded, i.e. 0, not a cancellation).
    """
    x_arr = as_floating("sigmoid", "x", x)
    acc = x_arr.astype(accumulation_dtype(x_arr.dtype), copy=False)
    e, non_negative = _logistic_parts(acc)
    y = np.where(non_negative, 1 / (1 + e), e / (1 + e))
    return cast_result(y, x_arr.dtype)


def sigmoid_backward(dy: npt.ArrayLike, x: npt.ArrayLike) -> Array:
    """Gradient of :func:`sigmoid` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape of x
        Upstream gradient; same dtype as ``x``.
    x : ndarray, any shape
        The forward *input* (real floating dtype).

    Returns
    -------
    dx : ndarray, shape of x

    Notes
    -----
    ``dx[i] = dy[i] * s(x[i]) * (1 - s(x[i]))``, evaluated as ``dy[i] * e / (1 + e)**2`` with
    ``e = exp(-|x[i]|)`` (the derivative is even in ``x``). This keeps full relative precision
    where ``1 - s`` would cancel to 0 (``x > 37`` in float64).
    """
    op = "sigmoid_backward"
    dy_arr = as_floating(op, "dy", dy)
    x_arr = as_floating(op, "x", x)
    _check_pair(op, dy_arr, x_arr)
    acc = accumulation_dtype(x_arr.dtype)
    e, _ = _logistic_parts(x_arr.astype(acc, copy=False))
    with np.errstate(invalid="ignore"):  # inf * 0 (dy = inf at x = +-inf) is NaN by IEEE
        dx = dy_arr.astype(acc, copy=False) * (e / (1 + e) ** 2)
    return cast_result(dx, x_arr.dtype)


def tanh(x: npt.ArrayLike) -> Array:
    """Hyperbolic tangent.

    Parameters
    ----------
    x : ndarray, any shape
        Real floating dtype.

    Returns
    -------
    y : ndarray, shape of x
        Same dtype as ``x``, in [-1, 1].

    Notes
    -----
    ``y[i] = (exp(x[i]) - exp(-x[i])) / (exp(x[i]) + exp(-x[i]))``, evaluated by ``np.tanh``
    (which never overflows).
    """
    x_arr = as_floating("tanh", "x", x)
    acc = x_arr.astype(accumulation_dtype(x_arr.dtype), copy=False)
    return np.asarray(np.tanh(acc)).astype(x_arr.dtype, copy=False)


def tanh_backward(dy: npt.ArrayLike, x: npt.ArrayLike) -> Array:
    """Gradient of :func:`tanh` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape of x
        Upstream gradient; same dtype as ``x``.
    x : ndarray, any shape
        The forward *input* (real floating dtype).

    Returns
    -------
    dx : ndarray, shape of x

    Notes
    -----
    ``dx[i] = dy[i] * (1 - tanh(x[i])**2) = dy[i] / cosh(x[i])**2``, evaluated as
    ``dy[i] * 4 e / (1 + e)**2`` with ``e = exp(-2 |x[i]|)``: no overflow (``cosh`` overflows
    past ``|x| = 710``) and no cancellation (``1 - tanh**2`` is 0 past ``|x| = 19``).
    """
    op = "tanh_backward"
    dy_arr = as_floating(op, "dy", dy)
    x_arr = as_floating(op, "x", x)
    _check_pair(op, dy_arr, x_arr)
    acc = x_arr.astype(accumulation_dtype(x_arr.dtype), copy=False)
    with np.errstate(under="ignore", over="ignore"):  # 2 * |x| past the range is inf: e = 0
        e = np.exp(-2 * np.abs(acc))
    with np.errstate(invalid="ignore"):  # inf * 0 (dy = inf at x = +-inf) is NaN by IEEE
        dx = dy_arr.astype(acc.dtype, copy=False) * (4 * e / (1 + e) ** 2)
    return cast_result(dx, x_arr.dtype)
