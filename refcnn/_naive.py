"""Literal loop transcriptions of the documented formulas: a second oracle for the tests.

Nothing in the library calls this module. Every function is written to be read against its
docstring formula, index by index, with no vectorization and no shared helpers beyond the
padding geometry, so a bug in the fast path cannot be mirrored here by accident. Slow by design.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from refcnn.padding import axis_geometry, normalize_padding, window_geometry, windows

Array = npt.NDArray[Any]


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _resolve(
    x_shape: tuple[int, ...], k_hw: tuple[int, int], strides: Any, padding: Any, dilations: Any
) -> tuple[int, int, int, int, tuple[int, int], tuple[int, int]]:
    s, d = _pair(strides), _pair(dilations)
    geo = window_geometry((x_shape[1], x_shape[2]), k_hw, s, d, normalize_padding("naive", padding))
    (top, _), (left, _) = geo.pads
    return geo.out_h, geo.out_w, top, left, s, d


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> Array:
    """Loop form of the forward pass.

    ``y[n,i,j,o] = b[o] + sum_{p,q,c} x[n, i*sh+p*dh-top, j*sw+q*dw-left, c] w[p,q,c,o]``.

    Out-of-range input indices are the zero padding.
    """
    n_, h_, w_, c_ = x.shape
    kh, kw, _, o_ = w.shape
    oh, ow, top, left, (sh, sw), (dh, dw) = _resolve(x.shape, (kh, kw), strides, padding, dilations)
    y = np.zeros((n_, oh, ow, o_), dtype=x.dtype)
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for o in range(o_):
                    total = b[o] if b is not None else x.dtype.type(0) if x.dtype != object else 0
                    for p in range(kh):
                        for q in range(kw):
                            r, col = i * sh + p * dh - top, j * sw + q * dw - left
                            if 0 <= r < h_ and 0 <= col < w_:
                                for c in range(c_):
                                    total += x[n, r, col, c] * w[p, q, c, o]
                    y[n, i, j, o] = total
    return y


def conv2d_backward_input(
    dy: Array,
    w: Array,
    input_shape: tuple[int, ...],
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> Array:
    """Scatter form: each forward product ``x[...] * w[p,q,c,o]`` sends ``dy * w`` to ``x``."""
    n_, h_, w_, c_ = input_shape
    kh, kw, _, o_ = w.shape
    oh, ow, top, left, (sh, sw), (dh, dw) = _resolve(
        tuple(input_shape), (kh, kw), strides, padding, dilations
    )
    dx = np.zeros(tuple(input_shape), dtype=dy.dtype)
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for o in range(o_):
                    for p in range(kh):
                        for q in range(kw):
                            r, col = i * sh + p * dh - top, j * sw + q * dw - left
                            if 0 <= r < h_ and 0 <= col < w_:
                                for c in range(c_):
                                    dx[n, r, col, c] += dy[n, i, j, o] * w[p, q, c, o]
    return dx


def conv2d_backward_filter(
    dy: Array,
    x: Array,
    filter_shape: tuple[int, ...],
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> Array:
    """Loop form of the filter gradient.

    ``dw[p,q,c,o] = sum_{n,i,j} x[n, i*sh+p*dh-top, j*sw+q*dw-left, c] dy[n,i,j,o]``.
    """
    n_, h_, w_, c_ = x.shape
    kh, kw, _, o_ = filter_shape
    oh, ow, top, left, (sh, sw), (dh, dw) = _resolve(x.shape, (kh, kw), strides, padding, dilations)
    dw_ = np.zeros(tuple(filter_shape), dtype=dy.dtype)
    for p in range(kh):
        for q in range(kw):
            for c in range(c_):
                for o in range(o_):
                    for n in range(n_):
                        for i in range(oh):
                            for j in range(ow):
                                r, col = i * sh + p * dh - top, j * sw + q * dw - left
                                if 0 <= r < h_ and 0 <= col < w_:
                                    dw_[p, q, c, o] += x[n, r, col, c] * dy[n, i, j, o]
    return dw_


# --- convolution over any number of spatial axes, with groups (channels-last) -----------------


def _per_axis(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


def _positions(sizes: Sequence[int]) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(n) for n in sizes))


def _conv_geometry(
    x_shape: tuple[int, ...], k: tuple[int, ...], strides: Any, padding: Any, dilations: Any
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(out, before, strides, dilations)`` per spatial axis, from :mod:`refcnn.padding`."""
    rank = len(x_shape) - 2
    s, d = _per_axis(strides, rank), _per_axis(dilations, rank)
    res = windows(x_shape[1:-1], k, s, d, normalize_padding("naive", padding, rank))
    return res.out, tuple(before for before, _ in res.pads), s, d


