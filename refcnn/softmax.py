"""Softmax and log-softmax along one axis, the softmax Jacobian and its vector product.

Conventions: the class axis is ``axis`` (default last, as in TensorFlow and Keras; PyTorch's
``dim=1`` is ``axis=1`` here). Every slice along ``axis`` is normalized on its own and shifted
by its *own* maximum before ``exp``, so logits of any finite magnitude are safe and rows near
``1e4`` sit next to rows near 0 without one row's scale leaking into another.

Special values, as in PyTorch and TensorFlow: ``-inf`` marks an impossible class (softmax 0,
log-softmax ``-inf``) and is fine as long as the slice has one finite logit; a slice that is
all ``-inf`` (``-inf - -inf``), holds ``+inf`` (``inf - inf``) or holds a NaN comes out NaN in
every entry. No NumPy floating-point warning escapes for any of these.

Dtypes: forward ops need ``exp``/``log``, so they accept real floating dtypes only
(``TypeError`` for integers and objects); float16 is computed in float32 and rounded once.
:func:`softmax_jacobian` and :func:`softmax_backward` need only ``+ - *``, so they also take
``object`` arrays of ``fractions.Fraction`` and are then exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    accumulation_dtype,
    as_axis,
    as_floating,
    cast_result,
    ieee_arithmetic,
    require_same_dtype,
)

__all__ = ["log_softmax", "softmax", "softmax_backward", "softmax_jacobian"]

Array = npt.NDArray[Any]


def _class_input(
    op: str, name: str, value: Any, axis: Any, *, exact_ok: bool = False
) -> tuple[Array, int]:
    """Check an input that has a class axis: ``ndim >= 1``; return it and the axis in range."""
    array = as_floating(op, name, value, exact_ok=exact_ok)
    if array.ndim == 0:
        msg = f"{op}: {name} must have at least 1 dimension (the class axis), got shape ()"
        raise ValueError(msg)
    return array, as_axis(op, "axis", axis, array.shape)


def _shifted(z: Array, axis: int) -> Array:
    """``z - max(z, axis)``: every entry <= 0, the largest 0 (NaN for non-finite maxima)."""
    # All -inf (or +inf) slices: inf - inf is NaN; -max - max overflows to -inf.
    with np.errstate(invalid="ignore", over="ignore"):
        shifted: Array = z - np.max(z, axis=axis, keepdims=True)
    return shifted


def _log_softmax(z: Array, axis: int) -> Array:
    """``log_softmax`` on an already validated array, in its own dtype."""
    if z.shape[axis] == 0:
        return np.array(z)  # no classes: nothing to normalize (and max of nothing is undefined)
    shifted = _shifted(z, axis)
    with np.errstate(under="ignore"):
        others = np.exp(shifted)
    # The (first) maximum contributes exactly exp(0) = 1 to the normalizer. Summing the other
    # terms alone and taking log1p keeps the top class's log-probability accurate when it is
    # tiny (log(1 + 1e-20) would round to 0); the sum is >= 0 or NaN, so log1p never sees -1.
    top = np.argmax(shifted, axis=axis, keepdims=True)
    np.put_along_axis(others, top, 0, axis=axis)
    # Adding the top's shifted value (0, or NaN when the maximum is +inf) keeps inf - inf
    # spreading NaN over the whole slice, as the full sum would.
    rest = np.sum(others, axis=axis, keepdims=True) + np.take_along_axis(shifted, top, axis=axis)
    log_p: Array = shifted - np.log1p(rest)
    return log_p


def _softmax(z: Array, axis: int) -> Array:
    if z.shape[axis] == 0:
        return np.array(z)
    with np.errstate(under="ignore"):
        e = np.exp(_shifted(z, axis))
    p: Array = e / np.sum(e, axis=axis, keepdims=True)
    return p


def softmax(z: npt.ArrayLike, axis: int = -1) -> Array:
    """Softmax of each slice of ``z`` along ``axis``.

    Parameters
    ----------
    z : ndarray, any shape with ``ndim >= 1``
        Logits; real floating dtype.
    axis : int
        The class axis, in ``[-ndim, ndim)``.

    Returns
    -------
    p : ndarray, shape of z
        Same dtype as ``z``; each slice along ``axis`` sums to 1 (up to rounding).

    Notes
    -----
    With ``m = max_k z[..., k, ...]`` taken over the slice's own class axis::

        p[..., j, ...] = exp(z[..., j, ...] - m) / sum_k exp(z[..., k, ...] - m)

    Subtracting ``m`` changes nothing mathematically and keeps every ``exp`` argument <= 0,
    so nothing overflows and the denominator is >= 1. A ``-inf`` logit gives exactly 0; a
    slice that is all ``-inf`` gives NaN (``0 / 0``), as PyTorch and TensorFlow do; a NaN or
    ``+inf`` anywhere in a slice makes the whole slice NaN.
    """
    z_arr, ax = _class_input("softmax", "z", z, axis)
    acc = z_arr.astype(accumulation_dtype(z_arr.dtype), copy=False)
    return np.asarray(_softmax(acc, ax)).astype(z_arr.dtype, copy=False)


def log_softmax(z: npt.ArrayLike, axis: int = -1) -> Array:
    """Logarithm of :func:`softmax`, computed by log-sum-exp (finite for any finite ``z``).

    Parameters
    ----------
    z : ndarray, any shape with ``ndim >= 1``
        Logits; real floating dtype.
    axis : int
        The class axis, in ``[-ndim, ndim)``.

    Returns
    -------
    log_p : ndarray, shape of z
        Same dtype as ``z``; every entry <= 0.

    Notes
    -----
    With ``m = max_k z[..., k, ...]`` over the slice's own class axis::

        log_p[..., j, ...] = (z[..., j, ...] - m) - log1p(sum_{k != k*} exp(z[..., k, ...] - m))

    with ``k*`` the (first) class attaining ``m``, whose term is exactly ``exp(0) = 1``;
    ``log1p`` of the others keeps the top class's value accurate when it is close to 0
    (``log_softmax([0, 50])[1]`` is ``-exp(-50)``, not 0). Never ``log(softmax(z))``, which
    is ``-inf`` as soon as ``softmax`` underflows (``log_softmax([0, 1000])[0]`` is ``-1000``
    here). A ``-inf`` logit gives ``-inf``; an
    all-``-inf`` slice, a NaN or a ``+inf`` makes the slice NaN, as in :func:`softmax`.
    """
    z_arr, ax = _class_input("log_softmax", "z", z, axis)
    acc = z_arr.astype(accumulation_dtype(z_arr.dtype), copy=False)
    return np.asarray(_log_softmax(acc, ax)).astype(z_arr.dtype, copy=False)


def softmax_jacobian(p: npt.ArrayLike, axis: int = -1) -> Array:
    """Materialize the softmax Jacobian ``dp/dz`` of every slice.

    Parameters
    ----------
    p : ndarray, any shape with ``ndim >= 1``
        Softmax *output* (real floating or object/Fraction dtype).
    axis : int
        The class axis of ``p``, in ``[-ndim, ndim)``.

    Returns
    -------
    J : ndarray, shape (*B, K, K)
        ``B`` is the shape of ``p`` without ``axis`` (the other axes in their order) and
        ``K = p.shape[axis]``: the class axis is moved last and doubled. Same dtype as ``p``.

    Notes
    -----
    With ``b`` a multi-index over the other axes and ``q[b, i]`` the entry of ``p`` at ``b``
    with class ``i``::

        J[b, i, j] = d p[b, i] / d z[b, j] = q[b, i] * (delta_ij - q[b, j])

    i.e. ``diag(q) - q q^T`` per slice. ``J`` is symmetric, so ``J^T dp == J dp``; the
    cross-slice blocks of the full Jacobian are zero and are not stored. Built in one
    vectorized step (an outer product and a diagonal update), no loop over slices.
    """
    p_arr, ax = _class_input("softmax_jacobian", "p", p, axis, exact_ok=True)
    q = np.moveaxis(p_arr.astype(accumulation_dtype(p_arr.dtype), copy=False), ax, -1)
    with ieee_arithmetic():  # p is any array here: inf and huge entries follow IEEE
        jacobian = -q[..., :, np.newaxis] * q[..., np.newaxis, :]
        diagonal = np.arange(q.shape[-1])
        jacobian[..., diagonal, diagonal] += q
    return cast_result(jacobian, p_arr.dtype)


def softmax_backward(dp: npt.ArrayLike, p: npt.ArrayLike, axis: int = -1) -> Array:
    """Vector-Jacobian product of :func:`softmax`, without building the Jacobian.

    Parameters
    ----------
    dp : ndarray, shape of p
        Upstream gradient with respect to the softmax output; same dtype as ``p``.
    p : ndarray, any shape with ``ndim >= 1``
        The softmax *output* (real floating or object/Fraction dtype).
    axis : int
        The class axis, as given to :func:`softmax`.

    Returns
    -------
    dz : ndarray, shape of p
        Gradient with respect to the logits.

    Notes
    -----
    With ``b`` a multi-index over the other axes, per slice ``dz = J^T dp`` with
    ``J = diag(p) - p p^T`` (:func:`softmax_jacobian`)::

        dz[b, j] = sum_i dp[b, i] * p[b, i] * (delta_ij - p[b, j])
                 = p[b, j] * (dp[b, j] - sum_i p[b, i] * dp[b, i])

    which costs ``O(K)`` per slice instead of the Jacobian's ``O(K^2)``.
    """
    op = "softmax_backward"
    p_arr, ax = _class_input(op, "p", p, axis, exact_ok=True)
    dp_arr = as_floating(op, "dp", dp, exact_ok=True)
    require_same_dtype(op, dp=dp_arr, p=p_arr)
    if dp_arr.shape != p_arr.shape:
        msg = f"{op}: dp must have shape {p_arr.shape} (the shape of p), got {dp_arr.shape}"
        raise ValueError(msg)
    acc = accumulation_dtype(p_arr.dtype)
    p_acc, dp_acc = p_arr.astype(acc, copy=False), dp_arr.astype(acc, copy=False)
    with ieee_arithmetic():  # as in softmax_jacobian
        inner = np.sum(p_acc * dp_acc, axis=ax, keepdims=True)
        return cast_result(p_acc * (dp_acc - inner), p_arr.dtype)
