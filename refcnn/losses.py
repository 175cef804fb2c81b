"""Cross-entropy losses and their gradients.

Two functions, two conventions, kept apart on purpose:

- :func:`cross_entropy` takes *probabilities* ``p`` (a softmax output) and targets ``y``, as
  in the classic from-scratch tutorials; default reduction ``"sum"``, no clamping unless
  ``eps`` asks for it.
- :func:`softmax_cross_entropy` takes *logits* and is PyTorch's
  ``torch.nn.functional.cross_entropy`` with the class axis given by ``axis`` (PyTorch's
  class dimension 1 is ``axis=1``): index or probability labels, per-class ``weights``,
  ``ignore_index``, ``label_smoothing``, default reduction ``"mean"``. Without probability
  labels and smoothing it is also ONNX ``SoftmaxCrossEntropyLoss``.

A *sample* is one slice along ``axis`` (one position of every other axis), so ``"mean"``
averages over every axis but ``axis``, the spatial positions of a segmentation map included,
as PyTorch and ONNX do.

Special values: NaN propagates; no NumPy floating-point warning escapes (``np.errstate``
around every ``log``/division whose IEEE result is the documented one). Dtypes: real floating
only for anything that takes a ``log`` (``TypeError`` for integers and objects); float16 is
computed in float32 and rounded once. :func:`cross_entropy_backward` needs no ``log`` and is
exact on ``object`` arrays of ``fractions.Fraction``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    accumulation_dtype,
    as_array,
    as_floating,
    as_int,
    as_real,
    cast_result,
    check_upstream_shape,
    describe,
    ieee_arithmetic,
    require_same_dtype,
)
from refcnn.softmax import _class_input, _log_softmax, _softmax

__all__ = [
    "cross_entropy",
    "cross_entropy_backward",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
]

Array = npt.NDArray[Any]

_REDUCTIONS = ("none", "sum", "mean")


def _check_reduction(op: str, reduction: Any) -> str:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        msg = f"{op}: reduction must be one of 'none', 'sum', 'mean', got {reduction!r}"
        raise ValueError(msg)
    return reduction


def _reduce(values: Array, reduction: str, denominator: Any) -> Array:
    """``none``: as is; ``sum``: the total; ``mean``: the total over ``denominator``."""
    if reduction == "none":
        return values
    total = np.sum(values)
    if reduction == "sum":
        return np.asarray(total)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 is NaN, as in PyTorch
        return np.asarray(total / denominator)


def _sample_count(shape: tuple[int, ...], axis: int) -> int:
    return math.prod(shape[:axis] + shape[axis + 1 :])


# --- cross_entropy on probabilities ----------------------------------------------------------


class _ProbabilityInputs(NamedTuple):
    p: Array
    y: Array
    axis: int
    reduction: str
    eps: float | None


def _probability_inputs(
    op: str, p: Any, y: Any, *, axis: Any, reduction: Any, eps: Any, exact_ok: bool
) -> _ProbabilityInputs:
    p_arr, ax = _class_input(op, "p", p, axis, exact_ok=exact_ok)
    y_arr = as_floating(op, "y", y, exact_ok=exact_ok)
    require_same_dtype(op, p=p_arr, y=y_arr)
    check_upstream_shape(op, y_arr, p_arr.shape, "the shape of p", name="y")
    clamp = None if eps is None else as_real(op, "eps", eps)
    if clamp is not None and not 0 < clamp < 1:
        msg = f"{op}: eps must be None or in (0, 1), got {eps!r}"
        raise ValueError(msg)
    return _ProbabilityInputs(p_arr, y_arr, ax, _check_reduction(op, reduction), clamp)


def cross_entropy(
    p: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Array:
    """Cross-entropy ``-sum(y * log p)`` of probabilities ``p`` against targets ``y``.

    Parameters
    ----------
    p : ndarray, any shape with ``ndim >= 1``
        Predicted probabilities (a softmax output); real floating dtype.
    y : ndarray, shape of p
        Targets (one-hot or any distribution); same dtype as ``p``.
    axis : int
        The class axis.
    reduction : {"sum", "mean", "none"}
        ``"none"``: one loss per sample, shape of ``p`` without ``axis``; ``"sum"``: their
        total; ``"mean"``: their total over the number of samples (the product of every
        dimension but ``axis``; NaN when there are none, 0/0).
    eps : float in (0, 1), optional
        ``None`` (default) is exact. ``eps=1e-12`` reproduces the classic tutorial clamp:
        ``p`` is replaced by ``clip(p, eps, 1)`` before the log (in the computation dtype,
        float32 for float16 input).

    Returns
    -------
    loss : ndarray
        Shape of ``p`` without ``axis`` for ``"none"``, else 0-d; same dtype as ``p``.

    Notes
    -----
    With ``b`` a multi-index over the other axes and ``pc = p`` (or ``clip(p, eps, 1)``)::

        loss[b] = -sum_k y[b, k] * log(pc[b, k])

    with the convention ``0 * log 0 = 0``: a term whose ``y`` is 0 is 0 even where ``p`` is
    0 (the limit of ``y log y``). Where ``p`` is 0 and ``y > 0`` the loss is ``+inf``, not a
    silent clamp (NumPy's divide-by-zero warning for ``log 0`` is suppressed because ``inf``
    is the intended answer). A negative ``p`` gives NaN (log of a negative number).
    ``p`` is used as given: Keras' ``categorical_crossentropy(from_logits=False)`` instead
    divides ``p`` by its sum over the class axis and clips it to ``[1e-7, 1 - 1e-7]``.
    """
    op = "cross_entropy"
    inputs = _probability_inputs(op, p, y, axis=axis, reduction=reduction, eps=eps, exact_ok=False)
    acc = accumulation_dtype(inputs.p.dtype)
    p_acc, y_acc = inputs.p.astype(acc, copy=False), inputs.y.astype(acc, copy=False)
    if inputs.eps is not None:
        p_acc = np.clip(p_acc, inputs.eps, 1)
    # log 0 = -inf, 0 * -inf is fixed below; huge targets overflow to inf (IEEE, no warning).
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = y_acc * np.log(p_acc)
        terms = np.where((y_acc == 0) & (p_acc == 0), 0, terms)
        per_sample = -np.sum(terms, axis=inputs.axis)
    count = _sample_count(inputs.p.shape, inputs.axis)
    return cast_result(_reduce(per_sample, inputs.reduction, count), inputs.p.dtype)


def cross_entropy_backward(
    p: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Array:
    """Gradient of :func:`cross_entropy` with respect to ``p``.

    Parameters
    ----------
    p, y, axis, reduction, eps
        As given to :func:`cross_entropy`. Object (Fraction) arrays are accepted and give
        exact results (no ``log`` is needed here).

    Returns
    -------
    dp : ndarray, shape of p
        Same dtype as ``p``. For ``"none"`` each sample's slice is the gradient of that
        sample's own loss (a sample's loss depends on its slice only), which is also the
        gradient of ``"sum"``.

    Notes
    -----
    Exact (``eps=None``)::

        dp[b, k] = -y[b, k] / p[b, k] * r

    with ``r = 1`` for ``"none"``/``"sum"`` and ``1 / num_samples`` for ``"mean"``. Where
    ``y`` is 0 the gradient is 0, even at ``p == 0`` (the derivative of the ``0 * log 0 = 0``
    term); where ``y > 0`` and ``p == 0`` it is ``-inf`` (for object arrays, which cannot hold
    an infinity, that is a ``ValueError``).

    With ``eps`` this is the derivative of the clamped loss ``-y log(clip(p, eps, 1))``:
    ``-y / p * r`` where ``eps <= p <= 1`` (both ends included, as PyTorch's ``clamp``
    backward does) and exactly 0 where ``p < eps`` or ``p > 1``, where the clamp is flat.

    A quotient larger than the dtype can hold (a tiny ``p``) is ``-inf`` without a warning,
    as dividing by 0 is.
    """
    op = "cross_entropy_backward"
    inputs = _probability_inputs(op, p, y, axis=axis, reduction=reduction, eps=eps, exact_ok=True)
    acc = accumulation_dtype(inputs.p.dtype)
    p_acc, y_acc = inputs.p.astype(acc, copy=False), inputs.y.astype(acc, copy=False)
    flat = np.zeros(p_acc.shape, dtype=bool)
    if inputs.eps is not None:
        flat = (p_acc < inputs.eps) | (p_acc > 1)  # NaN p is never flat: NaN propagates
    zero_term = (y_acc == 0) & (p_acc == 0)
    fixed = flat | zero_term
    exact = acc.kind == "O"
    if exact and ((p_acc == 0) & ~fixed).any():
        where = tuple(int(i) for i in np.argwhere((p_acc == 0) & ~fixed)[0])
        msg = (
            f"{op}: p is 0 where y != 0 (at index {where}); the gradient -y/p is infinite, "
            "which an object (Fraction) array cannot hold: use a floating dtype"
        )
        raise ValueError(msg)
    # Plain ints keep object (Fraction) arrays exact; typed scalars keep float dtypes.
    one, zero = (1, 0) if exact else (acc.type(1), acc.type(0))
    denominator = np.where(fixed, one, p_acc)
    if inputs.reduction == "mean":
        # Scale p, not the quotient: -y / (p * n) overflows only where the true gradient
        # does, while (-y / p) / n would overflow first for a tiny p and then stay inf.
        denominator = denominator * _sample_count(inputs.p.shape, inputs.axis)
    # -y / 0 = -inf is the answer, and so is a quotient beyond the dtype's range (as in the
    # frameworks): neither is an error here.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = -y_acc / denominator
    dp = np.where(fixed, zero, ratio)
    return cast_result(dp, inputs.p.dtype)


# --- softmax_cross_entropy on logits -------------------------------------------------------


class _LogitInputs(NamedTuple):
    """Validated inputs, in the computation dtype, with the class axis moved last."""

    dtype: np.dtype[Any]  # the caller's dtype, for the result
    axis: int
    logits: Array  # (*B, K)
    weights: Array  # (K,), ones when none were given
    classes: Array | None  # (*B,) class indices (0 where ignored), or None for probabilities
    counted: Array  # (*B,) bool: False where the label is ignore_index
    probabilities: Array | None  # (*B, K) probability labels, or None for indices
    reduction: str
    smoothing: float


def _check_index_labels(
    op: str, labels: Array, num_classes: int, ignore_index: int | None
) -> Array:
    """Return where index labels count (not ``ignore_index``); refuse one out of range."""
    in_range = (labels >= 0) & (labels < num_classes)
    counted = np.ones(labels.shape, dtype=bool) if ignore_index is None else labels != ignore_index
    bad = ~in_range & counted
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        allowed = f"[0, {num_classes})"
        if ignore_index is not None:
            allowed += f" or ignore_index={describe(ignore_index)}"
        msg = f"{op}: labels must be class indices in {allowed}, got {labels[where]} at {where}"
        raise ValueError(msg)
    return counted


def _class_weights(op: str, weights: Any, z: Array, axis: int, acc: np.dtype[Any]) -> Array:
    """Per-class weights ``(K,)`` in ``acc`` (ones when none are given)."""
    num_classes = z.shape[axis]
    if weights is None:
        return np.ones(num_classes, dtype=acc)
    w = as_floating(op, "weights", weights, ndim=1, layout="(K,), one per class")
    require_same_dtype(op, logits=z, weights=w)
    if w.shape != (num_classes,):
        msg = (
            f"{op}: weights must have shape ({num_classes},) (one per class along axis "
            f"{axis} of logits shape {z.shape}), got {w.shape}"
        )
        raise ValueError(msg)
    return w.astype(acc, copy=False)


class _Labels(NamedTuple):
    classes: Array | None  # (*B,) class indices (0 where ignored), or None
    counted: Array  # (*B,) bool
    probabilities: Array | None  # (*B, K) in the computation dtype, or None


def _index_labels(op: str, y: Array, z: Array, axis: int, ignored: int | None) -> _Labels:
    """Integer labels: one class index per sample, the logits' shape without ``axis``."""
    batch_shape = z.shape[:axis] + z.shape[axis + 1 :]
    if y.shape != batch_shape:
        msg = (
            f"{op}: integer labels are class indices and must have shape {batch_shape} "
            f"(logits shape {z.shape} without axis {axis}), got {y.shape}"
        )
        raise ValueError(msg)
    counted = _check_index_labels(op, y, z.shape[axis], ignored)
    return _Labels(np.where(counted, y, 0).astype(np.intp), counted, None)


