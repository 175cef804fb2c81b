"""Literal loop transcriptions of the documented formulas: a second oracle for the tests.

Nothing in the library calls this module. Every function is written to be read against its
docstring formula, index by index, with no vectorization and no shared helpers beyond the
padding geometry, so a bug in the fast path cannot be mirrored here by accident. Slow by design.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from refcnn.padding import normalize_padding, window_geometry

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


def _is_nan(v: Any) -> bool:
    return isinstance(v, float | np.floating) and bool(np.isnan(v))


def _pool_first_max(
    x: Array, at: tuple[int, int, int, int], k_hw: tuple[int, int], geo: tuple[int, ...]
) -> tuple[Any, tuple[int, int] | None]:
    """First maximum of window ``at = (n, i, j, c)`` in row-major order, NaN winning."""
    n, i, j, c = at
    sh, sw, top, left = geo
    best: Any = None
    where = None
    for p in range(k_hw[0]):
        for q in range(k_hw[1]):
            r, col = i * sh + p - top, j * sw + q - left
            if 0 <= r < x.shape[1] and 0 <= col < x.shape[2]:
                v = x[n, r, col, c]
                if best is None or (not _is_nan(best) and (_is_nan(v) or v > best)):
                    best, where = v, (r, col)
    return best, where


def _pool_geometry(
    x_shape: tuple[int, ...], ksize: Any, strides: Any, padding: Any
) -> tuple[int, int, tuple[int, int], tuple[int, ...]]:
    k_hw = _pair(ksize)
    oh, ow, top, left, (sh, sw), _ = _resolve(
        x_shape, k_hw, k_hw if strides is None else strides, padding, 1
    )
    return oh, ow, k_hw, (sh, sw, top, left)


def max_pool2d(x: Array, ksize: Any, *, strides: Any = None, padding: Any = "VALID") -> Array:
    """``y[n,i,j,c] = max_{p,q in window, inside x} x[n, i*sh + p - top, j*sw + q - left, c]``."""
    n_, _, _, c_ = x.shape
    oh, ow, k_hw, geo = _pool_geometry(x.shape, ksize, strides, padding)
    y = np.zeros((n_, oh, ow, c_), dtype=x.dtype)
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_):
                    y[n, i, j, c] = _pool_first_max(x, (n, i, j, c), k_hw, geo)[0]
    return y


def max_pool2d_backward(
    dy: Array, x: Array, ksize: Any, *, strides: Any = None, padding: Any = "VALID"
) -> Array:
    """Each window's ``dy`` goes to its first maximum (row-major, NaN first if any)."""
    n_, _, _, c_ = x.shape
    oh, ow, k_hw, geo = _pool_geometry(x.shape, ksize, strides, padding)
    dx = np.zeros(x.shape, dtype=dy.dtype)
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_):
                    where = _pool_first_max(x, (n, i, j, c), k_hw, geo)[1]
                    assert where is not None
                    dx[n, where[0], where[1], c] += dy[n, i, j, c]
    return dx


def avg_pool2d(
    x: Array,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """``y[n,i,j,c] = sum_{p,q inside x} x[n, i*sh + p - top, j*sw + q - left, c] / count``."""
    n_, h_, w_, c_ = x.shape
    oh, ow, (kh, kw), (sh, sw, top, left) = _pool_geometry(x.shape, ksize, strides, padding)
    y = np.zeros((n_, oh, ow, c_), dtype=x.dtype)
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_):
                    total = x.dtype.type(0) if x.dtype != object else 0
                    count = 0
                    for p in range(kh):
                        for q in range(kw):
                            r, col = i * sh + p - top, j * sw + q - left
                            if 0 <= r < h_ and 0 <= col < w_:
                                total += x[n, r, col, c]
                                count += 1
                    y[n, i, j, c] = total / (kh * kw if count_include_pad else count)
    return y


def avg_pool2d_backward(
    dy: Array,
    input_shape: tuple[int, ...],
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """Scatter form: every window sends ``dy / count`` to each of its real elements."""
    n_, h_, w_, c_ = input_shape
    oh, ow, (kh, kw), (sh, sw, top, left) = _pool_geometry(
        tuple(input_shape), ksize, strides, padding
    )
    dx = np.zeros(tuple(input_shape), dtype=dy.dtype)
    for n in range(n_):
        for i in range(oh):
            for j in range(ow):
                for c in range(c_):
                    inside = [
                        (i * sh + p - top, j * sw + q - left)
                        for p in range(kh)
                        for q in range(kw)
                        if 0 <= i * sh + p - top < h_ and 0 <= j * sw + q - left < w_
                    ]
                    count = kh * kw if count_include_pad else len(inside)
                    for r, col in inside:
                        dx[n, r, col, c] += dy[n, i, j, c] / count
    return dx
