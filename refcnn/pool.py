"""Max and average pooling over 1, 2 or 3 spatial axes, global pooling, and their gradients.

Conventions
-----------
- Layout: ``data_format=None`` is channels-last, ``(N, W, C)``, ``(N, H, W, C)`` or
  ``(N, D, H, W, C)``; TensorFlow's strings ``"NWC"``/``"NHWC"``/``"NDHWC"`` say the same
  and ``"NCW"``/``"NCHW"``/``"NCDHW"`` put the channels first. Results keep the input's
  layout. The formulas below are written channels-last, 2-D; every other rank and layout
  reads the same with one index per spatial axis.
- Windows: each channel is pooled on its own over a ``KH x KW`` window that moves by
  ``strides`` (default ``ksize``, as in Keras and PyTorch; ONNX's default is 1) and whose taps
  are ``dilations`` apart. Output sizes and pads come from :mod:`refcnn.padding`: ``SAME``
  puts the odd pad after (TensorFlow, ONNX ``SAME_UPPER``), ``SAME_LOWER`` before, explicit
  pads are ``(before, after)`` per spatial axis. ``ceil_mode=True`` counts a last, partial
  window too (PyTorch's and ONNX's rule; it changes nothing under ``SAME``).
- Padding never contributes a value. A window reduces over its *real* elements only: for
  the max that is what padding with ``-inf`` means (an all-negative input never pools to 0),
  for the mean the pads are at most counted in the divisor (``count_include_pad``). The
  part of a ceil-mode window beyond the end pad is never counted.
- Every window must hold at least one real element (a max or mean of padding alone is
  undefined); a geometry where one would not is refused, naming the window. See
  :func:`_check_real_elements`.
- Dtypes: the result has the input's dtype. Max pooling is exact for every real dtype,
  integers included; sums are carried in :func:`~refcnn._checks.accumulation_dtype`
  (float16 in float32) and rounded once; ``object`` arrays of ``fractions.Fraction`` are
  exact throughout. Inputs are never modified.
- NaN: a window holding a NaN pools to NaN; its gradient goes to the window's first NaN.
- Ties: a max-pool gradient goes to the *first* maximum of the window in row-major window
  order, the element :func:`max_pool_with_argmax` returns.

How it is computed (one spatial axis at a time, only over the kernel taps that reach the
input, batch chunk by batch chunk) is in :mod:`refcnn._pool_routes`; this module holds the
definitions: the geometry, the divisors and the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn import _pool_routes as routes
from refcnn._checks import (
    accumulation_dtype,
    as_array,
    as_bool,
    as_data_format,
    as_index_tuple,
    as_spatial_array,
    as_tuple,
    cast_result,
    check_addressable,
    check_int64_range,
    check_upstream_shape,
    ieee_arithmetic,
    layout_name,
    require_same_dtype,
)
from refcnn.padding import PaddingLike, Windows, normalize_padding, windows

__all__ = [
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool_backward",
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_max_pool",
    "global_max_pool_backward",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool3d",
    "max_pool_backward",
    "max_pool_with_argmax",
]

Array = npt.NDArray[Any]
IntOrTuple = int | Sequence[int]

_RANKS = (1, 2, 3)


# --------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------


def _max_pool(
    op: str, x: Any, ksize: Any, rank: int | None, options: dict[str, Any]
) -> tuple[Array, _Call]:
    x_arr, channels_first = _input(op, x, options["data_format"], rank)
    call = _call(
        op,
        x_arr.shape,
        channels_first,
        ksize,
        options["strides"],
        options["padding"],
        options["dilations"],
        options["ceil_mode"],
    )
    return x_arr, call


def _options(
    strides: Any, padding: Any, dilations: Any, ceil_mode: Any, data_format: Any
) -> dict[str, Any]:
    return {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
        "data_format": data_format,
    }


def max_pool(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """Max pooling over 1, 2 or 3 spatial axes, each channel on its own.

    Parameters
    ----------
    x : ndarray, shape (N, *spatial, C), or (N, C, *spatial) when channels-first
        Input batch with ``r = x.ndim - 2`` spatial axes, ``r`` in 1..3: real floating,
        integer or ``object`` (``fractions.Fraction``) dtype.
    ksize : int or sequence of r ints
        Window size per spatial axis, each >= 1.
    strides : int or sequence of r ints, optional
        Step between windows, each >= 1; default ``ksize`` (non-overlapping windows).
    padding : {"VALID", "SAME", "SAME_LOWER"} or r (before, after) pairs
        See :mod:`refcnn.padding`. Any pads are accepted as long as every window keeps a real
        element (``ValueError`` naming the window otherwise).
    dilations : int or sequence of r ints, default 1
        Distance between the taps of a window (1: adjacent), each >= 1.
    ceil_mode : bool, default False
        Also count the last, partial window on each axis (explicit or VALID padding; a
        window that would start in the end padding is still dropped). No effect under SAME.
    data_format : {None, "NWC", "NCW", "NHWC", "NCHW", "NDHWC", "NCDHW"}, optional
        TensorFlow's layout strings; None is channels-last. A string for another number of
        spatial axes than ``x`` has is a ``ValueError``.

    Returns
    -------
    y : ndarray, shape (N, *out, C), or (N, C, *out)
        Same dtype and layout as ``x``. An output size may be 0 (VALID with a window
        larger than the input), as in TensorFlow.

    Notes
    -----
    Over the real elements of each window only (padding acts as ``-inf``; it never wins)::

        y[n,i,j,c] = max_{p,q : 0 <= i*sh + p*dh - top < H, 0 <= j*sw + q*dw - left < W}
                     x[n, i*sh + p*dh - top, j*sw + q*dw - left, c]

    with ``p < KH``, ``q < KW``; ``(top, left)`` are the pads before. A window holding a NaN
    pools to NaN (PyTorch and ONNX Runtime agree; TensorFlow's CPU kernel skips NaN).
    Where the maximum is a tie of ``-0.0`` and ``+0.0`` the sign of the zero follows
    ``np.maximum`` and is not specified.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    x_arr, call = _max_pool("max_pool", x, ksize, None, options)
    return routes.window_max(x_arr, call.axes, call.output_shape)


def max_pool_with_argmax(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> tuple[Array, Array]:
    """Max pooling and, per window, where its first maximum is.

    Parameters
    ----------
    x, ksize, strides, padding, dilations, ceil_mode, data_format
        As in :func:`max_pool`.

    Returns
    -------
    y : ndarray, shape (N, *out, C), or (N, C, *out)
        :func:`max_pool`'s output.
    argmax : ndarray of int64, the shape of y
        Index of the winning element inside its own ``(n, c)`` spatial volume, row-major
        over the spatial axes (PyTorch's ``return_indices`` convention): ``h*W + w`` in 2-D,
        ``(d*H + h)*W + w`` in 3-D. It is the first maximum of the window in row-major order
        (ties: the earliest; a NaN beats every number, the first NaN wins), the element
        :func:`max_pool_backward` sends the window's gradient to.

    Notes
    -----
    ``y[n,i,j,c] == x[n, argmax[n,i,j,c] // W, argmax[n,i,j,c] % W, c]`` (channels-last) and::

        argmax[n,i,j,c] = min{ h*W + w : (h, w) in window (i, j), x[n,h,w,c] == y[n,i,j,c] }

    (NaN: the smallest ``h*W + w`` holding NaN). Other conventions, from ``k = argmax``:

    - TensorFlow ``tf.nn.max_pool_with_argmax`` (NHWC): ``((b*H + h)*W + w)*C + c``, i.e.
      ``(b*H*W + k)*C + c``; with ``include_batch_in_index=False``: ``k*C + c``.
    - ONNX ``MaxPool`` ``Indices`` (NCHW, batch and channel included): storage_order 0
      (row-major) ``(b*C + c)*H*W + k``; storage_order 1 (column-major)
      ``(b*C + c)*H*W + w*H + h`` with ``h, w = divmod(k, W)``.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    x_arr, call = _max_pool("max_pool_with_argmax", x, ksize, None, options)
    return routes.first_max(x_arr, call.axes, call.output_shape)


def _max_pool_backward(
    op: str, dy: Any, x: Any, ksize: Any, rank: int | None, options: dict[str, Any]
) -> Array:
    x_arr, call = _max_pool(op, x, ksize, rank, options)
    dy_arr = _upstream(op, dy, call.rank, call.channels_first, "x", allow_int=True)
    require_same_dtype(op, dy=dy_arr, x=x_arr)
    check_upstream_shape(
        op, dy_arr, call.output_shape, f"the forward output for x shape {x_arr.shape}"
    )
    acc = accumulation_dtype(dy_arr.dtype)
    with ieee_arithmetic():  # overlapping windows' gradients add up past the range: inf
        dx = routes.max_backward(dy_arr, x_arr, call.axes, call.channel_axis, acc)
    return cast_result(dx, dy_arr.dtype)


def max_pool_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """Gradient of :func:`max_pool` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape (N, *out, C), or (N, C, *out)
        Upstream gradient, the shape of the forward output; same dtype as ``x``.
    x : ndarray, shape (N, *spatial, C), or (N, C, *spatial)
        The forward input (the maxima are recomputed from it).
    ksize, strides, padding, dilations, ceil_mode, data_format
        As given to the forward call.

    Returns
    -------
    dx : ndarray, the shape of x
        Same dtype as ``dy``; float16 is summed in float32 and rounded once, integers and
        ``object`` exactly.

    Notes
    -----
    Each window sends its whole gradient to one element, its first maximum in row-major
    window order (``argmax`` of :func:`max_pool_with_argmax`); windows that share it add up::

        dx[n,h,w,c] = sum_{i,j : argmax[n,i,j,c] == h*W + w} dy[n,i,j,c]

    Ties go to the earliest element (PyTorch, TensorFlow and ONNX Runtime agree). When the
    window max is NaN the gradient goes to the window's first NaN (PyTorch 2.13 picks the
    last NaN; TensorFlow 2.21's CPU forward skips NaN while its gradient scans with a strict
    ``>`` from the first element, so a leading NaN keeps the gradient).
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _max_pool_backward("max_pool_backward", dy, x, ksize, None, options)


# --------------------------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------------------------


def _avg_pool(
    op: str, x: Any, ksize: Any, rank: int | None, include: Any, options: dict[str, Any]
) -> Array:
    x_arr, channels_first = _input(op, x, options["data_format"], rank, allow_int=False)
    include_pad = as_bool(op, "count_include_pad", include)
    call = _call(
        op,
        x_arr.shape,
        channels_first,
        ksize,
        options["strides"],
        options["padding"],
        options["dilations"],
        options["ceil_mode"],
    )
    acc = accumulation_dtype(x_arr.dtype)
    with ieee_arithmetic():  # a sum past the range is inf, inf - inf is NaN (as in dense)
        total = routes.window_sum(x_arr, call.axes, call.output_shape, acc)
        # A division, not a multiplication by 1/count: the mean is rounded once.
        np.divide(total, _divisors(call, include_pad, acc), out=total)
    return cast_result(total, x_arr.dtype)


def avg_pool(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> Array:
    """Average pooling over 1, 2 or 3 spatial axes, each channel on its own.

    Parameters
    ----------
    x : ndarray, shape (N, *spatial, C), or (N, C, *spatial) when channels-first
        Input batch: real floating or ``object`` (``fractions.Fraction``) dtype. Integers
        are refused (``TypeError``): their mean is not an integer, and a silent cast is not
        ours to choose.
    ksize, strides, padding, dilations, ceil_mode, data_format
        As in :func:`max_pool`.
    count_include_pad : bool, default False
        Divisor of each window: False, its real (input) elements (TensorFlow; ONNX's and
        PyTorch's ``count_include_pad=0``); True, its taps inside the padded input, pads
        included but not the part of a ceil-mode window past the end pad (PyTorch's default
        and rule, ONNX's ``count_include_pad=1``). Without padding both are the same.

    Returns
    -------
    y : ndarray, shape (N, *out, C), or (N, C, *out)
        Same dtype and layout as ``x``; float16 is summed in float32 and rounded once.

    Notes
    -----
    With ``R(i,j) = {(p,q) : 0 <= i*sh + p*dh - top < H, 0 <= j*sw + q*dw - left < W}``::

        y[n,i,j,c] = sum_{(p,q) in R(i,j)} x[n, i*sh + p*dh - top, j*sw + q*dw - left, c]
                     / count[i,j]

    where ``count[i,j] = |R(i,j)|`` (``count_include_pad=False``) or, with True, the number
    of taps ``(p, q)`` with ``-top <= i*sh + p*dh - top < H + bottom`` and
    ``-left <= j*sw + q*dw - left < W + right``: ``KH * KW`` except for a ceil-mode window
    clipped at the end pad.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _avg_pool("avg_pool", x, ksize, None, count_include_pad, options)


def _avg_pool_backward(
    op: str,
    dy: Any,
    input_shape: Any,
    ksize: Any,
    rank: int | None,
    include: Any,
    options: dict[str, Any],
) -> Array:
    lengths = (rank + 2,) if rank is not None else tuple(r + 2 for r in _RANKS)
    shape = as_index_tuple(op, "input_shape", input_shape, length=lengths)
    # input_shape gives the rank; data_format must fit it.
    _, channels_first = as_data_format(op, options["data_format"], rank=len(shape) - 2)
    dy_arr = _upstream(op, dy, len(shape) - 2, channels_first, "input_shape", allow_int=False)
    check_addressable(op, "input_shape", shape, dy_arr.itemsize)
    include_pad = as_bool(op, "count_include_pad", include)
    call = _call(
        op,
        shape,
        channels_first,
        ksize,
        options["strides"],
        options["padding"],
        options["dilations"],
        options["ceil_mode"],
    )
    check_upstream_shape(
        op, dy_arr, call.output_shape, f"the forward output for input_shape {shape}"
    )
    acc = accumulation_dtype(dy_arr.dtype)
    with ieee_arithmetic():  # as in avg_pool
        share = dy_arr.astype(acc, copy=False) / _divisors(call, include_pad, acc)
        dx = routes.window_sum_adjoint(share, call.axes, shape)
    return cast_result(dx, dy_arr.dtype)


def avg_pool_backward(
    dy: npt.ArrayLike,
    input_shape: Sequence[int],
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> Array:
    """Gradient of :func:`avg_pool` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape (N, *out, C), or (N, C, *out)
        Upstream gradient, the shape of the forward output; real floating or ``object``.
    input_shape : sequence of 3, 4 or 5 ints
        Shape of the forward input, in ``data_format``'s layout; gives the rank.
    ksize, strides, padding, dilations, ceil_mode, count_include_pad, data_format
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``.

    Notes
    -----
    Each window spreads ``dy / count`` evenly over its real elements (what a pad would have
    received is dropped); overlapping windows add up::

        dx[n,h,w,c] = sum_{i,j,p,q : i*sh + p*dh - top = h, j*sw + q*dw - left = w}
                      dy[n,i,j,c] / count[i,j]

    with ``count`` as in :func:`avg_pool`. This is the adjoint of the forward map:
    ``<avg_pool(x), dy> == <x, avg_pool_backward(dy)>``.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _avg_pool_backward(
        "avg_pool_backward", dy, input_shape, ksize, None, count_include_pad, options
    )


# --------------------------------------------------------------------------------------------
# The same ops with a fixed number of spatial axes
# --------------------------------------------------------------------------------------------


def max_pool1d(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """1-D max pooling: :func:`max_pool` for ``x`` of shape (N, W, C) (or (N, C, W), "NCW").

    Parameters
    ----------
    x : ndarray, shape (N, W, C), or (N, C, W) with data_format "NCW"
        Input batch.
    ksize, strides, padding, dilations, ceil_mode, data_format
        As in :func:`max_pool`, with one spatial axis (``padding``: one (before, after) pair).

    Returns
    -------
    y : ndarray, shape (N, OW, C), or (N, C, OW)
        Same dtype as ``x``.

    Notes
    -----
    ``y[n,j,c] = max_{q : 0 <= j*sw + q*dw - left < W} x[n, j*sw + q*dw - left, c]``.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    x_arr, call = _max_pool("max_pool1d", x, ksize, 1, options)
    return routes.window_max(x_arr, call.axes, call.output_shape)


def max_pool2d(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """2-D max pooling: :func:`max_pool` for ``x`` of shape (N, H, W, C) (or (N, C, H, W)).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C), or (N, C, H, W) with data_format "NCHW"
        Input batch: real floating, integer or ``object`` (``fractions.Fraction``) dtype.
    ksize : int or (int, int)
        Window size ``(KH, KW)``, each >= 1.
    strides : int or (int, int), optional
        Step between windows ``(SH, SW)``, each >= 1; default ``ksize`` (non-overlapping).
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        See :mod:`refcnn.padding`; every window must keep a real element.
    dilations, ceil_mode, data_format
        As in :func:`max_pool`.

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C), or (N, C, OH, OW)
        Same dtype as ``x`` (integers stay integers). ``OH``/``OW`` may be 0 (VALID with a
        kernel larger than the input), as in TensorFlow.

    Notes
    -----
    Over the window's real elements only (padding acts as ``-inf``: it never wins)::

        y[n,i,j,c] = max_{p,q : 0 <= i*sh + p*dh - top < H, 0 <= j*sw + q*dw - left < W}
                     x[n, i*sh + p*dh - top, j*sw + q*dw - left, c]

    NaN propagates: a window holding a NaN pools to NaN (as PyTorch does; TensorFlow's CPU
    kernel skips NaN in the forward pass).
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    x_arr, call = _max_pool("max_pool2d", x, ksize, 2, options)
    return routes.window_max(x_arr, call.axes, call.output_shape)


def max_pool3d(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """3-D max pooling: :func:`max_pool` for ``x`` of shape (N, D, H, W, C) (or (N, C, D, H, W)).

    Parameters
    ----------
    x : ndarray, shape (N, D, H, W, C), or (N, C, D, H, W) with data_format "NCDHW"
        Input batch.
    ksize, strides, padding, dilations, ceil_mode, data_format
        As in :func:`max_pool`, with three spatial axes.

    Returns
    -------
    y : ndarray, shape (N, OD, OH, OW, C), or (N, C, OD, OH, OW)
        Same dtype as ``x``.

    Notes
    -----
    ::

        y[n,g,i,j,c] = max_{o,p,q real} x[n, g*sd + o*dd - front, i*sh + p*dh - top,
                                          j*sw + q*dw - left, c]
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    x_arr, call = _max_pool("max_pool3d", x, ksize, 3, options)
    return routes.window_max(x_arr, call.axes, call.output_shape)


def max_pool2d_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """Gradient of :func:`max_pool2d`: :func:`max_pool_backward` with two spatial axes.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, C), or (N, C, OH, OW)
        Upstream gradient, the shape of the forward output; same dtype as ``x``.
    x : ndarray, shape (N, H, W, C), or (N, C, H, W)
        The forward input (the maxima are recomputed from it).
    ksize, strides, padding, dilations, ceil_mode, data_format
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C), or (N, C, H, W)
        Same dtype as ``dy``.

    Notes
    -----
    Each window sends its whole gradient to its first maximum in row-major window order
    (``p``, then ``q``), padding excluded; windows that overlap add up::

        dx[n,h,w,c] = sum_{i,j : (h, w) = first argmax of window (n,i,j,c)} dy[n,i,j,c]

    Ties go to the earliest element; a NaN window's gradient to its first NaN (see
    :func:`max_pool_backward`).
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _max_pool_backward("max_pool2d_backward", dy, x, ksize, 2, options)