def _probability_labels(
    op: str, y: Array, z: Array, axis: int, ignored: int | None, acc: np.dtype[Any]
) -> _Labels:
    """Floating labels: a class distribution per sample, the logits' shape."""
    if ignored is not None:
        msg = (
            f"{op}: ignore_index={describe(ignored)} applies to integer class-index labels "
            "only, got floating (probability) labels (PyTorch refuses this combination too)"
        )
        raise ValueError(msg)
    require_same_dtype(op, logits=z, labels=y)
    if y.shape != z.shape:
        msg = (
            f"{op}: floating labels are class probabilities and must have the logits' shape "
            f"{z.shape}, got {y.shape} (class indices need an integer dtype)"
        )
        raise ValueError(msg)
    counted = np.ones(z.shape[:axis] + z.shape[axis + 1 :], dtype=bool)
    return _Labels(None, counted, np.moveaxis(y.astype(acc, copy=False), axis, -1))


def _labels(
    op: str, labels: Any, z: Array, axis: int, ignored: int | None, acc: np.dtype[Any]
) -> _Labels:
    """Labels by kind, decided by dtype: integers are indices, floats probabilities."""
    y = as_array(op, "labels", labels)
    if y.dtype.kind in "iu":
        return _index_labels(op, y, z, axis, ignored)
    if y.dtype.kind == "f":
        return _probability_labels(op, y, z, axis, ignored, acc)
    msg = (
        f"{op}: labels must be integer class indices or floating probabilities, got dtype {y.dtype}"
    )
    raise TypeError(msg)