def _read(
    i: tuple[int, ...],
    p: tuple[int, ...],
    geo: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]],
    sizes: tuple[int, ...],
) -> tuple[int, ...] | None:
    """Input index ``i*s + p*d - before`` (per axis) that output ``i`` reads with tap ``p``."""
    before, s, d = geo
    index = tuple(i[a] * s[a] + p[a] * d[a] - before[a] for a in range(len(i)))
    if all(0 <= index[a] < sizes[a] for a in range(len(i))):
        return index
    return None


def conv(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
    groups: int = 1,
) -> Array:
    """Loop form of :func:`refcnn.conv` for channels-last ``x`` of any rank.

    ``y[n,i,o] = b[o] + sum_{p,c} x[n, i*s + p*d - before, g*Cg + c] w[p,c,o]`` with
    ``g = o // Og``; out-of-range input indices are the zero padding.
    """
    rank = x.ndim - 2
    k = w.shape[:rank]
    out, before, s, d = _conv_geometry(x.shape, k, strides, padding, dilations)
    n_, c_, o_ = x.shape[0], x.shape[-1], w.shape[-1]
    cg, og = c_ // groups, o_ // groups
    y = np.zeros((n_, *out, o_), dtype=x.dtype)
    for n in range(n_):
        for i in _positions(out):
            for o in range(o_):
                g = o // og
                total = b[o] if b is not None else _zero_like(x.dtype)
                for p in _positions(k):
                    r = _read(i, p, (before, s, d), x.shape[1:-1])
                    if r is not None:
                        for c in range(cg):
                            xi, wi = (n, *r, g * cg + c), (*p, c, o)
                            total += x[xi] * w[wi]
                yi = (n, *i, o)
                y[yi] = total
    return y


def conv_backward_input(
    dy: Array,
    w: Array,
    input_shape: tuple[int, ...],
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
    groups: int = 1,
) -> Array:
    """Scatter form: each forward product ``x[...] * w[p,c,o]`` sends ``dy * w`` to ``x``."""
    rank = dy.ndim - 2
    k = w.shape[:rank]
    out, before, s, d = _conv_geometry(tuple(input_shape), k, strides, padding, dilations)
    n_, c_, o_ = input_shape[0], input_shape[-1], w.shape[-1]
    cg, og = c_ // groups, o_ // groups
    dx = np.full(tuple(input_shape), _zero_like(dy.dtype), dtype=dy.dtype)
    for n in range(n_):
        for i in _positions(out):
            for o in range(o_):
                g = o // og
                for p in _positions(k):
                    r = _read(i, p, (before, s, d), tuple(input_shape[1:-1]))
                    if r is not None:
                        for c in range(cg):
                            xi, yi, wi = (n, *r, g * cg + c), (n, *i, o), (*p, c, o)
                            dx[xi] += dy[yi] * w[wi]
    return dx


def conv_backward_filter(
    dy: Array,
    x: Array,
    filter_shape: tuple[int, ...],
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
    groups: int = 1,
) -> Array:
    """``dw[p,c,o] = sum_{n,i} x[n, i*s + p*d - before, g*Cg + c] dy[n,i,o]``, ``g = o // Og``."""
    rank = x.ndim - 2
    k = tuple(filter_shape[:rank])
    out, before, s, d = _conv_geometry(x.shape, k, strides, padding, dilations)
    n_, o_ = x.shape[0], filter_shape[-1]
    cg, og = filter_shape[-2], o_ // groups
    dw = np.full(tuple(filter_shape), _zero_like(dy.dtype), dtype=dy.dtype)
    for p in _positions(k):
        for c in range(cg):
            for o in range(o_):
                g = o // og
                for n in range(n_):
                    for i in _positions(out):
                        r = _read(i, p, (before, s, d), x.shape[1:-1])
                        if r is not None:
                            xi, yi, wi = (n, *r, g * cg + c), (n, *i, o), (*p, c, o)
                            dw[wi] += x[xi] * dy[yi]
    return dw


