"""A small, correct PyTorch-style implementation in NumPy, for tests/test_adapt.py.

NCHW data, OIHW filters, ``stride=``/``padding=``/``dilation=`` with symmetric int (or
per-axis pair) padding, PyTorch's names and defaults (``max_pool2d(x, kernel_size,
stride=None, padding=0)``, ``avg_pool2d(..., count_include_pad=True)``, ``linear(x, w, b)``
with an ``(O, I)`` weight, ``softmax(x, dim)``). Written independently of refcnn: each op
is a loop over kernel taps that pads the input itself, as a user's implementation would.
Sums run in float64 and are rounded once to the input dtype.

No cross-entropy: it is the wrapper's class-axis move that tests/test_adapt.py checks there,
against refcnn itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return (int(value), int(value))
    first, second = value
    return (int(first), int(second))


def _out(size: int, pad: int, extent: int, stride: int) -> int:
    padded = size + 2 * pad
    return 0 if padded < extent else (padded - extent) // stride + 1


def _taps(
    input_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[tuple[int, int], Iterator[tuple[int, int, tuple[slice, slice]]]]:
    """Output size, and per tap (p, q) the strided slice of the padded input it reads."""
    out = tuple(
        _out(n, p, (k - 1) * d + 1, s)
        for n, p, k, d, s in zip(input_hw, padding, kernel, dilation, stride, strict=True)
    )
    oh, ow = out

    def taps() -> Iterator[tuple[int, int, tuple[slice, slice]]]:
        if oh == 0 or ow == 0:  # no window: no tap reads anything
            return
        for p in range(kernel[0]):
            for q in range(kernel[1]):
                r0, c0 = p * dilation[0], q * dilation[1]
                rows = slice(r0, r0 + (oh - 1) * stride[0] + 1, stride[0])
                cols = slice(c0, c0 + (ow - 1) * stride[1] + 1, stride[1])
                yield p, q, (rows, cols)

    return (oh, ow), taps()


def _round(y: Array, like: Array) -> Array:
    """Round a float64 result once to ``like``'s dtype (past float16's 65504: inf, silently)."""
    with np.errstate(over="ignore"):  # IEEE rounding gives inf there; NumPy's cast would warn
        return y.astype(like.dtype)


def _pad(x: Array, padding: tuple[int, int], value: float = 0.0) -> Array:
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _crop(xp: Array, padding: tuple[int, int]) -> Array:
    ph, pw = padding
    return xp[:, :, ph : xp.shape[2] - ph, pw : xp.shape[3] - pw]


# -- convolution -------------------------------------------------------------------------------


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> Array:
    """``y[n,o,i,j] = b[o] + sum_{c,p,q} xp[n, c, i*sh + p*dh, j*sw + q*dw] * w[o,c,p,q]``."""
    pads = _pair(padding)
    xp = _pad(x.astype(np.float64), pads)
    (oh, ow), taps = _taps(x.shape[2:], w.shape[2:], _pair(stride), pads, _pair(dilation))
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for p, q, (rows, cols) in taps:
        y += np.einsum("nchw,oc->nohw", xp[:, :, rows, cols], w[:, :, p, q].astype(np.float64))
    if b is not None:
        y += b.astype(np.float64)[:, None, None]
    return _round(y, x)


def conv2d_backward_input(
    dy: Array,
    w: Array,
    input_shape: Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> Array:
    """Scatter every ``dy[n,o,i,j] * w[o,c,p,q]`` back to the padded input it came from."""
    n, c, h, width = (int(s) for s in input_shape)
    pads = _pair(padding)
    dxp = np.zeros((n, c, h + 2 * pads[0], width + 2 * pads[1]))
    _, taps = _taps((h, width), w.shape[2:], _pair(stride), pads, _pair(dilation))
    for p, q, (rows, cols) in taps:
        dxp[:, :, rows, cols] += np.einsum(
            "nohw,oc->nchw", dy.astype(np.float64), w[:, :, p, q].astype(np.float64)
        )
    return _round(_crop(dxp, pads), dy)


def conv2d_backward_filter(
    dy: Array,
    x: Array,
    filter_shape: Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> Array:
    """``dw[o,c,p,q] = sum_{n,i,j} xp[n, c, i*sh + p*dh, j*sw + q*dw] * dy[n,o,i,j]``."""
    pads = _pair(padding)
    xp = _pad(x.astype(np.float64), pads)
    dw = np.zeros(tuple(int(s) for s in filter_shape))
    _, taps = _taps(x.shape[2:], dw.shape[2:], _pair(stride), pads, _pair(dilation))
    for p, q, (rows, cols) in taps:
        dw[:, :, p, q] = np.einsum("nohw,nchw->oc", dy.astype(np.float64), xp[:, :, rows, cols])
    return _round(dw, x)


def conv2d_backward_bias(dy: Array) -> Array:
    """``db[o] = sum_{n,i,j} dy[n,o,i,j]``."""
    return _round(dy.astype(np.float64).sum(axis=(0, 2, 3)), dy)


def conv2d_backward(
    dy: Array,
    x: Array,
    w: Array,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
) -> tuple[Array, Array, Array]:
    """``(dx, dw, db)`` of :func:`conv2d`."""
    options = {"stride": stride, "padding": padding, "dilation": dilation}
    return (
        conv2d_backward_input(dy, w, x.shape, **options),
        conv2d_backward_filter(dy, x, w.shape, **options),
        conv2d_backward_bias(dy),
    )


# -- pooling ------------------------------------------------------------------------------------


def _pool_geometry(
    shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel = _pair(kernel_size)
    return kernel, kernel if stride is None else _pair(stride), _pair(padding)


def _first_max_taps(
    x: Array,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None,
    padding: int | Sequence[int],
) -> tuple[Array, Array, list[tuple[slice, slice]]]:
    """Each window's max and which tap (row-major) first reaches it; pads are -inf."""
    kernel, steps, pads = _pool_geometry(x.shape, kernel_size, stride, padding)
    xp = _pad(x.astype(np.float64), pads, value=-np.inf)
    (oh, ow), taps = _taps(x.shape[2:], kernel, steps, pads, (1, 1))
    best = np.full((*x.shape[:2], oh, ow), -np.inf)
    winner = np.zeros(best.shape, dtype=np.intp)
    where = []
    for index, (_, _, (rows, cols)) in enumerate(taps):
        window = xp[:, :, rows, cols]
        better = window > best  # strict: the first maximum keeps the window
        best = np.where(better, window, best)
        winner = np.where(better, index, winner)
        where.append((rows, cols))
    return best, winner, where