def _logit_inputs(
    op: str,
    logits: Any,
    labels: Any,
    *,
    axis: Any,
    reduction: Any,
    weights: Any,
    ignore_index: Any,
    label_smoothing: Any,
) -> _LogitInputs:
    """Validate softmax_cross_entropy's arguments; the class axis moves last."""
    z, ax = _class_input(op, "logits", logits, axis)
    if z.shape[ax] == 0:
        msg = f"{op}: logits must have at least one class along axis {ax}, got shape {z.shape}"
        raise ValueError(msg)
    reduction = _check_reduction(op, reduction)
    smoothing = as_real(op, "label_smoothing", label_smoothing)
    if not 0 <= smoothing <= 1:
        msg = f"{op}: label_smoothing must be in [0, 1] (as in PyTorch), got {label_smoothing!r}"
        raise ValueError(msg)
    ignored = None
    if ignore_index is not None:
        ignored = as_int(op, "ignore_index", ignore_index, expected="None or an int")
    acc = accumulation_dtype(z.dtype)
    w = _class_weights(op, weights, z, ax, acc)
    classes, counted, probabilities = _labels(op, labels, z, ax, ignored, acc)
    z_last = np.moveaxis(z.astype(acc, copy=False), ax, -1)
    return _LogitInputs(
        z.dtype, ax, z_last, w, classes, counted, probabilities, reduction, float(smoothing)
    )


