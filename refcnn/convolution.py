"""Convolution (cross-correlation) over 1, 2 or 3 spatial axes, its gradients and its transpose.

Conventions
-----------
- Data is channels-last by default: ``(N, W, C)``, ``(N, H, W, C)``, ``(N, D, H, W, C)``
  (TensorFlow's ``NWC``/``NHWC``/``NDHWC``). ``data_format="NCW"``/``"NCHW"``/``"NCDHW"``
  takes and returns channels-first arrays instead; the arithmetic is the same.
- Filters are always ``(*K, C/groups, O)`` (TensorFlow's ``WIO``/``HWIO``/``DHWIO``),
  whatever the data format.
- ``groups``: ``C`` and ``O`` are divisible by it; output channel ``o`` is in group
  ``g = o // (O/groups)`` and reads input channels ``[g*C/groups, (g+1)*C/groups)``.
  Depthwise with multiplier ``m`` is ``groups = C``, ``O = m*C``: output channel ``c*m + j``
  (``tf.nn.depthwise_conv2d``'s order).
- The op is cross-correlation (no kernel flip, as in every framework); pads and output
  sizes come from :mod:`refcnn.padding` (TensorFlow ``SAME`` puts the odd pixel after,
  ``SAME_LOWER`` before).

With multi-indices ``i`` (output position), ``p`` (kernel tap) over the spatial axes,
``before`` the leading pads and ``Cg = C/groups``, ``Og = O/groups``::

    y[n,i,o] = b[o] + sum_{p,c} x[n, i*s + p*d - before, (o // Og)*Cg + c] * w[p,c,o]

where an index outside the input reads zero (the padding), ``*`` and ``+`` act per axis.

How it is computed
------------------
This module holds the readable routes: im2col (each window flattened into a row of a
matrix, read through a strided view of the padded input, then one GEMM per group) for the
forward pass and the filter gradient, and the textbook input gradient (insert ``s - 1``
zeros between the entries of ``dy``, correlate with the kernel rotated 180 degrees). The
faster arrangements of the same sums (a loop over kernel taps, depthwise multiply-adds, the
textbook route split by stride phase, col2im, batch chunking) are in
:mod:`refcnn._conv_routes`, chosen by shape; the tests check every route against the loop
oracle and against each other, exactly. Every route first drops the outputs and taps that
read only padding (:func:`refcnn.padding.live_span`), so huge pads and dilations cost
nothing, and sizes are checked before anything is allocated.

float16 inputs are accumulated in float32 and rounded once at the end; ``object`` arrays of
``fractions.Fraction`` are computed exactly. Integer arrays stay integer and are exact while
the sums fit the dtype; past that they wrap around as NumPy's integer arithmetic does, so use
float64 or ``object`` for large values.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from refcnn import _conv_routes as routes
from refcnn._checks import (
    accumulation_dtype,
    as_array,
    as_index_tuple,
    as_int,
    as_tuple,
    cast_result,
    check_addressable,
    check_int64_range,
    check_upstream_shape,
    describe,
    ieee_arithmetic,
    is_channels_first,
    require_same_dtype,
)
from refcnn._conv_routes import Problem, spatial
from refcnn.padding import (
    PaddingLike,
    adjoint_geometry,
    normalize_padding,
    transpose_geometry,
    windows,
)

__all__ = [
    "Conv2DGradients",
    "ConvGradients",
    "conv",
    "conv1d",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_bias",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "conv3d",
    "conv_backward",
    "conv_backward_bias",
    "conv_backward_filter",
    "conv_backward_input",
    "conv_transpose",
]

Array = npt.NDArray[Any]
IntOrTuple = int | Sequence[int]
InputGradientMethod = Literal["auto", "col2im", "polyphase", "rot180"]


class ConvGradients(NamedTuple):
    """Gradients of a convolution with respect to its input, filter and bias."""

    dx: Array
    dw: Array
    db: Array


#: The 2-D name of :class:`ConvGradients` (the same class).
Conv2DGradients = ConvGradients

_ALL_RANKS = (1, 2, 3)
_SPATIAL = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}


# --- arguments ---------------------------------------------------------------------------------


@functools.cache
def _layout(rank: int, channels_first: bool) -> str:
    axes = list(_SPATIAL[rank])
    order = ["N", "C", *axes] if channels_first else ["N", *axes, "C"]
    return "(" + ", ".join(order) + ")"


@functools.cache
def _filter_layout(rank: int, groups: int = 1, channels: str = "", out: str = "O") -> str:
    channels = channels or ("C" if groups == 1 else "C/groups")
    return "(" + ", ".join([*("K" + a for a in _SPATIAL[rank]), channels, out]) + ")"


def _data(op: str, name: str, value: Any, ranks: tuple[int, ...], data_format: Any) -> Array:
    """``value`` as an array with 1, 2 or 3 spatial axes (those in ``ranks``)."""
    array = as_array(op, name, value)
    if array.ndim - 2 not in ranks:
        channels_first = isinstance(data_format, str) and data_format.startswith("NC")
        if len(ranks) == 1:
            expected = f"{ranks[0] + 2}-D {_layout(ranks[0], channels_first)}"
        else:
            layout = "(N, C, *spatial)" if channels_first else "(N, *spatial, C)"
            expected = f"3-D, 4-D or 5-D {layout} for 1, 2 or 3 spatial axes"
        msg = f"{op}: {name} must be {expected}, got shape {array.shape}"
        raise ValueError(msg)
    return array


def _filter(op: str, w: Any, rank: int, groups: Any, ranked_by: str) -> Array:
    """``w`` as a filter array with ``rank`` kernel axes (the rank ``ranked_by`` gives)."""
    grouped = not (isinstance(groups, int) and groups == 1)  # never the truth of an array
    layout = _filter_layout(rank, 2 if grouped else 1)
    return as_array(op, "w", w, ndim=rank + 2, layout=layout, ranked_by=ranked_by)


def _channels_last(a: Array, channels_first: bool) -> Array:
    return np.moveaxis(a, 1, -1) if channels_first else a


def _channels_last_shape(shape: tuple[int, ...], channels_first: bool) -> tuple[int, ...]:
    return (shape[0], *shape[2:], shape[1]) if channels_first else shape


def _restore(a: Array, channels_first: bool) -> Array:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1)) if channels_first else a


class _Setup(NamedTuple):
    problem: Problem
    groups: int


class _Described(NamedTuple):
    """An argument's shape as messages show it (formatted only when one is raised).

    ``name`` is the argument: an array (``x``: "x shape (2, 5, 5, 3), (N, H, W, C)") or a
    shape argument (``input_shape``: "input_shape (2, 5, 5, 3), (N, H, W, C)").
    """

    name: str
    shape: tuple[int, ...]
    channels_first: bool

    def __str__(self) -> str:
        label = self.name if self.name.endswith("_shape") else f"{self.name} shape"
        return f"{label} {self.shape}, {_layout(len(self.shape) - 2, self.channels_first)}"


def _check_filter(
    op: str,
    channels: int,
    w_shape: tuple[int, ...],
    groups: int,
    where: object,
    filter_name: str = "w",
) -> None:
    """Check kernel sizes >= 1 and the channel counts of ``groups`` groups.

    ``where`` renders the input's shape for messages (see the module docstring for the
    group rule); ``filter_name`` is the argument ``w_shape`` comes from (``w`` or
    ``filter_shape``).
    """
    rank = len(w_shape) - 2
    kernel, (cg, o) = w_shape[:rank], w_shape[rank:]
    if min(kernel) >= 1 and channels % groups == 0 and o % groups == 0 and cg * groups == channels:
        return
    label = filter_name if filter_name.endswith("_shape") else f"{filter_name} shape"
    filter_text = f"{label} {w_shape}, {_filter_layout(rank, min(groups, 2))}"
    shown = describe(groups)
    if min(kernel) < 1:
        msg = f"{op}: filter spatial size must be >= 1, got {filter_text}"
        raise ValueError(msg)
    if channels % groups:
        msg = f"{op}: groups={shown} must divide the input channels C={channels} ({where})"
        raise ValueError(msg)
    if o % groups:
        msg = f"{op}: groups={shown} must divide the filter's output channels O={o} ({filter_text})"
        raise ValueError(msg)
    per_group = "" if groups == 1 else f" in groups={shown} ({channels // groups} per group)"
    msg = (
        f"{op}: input channels C={channels} ({where}){per_group} must match the filter's "
        f"in-channels {cg} ({filter_text})"
    )
    raise ValueError(msg)


@functools.lru_cache(maxsize=256)
def _problem(
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    padding: str | tuple[tuple[int, int], ...],
) -> Problem:
    """Geometry of a conv from :func:`refcnn.padding.windows` (cached: pure integer work)."""
    resolved = windows(sizes, kernel, strides, dilations, padding)
    befores = tuple(before for before, _ in resolved.pads)
    return Problem(sizes, resolved.out, kernel, strides, dilations, befores)


def _setup(
    op: str,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    *,
    strides: Any,
    padding: Any,
    dilations: Any,
    groups: Any,
    where: object,
    filter_name: str = "w",
) -> _Setup:
    """Check the arguments of a convolution of a channels-last ``x_shape`` with ``w_shape``.

    ``where`` renders ``x_shape`` in the caller's data format for messages; ``filter_name``
    is the argument ``w_shape`` comes from.
    """
    rank = len(x_shape) - 2
    group_count = as_int(op, "groups", groups, minimum=1)
    stride_tuple = as_tuple(op, "strides", strides, rank=rank)
    dilation_tuple = as_tuple(op, "dilations", dilations, rank=rank)
    resolved = normalize_padding(op, padding, rank)
    _check_filter(op, x_shape[-1], w_shape, group_count, where, filter_name)
    problem = _problem(
        tuple(x_shape[1:-1]), tuple(w_shape[:rank]), stride_tuple, dilation_tuple, resolved
    )
    # As in pooling: a window's coordinates past int64 (a pad of 2**63) are a mistake.
    reach_names = f"the kernel size of {filter_name}, strides, dilations and padding"
    check_int64_range(op, reach_names, _reach(problem))
    return _Setup(problem, group_count)


@functools.lru_cache(maxsize=256)
def _reach(problem: Problem) -> int:
    """Return the largest coordinate magnitude a window reads (the pad before, the last tap)."""
    return max(
        max(abs(b), abs((o - 1) * s + (k - 1) * d - b))
        for o, k, s, d, b in zip(
            problem.out,
            problem.kernel,
            problem.strides,
            problem.dilations,
            problem.before,
            strict=True,
        )
    )


def _check_bias(
    op: str, b: Any, like: Array, channels: int, counted: str = "w.shape[-1]"
) -> Array | None:
    """``b`` as one bias per output channel; ``counted`` says where ``channels`` comes from."""
    if b is None:
        return None
    b_arr = as_array(op, "b", b, ndim=1, layout="(O,)")
    require_same_dtype(op, x=like, b=b_arr)
    if b_arr.shape[0] != channels:
        msg = (
            f"{op}: b must have shape ({describe(channels)},) (one per output channel: {counted}), "
            f"got {b_arr.shape}"
        )
        raise ValueError(msg)
    return b_arr


def _user_shape(shape: tuple[int, ...], channels_first: bool) -> tuple[int, ...]:
    """Render a channels-last shape in the caller's data format (for messages)."""
    return (shape[0], shape[-1], *shape[1:-1]) if channels_first else shape