def max_pool2d(
    x: Array,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
) -> Array:
    """``y[n,c,i,j] = max_{p,q} xp[n, c, i*sh + p, j*sw + q]`` with ``-inf`` padding."""
    best, _, _ = _first_max_taps(x, kernel_size, stride, padding)
    return _round(best, x)


def max_pool2d_backward(
    dy: Array,
    x: Array,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
) -> Array:
    """Each ``dy`` goes to its window's first maximum (row-major)."""
    pads = _pair(padding)
    _, winner, where = _first_max_taps(x, kernel_size, stride, padding)
    dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * pads[0], x.shape[3] + 2 * pads[1]))
    for index, (rows, cols) in enumerate(where):
        dxp[:, :, rows, cols] += np.where(winner == index, dy.astype(np.float64), 0.0)
    return _round(_crop(dxp, pads), dy)


def _divisors(
    shape: Sequence[int],
    kernel: tuple[int, int],
    steps: tuple[int, int],
    pads: tuple[int, int],
    *,
    count_include_pad: bool,
) -> Array:
    ones = _pad(np.ones((1, 1, int(shape[2]), int(shape[3]))), pads)
    (oh, ow), taps = _taps((int(shape[2]), int(shape[3])), kernel, steps, pads, (1, 1))
    counts = np.zeros((1, 1, oh, ow))
    for _, _, (rows, cols) in taps:
        counts += ones[:, :, rows, cols]
    return np.full(counts.shape, float(math.prod(kernel))) if count_include_pad else counts


def avg_pool2d(
    x: Array,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    count_include_pad: bool = True,
) -> Array:
    """Window sums of the zero-padded input over ``KH*KW`` (or over the real elements)."""
    kernel, steps, pads = _pool_geometry(x.shape, kernel_size, stride, padding)
    xp = _pad(x.astype(np.float64), pads)
    (oh, ow), taps = _taps(x.shape[2:], kernel, steps, pads, (1, 1))
    total = np.zeros((*x.shape[:2], oh, ow))
    for _, _, (rows, cols) in taps:
        total += xp[:, :, rows, cols]
    divisors = _divisors(x.shape, kernel, steps, pads, count_include_pad=count_include_pad)
    return _round(total / divisors, x)