def _neg_log_terms(coefficient: Array, log_p: Array) -> Array:
    """``coefficient * -log_p`` with ``0 * -log 0 = 0``.

    A zero coefficient on an impossible class (``log_p = -inf``) contributes 0, not NaN.
    """
    with np.errstate(invalid="ignore"):
        terms = coefficient * -log_p
    return np.where((coefficient == 0) & (log_p == -np.inf), 0, terms)


def _targets(inputs: _LogitInputs) -> Array:
    """``t[b, k]``: the smoothed target distribution, shape (*B, K)."""
    num_classes = inputs.logits.shape[-1]
    if inputs.probabilities is not None:
        base = inputs.probabilities
    else:
        assert inputs.classes is not None
        every_class = np.arange(num_classes)
        base = (every_class == inputs.classes[..., np.newaxis]).astype(inputs.logits.dtype)
    if inputs.smoothing == 0:
        return base
    smoothed: Array = (1 - inputs.smoothing) * base + inputs.smoothing / num_classes
    return smoothed


def _mean_denominator(inputs: _LogitInputs) -> Any:
    """PyTorch's ``"mean"`` divisor: summed target weights (index labels) or sample count."""
    if inputs.classes is None:
        return inputs.counted.size
    return np.sum(np.where(inputs.counted, inputs.weights[inputs.classes], 0))