# --- forward ---------------------------------------------------------------------------------


def _forward(
    op: str,
    ranks: tuple[int, ...],
    x: Any,
    w: Any,
    b: Any,
    *,
    strides: Any,
    padding: Any,
    dilations: Any,
    groups: Any,
    data_format: Any,
) -> Array:
    x_arr = _data(op, "x", x, ranks, data_format)
    rank = x_arr.ndim - 2
    channels_first = is_channels_first(op, data_format, rank)
    w_arr = _filter(op, w, rank, groups, "x")
    require_same_dtype(op, x=x_arr, w=w_arr)
    b_arr = _check_bias(op, b, x_arr, w_arr.shape[-1])
    x_shape = _channels_last_shape(x_arr.shape, channels_first)
    setup = _setup(
        op,
        x_shape,
        w_arr.shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        where=_Described("x", x_arr.shape, channels_first),
    )
    y_shape = (x_shape[0], *setup.problem.out, w_arr.shape[-1])
    check_addressable(op, "padding", y_shape, x_arr.itemsize)
    acc = accumulation_dtype(x_arr.dtype)
    with ieee_arithmetic():  # inf * 0 is NaN, sums past the range are inf, as in dense
        y = _correlate(
            _channels_last(x_arr, channels_first).astype(acc, copy=False),
            w_arr.astype(acc, copy=False),
            setup.problem,
            setup.groups,
        )
        if b_arr is not None:
            y += b_arr.astype(acc, copy=False)
    return cast_result(_restore(y, channels_first), x_arr.dtype)