def avg_pool1d(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> Array:
    """1-D average pooling: :func:`avg_pool` for ``x`` of shape (N, W, C) (or (N, C, W)).

    Parameters
    ----------
    x : ndarray, shape (N, W, C), or (N, C, W) with data_format "NCW"
        Input batch: real floating or ``object`` dtype.
    ksize, strides, padding, dilations, ceil_mode, count_include_pad, data_format
        As in :func:`avg_pool`, with one spatial axis.

    Returns
    -------
    y : ndarray, shape (N, OW, C), or (N, C, OW)
        Same dtype as ``x``.

    Notes
    -----
    ``y[n,j,c] = sum_{q : 0 <= j*sw + q*dw - left < W} x[n, j*sw + q*dw - left, c] / count[j]``
    with ``count`` as in :func:`avg_pool`.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _avg_pool("avg_pool1d", x, ksize, 1, count_include_pad, options)


def avg_pool2d(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    count_include_pad: bool = False,
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """2-D average pooling: :func:`avg_pool` for ``x`` of shape (N, H, W, C) (or (N, C, H, W)).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C), or (N, C, H, W) with data_format "NCHW"
        Input batch: real floating or ``object`` (``fractions.Fraction``) dtype. Integers
        are refused (``TypeError``).
    ksize : int or (int, int)
        Window size ``(KH, KW)``, each >= 1.
    strides : int or (int, int), optional
        Step between windows ``(SH, SW)``, each >= 1; default ``ksize``.
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        See :mod:`refcnn.padding`; every window must keep a real element.
    count_include_pad : bool, default False
        False divides by the number of real (non-pad) elements of each window (TensorFlow
        and ONNX), True by its taps inside the padded input (PyTorch's default).
    dilations, ceil_mode, data_format
        As in :func:`avg_pool`.

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C), or (N, C, OH, OW)
        Same dtype as ``x``; float16 is summed in float32 and rounded once.

    Notes
    -----
    With ``R(i,j) = {(p,q) : 0 <= i*sh + p*dh - top < H, 0 <= j*sw + q*dw - left < W}``::

        y[n,i,j,c] = sum_{(p,q) in R(i,j)} x[n, i*sh + p*dh - top, j*sw + q*dw - left, c]
                     / count[i,j]

    where ``count[i,j] = |R(i,j)|`` (``count_include_pad=False``) or the taps inside the
    padded input (True: ``KH * KW`` unless a ceil-mode window is clipped).
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _avg_pool("avg_pool2d", x, ksize, 2, count_include_pad, options)