def conv_transpose(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    output_padding: Any = 0,
    dilations: Any = 1,
    groups: int = 1,
) -> Array:
    """ONNX ``ConvTranspose`` as written in its spec, channels-last, no ``output_shape``.

    Each input element ``x[n,i,o]`` sends ``x * w[p,c,o]`` to output ``i*s + p*d - before``
    (channel ``g*Cg + c``, ``g = o // Og``); the output size per axis is
    ``s*(in - 1) + output_padding + (K - 1)*d + 1 - before - after`` for explicit pads and
    ``in*s`` under SAME/SAME_LOWER, whose ``before`` is the forward SAME conv's leading pad.
    """
    rank = x.ndim - 2
    k = w.shape[:rank]
    s, d = _per_axis(strides, rank), _per_axis(dilations, rank)
    extra = _per_axis(output_padding, rank)
    mode = normalize_padding("naive", padding, rank)
    sizes, before = [], []
    for a in range(rank):
        n_in, extent = x.shape[1 + a], (k[a] - 1) * d[a] + 1
        if isinstance(mode, str) and mode != "VALID":
            sizes.append(n_in * s[a])
            before.append(axis_geometry(sizes[-1], k[a], s[a], d[a], mode)[1])
        else:
            pad_before, pad_after = (0, 0) if isinstance(mode, str) else mode[a]
            sizes.append(s[a] * (n_in - 1) + extra[a] + extent - pad_before - pad_after)
            before.append(pad_before)
    n_, o_ = x.shape[0], x.shape[-1]
    cg, og = w.shape[-2], o_ // groups
    y = np.full((n_, *sizes, groups * cg), _zero_like(x.dtype), dtype=x.dtype)
    for n in range(n_):
        for i in _positions(x.shape[1:-1]):
            for o in range(o_):
                g = o // og
                for p in _positions(k):
                    r = _read(i, p, (tuple(before), s, d), tuple(sizes))
                    if r is not None:
                        for c in range(cg):
                            yi, xi, wi = (n, *r, g * cg + c), (n, *i, o), (*p, c, o)
                            y[yi] += x[xi] * w[wi]
    if b is not None:
        for index in np.ndindex(y.shape):
            y[index] += b[index[-1]]
    return y


# --- activations, softmax, losses, dense: loops over every element with the math module ------
# Inputs are NumPy arrays; float results are float64 (Python floats), object (Fraction) inputs
# stay exact where the formula needs no exp/log. Finite inputs unless a docstring says more.
# (math is imported here, not at the top, because this section is appended to a shared file.)


def _at(b: tuple[int, ...], axis: int, k: int) -> tuple[int, ...]:
    """Index class ``k`` of sample ``b`` (``b`` indexes every axis but ``axis``)."""
    return (*b[:axis], k, *b[axis:])


def _batch_shape(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1 :]


def _zero_like(dtype: np.dtype[Any]) -> Any:
    return 0 if dtype == np.dtype(object) else dtype.type(0)


def relu(x: Array) -> Array:
    """``y[i] = x[i] if x[i] > 0 else 0`` (NaN stays NaN)."""
    y = np.empty(x.shape, dtype=x.dtype)
    for i in np.ndindex(x.shape):
        v = x[i]
        is_nan = x.dtype.kind == "f" and math.isnan(v)
        y[i] = v if v > 0 or is_nan else _zero_like(x.dtype)
    return y


def relu_backward(dy: Array, x: Array) -> Array:
    """``dx[i] = dy[i] if x[i] > 0 else 0`` (NaN where ``x[i]`` is NaN)."""
    dx = np.empty(x.shape, dtype=dy.dtype)
    for i in np.ndindex(x.shape):
        v = x[i]
        dx[i] = dy[i] if v > 0 else _zero_like(dy.dtype) if v <= 0 else math.nan
    return dx