def conv(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """Convolution (cross-correlation) over 1, 2 or 3 spatial axes, plus a per-filter bias.

    Parameters
    ----------
    x : ndarray, shape (N, *S, C) or, channels-first, (N, C, *S)
        Input batch with ``r = x.ndim - 2`` spatial axes ``S`` (``r`` in 1, 2, 3).
    w : ndarray, shape (*K, C/groups, O)
        Filters (``r`` kernel axes), whatever the data format; same dtype as ``x``.
    b : ndarray, shape (O,), optional
        One bias per output channel.
    strides, dilations : int or sequence of r ints
        Step between windows and between kernel taps, per spatial axis (>= 1).
    padding : {"VALID", "SAME", "SAME_LOWER"} or r (before, after) pairs
        See :mod:`refcnn.padding`.
    groups : int
        Number of channel groups; divides ``C`` and ``O`` (see the module docstring).
    data_format : {None, "NWC", "NHWC", "NDHWC", "NCW", "NCHW", "NCDHW"}
        ``None`` (channels-last) or TensorFlow's string for the rank.

    Returns
    -------
    y : ndarray, shape (N, *OS, O) or, channels-first, (N, O, *OS)
        Same dtype and layout as ``x``. An output size may be 0 (VALID with a kernel larger
        than the input).

    Notes
    -----
    With multi-indices ``i`` (output) and ``p`` (tap), ``Cg = C/groups``, ``Og = O/groups``
    and indices outside the input reading zero::

        y[n,i,o] = b[o] + sum_{p,c} x[n, i*s + p*d - before, (o // Og)*Cg + c] * w[p,c,o]
    """
    return _forward(
        "conv",
        _ALL_RANKS,
        x,
        w,
        b,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
    )


def conv1d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """1-D convolution: :func:`conv` with one spatial axis.

    Parameters
    ----------
    x : ndarray, shape (N, W, C) or, with data_format="NCW", (N, C, W)
    w : ndarray, shape (KW, C/groups, O)
    b : ndarray, shape (O,), optional
    strides, padding, dilations, groups, data_format
        As in :func:`conv`; padding's explicit form is ``((left, right),)``.

    Returns
    -------
    y : ndarray, shape (N, OW, O) or (N, O, OW)

    Notes
    -----
    ``y[n,i,o] = b[o] + sum_{p,c} x[n, i*s + p*d - left, (o // Og)*Cg + c] * w[p,c,o]``.
    """
    return _forward(
        "conv1d",
        (1,),
        x,
        w,
        b,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
    )


def conv2d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """2-D cross-correlation of NHWC data with HWIO filters, plus a per-filter bias.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C) or, with data_format="NCHW", (N, C, H, W)
        Input batch.
    w : ndarray, shape (KH, KW, C/groups, O)
        Filters; same dtype as ``x``.
    b : ndarray, shape (O,), optional
        One bias per filter (output channel), as in TensorFlow and PyTorch.
    strides, dilations : int or (int, int)
        Step between windows and between kernel taps, per spatial axis (>= 1).
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        See :mod:`refcnn.padding`.
    groups, data_format
        As in :func:`conv`.

    Returns
    -------
    y : ndarray, shape (N, OH, OW, O) or (N, O, OH, OW)
        Same dtype as ``x``. ``OH``/``OW`` may be 0 (VALID with a kernel larger than the input).

    Notes
    -----
    With ``Cg = C/groups``, ``Og = O/groups`` and out-of-range indices reading zero::

        y[n,i,j,o] = b[o] + sum_{p,q,c} x[n, i*sh + p*dh - top, j*sw + q*dw - left,
                                          (o // Og)*Cg + c] * w[p,q,c,o]
    """
    return _forward(
        "conv2d",
        (2,),
        x,
        w,
        b,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
    )


def conv3d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """3-D convolution: :func:`conv` with three spatial axes.

    Parameters
    ----------
    x : ndarray, shape (N, D, H, W, C) or, with data_format="NCDHW", (N, C, D, H, W)
    w : ndarray, shape (KD, KH, KW, C/groups, O)
    b : ndarray, shape (O,), optional
    strides, padding, dilations, groups, data_format
        As in :func:`conv`.

    Returns
    -------
    y : ndarray, shape (N, OD, OH, OW, O) or (N, O, OD, OH, OW)

    Notes
    -----
    ``y[n,i,j,k,o] = b[o] + sum_{p,q,r,c} x[n, i*sd + p*dd - front, j*sh + q*dh - top,
    k*sw + r*dw - left, (o // Og)*Cg + c] * w[p,q,r,c,o]``.
    """
    return _forward(
        "conv3d",
        (3,),
        x,
        w,
        b,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
    )


# --- the readable routes -----------------------------------------------------------------------


def _pad_or_crop(x: Array, pads: tuple[tuple[int, int], ...]) -> Array:
    """Zero-pad the spatial axes of a channels-last array; a negative pad crops instead.

    Axis ``a`` of the result is the window ``[-before, n + after)`` of ``x`` extended by zeros,
    so a crop larger than the array still gives the right (all-zero) length. A pure crop is
    a view.
    """
    plan = _pad_plan(x.shape[1:-1], pads)
    if plan is None:
        return x
    shape, keep, place = plan
    if place is None:
        return x[spatial(keep)]
    padded = np.zeros((x.shape[0], *shape, x.shape[-1]), dtype=x.dtype)
    if all(part.start < part.stop for part in keep):
        padded[spatial(place)] = x[spatial(keep)]
    return padded


@functools.lru_cache(maxsize=256)
def _pad_plan(
    sizes: tuple[int, ...], pads: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...] | None] | None:
    """Plan :func:`_pad_or_crop`: ``(padded sizes, kept input block, its place)`` (cached).

    ``None`` when nothing changes; ``place`` is ``None`` for a pure crop (a view).
    """
    if all(before == 0 and after == 0 for before, after in pads):
        return None
    keep = tuple(
        slice(max(-before, 0), min(n, n + after))
        for n, (before, after) in zip(sizes, pads, strict=True)
    )
    shape = tuple(
        max(n + before + after, 0) for n, (before, after) in zip(sizes, pads, strict=True)
    )
    if all(before <= 0 and after <= 0 for before, after in pads):
        return shape, keep, None
    place = tuple(
        slice(part.start + before, part.stop + before)
        for part, (before, _) in zip(keep, pads, strict=True)
    )
    return shape, keep, place


def _windows(xp: Array, problem: Problem) -> Array:
    """Read-only view ``(N, *OS, *K, C)`` of the windows of a padded channels-last array.

    ``view[n, i, p, c] = xp[n, i*s + p*d, c]``: the im2col matrix before it is flattened.
    """
    sn, *axis_strides, sc = xp.strides
    shape = (xp.shape[0], *problem.out, *problem.kernel, xp.shape[-1])
    view_strides = (
        sn,
        *_steps(axis_strides, problem.strides, problem.out),
        *_steps(axis_strides, problem.dilations, problem.kernel),
        sc,
    )
    if xp.flags.c_contiguous and xp.dtype != object:
        # The same view without as_strided's array-interface round trip (10 us, a visible
        # part of a small conv).
        view: Array = np.ndarray(shape, dtype=xp.dtype, buffer=xp, strides=view_strides)
        view.flags.writeable = False
        return view
    return as_strided(xp, shape=shape, strides=view_strides, writeable=False)


def _steps(
    axis_strides: Sequence[int], steps: tuple[int, ...], counts: tuple[int, ...]
) -> tuple[int, ...]:
    """Byte strides of a window view's axes: ``axis stride * step``, 0 for an axis of one.

    One output (or one tap) never moves, so its step does not matter, and a huge stride or
    dilation with a single window would not fit the view's byte strides (int64).
    """
    return tuple(
        st * step if count > 1 else 0
        for st, step, count in zip(axis_strides, steps, counts, strict=True)
    )


def _im2col_chunks(x: Array, problem: Problem) -> tuple[Array, list[tuple[slice, slice]]]:
    """Return the padded windows of ``x`` and the blocks its column matrix is built in."""
    view = _windows(_pad_or_crop(x, routes.crop_pads(problem)), problem)
    per_image = math.prod(problem.out) * math.prod(problem.kernel) * x.shape[-1] * x.itemsize
    return view, routes.row_chunks(x.shape[0], problem.out[0], per_image)


def _gemm(a: Array, b: Array, out: Array) -> None:
    """``out[...] = a @ b``, straight into ``out`` (no temporary, no second copy)."""
    if out.dtype == object:  # matmul has no out= loop for object arrays
        out[...] = a @ b
    else:
        np.matmul(a, b, out=out)


