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
    geo = window_geometry(
        (x_shape[1], x_shape[2]), k_hw, s, d, normalize_padding("naive", padding)
    )
    (top, _), (left, _) = geo.pads
    return geo.out_h, geo.out_w, top, left, s, d


def conv2d(
    x: Array, w: Array, b: Array | None = None, *, strides: Any = 1, padding: Any = "VALID",
    dilations: Any = 1,
) -> Array:
    """``y[n,i,j,o] = b[o] + sum_{p,q,c} x[n, i*sh + p*dh - top, j*sw + q*dw - left, c] w[p,q,c,o]``.

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
    dy: Array, w: Array, input_shape: tuple[int, ...], *, strides: Any = 1,
    padding: Any = "VALID", dilations: Any = 1,
) -> Array:
    """Scatter form: every forward product ``x[...] * w[p,q,c,o]`` sends ``dy * w`` back to ``x``."""
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
    dy: Array, x: Array, filter_shape: tuple[int, ...], *, strides: Any = 1,
    padding: Any = "VALID", dilations: Any = 1,
) -> Array:
    """``dw[p,q,c,o] = sum_{n,i,j} x[n, i*sh + p*dh - top, j*sw + q*dw - left, c] dy[n,i,j,o]``."""
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