def _sigmoid(v: float) -> float:
    # The two algebraically equal forms, each used where its exp cannot overflow.
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    return math.exp(v) / (1.0 + math.exp(v))


def sigmoid(x: Array) -> Array:
    """``y[i] = 1 / (1 + exp(-x[i]))``."""
    y = np.empty(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        y[i] = _sigmoid(float(x[i]))
    return y


def sigmoid_backward(dy: Array, x: Array) -> Array:
    """``dx[i] = dy[i] * s(x[i]) * s(-x[i])`` (``1 - s(x) = s(-x)``, no cancellation)."""
    dx = np.empty(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        v = float(x[i])
        dx[i] = float(dy[i]) * _sigmoid(v) * _sigmoid(-v)
    return dx


def tanh(x: Array) -> Array:
    """``y[i] = math.tanh(x[i])``."""
    y = np.empty(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        y[i] = math.tanh(float(x[i]))
    return y


def tanh_backward(dy: Array, x: Array) -> Array:
    """``dx[i] = dy[i] / cosh(x[i])**2`` (``math.cosh`` overflows past ``|x| = 710``)."""
    dx = np.empty(x.shape, dtype=np.float64)
    for i in np.ndindex(x.shape):
        dx[i] = float(dy[i]) / math.cosh(float(x[i])) ** 2
    return dx


def softmax(z: Array, axis: int = -1) -> Array:
    """``p[b, j] = exp(z[b, j] - m) / sum_k exp(z[b, k] - m)``, ``m`` the slice's maximum."""
    axis %= z.ndim
    p = np.empty(z.shape, dtype=np.float64)
    for b in np.ndindex(_batch_shape(z.shape, axis)):
        values = [float(z[_at(b, axis, k)]) for k in range(z.shape[axis])]
        m = max(values)
        exps = [math.exp(v - m) for v in values]
        total = math.fsum(exps)
        for k, e in enumerate(exps):
            p[_at(b, axis, k)] = e / total
    return p


def log_softmax(z: Array, axis: int = -1) -> Array:
    """``log_p[b, j] = (z[b, j] - m) - log1p(sum_{k != k*} exp(z[b, k] - m))``.

    ``k*`` is the first class attaining the maximum ``m``; its term is exactly 1.
    """
    axis %= z.ndim
    log_p = np.empty(z.shape, dtype=np.float64)
    for b in np.ndindex(_batch_shape(z.shape, axis)):
        values = [float(z[_at(b, axis, k)]) for k in range(z.shape[axis])]
        m = max(values)
        top = values.index(m)
        rest = math.fsum(math.exp(v - m) for k, v in enumerate(values) if k != top)
        for k, v in enumerate(values):
            log_p[_at(b, axis, k)] = (v - m) - math.log1p(rest)
    return log_p


def softmax_jacobian(p: Array, axis: int = -1) -> Array:
    """``J[b, i, j] = p[b, i] * (delta_ij - p[b, j])``, class axis moved last and doubled."""
    axis %= p.ndim
    k_ = p.shape[axis]
    batch = _batch_shape(p.shape, axis)
    jacobian = np.empty((*batch, k_, k_), dtype=p.dtype)
    for b in np.ndindex(batch):
        for i in range(k_):
            for j in range(k_):
                delta = 1 if i == j else 0
                entry = (*b, i, j)
                jacobian[entry] = p[_at(b, axis, i)] * (delta - p[_at(b, axis, j)])
    return jacobian


def softmax_backward(dp: Array, p: Array, axis: int = -1) -> Array:
    """``dz[b, j] = sum_i dp[b, i] * p[b, i] * (delta_ij - p[b, j])`` (the product J^T dp)."""
    axis %= p.ndim
    dz = np.empty(p.shape, dtype=p.dtype)
    for b in np.ndindex(_batch_shape(p.shape, axis)):
        for j in range(p.shape[axis]):
            total = _zero_like(p.dtype)
            for i in range(p.shape[axis]):
                delta = 1 if i == j else 0
                total += dp[_at(b, axis, i)] * p[_at(b, axis, i)] * (delta - p[_at(b, axis, j)])
            dz[_at(b, axis, j)] = total
    return dz


def _reduce_losses(losses: Array, reduction: str, denominator: Any) -> Array:
    if reduction == "none":
        return losses
    total = math.fsum(float(v) for v in losses.flat)
    if reduction == "sum":
        return np.array(total)
    return np.array(total / denominator if denominator != 0 else math.nan)


def cross_entropy(
    p: Array, y: Array, *, axis: int = -1, reduction: str = "sum", eps: float | None = None
) -> Array:
    """``loss[b] = -sum_k y[b, k] * log(pc[b, k])``, ``0 * log 0 = 0``, ``pc = clip(p, eps, 1)``."""
    axis %= p.ndim
    batch = _batch_shape(p.shape, axis)
    losses = np.empty(batch, dtype=np.float64)
    for b in np.ndindex(batch):
        total = 0.0
        for k in range(p.shape[axis]):
            yk, pk = float(y[_at(b, axis, k)]), float(p[_at(b, axis, k)])
            if eps is not None:
                pk = min(max(pk, eps), 1.0)
            if yk != 0:
                total += yk * (math.log(pk) if pk > 0 else -math.inf)
        losses[b] = -total
    return _reduce_losses(losses, reduction, losses.size)


def cross_entropy_backward(
    p: Array, y: Array, *, axis: int = -1, reduction: str = "sum", eps: float | None = None
) -> Array:
    """``dp[b, k] = -y[b, k] / p[b, k] * r``; 0 where ``y`` is 0 or the clamp is flat.

    ``r`` is 1, or ``1 / N`` (the number of samples) for ``"mean"``.
    """
    axis %= p.ndim
    count = math.prod(_batch_shape(p.shape, axis))
    dp = np.empty(p.shape, dtype=p.dtype)
    for i in np.ndindex(p.shape):
        yk, pk = y[i], p[i]
        if (eps is not None and not eps <= pk <= 1) or yk == 0:
            g = _zero_like(p.dtype)
        elif pk == 0:
            g = -math.inf
        else:
            g = -yk / pk
        dp[i] = g / count if reduction == "mean" else g
    return dp


def _smoothed_targets(
    labels: Array, b: tuple[int, ...], axis: int, k_: int, smoothing: float
) -> list[float]:
    if labels.dtype.kind == "f":
        base = [float(labels[_at(b, axis, k)]) for k in range(k_)]
    else:
        base = [1.0 if k == int(labels[b]) else 0.0 for k in range(k_)]
    return [(1 - smoothing) * t + smoothing / k_ for t in base]


def softmax_cross_entropy(
    logits: Array,
    labels: Array,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    """PyTorch's ``F.cross_entropy``, transcribed from ``aten/native/LossNLL.cpp``.

    Index labels: ``(1 - e) * R(nll) + e / K * R(smooth)`` with ``nll[b] = w[y] * -log_p[b, y]``,
    ``smooth[b] = sum_k w[k] * -log_p[b, k]``, both 0 for ignored samples, ``R`` dividing by
    ``sum_b w[y[b]]`` over counted samples for mean. Probability labels:
    ``sum_k w[k] * ((1 - e) y[b, k] + e / K) * -log_p[b, k]``, mean over the sample count.
    """
    axis %= logits.ndim
    k_ = logits.shape[axis]
    batch = _batch_shape(logits.shape, axis)
    w = [1.0] * k_ if weights is None else [float(v) for v in weights]
    log_p = log_softmax(logits, axis)
    e = label_smoothing
    if labels.dtype.kind == "f":
        losses = np.empty(batch, dtype=np.float64)
        for b in np.ndindex(batch):
            t = _smoothed_targets(labels, b, axis, k_, e)
            losses[b] = math.fsum(w[k] * t[k] * -log_p[_at(b, axis, k)] for k in range(k_))
        return _reduce_losses(losses, reduction, losses.size)
    nll = np.zeros(batch, dtype=np.float64)
    smooth = np.zeros(batch, dtype=np.float64)
    denominator = 0.0
    for b in np.ndindex(batch):
        label = int(labels[b])
        if ignore_index is not None and label == ignore_index:
            continue
        nll[b] = w[label] * -log_p[_at(b, axis, label)]
        smooth[b] = math.fsum(w[k] * -log_p[_at(b, axis, k)] for k in range(k_))
        denominator += w[label]
    if e == 0:
        return _reduce_losses(nll, reduction, denominator)
    loss: Array = (1 - e) * _reduce_losses(nll, reduction, denominator) + e / k_ * (
        _reduce_losses(smooth, reduction, denominator)
    )
    return loss


def softmax_cross_entropy_backward(
    logits: Array,
    labels: Array,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    """Chain rule: ``dz[b, j] = sum_k c[b, k] * (p[b, j] - delta_kj)``, over the mean divisor.

    ``c[b, k] = w[k] * t[b, k]`` (0 for ignored samples). ``p[b, j] - 1`` is written
    ``-sum_{i != j} p[b, i]`` so a confident sample's tiny gradient is not lost to rounding.
    """
    axis %= logits.ndim
    k_ = logits.shape[axis]
    batch = _batch_shape(logits.shape, axis)
    w = [1.0] * k_ if weights is None else [float(v) for v in weights]
    p = softmax(logits, axis)
    dz = np.zeros(logits.shape, dtype=np.float64)
    counted = np.ones(batch, dtype=bool)
    denominator = 0.0
    for b in np.ndindex(batch):
        if labels.dtype.kind != "f":
            label = int(labels[b])
            if ignore_index is not None and label == ignore_index:
                counted[b] = False
                continue
            denominator += w[label]
        t = _smoothed_targets(labels, b, axis, k_, label_smoothing)
        c = [w[k] * t[k] for k in range(k_)]
        for j in range(k_):
            pj = p[_at(b, axis, j)]
            others = math.fsum(p[_at(b, axis, i)] for i in range(k_) if i != j)
            dz[_at(b, axis, j)] = math.fsum(c[k] * (-others if k == j else pj) for k in range(k_))
    if reduction != "mean":
        return dz
    if labels.dtype.kind == "f":
        denominator = float(math.prod(batch))
    for b in np.ndindex(batch):
        for j in range(k_):
            if denominator == 0:
                dz[_at(b, axis, j)] = math.nan if counted[b] else 0.0
            else:
                dz[_at(b, axis, j)] /= denominator
    return dz


def dense(x: Array, w: Array, b: Array | None = None) -> Array:
    """``y[n, o] = b[o] + sum_i x[n, i] * w[i, o]``."""
    n_, i_ = x.shape
    o_ = w.shape[1]
    y = np.empty((n_, o_), dtype=x.dtype)
    for n in range(n_):
        for o in range(o_):
            total = b[o] if b is not None else _zero_like(x.dtype)
            for i in range(i_):
                total += x[n, i] * w[i, o]
            y[n, o] = total
    return y


def dense_backward(dy: Array, x: Array, w: Array) -> tuple[Array, Array, Array]:
    """``dx[n,i] = sum_o dy[n,o] w[i,o]``, ``dw[i,o] = sum_n x[n,i] dy[n,o]``, ``db = sum_n dy``."""
    n_, i_ = x.shape
    o_ = w.shape[1]
    zero = _zero_like(dy.dtype)
    dx = np.full((n_, i_), zero, dtype=dy.dtype)
    dw = np.full((i_, o_), zero, dtype=dy.dtype)
    db = np.full((o_,), zero, dtype=dy.dtype)
    for n in range(n_):
        for o in range(o_):
            db[o] += dy[n, o]
            for i in range(i_):
                dx[n, i] += dy[n, o] * w[i, o]
                dw[i, o] += x[n, i] * dy[n, o]
    return dx, dw, db


def flatten(x: Array, axis: int = 1) -> Array:
    """``y[r, c] = x[i]`` with ``r`` the row-major number of ``i[:axis]``, ``c`` of ``i[axis:]``."""
    split = axis + x.ndim if axis < 0 else axis
    rows = math.prod(x.shape[:split])
    cols = math.prod(x.shape[split:])
    y = np.empty((rows, cols), dtype=x.dtype)
    for index in np.ndindex(x.shape):
        r = c = 0
        for a in range(split):
            r = r * x.shape[a] + index[a]
        for a in range(split, x.ndim):
            c = c * x.shape[a] + index[a]
        y[r, c] = x[index]
    return y


# --- pooling, every rank (issue 12) ------------------------------------------------------------
# Channels-last arrays (N, *spatial, C) with 1 to 3 spatial axes (tests transpose for
# channels-first). Tap t of window i on a spatial axis reads input i*s + t*d - before; it is
# a real element when inside [0, size). Window geometry from refcnn.padding, everything else
# literal loops. (Imported here, not at the top, because this section is appended to a
# shared file.)


def _pool_setup(
    x_shape: tuple[int, ...],
    ksize: Any,
    strides: Any,
    padding: Any,
    dilations: Any,
    ceil_mode: bool,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], Any]:
    rank = len(x_shape) - 2

    def per_axis(value: Any) -> tuple[int, ...]:
        return (value,) * rank if isinstance(value, int) else tuple(int(v) for v in value)

    k = per_axis(ksize)
    s = k if strides is None else per_axis(strides)
    d = per_axis(dilations)
    geo = windows(
        x_shape[1:-1], k, s, d, normalize_padding("naive", padding, rank), ceil_mode=ceil_mode
    )
    return k, s, d, geo


def _pool_taps(
    x_shape: tuple[int, ...], window: tuple[int, ...], k: Any, s: Any, d: Any, geo: Any
) -> list[tuple[tuple[int, ...], bool, bool]]:
    """Every tap of ``window`` in row-major tap order: (input position, real, inside the pads).

    "Inside the pads" is ``-before <= position < size + after``: the padded input, without
    a ceil-mode window's overhang past the end pad.
    """
    taps = []
    for t in itertools.product(*(range(kk) for kk in k)):
        position = tuple(window[a] * s[a] + t[a] * d[a] - geo.pads[a][0] for a in range(len(k)))
        real = all(0 <= position[a] < x_shape[1 + a] for a in range(len(k)))
        padded = all(
            -geo.pads[a][0] <= position[a] < x_shape[1 + a] + geo.pads[a][1] for a in range(len(k))
        )
        taps.append((position, real, padded))
    return taps


def _first_max(x: Array, n: int, c: int, taps: list[Any]) -> tuple[Any, tuple[int, ...]]:
    """First maximum of one window's real elements in row-major order, a NaN winning."""
    best: Any = None
    where: tuple[int, ...] = ()
    for position, real, _ in taps:
        if real:
            v = x[_ix(n, position, c)]
            if best is None or (not _is_nan(best) and (_is_nan(v) or v > best)):
                best, where = v, position
    assert best is not None, "a window of padding only"
    return best, where


def _ix(n: int, position: tuple[int, ...], c: int) -> tuple[int, ...]:
    """Return the index ``(n, *position, c)`` of a channels-last array."""
    return (n, *position, c)


def _is_nan(v: Any) -> bool:
    return isinstance(v, float | np.floating) and bool(np.isnan(v))


def max_pool_with_argmax(
    x: Array,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
) -> tuple[Array, Array]:
    """``y`` = max over the real taps; ``argmax`` = row-major spatial index of the first max."""
    k, s, d, geo = _pool_setup(x.shape, ksize, strides, padding, dilations, ceil_mode)
    out_shape = (x.shape[0], *geo.out, x.shape[-1])
    y = np.zeros(out_shape, dtype=x.dtype)
    argmax = np.zeros(out_shape, dtype=np.int64)
    sizes = x.shape[1:-1]
    for n in range(x.shape[0]):
        for window in itertools.product(*(range(o) for o in geo.out)):
            taps = _pool_taps(x.shape, window, k, s, d, geo)
            for c in range(x.shape[-1]):
                best, where = _first_max(x, n, c, taps)
                index = 0
                for a in range(len(sizes)):
                    index = index * sizes[a] + where[a]
                y[_ix(n, window, c)] = best
                argmax[_ix(n, window, c)] = index
    return y, argmax


def max_pool(
    x: Array,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
) -> Array:
    """``y[n, *i, c] = max over the real taps t of x[n, *(i*s + t*d - before), c]``."""
    return max_pool_with_argmax(
        x, ksize, strides=strides, padding=padding, dilations=dilations, ceil_mode=ceil_mode
    )[0]


def max_pool_backward(
    dy: Array,
    x: Array,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
) -> Array:
    """Each window's ``dy`` goes to its first maximum (row-major, NaN first if any)."""
    k, s, d, geo = _pool_setup(x.shape, ksize, strides, padding, dilations, ceil_mode)
    dx = np.zeros(x.shape, dtype=dy.dtype)
    for n in range(x.shape[0]):
        for window in itertools.product(*(range(o) for o in geo.out)):
            taps = _pool_taps(x.shape, window, k, s, d, geo)
            for c in range(x.shape[-1]):
                _, where = _first_max(x, n, c, taps)
                dx[_ix(n, where, c)] += dy[_ix(n, window, c)]
    return dx


def _pool_count(taps: list[Any], count_include_pad: bool) -> int:
    return sum(1 for _, real, padded in taps if (padded if count_include_pad else real))


def avg_pool(
    x: Array,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
) -> Array:
    """``y = sum of the real taps / count`` (real taps, or taps inside the pads)."""
    k, s, d, geo = _pool_setup(x.shape, ksize, strides, padding, dilations, ceil_mode)
    y = np.zeros((x.shape[0], *geo.out, x.shape[-1]), dtype=x.dtype)
    for n in range(x.shape[0]):
        for window in itertools.product(*(range(o) for o in geo.out)):
            taps = _pool_taps(x.shape, window, k, s, d, geo)
            count = _pool_count(taps, count_include_pad)
            for c in range(x.shape[-1]):
                total = x.dtype.type(0) if x.dtype != object else 0
                for position, real, _ in taps:
                    if real:
                        total += x[_ix(n, position, c)]
                y[_ix(n, window, c)] = total / count
    return y


def avg_pool_backward(
    dy: Array,
    input_shape: tuple[int, ...],
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
) -> Array:
    """Scatter form: every window sends ``dy / count`` to each of its real elements."""
    shape = tuple(input_shape)
    k, s, d, geo = _pool_setup(shape, ksize, strides, padding, dilations, ceil_mode)
    dx = np.zeros(shape, dtype=dy.dtype)
    for n in range(shape[0]):
        for window in itertools.product(*(range(o) for o in geo.out)):
            taps = _pool_taps(shape, window, k, s, d, geo)
            count = _pool_count(taps, count_include_pad)
            for c in range(shape[-1]):
                for position, real, _ in taps:
                    if real:
                        dx[_ix(n, position, c)] += dy[_ix(n, window, c)] / count
    return dx


def global_max_pool(x: Array) -> tuple[Array, Array]:
    """``(y[n, c], argmax[n, c])``: max of all spatial elements, first maximum's index."""
    y = np.zeros((x.shape[0], x.shape[-1]), dtype=x.dtype)
    argmax = np.zeros(y.shape, dtype=np.int64)
    for n in range(x.shape[0]):
        for c in range(x.shape[-1]):
            best: Any = None
            for index, position in enumerate(np.ndindex(*x.shape[1:-1])):
                v = x[_ix(n, position, c)]
                if best is None or (not _is_nan(best) and (_is_nan(v) or v > best)):
                    best, argmax[n, c] = v, index
            y[n, c] = best
    return y, argmax


def global_avg_pool(x: Array) -> Array:
    """``y[n, c]``: sum of all spatial elements divided by their number."""
    y = np.zeros((x.shape[0], x.shape[-1]), dtype=x.dtype)
    volume = math.prod(x.shape[1:-1])
    for n in range(x.shape[0]):
        for c in range(x.shape[-1]):
            total = x.dtype.type(0) if x.dtype != object else 0
            for position in np.ndindex(*x.shape[1:-1]):
                total += x[_ix(n, position, c)]
            y[n, c] = total / volume
    return y