def _correlate_im2col(x: Array, w: Array, problem: Problem, groups: int) -> Array:
    """``y = columns @ w``: each window is a row of the im2col matrix, one GEMM per group.

    ``columns[(n,i), (p,c)] = xp[n, i*s + p*d, g*Cg + c]`` for group ``g``, so
    ``y[n,i,g*Og + o] = sum_{p,c} columns[(n,i), (p,c)] * w[p,c,g*Og + o]``.
    """
    n, o = x.shape[0], w.shape[-1]
    view, chunks = _im2col_chunks(x, problem)
    y = np.empty((n, *problem.out, o), dtype=x.dtype)
    if groups == 1:
        w_flat = w.reshape(-1, o)
        for chunk in chunks:
            cols = view[chunk].reshape(-1, w_flat.shape[0])  # the im2col matrix: a copy
            _gemm(cols, w_flat, y[chunk].reshape(-1, o))
        return y
    w_groups = routes.group_filter(w, groups)  # (G, prod(K)*Cg, Og)
    for chunk in chunks:
        cols = routes.columns(view[chunk], groups)  # (G, rows, prod(K)*Cg), a copy
        _gemm(cols, w_groups, y[chunk].reshape(-1, groups, o // groups).transpose(1, 0, 2))
    return y


def _filter_gradient_im2col(dy: Array, x: Array, problem: Problem, groups: int) -> Array:
    """``dw = columns^T @ dy`` per group (the im2col matrix of the forward pass)."""
    o = dy.shape[-1]
    view, chunks = _im2col_chunks(x, problem)
    if groups == 1:
        rows = math.prod(problem.kernel) * x.shape[-1]
        flat = np.zeros((rows, o), dtype=dy.dtype)
        for chunk in chunks:
            flat += view[chunk].reshape(-1, rows).T @ dy[chunk].reshape(-1, o)
        return flat.reshape(*problem.kernel, x.shape[-1], o)
    cg = x.shape[-1] // groups
    total = np.zeros((groups, math.prod(problem.kernel) * cg, o // groups), dtype=dy.dtype)
    for chunk in chunks:
        cols = routes.columns(view[chunk], groups)
        dy_groups = dy[chunk].reshape(-1, groups, o // groups).transpose(1, 0, 2)
        total += cols.transpose(0, 2, 1) @ dy_groups
    return routes.ungroup_filter(total, problem.kernel, groups)


class _DepthwiseView(NamedTuple):
    """Windows of the padded input for the depthwise einsums, with their subscripts."""

    view: Array
    merged: bool  # the last output axis and the channel axis are one axis k = j*C + c
    windows: str  # subscripts of ``view``
    filters: str  # of the filter, (*K, C, m) or, merged, (*K, OW*C, m)
    outputs: str  # of y or dy, (N, *OS, C, m) or, merged, (N, *OS[:-1], OW*C, m)


def _depthwise_windows(x: Array, problem: Problem) -> _DepthwiseView:
    """``view[n, i, p, c] = xp[n, i*s + p*d, c]`` for the depthwise einsums.

    When the last spatial axis has stride 1 and its elements and channels are contiguous
    (channels-last), its output index ``j`` and the channel ``c`` merge into one axis
    ``k = j*C + c`` (tap ``q`` is an offset of ``q*d*C`` elements within a row): the einsum's
    inner loop then runs over ``OW*C`` elements instead of ``C`` (3x faster in float32 on
    the benchmark shape).
    """
    xp = _pad_or_crop(x, routes.crop_pads(problem))
    rank = len(problem.kernel)
    taps = "pqr"[:rank]
    merged = problem.strides[-1] == 1 and xp.strides[-2] == xp.shape[-1] * xp.strides[-1]
    if not merged:
        out = "ijk"[:rank]
        view = _windows(xp, problem)
        return _DepthwiseView(view, False, f"n{out}{taps}c", f"{taps}cm", f"n{out}cm")
    out = "ij"[: rank - 1]
    sn, *axis_strides, sc = xp.strides
    shape = (xp.shape[0], *problem.out[:-1], *problem.kernel, problem.out[-1] * xp.shape[-1])
    view_strides = (
        sn,
        *_steps(axis_strides[:-1], problem.strides[:-1], problem.out[:-1]),
        *_steps(axis_strides, problem.dilations, problem.kernel),
        sc,
    )
    view = as_strided(xp, shape=shape, strides=view_strides, writeable=False)
    return _DepthwiseView(view, True, f"n{out}{taps}k", f"{taps}km", f"n{out}km")


def _correlate_depthwise(x: Array, w: Array, problem: Problem, groups: int) -> Array:
    """Depthwise (``groups == C``): ``y[n,i,c*m + j] = sum_p windows[n,i,p,c] * w[p,0,c*m + j]``.

    One ``einsum`` over the window view: no column matrix (its GEMM would be one
    matrix-vector product per channel, which BLAS does badly) and no temporaries.
    """
    n, c, o = x.shape[0], x.shape[-1], w.shape[-1]
    plan = _depthwise_windows(x, problem)
    filters = w.reshape(*problem.kernel, c, o // c)
    if plan.merged:  # the filter repeated along the merged (output column, channel) axis
        ow = problem.out[-1]
        tiled = np.broadcast_to(filters[..., None, :, :], (*problem.kernel, ow, c, o // c))
        filters = tiled.reshape(*problem.kernel, ow * c, o // c)
    y: Array = np.einsum(f"{plan.windows},{plan.filters}->{plan.outputs}", plan.view, filters)
    return y.reshape(n, *problem.out, o)


def _filter_gradient_depthwise(dy: Array, x: Array, problem: Problem, groups: int) -> Array:
    """Depthwise: ``dw[p,0,c*m + j] = sum_{n,i} windows[n,i,p,c] * dy[n,i,c*m + j]``."""
    n, c, o = x.shape[0], x.shape[-1], dy.shape[-1]
    plan = _depthwise_windows(x, problem)
    if plan.merged:
        ow = problem.out[-1]
        grads = dy.reshape(n, *problem.out[:-1], ow * c, o // c)
    else:
        grads = dy.reshape(n, *problem.out, c, o // c)
    dw: Array = np.einsum(f"{plan.windows},{plan.outputs}->{plan.filters}", plan.view, grads)
    if plan.merged:  # the merged axis still holds one partial sum per output column
        dw = dw.reshape(*problem.kernel, problem.out[-1], c, o // c).sum(axis=len(problem.kernel))
    return dw.reshape(*problem.kernel, 1, o)


def _input_gradient_rot180(op: str, dy: Array, w: Array, problem: Problem, groups: int) -> Array:
    """Input gradient by the textbook rule: zero-insert, pad, correlate with rot180(w).

    ``dx[r] = sum_{i,p : i*s + p*d - before = r} dy[i] w[p]``. With ``dyz`` the zero-inserted
    ``dy`` (``dyz[i*s] = dy[i]``) and ``q = K-1-p`` this is a stride-1 correlation of ``dyz``
    with the rotated kernel, its channels swapped within each group, leading pad
    ``(K-1)*d - before`` (:func:`refcnn.padding.adjoint_geometry`), one output per input
    index. ``1 - 1/prod(s)`` of its multiplications hit an inserted zero.
    """
    n, o, rank = dy.shape[0], dy.shape[-1], len(problem.kernel)
    geometry = [
        adjoint_geometry(out, k, s, d, b)
        for out, k, s, d, b in zip(
            problem.out,
            problem.kernel,
            problem.strides,
            problem.dilations,
            problem.before,
            strict=True,
        )
    ]
    lengths = tuple(length for length, _ in geometry)
    check_addressable(
        op,
        "strides (method='rot180' inserts stride - 1 zeros between the entries of dy)",
        (n, *lengths, o),
        dy.itemsize,
    )
    dyz = np.zeros((n, *lengths, o), dtype=dy.dtype)
    dyz[spatial(slice(None, None, s) for s in problem.strides)] = dy
    w_rot = routes.swap_filter_channels(w[(slice(None, None, -1),) * rank], groups)
    flipped = Problem(
        lengths,
        problem.sizes,
        problem.kernel,
        (1,) * rank,
        problem.dilations,
        tuple(before for _, before in geometry),
    )
    return _correlate(dyz, w_rot, flipped, groups)


# --- dispatch ------------------------------------------------------------------------------------


def _correlate(x: Array, w: Array, problem: Problem, groups: int, *, method: str = "auto") -> Array:
    """Forward core: ``y[n,i,o] = sum_{p,c} x[n, i*s + p*d - before, g(o)*Cg + c] * w[p,c,o]``.

    ``x`` is channels-last and unpadded; ``method`` is ``"auto"``, ``"im2col"``, ``"taps"``,
    ``"depthwise"`` or ``"depthwise-taps"`` (the last two only for ``groups == C``).
    """
    n, c, o = x.shape[0], x.shape[-1], w.shape[-1]
    shape = (n, *problem.out, o)
    live = routes.restrict(problem)
    if live is None or 0 in (n, c, o):
        return np.zeros(shape, dtype=x.dtype)
    if method == "auto":
        method = routes.forward_method(live.problem, c, groups, x.itemsize)
    route = _FORWARD_ROUTES[method]
    return routes.embed(route(x, w[live.taps], live.problem, groups), shape, live.outputs)


def _filter_gradient(
    dy: Array, x: Array, problem: Problem, groups: int, *, method: str = "auto"
) -> Array:
    """``dw[p,c,o] = sum_{n,i} x[n, i*s + p*d - before, g(o)*Cg + c] * dy[n,i,o]``."""
    c, o = x.shape[-1], dy.shape[-1]
    dw = np.zeros((*problem.kernel, c // groups, o), dtype=dy.dtype)
    live = routes.restrict(problem)
    if live is None or 0 in (x.shape[0], c, o):
        return dw
    if method == "auto":
        method = routes.forward_method(live.problem, c, groups, x.itemsize)
    route = _FILTER_ROUTES[method]
    part = route(dy[spatial(live.outputs)], x, live.problem, groups)
    if part.shape == dw.shape:
        return part
    dw[live.taps] = part
    return dw


_Route = Callable[[Array, Array, Problem, int], Array]
_FORWARD_ROUTES: dict[str, _Route] = {
    "im2col": _correlate_im2col,
    "taps": routes.correlate_taps,
    "depthwise": _correlate_depthwise,
    "depthwise-taps": routes.correlate_depthwise,
}
_FILTER_ROUTES: dict[str, _Route] = {
    "im2col": _filter_gradient_im2col,
    "taps": routes.filter_gradient_taps,
    "depthwise": _filter_gradient_depthwise,
    "depthwise-taps": routes.filter_gradient_depthwise,
}


def _input_gradient(
    op: str, dy: Array, w: Array, problem: Problem, groups: int, method: str
) -> Array:
    """``dx[n,r,c] = sum_{i,p,o : i*s + p*d - before = r} dy[n,i,o] * w[p, c - g(o)*Cg, o]``."""
    n, o = dy.shape[0], dy.shape[-1]
    c = groups * w.shape[-2]
    live = routes.restrict(problem)
    if live is None or 0 in (n, c, o):
        return np.zeros((n, *problem.sizes, c), dtype=dy.dtype)
    dy_live, w_live = dy[spatial(live.outputs)], w[live.taps]
    if method == "auto":
        method = routes.input_gradient_method(live.problem, c, o, groups, dy.itemsize)
    if method == "rot180":
        return _input_gradient_rot180(op, dy_live, w_live, live.problem, groups)
    if method == "polyphase":
        return routes.input_gradient_polyphase(dy_live, w_live, live.problem, groups, _correlate)
    return routes.input_gradient_col2im(dy_live, w_live, live.problem, groups)


# --- gradients ----------------------------------------------------------------------------------

_METHODS = ("auto", "col2im", "polyphase", "rot180")


def _check_method(op: str, method: Any) -> None:
    # Only a str is compared (an array would compare elementwise), and nothing is hashed.
    if not isinstance(method, str) or method not in _METHODS:
        expected = "'auto', 'col2im', 'polyphase' or 'rot180'"
        msg = f"{op}: method must be {expected}, got {describe(method)}"
        raise ValueError(msg)


def _backward_input(
    op: str,
    ranks: tuple[int, ...],
    dy: Any,
    w: Any,
    input_shape: Any,
    *,
    strides: Any,
    padding: Any,
    dilations: Any,
    groups: Any,
    data_format: Any,
    method: Any,
    x_name: str = "input_shape",
) -> Array:
    """Validate and compute the input gradient; ``x_name`` is where ``input_shape`` comes from.

    (``x`` when :func:`conv_backward` passes ``x.shape``: messages name its own arguments.)
    """
    _check_method(op, method)
    dy_arr = _data(op, "dy", dy, ranks, data_format)
    rank = dy_arr.ndim - 2
    channels_first = is_channels_first(op, data_format, rank)
    w_arr = _filter(op, w, rank, groups, "dy")
    require_same_dtype(op, dy=dy_arr, w=w_arr)
    shape = as_index_tuple(op, "input_shape", input_shape, length=rank + 2)
    x_shape = _channels_last_shape(shape, channels_first)
    where = _Described(x_name, shape, channels_first)
    setup = _setup(
        op,
        x_shape,
        w_arr.shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        where=where,
    )
    expected = _user_shape((x_shape[0], *setup.problem.out, w_arr.shape[-1]), channels_first)
    if dy_arr.shape != expected:
        what = f"the forward output for {where} and w shape {w_arr.shape}"
        check_upstream_shape(op, dy_arr, expected, what)
    check_addressable(op, x_name, shape, dy_arr.itemsize)
    acc = accumulation_dtype(dy_arr.dtype)
    with ieee_arithmetic():  # as in the forward pass
        dx = _input_gradient(
            op,
            _channels_last(dy_arr, channels_first).astype(acc, copy=False),
            w_arr.astype(acc, copy=False),
            setup.problem,
            setup.groups,
            method,
        )
    return cast_result(_restore(dx, channels_first), dy_arr.dtype)


def _backward_filter(
    op: str,
    ranks: tuple[int, ...],
    dy: Any,
    x: Any,
    filter_shape: Any,
    *,
    strides: Any,
    padding: Any,
    dilations: Any,
    groups: Any,
    data_format: Any,
    w_name: str = "filter_shape",
) -> Array:
    """Validate and compute the filter gradient; ``w_name`` is where ``filter_shape`` comes from.

    (``w`` when :func:`conv_backward` passes ``w.shape``.)
    """
    dy_arr = _data(op, "dy", dy, ranks, data_format)
    rank = dy_arr.ndim - 2
    channels_first = is_channels_first(op, data_format, rank)
    layout = _layout(rank, channels_first)
    x_arr = as_array(op, "x", x, ndim=rank + 2, layout=layout, ranked_by="dy")
    require_same_dtype(op, dy=dy_arr, x=x_arr)
    shape = as_index_tuple(op, "filter_shape", filter_shape, length=rank + 2)
    x_shape = _channels_last_shape(x_arr.shape, channels_first)
    where = _Described("x", x_arr.shape, channels_first)
    setup = _setup(
        op,
        x_shape,
        shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        where=where,
        filter_name=w_name,
    )
    expected = _user_shape((x_shape[0], *setup.problem.out, shape[-1]), channels_first)
    if dy_arr.shape != expected:
        label = w_name if w_name.endswith("_shape") else f"{w_name} shape"
        what = f"the forward output for {where} and {label} {shape}"
        check_upstream_shape(op, dy_arr, expected, what)
    check_addressable(op, w_name, shape, dy_arr.itemsize)
    acc = accumulation_dtype(dy_arr.dtype)
    with ieee_arithmetic():  # as in the forward pass
        dw = _filter_gradient(
            _channels_last(dy_arr, channels_first).astype(acc, copy=False),
            _channels_last(x_arr, channels_first).astype(acc, copy=False),
            setup.problem,
            setup.groups,
        )
    return cast_result(dw, dy_arr.dtype)


def _backward_bias(op: str, ranks: tuple[int, ...], dy: Any, data_format: Any) -> Array:
    dy_arr = _data(op, "dy", dy, ranks, data_format)
    channels_first = is_channels_first(op, data_format, dy_arr.ndim - 2)
    acc = accumulation_dtype(dy_arr.dtype)
    cl = _channels_last(dy_arr.astype(acc, copy=False), channels_first)
    rows = cl.reshape(-1, cl.shape[-1])
    # A matrix-vector product: NumPy's sum over axis 0 walks one O-wide row at a time
    # (0.9 ms for (32768, 32) float32; BLAS takes 0.1 ms), with the same error bound.
    with ieee_arithmetic():  # a sum past the range is inf, inf - inf is NaN
        total = np.ones(rows.shape[0], dtype=acc) @ rows
    return cast_result(total, dy_arr.dtype)


def conv_backward_input(
    dy: npt.ArrayLike,
    w: npt.ArrayLike,
    input_shape: Sequence[int],
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
    method: InputGradientMethod = "auto",
) -> Array:
    """Gradient of :func:`conv` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape (N, *OS, O) or, channels-first, (N, O, *OS)
        Upstream gradient, the shape of the forward output.
    w : ndarray, shape (*K, C/groups, O)
        The forward filters; same dtype as ``dy``.
    input_shape : sequence of r + 2 ints
        Shape of the forward input, in the data format's layout.
    strides, padding, dilations, groups, data_format
        As given to the forward call.
    method : {"auto", "col2im", "polyphase", "rot180"}
        Which of the equivalent routes runs (see Notes). ``"auto"`` (the default) picks
        ``"polyphase"`` or ``"col2im"`` for the shapes; ``"rot180"`` is the textbook route,
        kept as the readable reference.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``.

    Notes
    -----
    With ``g(o) = o // Og``::

        dx[n,r,c] = sum_{i,p,o : i*s + p*d - before = r, g(o) = c // Cg}
                    dy[n,i,o] * w[p, c - g(o)*Cg, o]

    ``method="rot180"`` is the textbook route, for every rank and for groups: insert
    ``s - 1`` zeros between the entries of ``dy`` along each axis, pad by ``(K-1)*d`` minus
    the forward's leading pad (negative: crop; enough after it that every input index gets
    a value, 0 where no window reached), then correlate at stride 1 and dilation ``d`` with
    the kernel rotated 180 degrees on all its spatial axes and, within each group, its in
    and out channels swapped: ``w_rot[p, o, g*Cg + c] = w[K-1-p, c, g*Og + o]``, ``groups``
    kept. ``1 - 1/prod(s)`` of its multiplications hit an inserted zero.

    ``method="polyphase"`` is the same route without those zeros: input indices are grouped
    by their remainder modulo the stride on each axis, and each of the ``prod(s)`` groups is
    a stride-1 correlation of ``dy`` with the taps that reach it (at stride 1 it is exactly
    the textbook route). ``method="col2im"`` computes ``dcols = dy @ W^T`` per group, the
    gradient of the im2col matrix, and adds each entry back to the input element its column
    read. ``"auto"`` takes polyphase when ``O/groups <= 2*C/groups`` or the filter is
    depthwise, and col2im otherwise. The tests check that all routes agree exactly in
    rational arithmetic.
    """
    return _backward_input(
        "conv_backward_input",
        _ALL_RANKS,
        dy,
        w,
        input_shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
        method=method,
    )


def conv_backward_filter(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    filter_shape: Sequence[int],
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """Gradient of :func:`conv` with respect to its filters.

    Parameters
    ----------
    dy : ndarray, shape (N, *OS, O) or, channels-first, (N, O, *OS)
        Upstream gradient, the shape of the forward output.
    x : ndarray, shape (N, *S, C) or, channels-first, (N, C, *S)
        The forward input; same dtype as ``dy``.
    filter_shape : sequence of r + 2 ints
        Shape of the forward filters, ``(*K, C/groups, O)``.
    strides, padding, dilations, groups, data_format
        As given to the forward call.

    Returns
    -------
    dw : ndarray, shape filter_shape

    Notes
    -----
    ``dw[p,c,o] = sum_{n,i} x[n, i*s + p*d - before, (o // Og)*Cg + c] * dy[n,i,o]``: the
    correlation of the (padded) input with ``dy`` used as a strided kernel.
    """
    return _backward_filter(
        "conv_backward_filter",
        _ALL_RANKS,
        dy,
        x,
        filter_shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
    )


def conv_backward_bias(dy: npt.ArrayLike, *, data_format: str | None = None) -> Array:
    """Gradient of :func:`conv` with respect to its bias.

    Parameters
    ----------
    dy : ndarray, shape (N, *OS, O) or, channels-first, (N, O, *OS)
    data_format : str, optional
        As given to the forward call.

    Returns
    -------
    db : ndarray, shape (O,)

    Notes
    -----
    ``db[o] = sum_{n,i} dy[n,i,o]`` (one bias per filter, so the sum runs over the batch and
    every output position).
    """
    return _backward_bias("conv_backward_bias", _ALL_RANKS, dy, data_format)


def _backward_all(
    op: str,
    ranks: tuple[int, ...],
    dy: Any,
    x: Any,
    w: Any,
    kwargs: dict[str, Any],
) -> ConvGradients:
    x_arr = _data(op, "x", x, ranks, kwargs["data_format"])
    w_arr = _filter(op, w, x_arr.ndim - 2, kwargs["groups"], "x")
    require_same_dtype(op, x=x_arr, w=w_arr)
    return ConvGradients(
        _backward_input(op, ranks, dy, w_arr, x_arr.shape, method="auto", x_name="x", **kwargs),
        _backward_filter(op, ranks, dy, x_arr, w_arr.shape, w_name="w", **kwargs),
        _backward_bias(op, ranks, dy, kwargs["data_format"]),
    )


def conv_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> ConvGradients:
    """All three gradients of :func:`conv`: ``(dx, dw, db)``.

    Parameters
    ----------
    dy : ndarray, shape (N, *OS, O) or, channels-first, (N, O, *OS)
    x : ndarray, shape (N, *S, C) or, channels-first, (N, C, *S)
    w : ndarray, shape (*K, C/groups, O)
    strides, padding, dilations, groups, data_format
        As given to the forward call.

    Returns
    -------
    ConvGradients
        ``dx`` shaped like ``x``, ``dw`` like ``w``, ``db`` shape (O,); see
        :func:`conv_backward_input`, :func:`conv_backward_filter` and
        :func:`conv_backward_bias` for the formulas.
    """
    kwargs = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
    }
    return _backward_all("conv_backward", _ALL_RANKS, dy, x, w, kwargs)


def conv2d_backward_input(
    dy: npt.ArrayLike,
    w: npt.ArrayLike,
    input_shape: Sequence[int],
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
    method: InputGradientMethod = "auto",
) -> Array:
    """Gradient of :func:`conv2d` with respect to its input.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, O) or, with data_format="NCHW", (N, O, OH, OW)
        Upstream gradient, the shape of the forward output.
    w : ndarray, shape (KH, KW, C/groups, O)
        The forward filters; same dtype as ``dy``.
    input_shape : (N, H, W, C) or (N, C, H, W)
        Shape of the forward input.
    strides, padding, dilations, groups, data_format
        As given to the forward call.
    method : {"auto", "col2im", "polyphase", "rot180"}
        See :func:`conv_backward_input`.

    Returns
    -------
    dx : ndarray, shape input_shape
        Same dtype as ``dy``.

    Notes
    -----
    ``dx[n,h,w,c] = sum_{i,j,p,q,o : i*sh + p*dh - top = h, j*sw + q*dw - left = w,
    o // Og = c // Cg} dy[n,i,j,o] * w[p, q, c % Cg, o]``; the routes are described in
    :func:`conv_backward_input`.
    """
    return _backward_input(
        "conv2d_backward_input",
        (2,),
        dy,
        w,
        input_shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
        method=method,
    )


def conv2d_backward_filter(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    filter_shape: Sequence[int],
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """Gradient of :func:`conv2d` with respect to its filters.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, O) or (N, O, OH, OW)
        Upstream gradient, the shape of the forward output.
    x : ndarray, shape (N, H, W, C) or (N, C, H, W)
        The forward input; same dtype as ``dy``.
    filter_shape : (KH, KW, C/groups, O)
        Shape of the forward filters.
    strides, padding, dilations, groups, data_format
        As given to the forward call.

    Returns
    -------
    dw : ndarray, shape filter_shape

    Notes
    -----
    ``dw[p,q,c,o] = sum_{n,i,j} x[n, i*sh + p*dh - top, j*sw + q*dw - left, (o // Og)*Cg + c]
    * dy[n,i,j,o]``: the correlation of the padded input with ``dy`` used as a (strided)
    kernel.
    """
    return _backward_filter(
        "conv2d_backward_filter",
        (2,),
        dy,
        x,
        filter_shape,
        strides=strides,
        padding=padding,
        dilations=dilations,
        groups=groups,
        data_format=data_format,
    )


def conv2d_backward_bias(dy: npt.ArrayLike, *, data_format: str | None = None) -> Array:
    """Gradient of :func:`conv2d` with respect to its bias.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, O) or, with data_format="NCHW", (N, O, OH, OW)
    data_format : str, optional
        As given to the forward call.

    Returns
    -------
    db : ndarray, shape (O,)

    Notes
    -----
    ``db[o] = sum_{n,i,j} dy[n,i,j,o]`` (one bias per filter, so the sum runs over batch and
    every output position).
    """
    return _backward_bias("conv2d_backward_bias", (2,), dy, data_format)


def conv2d_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    *,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> ConvGradients:
    """All three gradients of :func:`conv2d`: ``(dx, dw, db)``.

    Parameters
    ----------
    dy : ndarray, shape (N, OH, OW, O) or (N, O, OH, OW)
    x : ndarray, shape (N, H, W, C) or (N, C, H, W)
    w : ndarray, shape (KH, KW, C/groups, O)
    strides, padding, dilations, groups, data_format
        As given to the forward call.

    Returns
    -------
    Conv2DGradients
        ``dx`` shaped like ``x``, ``dw`` shape (KH, KW, C/groups, O), ``db`` shape (O,); see
        :func:`conv2d_backward_input`, :func:`conv2d_backward_filter`,
        :func:`conv2d_backward_bias` for the formulas.
    """
    kwargs = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
    }
    return _backward_all("conv2d_backward", (2,), dy, x, w, kwargs)


# --- transpose -------------------------------------------------------------------------------


def _transpose_problem(
    op: str,
    in_sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    *,
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    padding: Any,
    output_padding: tuple[int, ...],
) -> Problem:
    """Describe the forward conv whose adjoint is a transposed conv without ``output_shape``."""
    rank = len(in_sizes)
    resolved = normalize_padding(op, padding, rank)
    if isinstance(resolved, str) and resolved != "VALID" and any(output_padding):
        msg = (
            f"{op}: output_padding must be 0 under padding={resolved!r} (the output size is "
            f"input size * stride), got {output_padding}; give output_shape or explicit pads"
        )
        raise ValueError(msg)
    sizes, befores = [], []
    for axis in range(rank):
        s, d, extra = strides[axis], dilations[axis], output_padding[axis]
        if extra >= max(s, d):
            msg = (
                f"{op}: output_padding must be smaller than the stride or the dilation on each "
                f"axis, got output_padding={output_padding} with strides={strides}, "
                f"dilations={dilations}"
            )
            raise ValueError(msg)
        axis_padding = resolved if isinstance(resolved, str) else resolved[axis]
        size, before = transpose_geometry(in_sizes[axis], kernel[axis], s, d, axis_padding, extra)
        if size < 0:
            msg = (
                f"{op}: padding {padding!r} removes more than the full output on axis {axis} "
                f"(size {size}); the pads must total at most stride*(in - 1) + output_padding "
                "+ (K - 1)*dilation + 1"
            )
            raise ValueError(msg)
        sizes.append(size)
        befores.append(before)
    return Problem(tuple(sizes), in_sizes, kernel, strides, dilations, tuple(befores))


def conv_transpose(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    output_shape: Sequence[int] | None = None,
    strides: IntOrTuple = 1,
    padding: PaddingLike = "VALID",
    output_padding: IntOrTuple = 0,
    dilations: IntOrTuple = 1,
    groups: int = 1,
    data_format: str | None = None,
    method: InputGradientMethod = "auto",
) -> Array:
    """Transposed convolution: the adjoint of :func:`conv`, plus a bias.

    Parameters
    ----------
    x : ndarray, shape (N, *S, C_in) or, channels-first, (N, C_in, *S)
        Input; ``C_in`` is the forward conv's output channel count.
    w : ndarray, shape (*K, C_out/groups, C_in)
        The forward conv's filter (TensorFlow's ``conv_transpose`` layout); same dtype.
    b : ndarray, shape (C_out,), optional
        One bias per output channel.
    output_shape : sequence of r ints (spatial) or r + 2 ints (full shape), optional
        The output's size. With it the result is exactly
        ``conv_backward_input(x, w, output_shape, ...)`` (TensorFlow's ``conv_transpose``):
        the forward conv of that shape must have ``x``'s spatial sizes.
    strides, dilations : int or sequence of r ints
        The forward conv's (>= 1).
    padding : {"VALID", "SAME", "SAME_LOWER"} or r (before, after) pairs
        The forward conv's padding. Without ``output_shape`` the output size per axis is
        ONNX ``ConvTranspose``'s: ``s*(in - 1) + output_padding + (K - 1)*d + 1 - before -
        after`` for explicit pads and VALID, ``in*s`` for SAME/SAME_LOWER.
    output_padding : int or sequence of r ints
        Extra output indices after the last one a window reaches (ONNX, PyTorch); smaller
        than the stride or the dilation on each axis, 0 under SAME and with ``output_shape``.
    groups, data_format, method
        As in :func:`conv_backward_input`.

    Returns
    -------
    y : ndarray, shape (N, *OS, C_out) or (N, C_out, *OS)
        Same dtype and layout as ``x``.

    Notes
    -----
    With ``Og = C_in/groups`` and ``Cg = C_out/groups``, sums over the windows ``i`` of
    ``x``::

        y[n,r,c] = b[c] + sum_{i,p,o : i*s + p*d - before = r, o // Og = c // Cg}
                   x[n,i,o] * w[p, c % Cg, o]

    Under SAME/SAME_LOWER ``before`` is the forward SAME conv's leading pad, so the result is
    the adjoint of that conv; ONNX's own split of ``total = s*(in-1) + output_padding +
    (K-1)*d + 1 - in*s`` agrees except where ``(K-1)*d + 1 < s`` (see the README notes).
    """
    op = "conv_transpose"
    x_arr = _data(op, "x", x, _ALL_RANKS, data_format)
    rank = x_arr.ndim - 2
    channels_first = is_channels_first(op, data_format, rank)
    w_arr = as_array(
        op,
        "w",
        w,
        ndim=rank + 2,
        layout=_filter_layout(rank, 2, "C_out/groups", "C_in"),
    )
    require_same_dtype(op, x=x_arr, w=w_arr)
    _check_method(op, method)
    group_count = as_int(op, "groups", groups, minimum=1)
    # The scalar arguments first: a bad one is named before the shapes it would derive.
    stride_tuple = as_tuple(op, "strides", strides, rank=rank)
    dilation_tuple = as_tuple(op, "dilations", dilations, rank=rank)
    extra = as_tuple(op, "output_padding", output_padding, rank=rank, minimum=0)
    x_shape = _channels_last_shape(x_arr.shape, channels_first)
    layout = _Described("x", x_arr.shape, channels_first)
    if x_shape[-1] != w_arr.shape[-1]:
        msg = (
            f"{op}: input channels C_in={x_shape[-1]} ({layout}) must equal the filter's last "
            f"axis {w_arr.shape[-1]} (w shape {w_arr.shape}, (*K, C_out/groups, C_in))"
        )
        raise ValueError(msg)
    c_out = group_count * w_arr.shape[-2]
    b_arr = _check_bias(op, b, x_arr, c_out, f"groups={describe(group_count)} * w.shape[-2]")
    kernel = tuple(w_arr.shape[:rank])
    if output_shape is not None:
        if any(extra):
            msg = (
                f"{op}: give output_shape or output_padding, not both (got output_padding={extra})"
            )
            raise ValueError(msg)
        spatial = _transpose_output_shape(op, output_shape, rank, channels_first, x_shape[0], c_out)
        setup = _setup(
            op,
            (x_shape[0], *spatial, c_out),
            w_arr.shape,
            strides=stride_tuple,
            padding=padding,
            dilations=dilation_tuple,
            groups=group_count,
            where=f"output_shape {tuple(output_shape)}",
        )
        if setup.problem.out != tuple(x_shape[1:-1]):
            msg = (
                f"{op}: a conv of output_shape {tuple(output_shape)} with these strides, padding "
                f"and dilations has spatial sizes {setup.problem.out}, but x has "
                f"{tuple(x_shape[1:-1])} ({layout})"
            )
            raise ValueError(msg)
        problem, name = setup.problem, "output_shape"
    else:
        _check_filter(op, c_out, w_arr.shape, group_count, f"{describe(c_out)} output channels")
        problem = _transpose_problem(
            op,
            tuple(x_shape[1:-1]),
            kernel,
            strides=stride_tuple,
            dilations=dilation_tuple,
            padding=padding,
            output_padding=extra,
        )
        name = "strides, padding and output_padding"
    check_addressable(op, name, (x_shape[0], *problem.sizes, c_out), x_arr.itemsize)
    acc = accumulation_dtype(x_arr.dtype)
    with ieee_arithmetic():  # as in conv
        y = _input_gradient(
            op,
            _channels_last(x_arr, channels_first).astype(acc, copy=False),
            w_arr.astype(acc, copy=False),
            problem,
            group_count,
            method,
        )
        if b_arr is not None:
            y += b_arr.astype(acc, copy=False)
    return cast_result(_restore(y, channels_first), x_arr.dtype)


def _transpose_output_shape(
    op: str, value: Any, rank: int, channels_first: bool, n: int, channels: int
) -> tuple[int, ...]:
    """Spatial sizes from an ``output_shape`` of ``rank`` or ``rank + 2`` ints."""
    length: int | None = None
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes):
        try:
            length = len(value)
        except (TypeError, OverflowError):  # a 0-d array; len(range(10**20))
            length = None
    if length is None:  # not a sequence: as_index_tuple words the refusal
        return as_index_tuple(op, "output_shape", value, length=rank)
    if length == rank + 2:
        full = as_index_tuple(op, "output_shape", value, length=rank + 2)
        expected = _user_shape(
            (n, *_channels_last_shape(full, channels_first)[1:-1], channels), channels_first
        )
        if full != expected:
            msg = (
                f"{op}: output_shape {full} must have batch {n} and {channels} channels "
                f"(groups * filter in-channels), i.e. {expected}"
            )
            raise ValueError(msg)
        return _channels_last_shape(full, channels_first)[1:-1]
    if length != rank:
        msg = (
            f"{op}: output_shape must be {rank} spatial sizes or the full shape of "
            f"{rank + 2} ints, got {value!r}"
        )
        raise ValueError(msg)
    return as_index_tuple(op, "output_shape", value, length=rank)
