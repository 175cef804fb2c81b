"""2-D max and average pooling and their gradients.

Conventions: data ``x`` is NHWC ``(N, H, W, C)``; each channel is pooled on its own over a
``KH x KW`` window that moves by ``strides`` (default: ``strides = ksize``, as in Keras and
PyTorch); padding follows :mod:`refcnn.padding` (TensorFlow ``SAME`` puts the odd pixel after,
``SAME_LOWER`` before), with dilation 1.

Padding never contributes a value. A window reduces over its *real* elements only: for max
pooling that is what padding with ``-inf`` means (padding never wins, so an all-negative
input never pools to 0), for average pooling the pads are at most counted in the divisor
(``count_include_pad``). Nothing is ever materialized as padding: every op is a loop over the
``KH * KW`` kernel taps, and tap ``(p, q)`` reads the strided slice of ``x`` that it meets
inside the input, writing the block of output positions whose window holds that element. The
working set is a few arrays the size of the output, and integer and ``object`` dtypes need no
sentinel value. The max-pool gradient finds each window's first maximum in one such pass and,
for floating gradients, sends every window's ``dy`` to it with one scatter-add (summing in
float64); integer and ``object`` gradients are added tap by tap, exactly.

That needs every window to hold at least one real element, so explicit pads must be smaller
than the kernel on their axis (TensorFlow's rule too); see :func:`_check_windows_hit_input`.

float16 sums are accumulated in float32 and rounded once at the end; ``object`` arrays of
``fractions.Fraction`` are computed exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    accumulation_dtype,
    as_array,
    as_index_tuple,
    as_pair,
    cast_result,
    require_same_dtype,
)
from refcnn.padding import Geometry, PaddingLike, normalize_padding, window_geometry

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
]

Array = npt.NDArray[Any]
IntPair = int | tuple[int, int]


class _Setup(NamedTuple):
    ksize: tuple[int, int]
    strides: tuple[int, int]
    geometry: Geometry


class _Tap(NamedTuple):
    """Where kernel tap ``(p, q)`` meets the input: matching output and input blocks."""

    out: tuple[slice, slice]
    inp: tuple[slice, slice]


def _setup(op: str, input_shape: tuple[int, ...], ksize: Any, strides: Any, padding: Any) -> _Setup:
    kernel = as_pair(op, "ksize", ksize)
    steps = kernel if strides is None else as_pair(op, "strides", strides)
    resolved = normalize_padding(op, padding)
    geometry = window_geometry((input_shape[1], input_shape[2]), kernel, steps, (1, 1), resolved)
    _check_windows_hit_input(op, input_shape, kernel, padding, geometry)
    return _Setup(kernel, steps, geometry)


def _check_windows_hit_input(
    op: str,
    input_shape: tuple[int, ...],
    kernel: tuple[int, int],
    padding: Any,
    geometry: Geometry,
) -> None:
    """Refuse geometries with a window made only of padding (no max, no mean).

    Along one axis, window ``i`` covers padded rows ``[i*s, i*s + k)`` and the input
    occupies ``[before, before + n)``. With ``before < k`` the first window reaches row
    ``before``; with ``after < k`` the last window starts at ``(out-1)*s <= n + before +
    after - k < n + before``, so every window (an interval between them) meets the input when
    ``n >= 1``. An empty axis (``n == 0``) with ``out >= 1`` has only padding windows.

    ``SAME``/``SAME_LOWER`` always pass: ``out = ceil(n/s)`` gives ``(out-1)*s <= n-1``, so
    ``total = (out-1)*s + k - n <= k-1`` and both halves are below ``k``; and ``n == 0``
    gives ``out == 0``. ``VALID`` has no pads. Only explicit pads can fail.
    """
    for axis, name in ((0, "top/bottom"), (1, "left/right")):
        pads = geometry.pads[axis]
        out = geometry.out_hw[axis]
        size = input_shape[1 + axis]
        if max(pads) >= kernel[axis]:
            msg = (
                f"{op}: padding {padding!r} must be smaller than ksize {kernel} on each axis "
                f"(a window made only of padding has no max or mean), got {name} pads {pads} "
                f"for a kernel of {kernel[axis]}"
            )
            raise ValueError(msg)
        if size == 0 and out > 0:
            msg = (
                f"{op}: input shape {input_shape} has an empty spatial axis, so padding "
                f"{padding!r} with ksize {kernel} makes windows of padding only"
            )
            raise ValueError(msg)


def _axis_span(out: int, size: int, k_index: int, stride: int, before: int) -> tuple[slice, slice]:
    """Output positions ``i`` whose tap row ``i*s + k_index - before`` lies in ``[0, size)``.

    Returns the output slice and the matching (strided) input slice.
    """
    lo = max(0, -(-(before - k_index) // stride))
    hi = min(out, (size - 1 + before - k_index) // stride + 1)
    if hi <= lo:
        return slice(0, 0), slice(0, 0)
    first = lo * stride + k_index - before
    return slice(lo, hi), slice(first, first + (hi - lo - 1) * stride + 1, stride)


def _taps(input_shape: tuple[int, ...], setup: _Setup) -> list[_Tap]:
    """List the kernel taps in row-major order ``(p, q)``, each with its output/input blocks."""
    (top, _), (left, _) = setup.geometry.pads
    out_h, out_w = setup.geometry.out_hw
    taps: list[_Tap] = []
    for p in range(setup.ksize[0]):
        rows = _axis_span(out_h, input_shape[1], p, setup.strides[0], top)
        for q in range(setup.ksize[1]):
            cols = _axis_span(out_w, input_shape[2], q, setup.strides[1], left)
            taps.append(_Tap((rows[0], cols[0]), (rows[1], cols[1])))
    return taps


def _block(a: Array, where: tuple[slice, slice]) -> Array:
    """Return the ``(N, rows, cols, C)`` view of an NHWC array at the given spatial slices."""
    return a[:, where[0], where[1], :]


def _real_counts(input_shape: tuple[int, ...], setup: _Setup) -> Array:
    """``count[i, j]``: how many real (non-pad) elements window ``(i, j)`` holds, shape (OH, OW).

    The window is a rectangle, so the count is the product of the per-axis overlaps
    ``min(i*s - before + k, n) - max(i*s - before, 0)``.
    """
    per_axis: list[Array] = []
    for axis in range(2):
        start = np.arange(setup.geometry.out_hw[axis]) * setup.strides[axis]
        start -= setup.geometry.pads[axis][0]
        size = input_shape[1 + axis]
        per_axis.append(np.minimum(start + setup.ksize[axis], size) - np.maximum(start, 0))
    return np.multiply.outer(per_axis[0], per_axis[1])


def _divisors(
    input_shape: tuple[int, ...], setup: _Setup, count_include_pad: bool, dtype: np.dtype[Any]
) -> Array:
    """Return the ``(OH, OW, 1)`` divisor of each window in ``dtype`` (Python ints for object)."""
    if count_include_pad:
        counts = np.full(setup.geometry.out_hw, setup.ksize[0] * setup.ksize[1])
    else:
        counts = _real_counts(input_shape, setup)
    return counts.astype(dtype)[:, :, None]


def _check_dy(op: str, dy: Array, expected: tuple[int, ...], what: str) -> None:
    if dy.shape != expected:
        msg = f"{op}: dy must have shape {expected} (the forward output for {what}), got {dy.shape}"
        raise ValueError(msg)


def _check_bool(op: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        msg = f"{op}: {name} must be a bool, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    return bool(value)


def _isnan(a: Array) -> Array:
    """Elementwise NaN test; integer and ``object`` (Fraction) arrays hold no NaN."""
    if a.dtype.kind == "f":
        return np.isnan(a)
    return np.zeros(a.shape, dtype=bool)


def _window_corners(setup: _Setup) -> tuple[Array, Array]:
    """Input row of each window's first kernel row, and column of its first kernel column.

    Negative (or past the input) where the window starts in the padding.
    """
    (top, _), (left, _) = setup.geometry.pads
    out_h, out_w = setup.geometry.out_hw
    return (
        np.arange(out_h) * setup.strides[0] - top,
        np.arange(out_w) * setup.strides[1] - left,
    )


def _seed(x: Array, setup: _Setup) -> tuple[Array, Array]:
    """Each window's first real element (row-major) and its tap index ``p*KW + q``.

    A window meets the input, so clamping its corner into ``[0, H) x [0, W)`` lands on its
    first real row and column; seeding a running maximum with it needs no pad value (-inf or
    a dtype minimum), and every other real tap of the window has a larger index.
    """
    corner_rows, corner_cols = _window_corners(setup)
    rows = np.clip(corner_rows, 0, x.shape[1] - 1)
    cols = np.clip(corner_cols, 0, x.shape[2] - 1)
    seed_tap = (rows - corner_rows)[:, None] * setup.ksize[1] + (cols - corner_cols)[None, :]
    return x[:, rows[:, None], cols[None, :], :], seed_tap


def _max_pool(x: Array, setup: _Setup) -> Array:
    """Max over the real elements of each window, NaN-propagating; ``x`` keeps its dtype."""
    out_h, out_w = setup.geometry.out_hw
    if x.shape[0] * out_h * out_w * x.shape[3] == 0:
        return np.zeros((x.shape[0], out_h, out_w, x.shape[3]), dtype=x.dtype)
    y, _ = _seed(x, setup)
    for tap in _taps(x.shape, setup):
        block = _block(y, tap.out)
        # np.maximum propagates NaN from either side, so a window holding NaN gives NaN.
        np.maximum(block, _block(x, tap.inp), out=block)
    return y


def max_pool2d(
    x: npt.ArrayLike,
    ksize: IntPair,
    *,
    strides: IntPair | None = None,
    padding: PaddingLike = "VALID",
) -> Array:
    """2-D max pooling of NHWC data, each channel on its own.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
        Input batch: real floating, integer or ``object`` (``fractions.Fraction``) dtype.
    ksize : int or (int, int)
        Window size ``(KH, KW)``, each >= 1.
    strides : int or (int, int), optional
        Step between windows ``(SH, SW)``, each >= 1; default ``ksize`` (non-overlapping).
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        See :mod:`refcnn.padding`. Explicit pads must be smaller than ``ksize`` on their axis
        (else a window would hold only padding): ``ValueError``.

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C)
        Same dtype as ``x`` (integers stay integers). ``OH``/``OW`` may be 0 (VALID with a
        kernel larger than the input), as in TensorFlow.

    Notes
    -----
    Over the window's real elements only (padding acts as ``-inf``: it never wins)::

        y[n,i,j,c] = max_{p,q : 0 <= i*sh + p - top < H, 0 <= j*sw + q - left < W}
                     x[n, i*sh + p - top, j*sw + q - left, c]

    NaN propagates: a window holding a NaN pools to NaN (as PyTorch does; TensorFlow's CPU
    kernel skips NaN in the forward pass).
    """
    op = "max_pool2d"
    x_arr = as_array(op, "x", x, ndim=4, layout="(N, H, W, C)")
    setup = _setup(op, x_arr.shape, ksize, strides, padding)
    return _max_pool(x_arr, setup)


def max_pool2d_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    ksize: IntPair,
    *,
    strides: IntPair | None = None,
    padding: PaddingLike = "VALID",
) -> Array:
    """Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, C)
        Upstream gradient, the shape of the forward output; same dtype as ``x``.
    x : ndarray, shape (N, H, W, C)
        The forward input (the maxima are recomputed from it).
    ksize, strides, padding
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape (N, H, W, C)
        Same dtype as ``dy``.

    Notes
    -----
    Each window sends its whole gradient to exactly one element, its first maximum in
    row-major window order (``p``, then ``q``), padding excluded; windows that overlap add up::

        dx[n,h,w,c] = sum_{i,j : (h, w) = first argmax of window (n,i,j,c)} dy[n,i,j,c]

    Ties therefore go to the earliest element (PyTorch and TensorFlow agree). When the window
    max is NaN (see :func:`max_pool2d`) the gradient goes to the window's first NaN. (PyTorch
    2.13 picks the last NaN; TensorFlow 2.21's CPU forward skips NaN while its gradient scans
    with a strict ``>`` from the first element, so a leading NaN keeps the gradient.)
    """
    op = "max_pool2d_backward"
    dy_arr = as_array(op, "dy", dy, ndim=4, layout="(N, OH, OW, C)")
    x_arr = as_array(op, "x", x, ndim=4, layout="(N, H, W, C)")
    require_same_dtype(op, dy=dy_arr, x=x_arr)
    setup = _setup(op, x_arr.shape, ksize, strides, padding)
    _check_dy(
        op,
        dy_arr,
        (x_arr.shape[0], *setup.geometry.out_hw, x_arr.shape[3]),
        f"x shape {x_arr.shape}",
    )
    if dy_arr.size == 0:
        return np.zeros(x_arr.shape, dtype=dy_arr.dtype)
    acc = accumulation_dtype(dy_arr.dtype)
    g = dy_arr.astype(acc, copy=False)
    taps = _taps(x_arr.shape, setup)
    winner = _first_max_taps(x_arr, setup, taps)
    if g.dtype.kind == "f" and g.dtype.itemsize <= 8:
        # One scatter-add (np.bincount, summing in float64) of every window's gradient onto
        # its winner's flat index: one pass, where the tap loop below makes KH*KW passes over
        # dy-sized arrays. Integer, long double and object gradients stay on the exact loop.
        # Windows never span images, so batch chunks keep the float64 sums and the index
        # array near a cache-sized 2 MiB instead of several times the input.
        n = x_arr.shape[0]
        step = max(1, 2**18 // (x_arr.size // n))
        result = np.empty(x_arr.shape, dtype=dy_arr.dtype)
        for start in range(0, n, step):
            part = slice(start, min(start + step, n))
            flat = _flat_input_index(result[part].shape, setup, winner[part])
            sums = np.bincount(flat.ravel(), weights=g[part].ravel(), minlength=result[part].size)
            result[part] = cast_result(sums.reshape(result[part].shape), result.dtype)
        return result
    dx = np.zeros(x_arr.shape, dtype=acc)
    # Within one tap distinct outputs read distinct inputs, so `+=` on the slice is safe.
    for index, tap in enumerate(taps):
        chosen = _block(winner, tap.out) == index
        _block(dx, tap.inp)[...] += np.where(chosen, _block(g, tap.out), 0)
    return cast_result(dx, dy_arr.dtype)


def _flat_input_index(input_shape: tuple[int, ...], setup: _Setup, tap_index: Array) -> Array:
    """Return the flat NHWC index of the input element each window reads at ``tap_index``."""
    n, h, w, c = input_shape
    tap_offset = np.add.outer(np.arange(setup.ksize[0]) * (w * c), np.arange(setup.ksize[1]) * c)
    # The corner of a padded window is outside the input (a negative row or column), but
    # corner + offset of a real tap is inside it.
    corner_rows, corner_cols = _window_corners(setup)
    corner = (
        (corner_rows * (w * c))[:, None, None] + (corner_cols * c)[None, :, None] + np.arange(c)
    )
    flat: Array = tap_offset.ravel()[tap_index]
    flat += corner
    flat += (np.arange(n) * (h * w * c))[:, None, None, None]
    return flat


def _first_max_taps(x: Array, setup: _Setup, taps: list[_Tap]) -> Array:
    """Return, per window, the row-major index ``p*KW + q`` of its first maximum.

    A NaN counts as the maximum and the first NaN wins, as in :func:`max_pool2d_backward`.
    One pass over the taps keeps a running maximum and moves the winner only on a strict
    ``>``, so ties stay with the earlier tap.
    """
    best, seed_tap = _seed(x, setup)
    index_dtype = np.min_scalar_type(len(taps))
    winner = np.empty(best.shape, dtype=index_dtype)
    winner[...] = seed_tap.astype(index_dtype)[None, :, :, None]
    has_nan = bool(_isnan(x).any())
    for index, tap in enumerate(taps):
        values, best_block = _block(x, tap.inp), _block(best, tap.out)
        better = values > best_block
        if has_nan:
            better |= _isnan(values) & ~_isnan(best_block)
        np.maximum(best_block, values, out=best_block)
        # The winner so far is an earlier tap (index - won >= 0), so this unsigned update
        # moves it to `index` exactly where `better` holds; a select would branch per element.
        won = _block(winner, tap.out)
        won += (index - won) * better
    return winner


def avg_pool2d(
    x: npt.ArrayLike,
    ksize: IntPair,
    *,
    strides: IntPair | None = None,
    padding: PaddingLike = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """2-D average pooling of NHWC data, each channel on its own.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
        Input batch: real floating or ``object`` (``fractions.Fraction``) dtype. Integers
        are refused (``TypeError``): the mean of integers is not an integer, and a silent cast
        is not ours to choose.
    ksize : int or (int, int)
        Window size ``(KH, KW)``, each >= 1.
    strides : int or (int, int), optional
        Step between windows ``(SH, SW)``, each >= 1; default ``ksize``.
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        See :mod:`refcnn.padding`. Explicit pads must be smaller than ``ksize`` on their axis.
    count_include_pad : bool, default False
        Divisor of each window: False divides by the number of real (non-pad) elements it
        holds (TensorFlow and ONNX), True by the full ``KH * KW`` (PyTorch's default).
        Without padding both are the same.

    Returns
    -------
    y : ndarray, shape (N, OH, OW, C)
        Same dtype as ``x``; float16 is summed in float32 and rounded once.

    Notes
    -----
    With ``R(i,j) = {(p,q) : 0 <= i*sh + p - top < H, 0 <= j*sw + q - left < W}``::

        y[n,i,j,c] = sum_{(p,q) in R(i,j)} x[n, i*sh + p - top, j*sw + q - left, c] / count[i,j]

    where ``count[i,j] = |R(i,j)|`` (``count_include_pad=False``) or ``KH * KW`` (True).
    """
    op = "avg_pool2d"
    x_arr = as_array(op, "x", x, ndim=4, layout="(N, H, W, C)", allow_int=False)
    include = _check_bool(op, "count_include_pad", count_include_pad)
    setup = _setup(op, x_arr.shape, ksize, strides, padding)
    acc = accumulation_dtype(x_arr.dtype)
    total = np.zeros((x_arr.shape[0], *setup.geometry.out_hw, x_arr.shape[3]), dtype=acc)
    xa = x_arr.astype(acc, copy=False)
    for tap in _taps(x_arr.shape, setup):
        _block(total, tap.out)[...] += _block(xa, tap.inp)
    y = total / _divisors(x_arr.shape, setup, include, acc)
    return cast_result(y, x_arr.dtype)


def avg_pool2d_backward(
    dy: npt.ArrayLike,
    input_shape: tuple[int, int, int, int],
    ksize: IntPair,
    *,
    strides: IntPair | None = None,
    padding: PaddingLike = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, C)
        Upstream gradient, the shape of the forward output; real floating or ``object``.
    input_shape : (N, H, W, C)
        Shape of the forward input.
    ksize, strides, padding, count_include_pad
        As given to the forward call.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``.

    Notes
    -----
    Each window spreads ``dy / count`` evenly over its real elements (what a pad would have
    received is dropped); overlapping windows add up::

        dx[n,h,w,c] = sum_{i,j,p,q : i*sh + p - top = h, j*sw + q - left = w}
                      dy[n,i,j,c] / count[i,j]

    with ``count`` as in :func:`avg_pool2d`. This is the adjoint of the forward map:
    ``<avg_pool2d(x), dy> == <x, avg_pool2d_backward(dy)>``.
    """
    op = "avg_pool2d_backward"
    dy_arr = as_array(op, "dy", dy, ndim=4, layout="(N, OH, OW, C)", allow_int=False)
    shape = as_index_tuple(op, "input_shape", input_shape, length=4)
    include = _check_bool(op, "count_include_pad", count_include_pad)
    setup = _setup(op, shape, ksize, strides, padding)
    _check_dy(op, dy_arr, (shape[0], *setup.geometry.out_hw, shape[3]), f"input_shape {shape}")
    acc = accumulation_dtype(dy_arr.dtype)
    dx = np.zeros(shape, dtype=acc)
    share = dy_arr.astype(acc, copy=False) / _divisors(shape, setup, include, acc)
    # Within one tap distinct outputs feed distinct inputs, so `+=` on the slice is safe;
    # overlapping windows reach the same input through different taps and add up.
    for tap in _taps(shape, setup):
        _block(dx, tap.inp)[...] += _block(share, tap.out)
    return cast_result(dx, dy_arr.dtype)