def avg_pool3d(
    x: npt.ArrayLike,
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> Array:
    """3-D average pooling: :func:`avg_pool` for ``x`` of shape (N, D, H, W, C).

    Parameters
    ----------
    x : ndarray, shape (N, D, H, W, C), or (N, C, D, H, W) with data_format "NCDHW"
        Input batch: real floating or ``object`` dtype.
    ksize, strides, padding, dilations, ceil_mode, count_include_pad, data_format
        As in :func:`avg_pool`, with three spatial axes.

    Returns
    -------
    y : ndarray, shape (N, OD, OH, OW, C), or (N, C, OD, OH, OW)
        Same dtype as ``x``.

    Notes
    -----
    ::

        y[n,g,i,j,c] = sum_{(o,p,q) in R(g,i,j)} x[n, g*sd + o*dd - front,
                           i*sh + p*dh - top, j*sw + q*dw - left, c] / count[g,i,j]
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _avg_pool("avg_pool3d", x, ksize, 3, count_include_pad, options)


def avg_pool2d_backward(
    dy: npt.ArrayLike,
    input_shape: Sequence[int],
    ksize: IntOrTuple,
    *,
    strides: IntOrTuple | None = None,
    padding: PaddingLike = "VALID",
    count_include_pad: bool = False,
    dilations: IntOrTuple = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """Gradient of :func:`avg_pool2d`: :func:`avg_pool_backward` with two spatial axes.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, C), or (N, C, OH, OW)
        Upstream gradient, the shape of the forward output; real floating or ``object``.
    input_shape : (N, H, W, C), or (N, C, H, W)
        Shape of the forward input.
    ksize, strides, padding, count_include_pad, dilations, ceil_mode, data_format
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``.

    Notes
    -----
    Each window spreads ``dy / count`` evenly over its real elements::

        dx[n,h,w,c] = sum_{i,j,p,q : i*sh + p*dh - top = h, j*sw + q*dw - left = w}
                      dy[n,i,j,c] / count[i,j]

    the adjoint of the forward map: ``<avg_pool2d(x), dy> == <x, avg_pool2d_backward(dy)>``.
    """
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    return _avg_pool_backward(
        "avg_pool2d_backward", dy, input_shape, ksize, 2, count_include_pad, options
    )


# --------------------------------------------------------------------------------------------
# Global pooling: one window covering all spatial axes
# --------------------------------------------------------------------------------------------


class _Global(NamedTuple):
    spatial_axes: tuple[int, ...]
    channels_first: bool
    output_shape: tuple[int, ...]
    volume: int


def _global(
    op: str,
    input_shape: tuple[int, ...],
    channels_first: bool,
    keepdims: Any,
    name: str = "x",
) -> _Global:
    """Resolve a global pool over ``input_shape``, the shape of argument ``name``."""
    keep = as_bool(op, "keepdims", keepdims)
    rank = len(input_shape) - 2
    first = 2 if channels_first else 1
    spatial = tuple(range(first, first + rank))
    if any(input_shape[a] == 0 for a in spatial):
        label = name if name.endswith("_shape") else f"{name} of shape"
        msg = (
            f"{op}: {label} {input_shape} has an empty spatial axis; the max or mean over "
            f"no elements is undefined"
        )
        raise ValueError(msg)
    channel_axis = 1 if channels_first else rank + 1
    if keep:
        output = tuple(1 if a in spatial else n for a, n in enumerate(input_shape))
    else:
        output = (input_shape[0], input_shape[channel_axis])
    volume = math.prod(input_shape[a] for a in spatial)  # exact: no int64 wrap-around
    return _Global(spatial, channels_first, output, volume)


def _as_nsc(a: Array, g: _Global) -> Array:
    """``(N, S, C)`` (channels-last) or ``(N, C, S)`` view of a batch, ``S`` the spatial volume."""
    if g.channels_first:
        return a.reshape(a.shape[0], a.shape[1], g.volume)
    return a.reshape(a.shape[0], g.volume, a.shape[-1])


def global_max_pool(
    x: npt.ArrayLike, *, data_format: str | None = None, keepdims: bool = True
) -> Array:
    """Max over all spatial axes of each ``(n, c)``: one window covering the whole input.

    Parameters
    ----------
    x : ndarray, shape (N, *spatial, C), or (N, C, *spatial) when channels-first
        Input batch with 1 to 3 non-empty spatial axes; real floating, integer or
        ``object`` dtype.
    data_format : {None, "NWC", "NCW", "NHWC", "NCHW", "NDHWC", "NCDHW"}, optional
        As in :func:`max_pool`.
    keepdims : bool, default True
        Keep the spatial axes with size 1 (ONNX ``GlobalMaxPool``: ``(N, C, 1, 1)``);
        False returns ``(N, C)`` (Keras ``GlobalMaxPooling2D``'s default).

    Returns
    -------
    y : ndarray, shape (N, 1, ..., 1, C) / (N, C, 1, ..., 1), or (N, C) without keepdims
        Same dtype as ``x``.

    Notes
    -----
    ``y[n,c] = max_{h,w} x[n,h,w,c]``: :func:`max_pool` with ``ksize`` the spatial shape and
    VALID padding. A NaN propagates.
    """
    op = "global_max_pool"
    x_arr, channels_first = _input(op, x, data_format, None)
    g = _global(op, x_arr.shape, channels_first, keepdims)
    y: Array = np.max(x_arr, axis=g.spatial_axes, keepdims=True)
    return y.reshape(g.output_shape)


def global_max_pool_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    *,
    data_format: str | None = None,
    keepdims: bool = True,
) -> Array:
    """Gradient of :func:`global_max_pool`: each ``dy[n,c]`` goes to the first maximum of x[n,:,c].

    Parameters
    ----------
    dy : ndarray, the shape of :func:`global_max_pool`'s output
        Upstream gradient; same dtype as ``x``.
    x : ndarray, shape (N, *spatial, C), or (N, C, *spatial)
        The forward input.
    data_format, keepdims
        As given to the forward call.

    Returns
    -------
    dx : ndarray, the shape of x
        Same dtype as ``dy``; zero except at one element per ``(n, c)``.

    Notes
    -----
    ``dx[n,h,w,c] = dy[n,c]`` if ``h*W + w`` is the smallest row-major index holding the
    maximum of ``x[n,:,:,c]`` (the first NaN, if any), else 0.
    """
    op = "global_max_pool_backward"
    x_arr, channels_first = _input(op, x, data_format, None)
    g = _global(op, x_arr.shape, channels_first, keepdims)
    dy_arr = as_array(op, "dy", dy)
    require_same_dtype(op, dy=dy_arr, x=x_arr)
    check_upstream_shape(
        op, dy_arr, g.output_shape, f"the forward output for x shape {x_arr.shape}"
    )
    flat_x = _as_nsc(x_arr, g)
    reduced = 2 if g.channels_first else 1
    # np.argmax returns the first maximum, and the first NaN where there is one.
    winner = np.expand_dims(np.argmax(flat_x, axis=reduced), reduced)
    dx = np.zeros(flat_x.shape, dtype=dy_arr.dtype)
    np.put_along_axis(dx, winner, dy_arr.reshape(winner.shape), axis=reduced)
    return dx.reshape(x_arr.shape)


def global_avg_pool(
    x: npt.ArrayLike, *, data_format: str | None = None, keepdims: bool = True
) -> Array:
    """Mean over all spatial axes of each ``(n, c)``: one window covering the whole input.

    Parameters
    ----------
    x : ndarray, shape (N, *spatial, C), or (N, C, *spatial) when channels-first
        Input batch with 1 to 3 non-empty spatial axes; real floating or ``object`` dtype
        (integers are refused, as in :func:`avg_pool`).
    data_format : {None, "NWC", "NCW", "NHWC", "NCHW", "NDHWC", "NCDHW"}, optional
        As in :func:`avg_pool`.
    keepdims : bool, default True
        Keep the spatial axes with size 1 (ONNX ``GlobalAveragePool``); False returns
        ``(N, C)`` (Keras ``GlobalAveragePooling2D``'s default).

    Returns
    -------
    y : ndarray, shape (N, 1, ..., 1, C) / (N, C, 1, ..., 1), or (N, C) without keepdims
        Same dtype as ``x``; float16 is summed in float32 and rounded once.

    Notes
    -----
    ``y[n,c] = sum_{h,w} x[n,h,w,c] / (H*W)``: :func:`avg_pool` with ``ksize`` the spatial
    shape and VALID padding (NumPy's pairwise sum, so the rounding error grows like
    ``log2(H*W)``, not ``H*W``).
    """
    op = "global_avg_pool"
    x_arr, channels_first = _input(op, x, data_format, None, allow_int=False)
    g = _global(op, x_arr.shape, channels_first, keepdims)
    acc = accumulation_dtype(x_arr.dtype)
    with ieee_arithmetic():  # as in avg_pool
        total = np.sum(x_arr, axis=g.spatial_axes, dtype=acc, keepdims=True)
        mean = total / _count(g.volume, acc)
    return cast_result(mean, x_arr.dtype).reshape(g.output_shape)


def _count(volume: int, dtype: np.dtype[Any]) -> Any:
    """Return the divisor in ``dtype`` (a Python int for ``object``: Fractions stay exact)."""
    return volume if dtype.kind == "O" else dtype.type(volume)


def global_avg_pool_backward(
    dy: npt.ArrayLike,
    input_shape: Sequence[int],
    *,
    data_format: str | None = None,
    keepdims: bool = True,
) -> Array:
    """Gradient of :func:`global_avg_pool`: ``dy[n,c] / (H*W)`` at every element of (n, c).

    Parameters
    ----------
    dy : ndarray, the shape of :func:`global_avg_pool`'s output
        Upstream gradient; real floating or ``object``.
    input_shape : sequence of 3, 4 or 5 ints
        Shape of the forward input, in ``data_format``'s layout.
    data_format, keepdims
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``.

    Notes
    -----
    ``dx[n,h,w,c] = dy[n,c] / (H*W)``, the adjoint of the forward map.
    """
    op = "global_avg_pool_backward"
    shape = as_index_tuple(op, "input_shape", input_shape, length=tuple(r + 2 for r in _RANKS))
    _, channels_first = as_data_format(op, data_format, rank=len(shape) - 2)
    g = _global(op, shape, channels_first, keepdims, "input_shape")
    dy_arr = as_array(op, "dy", dy, allow_int=False)
    check_upstream_shape(op, dy_arr, g.output_shape, f"the forward output for input_shape {shape}")
    check_addressable(op, "input_shape", shape, dy_arr.itemsize)
    acc = accumulation_dtype(dy_arr.dtype)
    kept = tuple(1 if a in g.spatial_axes else n for a, n in enumerate(shape))
    with ieee_arithmetic():  # a volume past the dtype's range divides to 0 (underflow)
        share = dy_arr.astype(acc, copy=False).reshape(kept) / _count(g.volume, acc)
    dx = np.empty(shape, dtype=dy_arr.dtype)
    dx[...] = cast_result(share, dy_arr.dtype)
    return dx


# --------------------------------------------------------------------------------------------
# Below the API: the validated call, window geometry, the padding-only rule, divisors
# --------------------------------------------------------------------------------------------


class _Call(NamedTuple):
    """A validated pooling call: where the spatial axes are and where every window lies."""

    op: str
    input_shape: tuple[int, ...]
    channels_first: bool
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    geometry: Windows
    axes: tuple[routes.Axis, ...]
    real: tuple[Array, ...]  # per spatial axis: how many real elements each window holds

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.kernel)

    @property
    def spatial_axes(self) -> tuple[int, ...]:
        """Array axes of the spatial dimensions, outermost first."""
        first = 2 if self.channels_first else 1
        return tuple(range(first, first + self.rank))

    @property
    def channel_axis(self) -> int:
        """Array axis of the channels."""
        return 1 if self.channels_first else self.rank + 1

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the pooled output, in the input's layout."""
        shape = list(self.input_shape)
        for axis, out in zip(self.spatial_axes, self.geometry.out, strict=True):
            shape[axis] = out
        return tuple(shape)


#: Validated calls kept for reuse: a training loop pools the same shapes with the same
#: arguments over and over, and validating them costs more than pooling a small batch.
CALL_CACHE_SIZE = 256
_CALLS: dict[tuple[Any, ...], _Call] = {}


def _frozen(value: Any) -> Any:
    """Return a hashable stand-in for an argument that keeps its type.

    ``2``, ``2.0`` and ``True`` compare equal but must not share a cache entry: only one of
    them is a valid ``ksize``.
    """
    if isinstance(value, list | tuple):
        return (type(value), tuple(_frozen(item) for item in value))
    if value is None or isinstance(value, int | float | str | np.generic):
        return (type(value), value)
    # Anything else (an array, a user object whose value could change) is not cached.
    msg = f"not cacheable: {type(value).__name__}"
    raise TypeError(msg)


def _call(
    op: str,
    input_shape: tuple[int, ...],
    channels_first: bool,
    ksize: Any,
    strides: Any,
    padding: Any,
    dilations: Any,
    ceil_mode: Any,
) -> _Call:
    """Validate the window arguments against ``input_shape`` and resolve the geometry.

    A call whose arguments are builtin scalars, tuples or lists of them is kept (up to
    :data:`CALL_CACHE_SIZE`, then the cache starts over); only arguments that passed
    validation are ever stored.
    """
    arguments = (ksize, strides, padding, dilations, ceil_mode)
    try:
        key = (op, input_shape, channels_first, *(_frozen(v) for v in arguments))
        cached = _CALLS.get(key)
    except TypeError:  # an unhashable argument (a list inside a list, an array)
        return _resolve_call(op, input_shape, channels_first, *arguments)
    if cached is None:
        cached = _resolve_call(op, input_shape, channels_first, *arguments)
        if len(_CALLS) >= CALL_CACHE_SIZE:
            _CALLS.clear()  # rare (a loop reuses a few geometries); atomic, so thread-safe
        _CALLS[key] = cached
    return cached


def _resolve_call(
    op: str,
    input_shape: tuple[int, ...],
    channels_first: bool,
    ksize: Any,
    strides: Any,
    padding: Any,
    dilations: Any,
    ceil_mode: Any,
) -> _Call:
    """Validate and resolve a call: :func:`_call` without the cache."""
    rank = len(input_shape) - 2
    kernel = as_tuple(op, "ksize", ksize, rank=rank)
    steps = kernel if strides is None else as_tuple(op, "strides", strides, rank=rank)
    spacing = as_tuple(op, "dilations", dilations, rank=rank)
    ceil = as_bool(op, "ceil_mode", ceil_mode)
    resolved = normalize_padding(op, padding, rank)
    first = 2 if channels_first else 1
    sizes = input_shape[first : first + rank]
    geometry = windows(sizes, kernel, steps, spacing, resolved, ceil_mode=ceil)
    call = _Call(op, input_shape, channels_first, kernel, steps, spacing, geometry, (), ())
    for a in range(rank):
        (before, after), out = geometry.pads[a], geometry.out[a]
        # Window positions are int64 arrays; a geometry past that range is a mistake.
        reach = max((out - 1) * steps[a] + (kernel[a] - 1) * spacing[a], sizes[a] + before + after)
        check_int64_range(op, "ksize, strides, dilations and padding", reach)
        check_addressable(op, "ksize, strides, dilations and padding", (out,), 8)
    check_addressable(op, "ksize, strides, dilations and padding", call.output_shape, 8)
    real = tuple(_real_counts(call, a) for a in range(rank))
    for counts in real:
        counts.flags.writeable = False  # shared by every call the cache returns it to
    call = call._replace(real=real)
    _check_real_elements(call, padding)
    axes = tuple(
        routes.axis_spans(
            axis, sizes[a], geometry.out[a], kernel[a], steps[a], spacing[a], geometry.pads[a][0]
        )
        for a, axis in enumerate(call.spatial_axes)
    )
    return call._replace(axes=axes)


def _taps_inside(call: _Call, a: int, lo: int, hi: int) -> Array:
    """``count[i] = #{t in [0, K) : lo <= i*s + t*d - before < hi}`` along spatial axis ``a``.

    Input coordinates: ``[0, size)`` are the real elements, ``[-before, size + after)`` the
    padded axis. Window ``i`` starts at ``i*s - before``; its taps are ``d`` apart.
    """
    kernel, stride, dilation = call.kernel[a], call.strides[a], call.dilations[a]
    start = np.arange(call.geometry.out[a], dtype=np.int64) * stride - call.geometry.pads[a][0]
    first = np.maximum(0, -((start - lo) // dilation))  # first t with start + t*d >= lo
    last = np.minimum(kernel - 1, (hi - 1 - start) // dilation)  # last t with < hi
    counts: Array = np.maximum(last - first + 1, 0)
    return counts


def _real_counts(call: _Call, a: int) -> Array:
    """How many real (input) elements each window holds along spatial axis ``a``."""
    return _taps_inside(call, a, 0, call.input_shape[call.spatial_axes[a]])


def _check_real_elements(call: _Call, padding: Any) -> None:
    """Refuse a geometry in which some window holds padding only (no max, no mean).

    A window is the product of one 1-D window per spatial axis, so it holds a real element
    exactly when each of its 1-D windows does; this checks that for every window of every
    axis, with the counts the divisor uses. ``VALID`` always passes; explicit pads at least
    the dilated kernel extent fail, as do dilation gaps wider than the input (``SAME``
    included: a 2-tap window 3 apart over 1 element holds two pads) and any padding of an
    empty axis. An output with no windows along some axis has no windows at all and passes.
    """
    if 0 in call.geometry.out:
        return  # no windows at all
    for a, counts in enumerate(call.real):
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            size = call.input_shape[call.spatial_axes[a]]
            msg = (
                f"{call.op}: padding {padding!r} with ksize {call.kernel}, strides "
                f"{call.strides} and dilations {call.dilations} gives window {int(empty[0])} "
                f"of spatial axis {a} (input size {size}, pads {call.geometry.pads[a]}) no real "
                f"element; a max or mean over padding alone is undefined"
            )
            raise ValueError(msg)


def _divisors(call: _Call, count_include_pad: bool, dtype: np.dtype[Any]) -> Array:
    """Each window's divisor, shaped to broadcast against the output (Python ints for object).

    ``count_include_pad=False``: its real elements. True: its taps inside the padded input,
    ``[-before, size + after)``; a ceil-mode window's overhang past the end pad is not
    counted (PyTorch's rule, ONNX's too). Both are products of per-axis counts.
    """
    divisor: Array = np.ones((1,) * len(call.input_shape), dtype=np.int64)
    for a, axis in enumerate(call.spatial_axes):
        if count_include_pad:
            before, after = call.geometry.pads[a]
            counts = _taps_inside(call, a, -before, call.input_shape[axis] + after)
        else:
            counts = call.real[a]
        shape = [1] * len(call.input_shape)
        shape[axis] = counts.size
        divisor = divisor * counts.reshape(shape)
    return divisor.astype(dtype)


def _input(
    op: str, x: Any, data_format: Any, rank: int | None, *, allow_int: bool = True
) -> tuple[Array, bool]:
    array, _, channels_first = as_spatial_array(
        op, "x", x, data_format=data_format, rank=rank, allow_int=allow_int
    )
    return array, channels_first


def _upstream(
    op: str, dy: Any, rank: int, channels_first: bool, ranked_by: str, *, allow_int: bool
) -> Array:
    """``dy`` with the ``rank`` spatial axes that argument ``ranked_by`` gives."""
    layout = layout_name(rank, channels_first, prefix="O")
    return as_array(
        op, "dy", dy, ndim=rank + 2, layout=layout, allow_int=allow_int, ranked_by=ranked_by
    )