def _sum_of_others(a: Array) -> Array:
    """``out[..., j] = sum_{k != j} a[..., k]`` from exclusive prefix and suffix sums.

    No subtraction (``sum - a[j]`` would cancel when ``a[j]`` holds nearly all the mass).
    """
    zero = np.zeros((*a.shape[:-1], 1), dtype=a.dtype)
    before = np.cumsum(np.concatenate([zero, a[..., :-1]], axis=-1), axis=-1)
    after = np.cumsum(np.concatenate([zero, a[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    total: Array = before + after
    return total


def _one_hot_gradient(p: Array, inputs: _LogitInputs) -> Array:
    """Evaluate the gradient when ``c[b]`` is ``c_y = m * w[y]`` at ``y`` and 0 elsewhere.

    ``p_j * sum_{k != j} c_k - c_j * sum_{k != j} p_k`` is then ``p_j * c_y`` off the target
    and ``-c_y * sum_{k != y} p_k`` at it: the same values without the four prefix sums
    (most of the time of the general form for a thousand classes).
    """
    assert inputs.classes is not None
    target = inputs.classes[..., np.newaxis]
    c_target = np.where(inputs.counted, inputs.weights[inputs.classes], 0)[..., np.newaxis]
    others = p.copy()
    np.put_along_axis(others, target, 0, axis=-1)
    dz: Array = p * c_target
    # 0 - x rather than -x: an ignored sample (c_y = 0) gets +0, as from the general form.
    np.put_along_axis(dz, target, 0 - c_target * np.sum(others, axis=-1, keepdims=True), axis=-1)
    return dz


def softmax_cross_entropy(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: npt.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    """Softmax cross-entropy on logits: PyTorch's ``F.cross_entropy`` along ``axis``.

    Parameters
    ----------
    logits : ndarray, shape (*B, K) with the class axis K at ``axis``
        Unnormalized scores; real floating dtype, any finite magnitude.
    labels : ndarray
        Either integer class indices, shape ``B`` (``logits`` without ``axis``), each in
        ``[0, K)`` or equal to ``ignore_index``; or floating class probabilities with the
        shape and dtype of ``logits``. The dtype decides which (PyTorch decides by shape;
        here a shape that does not fit the dtype's meaning is a ``ValueError``).
    axis : int
        The class axis (PyTorch's ``dim=1``).
    reduction : {"mean", "sum", "none"}
        See Notes for what ``"mean"`` divides by.
    weights : ndarray, shape (K,), optional
        Per-class weights (PyTorch's ``weight``), same dtype as ``logits``.
    ignore_index : int, optional
        Samples whose label equals it contribute 0 and are left out of the ``"mean"``
        divisor. ``None`` ignores nothing (PyTorch's default is ``-100``: pass it
        explicitly). Index labels only; with probability labels it is a ``ValueError``.
    label_smoothing : float in [0, 1]
        PyTorch's ``label_smoothing``.

    Returns
    -------
    loss : ndarray
        Shape ``B`` for ``"none"``, else 0-d; same dtype as ``logits``.

    Notes
    -----
    With ``log_p = log_softmax(logits, axis)`` (log-sum-exp, so finite for any finite logits),
    ``w`` the weights (all 1 if none), ``e = label_smoothing`` and ``m[b] = 0`` where
    ``labels[b] == ignore_index`` else 1, PyTorch (``aten/native/LossNLL.cpp``; checked
    numerically against 2.13) computes, for **index labels** ``y[b]``::

        nll[b]    = m[b] * w[y[b]] * -log_p[b, y[b]]
        smooth[b] = m[b] * sum_k w[k] * -log_p[b, k]
        loss      = (1 - e) * R(nll) + (e / K) * R(smooth)      (just R(nll) when e == 0)

    where ``R`` is the identity (``"none"``), the sum (``"sum"``) or, for ``"mean"``, the
    sum divided by ``D = sum_b m[b] * w[y[b]]``: the summed weight of the *target* classes of
    the counted samples, the same divisor for the smoothing term. If every sample is ignored,
    ``D = 0`` and ``"mean"`` is NaN (0/0), as in PyTorch (ONNX's reference gives NaN too;
    Keras gives 0). Per sample this is ``loss[b] = m[b] * sum_k w[k] t[b, k] * -log_p[b, k]``
    with ``t[b] = (1 - e) * onehot(y[b]) + e / K``.

    For **probability labels** ``y[b, k]``, with ``t[b] = (1 - e) * y[b] + e / K``::

        loss[b] = sum_k w[k] * t[b, k] * -log_p[b, k]

    and ``"mean"`` divides the sum by ``N``, the number of samples, *even with weights*
    (PyTorch's rule; it differs from the index-label rule, and NaN when ``N = 0``).

    A term whose coefficient (``w[k] t[b, k]``) is 0 contributes 0 even on a ``-inf`` logit
    (``0 * log 0 = 0``); PyTorch gives NaN there for probability labels and for smoothing
    with a zero weight, and agrees everywhere else. TensorFlow's
    ``softmax_cross_entropy_with_logits`` and Keras' losses (``label_smoothing`` the same
    formula, default axis -1) have no class weights and no ignore_index for dense labels;
    Keras' ``"sum_over_batch_size"`` divides weighted sums by ``N``, never by summed weights.
    ONNX ``SoftmaxCrossEntropyLoss`` takes index labels only, no smoothing, class axis 1,
    and its reference implementation computes ``log(softmax)``, which is ``-inf`` (loss
    ``inf``) where the softmax underflows: this function never does.
    """
    inputs = _logit_inputs(
        "softmax_cross_entropy",
        logits,
        labels,
        axis=axis,
        reduction=reduction,
        weights=weights,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    with ieee_arithmetic():  # weights of any magnitude: their sums and products follow IEEE
        return _softmax_cross_entropy(inputs)


def _softmax_cross_entropy(inputs: _LogitInputs) -> Array:
    num_classes = inputs.logits.shape[-1]
    log_p = _log_softmax(inputs.logits, -1)
    denominator = _mean_denominator(inputs)

    def reduce(values: Array) -> Array:
        return _reduce(np.where(inputs.counted, values, 0), inputs.reduction, denominator)

    if inputs.classes is None:
        loss = reduce(np.sum(_neg_log_terms(inputs.weights * _targets(inputs), log_p), axis=-1))
    else:
        picked = np.take_along_axis(log_p, inputs.classes[..., np.newaxis], axis=-1)
        loss = reduce(_neg_log_terms(inputs.weights[inputs.classes], picked[..., 0]))
        if inputs.smoothing > 0:
            smooth = reduce(np.sum(_neg_log_terms(inputs.weights, log_p), axis=-1))
            with np.errstate(invalid="ignore"):  # 0 * inf when e == 1 and a logit is -inf
                loss = (1 - inputs.smoothing) * loss + inputs.smoothing / num_classes * smooth
    return cast_result(loss, inputs.dtype)


def softmax_cross_entropy_backward(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: npt.ArrayLike | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    """Gradient of :func:`softmax_cross_entropy` with respect to the logits.

    Parameters
    ----------
    logits, labels, axis, reduction, weights, ignore_index, label_smoothing
        As given to :func:`softmax_cross_entropy`.

    Returns
    -------
    dlogits : ndarray, shape of logits
        Same dtype as ``logits``. For ``"none"`` each sample's slice is the gradient of that
        sample's own loss (which also is the gradient of ``"sum"``).

    Notes
    -----
    Every case of :func:`softmax_cross_entropy` has the per-sample form
    ``loss[b] = sum_k c[b, k] * -log_p[b, k]`` with the coefficients

        c[b, k] = m[b] * w[k] * t[b, k]

    (index labels: ``t[b] = (1 - e) onehot(y[b]) + e / K`` and ``m[b] = 0`` for ignored
    samples; probability labels: ``t[b] = (1 - e) y[b] + e / K`` and ``m[b] = 1``). Since
    ``log_p[b, k] = z[b, k] - log sum_j exp(z[b, j])``, ``d(-log_p[b, k]) / dz[b, j] =
    p[b, j] - delta_kj`` with ``p = softmax(z)``, hence::

        dz[b, j] = sum_k c[b, k] * (p[b, j] - delta_kj) = p[b, j] * S[b] - c[b, j],
        S[b]     = sum_k c[b, k]

    evaluated as ``p[b, j] * sum_{k != j} c[b, k] - c[b, j] * sum_{k != j} p[b, k]`` (the
    same value, since ``1 - p[b, j] = sum_{k != j} p[b, k]``), which does not cancel when a
    confident sample has ``p[b, y] ~ 1``: the target's gradient there is ``-w * (1 - p)`` to
    full relative precision, where ``p * S - c`` (and PyTorch) round it to a multiple of
    ``eps``. Then it is divided by the ``"mean"`` divisor (``D`` for index labels, ``N``
    for probability labels).

    The textbook ``p - onehot(y)`` is the special case ``w = 1``, ``e = 0``, no ignored
    samples (``S = 1``). ``S`` is not 1 in general: with weights it is
    ``(1 - e) w[y] + (e / K) sum_k w[k]``, and probability labels need not sum to 1 (then
    ``p * sum(y) - y`` is the exact gradient; TensorFlow's fused kernel returns ``p - y``,
    which is exact only for labels summing to 1).

    Ignored samples get exactly 0 (also when every sample is ignored, as in PyTorch, where
    the loss itself is NaN). If ``"mean"`` divides by ``D = 0`` while some samples are
    counted (their target weights are all 0), the counted samples' gradient is NaN, as in
    PyTorch. A ``-inf`` logit has ``p = 0`` and gradient ``-c[b, j] / D``.
    """
    inputs = _logit_inputs(
        "softmax_cross_entropy_backward",
        logits,
        labels,
        axis=axis,
        reduction=reduction,
        weights=weights,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    with ieee_arithmetic():  # as in softmax_cross_entropy
        return _softmax_cross_entropy_backward(inputs)


def _softmax_cross_entropy_backward(inputs: _LogitInputs) -> Array:
    counted = inputs.counted[..., np.newaxis]
    # softmax itself, not exp(log_p): exp multiplies log_p's absolute error into a relative one
    p = _softmax(inputs.logits, -1)
    with np.errstate(invalid="ignore"):  # NaN logits: p is NaN, so is the slice's gradient
        if inputs.classes is not None and inputs.smoothing == 0:
            dz = _one_hot_gradient(p, inputs)
        else:
            coefficients = np.where(counted, inputs.weights * _targets(inputs), 0)
            dz = p * _sum_of_others(coefficients) - coefficients * _sum_of_others(p)
    if inputs.reduction == "mean":
        denominator = _mean_denominator(inputs)
        # 0/0: the mean is undefined, so is its gradient; ignored samples still get exactly 0.
        dz = np.where(counted, np.nan, dz) if denominator == 0 else dz / denominator
    return cast_result(np.moveaxis(dz, -1, inputs.axis), inputs.dtype)