def avg_pool2d_backward(
    dy: Array,
    input_shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    count_include_pad: bool = True,
) -> Array:
    """Each ``dy / divisor`` spread over its window's real elements."""
    kernel, steps, pads = _pool_geometry(input_shape, kernel_size, stride, padding)
    n, c, h, width = (int(s) for s in input_shape)
    share = dy.astype(np.float64) / _divisors(
        input_shape, kernel, steps, pads, count_include_pad=count_include_pad
    )
    dxp = np.zeros((n, c, h + 2 * pads[0], width + 2 * pads[1]))
    _, taps = _taps((h, width), kernel, steps, pads, (1, 1))
    for _, _, (rows, cols) in taps:
        dxp[:, :, rows, cols] += share
    return _round(_crop(dxp, pads), dy)


# -- flatten, linear, activations, softmax -------------------------------------------------------


def flatten(x: Array, start_dim: int = 1) -> Array:
    """Merge the axes from ``start_dim`` on (PyTorch's ``torch.flatten``)."""
    return x.reshape((*x.shape[:start_dim], math.prod(x.shape[start_dim:])))


def flatten_backward(dy: Array, input_shape: Sequence[int], start_dim: int = 1) -> Array:
    """Undo :func:`flatten`: a reshape."""
    return dy.reshape(tuple(input_shape))


def linear(x: Array, w: Array, b: Array | None = None) -> Array:
    """``x @ w.T + b`` with ``w`` of shape ``(O, I)``."""
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if b is not None:
        y += b.astype(np.float64)
    return _round(y, x)


def linear_backward(dy: Array, x: Array, w: Array) -> tuple[Array, Array, Array]:
    """``(dy @ w, dy.T @ x, sum_n dy)``, ``dw`` of shape ``(O, I)``."""
    d, x64 = dy.astype(np.float64), x.astype(np.float64)
    return (
        _round(d @ w.astype(np.float64), x),
        _round(d.T @ x64, x),
        _round(d.sum(axis=0), x),
    )


def relu(x: Array) -> Array:
    """``max(x, 0)``."""
    return np.where(x > 0, x, np.zeros_like(x))


def relu_backward(dy: Array, x: Array) -> Array:
    """``dy`` where ``x > 0``, else 0."""
    return np.where(x > 0, dy, np.zeros_like(dy))


def _sigmoid64(x: Array) -> Array:
    e = np.exp(-np.abs(x.astype(np.float64)))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid(x: Array) -> Array:
    """``1 / (1 + exp(-x))``, evaluated without overflow."""
    return _round(_sigmoid64(x), x)


def sigmoid_backward(dy: Array, x: Array) -> Array:
    """``dy * s * (1 - s)``."""
    s = _sigmoid64(x)
    return _round(dy.astype(np.float64) * s * (1.0 - s), dy)


def tanh(x: Array) -> Array:
    """``tanh(x)``."""
    return _round(np.tanh(x.astype(np.float64)), x)


def tanh_backward(dy: Array, x: Array) -> Array:
    """``dy / cosh(x)**2``."""
    with np.errstate(over="ignore"):  # cosh overflows to inf far out: the gradient is 0 there
        return _round(dy.astype(np.float64) / np.cosh(x.astype(np.float64)) ** 2, dy)


def _shifted(x: Array, dim: int) -> Array:
    z = x.astype(np.float64)
    return np.asarray(z - z.max(axis=dim, keepdims=True))


def softmax(x: Array, dim: int) -> Array:
    """``exp(x - max) / sum(exp(x - max))`` along ``dim``."""
    e = np.exp(_shifted(x, dim))
    return _round(e / e.sum(axis=dim, keepdims=True), x)


def log_softmax(x: Array, dim: int) -> Array:
    """``(x - max) - log(sum(exp(x - max)))`` along ``dim``."""
    s = _shifted(x, dim)
    return _round(s - np.log(np.exp(s).sum(axis=dim, keepdims=True)), x)


def softmax_backward(dp: Array, p: Array, dim: int) -> Array:
    """``p * (dp - sum(p * dp))`` along ``dim``."""
    p64, d = p.astype(np.float64), dp.astype(np.float64)
    return _round(p64 * (d - (p64 * d).sum(axis=dim, keepdims=True)), p)


def softmax_jacobian(p: Array, dim: int) -> Array:
    """``diag(p) - p p^T`` per row, ``dim`` moved last, shape ``(..., K, K)``."""
    rows = np.moveaxis(p.astype(np.float64), dim, -1)
    eye = np.eye(rows.shape[-1])
    return _round(rows[..., :, None] * eye - rows[..., :, None] * rows[..., None, :], p)
