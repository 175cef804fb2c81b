"""Pooling over 1, 2 and 3 spatial axes: dilation, ceil mode, layouts, argmax, global pools.

Oracles: the literal loops of :mod:`refcnn._naive` (every rank), exact ``Fraction`` and
integer arithmetic, hand-worked values, finite differences that are exact by construction,
the adjoint identity, and an independent loop deciding which geometries hold a window of
padding only. The 2-D specifics (hand-worked 2-D cases, float16, integer extremes, the
original error messages) are in ``test_pool.py``.
"""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refcnn
from refcnn import _naive, _pool_routes
from refcnn.padding import normalize_padding, windows

Array = npt.NDArray[Any]
Padding = str | tuple[tuple[int, int], ...]

# The loop oracles and Fraction arithmetic are slow: run half the active profile's examples.
FEW = settings(max_examples=max(10, settings().max_examples // 2), deadline=None)

CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}
_fraction = np.frompyfunc(Fraction, 2, 1)


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def _per_axis(value: Any, rank: int) -> tuple[int, ...]:
    return (value,) * rank if isinstance(value, int) else tuple(value)


class NdCase(NamedTuple):
    """One pooling geometry on a channels-last shape; its repr is a reproducer."""

    shape: tuple[int, ...]
    ksize: int | tuple[int, ...]
    strides: int | tuple[int, ...] | None
    padding: Padding
    dilations: int | tuple[int, ...]
    ceil_mode: bool

    @property
    def rank(self) -> int:
        return len(self.shape) - 2

    @property
    def kwargs(self) -> dict[str, Any]:
        return {
            "strides": self.strides,
            "padding": self.padding,
            "dilations": self.dilations,
            "ceil_mode": self.ceil_mode,
        }

    def geometry(self) -> Any:
        k = _per_axis(self.ksize, self.rank)
        s = k if self.strides is None else _per_axis(self.strides, self.rank)
        d = _per_axis(self.dilations, self.rank)
        mode = normalize_padding("test", self.padding, self.rank)
        return windows(self.shape[1:-1], k, s, d, mode, ceil_mode=self.ceil_mode)

    def out_shape(self) -> tuple[int, ...]:
        return (self.shape[0], *self.geometry().out, self.shape[-1])

    def padding_only_window(self) -> bool:
        """Whether some window holds no real element, by looping over every window and tap."""
        geo = self.geometry()
        k = _per_axis(self.ksize, self.rank)
        s = k if self.strides is None else _per_axis(self.strides, self.rank)
        d = _per_axis(self.dilations, self.rank)
        for window in itertools.product(*(range(o) for o in geo.out)):
            real = any(
                all(
                    0 <= window[a] * s[a] + t[a] * d[a] - geo.pads[a][0] < self.shape[1 + a]
                    for a in range(self.rank)
                )
                for t in itertools.product(*(range(kk) for kk in k))
            )
            if not real:
                return True
        return False


@st.composite
def nd_cases(
    draw: st.DrawFn,
    *,
    ranks: tuple[int, ...] = (1, 2, 3),
    max_pad: int | None = None,
    max_batch: int = 2,
    max_channels: int = 2,
) -> NdCase:
    """Ranks 1-3, kernels 1-3, strides 1-3 (or the default), dilations 1-3, every padding.

    Explicit pads go up to the dilated kernel extent (``max_pad`` overrides), so both
    accepted geometries and ones with a window of padding only are drawn.
    """
    rank = draw(st.sampled_from(ranks))
    side = {1: 8, 2: 6, 3: 4}[rank]
    k = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    d = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    ksize: int | tuple[int, ...] = k[0] if len(set(k)) == 1 and draw(st.booleans()) else k
    dilations: int | tuple[int, ...] = d[0] if len(set(d)) == 1 and draw(st.booleans()) else d
    strides = draw(
        st.none() | st.integers(1, 3) | st.tuples(*(st.integers(1, 3) for _ in range(rank)))
    )
    mode = draw(st.sampled_from(["VALID", "SAME", "SAME_LOWER", "explicit"]))
    padding: Padding = mode
    if mode == "explicit":
        limits = [
            (kk - 1) * dd + 1 if max_pad is None else max_pad for kk, dd in zip(k, d, strict=True)
        ]
        padding = tuple(
            (draw(st.integers(0, limit)), draw(st.integers(0, limit))) for limit in limits
        )
    shape = (
        draw(st.integers(0, max_batch)),
        *(draw(st.integers(1, side)) for _ in range(rank)),
        draw(st.integers(1, max_channels)),
    )
    return NdCase(shape, ksize, strides, padding, dilations, draw(st.booleans()))


def valid_nd_cases(**kwargs: Any) -> st.SearchStrategy[NdCase]:
    return nd_cases(**kwargs).filter(lambda case: not case.padding_only_window())


def small_ints(shape: tuple[int, ...], lo: int = -3, hi: int = 3) -> st.SearchStrategy[Array]:
    return hnp.arrays(np.int64, shape, elements=st.integers(lo, hi))


@st.composite
def fraction_arrays(draw: st.DrawFn, shape: tuple[int, ...]) -> Array:
    nums = draw(small_ints(shape, -9, 9))
    dens = draw(small_ints(shape, 1, 6))
    return np.asarray(_fraction(nums, dens), dtype=object)


def to_first(a: Array) -> Array:
    """Channels-last -> channels-first copy."""
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def to_last(a: Array) -> Array:
    return np.moveaxis(a, 1, -1)


def first_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[-1], *shape[1:-1])


# --------------------------------------------------------------------------------------------
# Against the loops, exactly
# --------------------------------------------------------------------------------------------


@FEW
@given(st.data())
def test_max_pool_and_argmax_match_naive_exactly(data: st.DataObject) -> None:
    # Small integers: many ties, so the first-maximum rule is exercised on every rank.
    case = data.draw(valid_nd_cases())
    x = data.draw(small_ints(case.shape, -2, 2))
    y_naive, argmax_naive = _naive.max_pool_with_argmax(x, case.ksize, **case.kwargs)
    y = refcnn.max_pool(x, case.ksize, **case.kwargs)
    assert y.dtype == x.dtype
    assert y.shape == case.out_shape()
    np.testing.assert_array_equal(y, y_naive)
    y2, argmax = refcnn.max_pool_with_argmax(x, case.ksize, **case.kwargs)
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(y2, y_naive)
    np.testing.assert_array_equal(argmax, argmax_naive)


@FEW
@given(st.data())
def test_max_pool_backward_matches_naive_exactly(data: st.DataObject) -> None:
    case = data.draw(valid_nd_cases())
    x = data.draw(small_ints(case.shape, -2, 2))
    dy = data.draw(small_ints(case.out_shape(), -9, 9))
    for dtype in (np.int64, np.float64, np.float32):
        dx = refcnn.max_pool_backward(dy.astype(dtype), x.astype(dtype), case.ksize, **case.kwargs)
        assert dx.dtype == dtype
        np.testing.assert_array_equal(
            dx, _naive.max_pool_backward(dy, x, case.ksize, **case.kwargs)
        )


@FEW
@given(st.data(), st.booleans())
def test_avg_pool_and_backward_match_naive_in_fractions(
    data: st.DataObject, count_include_pad: bool
) -> None:
    case = data.draw(valid_nd_cases())
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    kwargs = {**case.kwargs, "count_include_pad": count_include_pad}
    y = refcnn.avg_pool(x, case.ksize, **kwargs)
    assert y.dtype == object
    assert all(isinstance(v, Fraction) for v in y.flat)
    np.testing.assert_array_equal(y, _naive.avg_pool(x, case.ksize, **kwargs))
    dx = refcnn.avg_pool_backward(dy, case.shape, case.ksize, **kwargs)
    np.testing.assert_array_equal(
        dx, _naive.avg_pool_backward(dy, case.shape, case.ksize, **kwargs)
    )


@FEW
@given(st.data(), st.booleans())
def test_avg_pool_float64_small_integers_match_naive_bitwise(
    data: st.DataObject, count_include_pad: bool
) -> None:
    # Integer sums are exact in any order and both sides divide the same sum by the same
    # count once, so the regrouped float sums must agree with the loop bit for bit.
    case = data.draw(valid_nd_cases())
    x = data.draw(small_ints(case.shape)).astype(np.float64)
    kwargs = {**case.kwargs, "count_include_pad": count_include_pad}
    np.testing.assert_array_equal(
        refcnn.avg_pool(x, case.ksize, **kwargs), _naive.avg_pool(x, case.ksize, **kwargs)
    )


@FEW
@given(st.data())
def test_rank_specific_functions_are_the_nd_ones(data: st.DataObject) -> None:
    case = data.draw(valid_nd_cases())
    x = data.draw(small_ints(case.shape)).astype(np.float64)
    dy = data.draw(small_ints(case.out_shape())).astype(np.float64)
    max_fn = {1: refcnn.max_pool1d, 2: refcnn.max_pool2d, 3: refcnn.max_pool3d}[case.rank]
    avg_fn = {1: refcnn.avg_pool1d, 2: refcnn.avg_pool2d, 3: refcnn.avg_pool3d}[case.rank]
    np.testing.assert_array_equal(
        max_fn(x, case.ksize, **case.kwargs), refcnn.max_pool(x, case.ksize, **case.kwargs)
    )
    np.testing.assert_array_equal(
        avg_fn(x, case.ksize, **case.kwargs), refcnn.avg_pool(x, case.ksize, **case.kwargs)
    )
    if case.rank == 2:
        np.testing.assert_array_equal(
            refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs),
            refcnn.max_pool_backward(dy, x, case.ksize, **case.kwargs),
        )
        np.testing.assert_array_equal(
            refcnn.avg_pool2d_backward(dy, x.shape, case.ksize, **case.kwargs),
            refcnn.avg_pool_backward(dy, x.shape, case.ksize, **case.kwargs),
        )


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


@FEW
@given(st.data())
def test_channels_first_is_transposed_channels_last(data: st.DataObject) -> None:
    case = data.draw(valid_nd_cases())
    fmt = CHANNELS_FIRST[case.rank]
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    k, kw = case.ksize, case.kwargs
    xf, dyf = to_first(x), to_first(dy)
    pairs = [
        (refcnn.max_pool(xf, k, data_format=fmt, **kw), refcnn.max_pool(x, k, **kw)),
        (
            refcnn.max_pool_with_argmax(xf, k, data_format=fmt, **kw)[1],
            refcnn.max_pool_with_argmax(x, k, **kw)[1],
        ),
        (
            refcnn.max_pool_backward(dyf, xf, k, data_format=fmt, **kw),
            refcnn.max_pool_backward(dy, x, k, **kw),
        ),
        (
            refcnn.avg_pool(xf, k, data_format=fmt, count_include_pad=True, **kw),
            refcnn.avg_pool(x, k, count_include_pad=True, **kw),
        ),
        (
            refcnn.avg_pool_backward(dyf, first_shape(case.shape), k, data_format=fmt, **kw),
            refcnn.avg_pool_backward(dy, case.shape, k, **kw),
        ),
    ]
    for first, last in pairs:
        np.testing.assert_array_equal(to_last(first), last)
    # The channels-last strings are the default spelled out.
    np.testing.assert_array_equal(
        refcnn.max_pool(x, k, data_format=CHANNELS_LAST[case.rank], **kw),
        refcnn.max_pool(x, k, **kw),
    )


# --------------------------------------------------------------------------------------------
# Hand-worked: dilation, ceil mode, the ceil-mode divisor
# --------------------------------------------------------------------------------------------


def row(values: list[Any], dtype: Any = np.float64) -> Array:
    """One single-channel 1-D sequence ``(1, W, 1)``."""
    return np.asarray(values, dtype=dtype)[None, :, None]


def flat(a: Array) -> list[Any]:
    return a[0, :, 0].tolist()


def test_dilated_1d_hand_worked() -> None:
    # k=3, d=2: window i reads x[i], x[i+2], x[i+4] (extent 5 -> 3 windows over 7).
    x = row([1, 2, 3, 4, 5, 6, 7])
    assert flat(refcnn.max_pool1d(x, 3, strides=1, dilations=2)) == [5, 6, 7]
    assert flat(refcnn.avg_pool1d(x, 3, strides=1, dilations=2)) == [3, 4, 5]
    # The gradient of window 0 goes to x[4] only, not to the skipped x[1], x[3].
    dx = refcnn.max_pool_backward(row([1, 10, 100]), x, 3, strides=1, dilations=2)
    assert flat(dx) == [0, 0, 0, 0, 1, 10, 100]


# x = 1..6, k=3, s=2, pads (1, 1), ceil_mode: padded length 8 gives ceil(5/2) + 1 = 4 windows,
# reading inputs [-1, 0, 1], [1, 2, 3], [3, 4, 5], [5, 6, 7]. The last holds x[5] = 6, the end
# pad (input 6) and the overhang (input 7). count_include_pad counts the pad, not the
# overhang (PyTorch 2.13 gives these values too: checked outside this suite).
CEIL_X = [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("count_include_pad", "expected"),
    [
        (False, [3 / 2, 9 / 3, 15 / 3, 6 / 1]),
        (True, [3 / 3, 9 / 3, 15 / 3, 6 / 2]),
    ],
)
def test_ceil_mode_divisor_hand_worked(count_include_pad: bool, expected: list[float]) -> None:
    y = refcnn.avg_pool1d(
        row(CEIL_X),
        3,
        strides=2,
        padding=((1, 1),),
        ceil_mode=True,
        count_include_pad=count_include_pad,
    )
    assert flat(y) == expected
    dx = refcnn.avg_pool_backward(
        row([6, 6, 6, 6]),
        (1, 6, 1),
        3,
        strides=2,
        padding=((1, 1),),
        ceil_mode=True,
        count_include_pad=count_include_pad,
    )
    # Each window spreads 6 / count over its real elements; x[1], x[3], x[5] sit in two.
    shares = [6 / c for c in ([2, 3, 3, 1] if not count_include_pad else [3, 3, 3, 2])]
    assert flat(dx) == [
        shares[0],
        shares[0] + shares[1],
        shares[1],
        shares[1] + shares[2],
        shares[2],
        shares[2] + shares[3],
    ]


def test_ceil_mode_max_and_argmax_hand_worked() -> None:
    x = row(CEIL_X)
    y, argmax = refcnn.max_pool_with_argmax(x, 3, strides=2, padding=((1, 1),), ceil_mode=True)
    assert flat(y) == [2, 4, 6, 6]
    assert flat(argmax) == [1, 3, 5, 5]
    # Without ceil mode the last window is dropped: (8 - 3) // 2 + 1 = 3.
    assert flat(refcnn.max_pool1d(x, 3, strides=2, padding=((1, 1),))) == [2, 4, 6]


def test_ceil_mode_is_a_no_op_under_same() -> None:
    x = row([1, 2, 3, 4, 5])
    for mode in ("SAME", "SAME_LOWER"):
        np.testing.assert_array_equal(
            refcnn.avg_pool1d(x, 2, strides=2, padding=mode, ceil_mode=True),
            refcnn.avg_pool1d(x, 2, strides=2, padding=mode),
        )


def test_3d_dilated_hand_worked() -> None:
    # 3x3x3 cube 0..26, k=2, d=2: one window reading the 8 corners; max is the last corner.
    x = np.arange(27, dtype=np.float64).reshape(1, 3, 3, 3, 1)
    y, argmax = refcnn.max_pool_with_argmax(x, 2, dilations=2)
    assert y.ravel().tolist() == [26]
    assert argmax.ravel().tolist() == [26]
    corners = [0, 2, 6, 8, 18, 20, 24, 26]
    assert refcnn.avg_pool3d(x, 2, dilations=2).ravel().tolist() == [sum(corners) / 8]


# --------------------------------------------------------------------------------------------
# Ties, NaN, argmax == the backward's routing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "hot", "expected"),
    [
        # 1-D window of four 5s: the first, index 0.
        ((1, 4, 1), [(0,), (1,), (2,), (3,)], 0),
        # 3-D: tied maxima at (1,0,0) and (0,1,1): row-major first is (0,1,1) = 0*4 + 1*2 + 1.
        ((1, 2, 2, 2, 1), [(1, 0, 0), (0, 1, 1)], 3),
        # 2-D anti-diagonal: (0,1) before (1,0).
        ((1, 2, 2, 1), [(1, 0), (0, 1)], 1),
    ],
)
def test_argmax_ties_go_to_the_first_in_row_major_order(
    shape: tuple[int, ...], hot: list[tuple[int, ...]], expected: int
) -> None:
    x = np.zeros(shape)
    for where in hot:
        x[(0, *where, 0)] = 5
    k = shape[1:-1]
    y, argmax = refcnn.max_pool_with_argmax(x, k)
    assert y.ravel().tolist() == [5]
    assert argmax.ravel().tolist() == [expected]
    dx = refcnn.max_pool_backward(np.ones(y.shape), x, k)
    assert np.flatnonzero(dx).tolist() == [expected]


def test_argmax_nan_goes_to_the_first_nan() -> None:
    x = np.zeros((1, 2, 2, 2, 1))
    x[0, 1, 1, 1, 0] = 9.0
    x[0, 1, 0, 0, 0] = np.nan
    x[0, 0, 1, 1, 0] = np.nan  # row-major first NaN: index 3
    y, argmax = refcnn.max_pool_with_argmax(x, 2)
    assert np.isnan(y).all()
    assert argmax.ravel().tolist() == [3]
    dx = refcnn.max_pool_backward(np.ones(y.shape), x, 2)
    assert np.flatnonzero(dx).tolist() == [3]


@FEW
@given(st.data())
def test_argmax_is_where_the_gradient_goes(data: st.DataObject) -> None:
    case = data.draw(valid_nd_cases())
    x = data.draw(small_ints(case.shape, -2, 2)).astype(np.float64)
    x[data.draw(hnp.arrays(np.bool_, case.shape))] = np.nan
    y, argmax = refcnn.max_pool_with_argmax(x, case.ksize, **case.kwargs)
    dy = data.draw(small_ints(y.shape, -9, 9)).astype(np.float64)
    n, c = case.shape[0], case.shape[-1]
    volume = int(np.prod(case.shape[1:-1]))
    planes = x.reshape(n, volume, c)
    batch = np.arange(n).reshape((-1,) + (1,) * (y.ndim - 1))
    channel = np.arange(c)
    # y is the element argmax points at (NaN for NaN) ...
    np.testing.assert_array_equal(y, planes[batch, argmax, channel])
    # ... and the gradient is dy scattered there.
    expected = np.zeros((n, volume, c))
    np.add.at(expected, (batch, argmax, channel), dy)
    np.testing.assert_array_equal(
        refcnn.max_pool_backward(dy, x, case.ksize, **case.kwargs), expected.reshape(x.shape)
    )
    np.testing.assert_array_equal(
        refcnn.max_pool_backward(dy, x, case.ksize, **case.kwargs),
        _naive.max_pool_backward(dy, x, case.ksize, **case.kwargs),
    )


# --------------------------------------------------------------------------------------------
# Gradient identities
# --------------------------------------------------------------------------------------------


@FEW
@given(st.data(), st.booleans())
def test_avg_pool_backward_is_the_adjoint(data: st.DataObject, count_include_pad: bool) -> None:
    case = data.draw(valid_nd_cases())
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    kwargs = {**case.kwargs, "count_include_pad": count_include_pad}
    lhs = np.sum(refcnn.avg_pool(x, case.ksize, **kwargs) * dy)
    rhs = np.sum(x * refcnn.avg_pool_backward(dy, case.shape, case.ksize, **kwargs))
    assert lhs == rhs


@FEW
@given(st.data())
def test_max_pool_backward_matches_central_differences(data: st.DataObject) -> None:
    # Distinct integers and a step of 1/4: x +- h keeps every window's order, and every sum
    # is a small dyadic rational, so the central difference is exact and equals dx bitwise.
    case = data.draw(valid_nd_cases(max_batch=1, max_channels=1))
    size = int(np.prod(case.shape))
    order = data.draw(st.permutations(range(size)))
    x = np.asarray(order, dtype=np.float64).reshape(case.shape)
    dy = data.draw(small_ints(case.out_shape(), -5, 5)).astype(np.float64)
    dx = refcnn.max_pool_backward(dy, x, case.ksize, **case.kwargs)

    def loss(v: Array) -> float:
        return float(np.sum(refcnn.max_pool(v, case.ksize, **case.kwargs) * dy))

    h = 0.25
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        numeric[index] = (loss(x + step) - loss(x - step)) / (2 * h)
    np.testing.assert_array_equal(dx, numeric)


@FEW
@given(st.data(), st.booleans())
def test_avg_pool_backward_matches_central_differences_in_fractions(
    data: st.DataObject, count_include_pad: bool
) -> None:
    # avg_pool is linear, so in exact arithmetic the central difference is the gradient.
    case = data.draw(valid_nd_cases(max_batch=1, max_channels=1))
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    kwargs = {**case.kwargs, "count_include_pad": count_include_pad}

    def loss(v: Array) -> Any:
        return np.sum(refcnn.avg_pool(v, case.ksize, **kwargs) * dy)

    h = Fraction(1, 3)
    numeric = np.zeros(x.shape, dtype=object)
    for index in np.ndindex(x.shape):
        step = np.zeros(x.shape, dtype=object)
        step[index] = h
        numeric[index] = (loss(x + step) - loss(x - step)) / (2 * h)
    np.testing.assert_array_equal(
        refcnn.avg_pool_backward(dy, case.shape, case.ksize, **kwargs), numeric
    )


# --------------------------------------------------------------------------------------------
# Windows of padding only
# --------------------------------------------------------------------------------------------


@FEW
@given(nd_cases(max_pad=6, max_batch=1, max_channels=1))
def test_refused_exactly_when_a_window_holds_padding_only(case: NdCase) -> None:
    x = np.ones(case.shape)
    if case.padding_only_window():
        with pytest.raises(ValueError, match=r"^max_pool: padding .* gives window \d+ of spatial"):
            refcnn.max_pool(x, case.ksize, **case.kwargs)
        with pytest.raises(ValueError, match=r"^avg_pool_backward: padding .* no real element"):
            refcnn.avg_pool_backward(
                np.ones(case.out_shape()), case.shape, case.ksize, **case.kwargs
            )
    else:
        assert refcnn.max_pool(x, case.ksize, **case.kwargs).shape == case.out_shape()


def test_same_with_dilation_can_make_a_window_of_padding_only() -> None:
    # 1 element, 2 taps 3 apart, SAME: out 1, pads (1, 2); the taps read inputs -1 and 2.
    with pytest.raises(
        ValueError,
        match=r"^max_pool1d: padding 'SAME' with ksize \(2,\), strides \(1,\) and dilations "
        r"\(3,\) gives window 0 of spatial axis 0 \(input size 1, pads \(1, 2\)\) no real element",
    ):
        refcnn.max_pool1d(row([1.0]), 2, strides=1, padding="SAME", dilations=3)
    # Over 4 elements the pads are the same and every window has a real tap: windows read
    # inputs (-1, 2), (0, 3), (1, 4), (2, 5).
    x = row([1.0, 2.0, 3.0, 4.0])
    assert flat(refcnn.max_pool1d(x, 2, strides=1, padding="SAME", dilations=3)) == [3, 4, 2, 3]


def test_pads_beyond_the_kernel_are_fine_when_every_window_is_real() -> None:
    # 4 elements, k=2, s=3, pads (0, 2): windows read [0, 1] and [3, 4]; x[3] is real.
    x = row([1, 2, 3, 4])
    assert flat(refcnn.max_pool1d(x, 2, strides=3, padding=((0, 2),))) == [2, 4]


# --------------------------------------------------------------------------------------------
# Cost: only taps that touch the input
# --------------------------------------------------------------------------------------------


HOSTILE: list[tuple[str, Callable[[], Array], Callable[[], Array]]] = []
_X4 = np.random.default_rng(3).standard_normal((2, 4, 4, 3))
_HUGE = 10**4


def _hostile(name: str, call: Callable[[], Array], expected: Callable[[], Array]) -> None:
    HOSTILE.append((name, call, expected))


def _whole_input(reduce: Callable[..., Array], a: Array) -> Array:
    return np.broadcast_to(reduce(a, axis=(1, 2), keepdims=True), a.shape)


_hostile(
    "max_pool2d SAME",
    lambda: refcnn.max_pool2d(_X4, _HUGE, strides=1, padding="SAME"),
    lambda: _whole_input(np.max, _X4),
)
_hostile(
    "avg_pool2d SAME",
    lambda: refcnn.avg_pool2d(_X4, _HUGE, strides=1, padding="SAME"),
    lambda: _whole_input(np.mean, _X4),
)
_hostile(
    "max_pool2d_backward SAME",
    lambda: refcnn.max_pool2d_backward(np.ones(_X4.shape), _X4, _HUGE, strides=1, padding="SAME"),
    lambda: 16.0 * (_whole_input(np.max, _X4) == _X4),
)
_hostile(
    "avg_pool2d_backward SAME",
    lambda: refcnn.avg_pool2d_backward(
        np.ones(_X4.shape), _X4.shape, _HUGE, strides=1, padding="SAME"
    ),
    lambda: np.ones(_X4.shape),  # 16 windows, each giving 1/16 to every pixel
)
_hostile(
    "max_pool3d SAME",
    lambda: refcnn.max_pool3d(_X4[..., None], _HUGE, strides=1, padding="SAME"),
    lambda: np.broadcast_to(_X4[..., None].max(axis=(1, 2, 3), keepdims=True), (*_X4.shape, 1)),
)
_hostile(
    "avg_pool1d huge stride and pads, ceil",
    lambda: refcnn.avg_pool1d(
        _X4[:, 0], _HUGE, strides=_HUGE, padding=((_HUGE - 1, _HUGE - 1),), ceil_mode=True
    ),
    # Two windows: inputs [-9999, 1) (x[0]) and [1, 10001) (x[1:4]).
    lambda: np.stack([_X4[:, 0, 0], _X4[:, 0, 1:].mean(axis=1)], axis=1),
)


@pytest.mark.parametrize(("name", "call", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_huge_windows_cost_only_the_taps_that_touch_the_input(
    name: str, call: Callable[[], Array], expected: Callable[[], Array]
) -> None:
    tracemalloc.start()
    try:
        start = time.perf_counter()
        got = call()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 10**4 x 10**4 taps would take minutes; the ~7 x 7 that meet the input take milliseconds.
    assert elapsed < 1.0, (name, elapsed)
    assert peak < 200 * 2**20, (name, peak)
    np.testing.assert_allclose(got, expected(), rtol=1e-14, atol=0)


# --------------------------------------------------------------------------------------------
# Batch chunks change nothing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_bytes", [1, 2**40])
def test_results_do_not_depend_on_batch_chunking(
    chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 6, 7, 5, 3))
    kw: dict[str, Any] = {"strides": 2, "padding": "SAME", "dilations": (1, 2, 1)}
    y = refcnn.max_pool(x, 3, **kw)
    dy = rng.standard_normal(y.shape)
    before = [
        y,
        refcnn.max_pool_with_argmax(x, 3, **kw)[1],
        refcnn.max_pool_backward(dy, x, 3, **kw),
        refcnn.avg_pool(x, 3, **kw),
        refcnn.avg_pool_backward(dy, x.shape, 3, **kw),
    ]
    monkeypatch.setattr(_pool_routes, "CHUNK_BYTES", chunk_bytes)
    after = [
        refcnn.max_pool(x, 3, **kw),
        refcnn.max_pool_with_argmax(x, 3, **kw)[1],
        refcnn.max_pool_backward(dy, x, 3, **kw),
        refcnn.avg_pool(x, 3, **kw),
        refcnn.avg_pool_backward(dy, x.shape, 3, **kw),
    ]
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Global pooling
# --------------------------------------------------------------------------------------------


@st.composite
def global_shapes(draw: st.DrawFn) -> tuple[int, ...]:
    rank = draw(st.integers(1, 3))
    return (
        draw(st.integers(0, 2)),
        *(draw(st.integers(1, 4)) for _ in range(rank)),
        draw(st.integers(1, 3)),
    )


@FEW
@given(st.data())
def test_global_pools_match_naive_and_the_full_window(data: st.DataObject) -> None:
    shape = data.draw(global_shapes())
    x = data.draw(fraction_arrays(shape))
    dy = data.draw(fraction_arrays((shape[0], shape[-1])))
    spatial = shape[1:-1]
    kept = (shape[0],) + (1,) * len(spatial) + (shape[-1],)
    y_naive, argmax = _naive.global_max_pool(x)
    np.testing.assert_array_equal(refcnn.global_max_pool(x, keepdims=False), y_naive)
    np.testing.assert_array_equal(refcnn.global_max_pool(x), y_naive.reshape(kept))
    np.testing.assert_array_equal(refcnn.global_max_pool(x), refcnn.max_pool(x, spatial))
    np.testing.assert_array_equal(
        refcnn.max_pool_with_argmax(x, spatial)[1].reshape(argmax.shape), argmax
    )
    avg = _naive.global_avg_pool(x)
    np.testing.assert_array_equal(refcnn.global_avg_pool(x, keepdims=False), avg)
    np.testing.assert_array_equal(refcnn.global_avg_pool(x), refcnn.avg_pool(x, spatial))
    np.testing.assert_array_equal(
        refcnn.global_max_pool_backward(dy, x, keepdims=False),
        refcnn.max_pool_backward(dy.reshape(kept), x, spatial),
    )
    np.testing.assert_array_equal(
        refcnn.global_max_pool_backward(dy.reshape(kept), x),
        refcnn.max_pool_backward(dy.reshape(kept), x, spatial),
    )
    np.testing.assert_array_equal(
        refcnn.global_avg_pool_backward(dy, shape, keepdims=False),
        refcnn.avg_pool_backward(dy.reshape(kept), shape, spatial),
    )


@FEW
@given(st.data())
def test_global_pools_channels_first_and_nan(data: st.DataObject) -> None:
    shape = data.draw(global_shapes())
    rank = len(shape) - 2
    fmt = CHANNELS_FIRST[rank]
    x = data.draw(small_ints(shape, -2, 2)).astype(np.float64)
    x[data.draw(hnp.arrays(np.bool_, shape))] = np.nan
    dy = data.draw(small_ints((shape[0], shape[-1]), -9, 9)).astype(np.float64)
    xf = to_first(x)
    np.testing.assert_array_equal(
        refcnn.global_max_pool(xf, data_format=fmt, keepdims=False),
        _naive.global_max_pool(x)[0],
    )
    np.testing.assert_array_equal(
        to_last(refcnn.global_max_pool_backward(dy, xf, data_format=fmt, keepdims=False)),
        refcnn.max_pool_backward(dy.reshape(shape[0], *([1] * rank), shape[-1]), x, shape[1:-1]),
    )
    np.testing.assert_array_equal(
        to_last(refcnn.global_avg_pool(xf, data_format=fmt)),
        refcnn.global_avg_pool(x),
    )
    np.testing.assert_array_equal(
        to_last(
            refcnn.global_avg_pool_backward(dy, first_shape(shape), data_format=fmt, keepdims=False)
        ),
        refcnn.global_avg_pool_backward(dy, shape, keepdims=False),
    )


def test_global_pool_dtypes_and_float16_accumulation() -> None:
    # float16 steps by 2 at 2048: a float16 running sum of 2048 + 1 + 1 + 1 stays 2048.
    x = np.asarray([2048, 1, 1, 1], dtype=np.float16).reshape(1, 2, 2, 1)
    y = refcnn.global_avg_pool(x)
    assert y.dtype == np.float16
    assert y.ravel().tolist() == [513.0]  # 2051 / 4 = 512.75, rounded once to even
    xi = np.asarray([[3, 7], [7, 1]], dtype=np.uint8).reshape(1, 2, 2, 1)
    assert refcnn.global_max_pool(xi, keepdims=False).tolist() == [[7]]
    dx = refcnn.global_max_pool_backward(np.asarray([[5]], dtype=np.uint8), xi, keepdims=False)
    assert dx.dtype == np.uint8
    assert dx.ravel().tolist() == [0, 5, 0, 0]  # the first 7


# --------------------------------------------------------------------------------------------
# Inputs left alone, empty shapes
# --------------------------------------------------------------------------------------------


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4, 5, 2))
    kw: dict[str, Any] = {"strides": 1, "padding": ((1, 0), (0, 1), (1, 1)), "ceil_mode": True}
    dy = np.ones(refcnn.max_pool(x, 2, **kw).shape)
    g = np.ones((2, 2))
    for a in (x, dy, g):
        a.flags.writeable = False
    refcnn.max_pool(x, 2, **kw)
    refcnn.max_pool_with_argmax(x, 2, **kw)
    refcnn.max_pool_backward(dy, x, 2, **kw)
    refcnn.avg_pool(x, 2, **kw)
    refcnn.avg_pool_backward(dy, x.shape, 2, **kw)
    refcnn.global_max_pool(x)
    refcnn.global_max_pool_backward(g, x, keepdims=False)
    refcnn.global_avg_pool(x)
    refcnn.global_avg_pool_backward(g, x.shape, keepdims=False)


@pytest.mark.parametrize(
    ("shape", "ksize", "out_shape"),
    [
        ((0, 5, 2), 2, (0, 2, 2)),
        ((1, 5, 0), 2, (1, 2, 0)),
        ((2, 2, 3, 3, 1), 3, (2, 0, 1, 1, 1)),
    ],
)
def test_empty_shapes(shape: tuple[int, ...], ksize: int, out_shape: tuple[int, ...]) -> None:
    x = np.ones(shape)
    y, argmax = refcnn.max_pool_with_argmax(x, ksize)
    assert y.shape == argmax.shape == out_shape
    assert refcnn.avg_pool(x, ksize).shape == out_shape
    dx = refcnn.max_pool_backward(np.ones(out_shape), x, ksize)
    assert dx.shape == shape
    assert not dx.any()
    dx = refcnn.avg_pool_backward(np.ones(out_shape), shape, ksize)
    assert dx.shape == shape
    assert not dx.any()


# --------------------------------------------------------------------------------------------
# Bad input: every class raises, names the function and the argument
# --------------------------------------------------------------------------------------------

X1 = np.zeros((1, 4, 1))
X3 = np.zeros((1, 2, 4, 4, 1))
DY3 = np.zeros((1, 1, 2, 2, 1))
G = np.zeros((1, 1))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: refcnn.max_pool(np.zeros((2, 3)), 2),
            ValueError,
            r"^max_pool: x must be 3-D, 4-D or 5-D \(\(N, W, C\), \(N, H, W, C\), "
            r"\(N, D, H, W, C\) for data_format None\), got shape \(2, 3\)",
        ),
        (
            lambda: refcnn.avg_pool(np.zeros((1, 2, 2, 2, 2, 1)), 2),
            ValueError,
            r"^avg_pool: x must be 3-D, 4-D or 5-D .*got shape \(1, 2, 2, 2, 2, 1\)",
        ),
        (
            lambda: refcnn.max_pool(X3, 2, data_format="NCHW"),
            ValueError,
            r"^max_pool: x must be 4-D \(N, C, H, W\), got shape \(1, 2, 4, 4, 1\)",
        ),
        (
            lambda: refcnn.max_pool3d(X3, 2, data_format="NCHW"),
            ValueError,
            r"^max_pool3d: data_format must be None, 'NDHWC' or 'NCDHW' for 3 spatial axes, "
            r"got 'NCHW' \(a 2-D layout\)",
        ),
        (
            lambda: refcnn.max_pool1d(X1, 2, data_format="nwc"),
            ValueError,
            r"^max_pool1d: data_format must be None or 'NWC' or 'NCW', got 'nwc'",
        ),
        (
            lambda: refcnn.max_pool(X1, 2, data_format="channels_last"),
            ValueError,
            r"^max_pool: data_format must be None or one of 'NWC', 'NCW', .*'channels_last'",
        ),
        (
            lambda: refcnn.avg_pool(X1, 2, data_format=1),
            TypeError,
            r"^avg_pool: data_format must be None or a string, got 1 of type int",
        ),
        (
            lambda: refcnn.max_pool1d(np.zeros((1, 4, 4, 1)), 2),
            ValueError,
            r"^max_pool1d: x must be 3-D \(N, W, C\), got shape \(1, 4, 4, 1\)",
        ),
        (
            lambda: refcnn.avg_pool3d(X1, 2, data_format="NCDHW"),
            ValueError,
            r"^avg_pool3d: x must be 5-D \(N, C, D, H, W\), got shape \(1, 4, 1\)",
        ),
        (
            lambda: refcnn.max_pool(X3, (2, 2)),
            ValueError,
            r"^max_pool: ksize must be an int or a sequence of 3 ints, got \(2, 2\)",
        ),
        (
            lambda: refcnn.max_pool(X3, 2, dilations=0),
            ValueError,
            r"^max_pool: dilations must be >= 1",
        ),
        (
            lambda: refcnn.max_pool(X3, 2, dilations=(1, 1.5, 1)),
            TypeError,
            r"^max_pool: dilations must be an int, got 1\.5",
        ),
        (
            lambda: refcnn.avg_pool(X3, 2, ceil_mode=1),
            TypeError,
            r"^avg_pool: ceil_mode must be a bool, got 1 of type int",
        ),
        (
            lambda: refcnn.max_pool(X3, 2, padding=((0, 0), (0, 0))),
            ValueError,
            r"^max_pool: padding must be a mode string or 3 \(before, after\) pairs",
        ),
        (
            lambda: refcnn.max_pool_with_argmax(X1, 2, strides=(1, 1)),
            ValueError,
            r"^max_pool_with_argmax: strides must be an int or a sequence of 1 ints",
        ),
        (
            lambda: refcnn.max_pool_backward(DY3, X3.astype(np.float32), 2),
            TypeError,
            r"^max_pool_backward: arrays must share one dtype .*dy=float64, x=float32",
        ),
        (
            lambda: refcnn.max_pool_backward(np.zeros((1, 2, 2, 1)), X3, 2),
            ValueError,
            r"^max_pool_backward: dy must be 5-D \(N, OD, OH, OW, C\), got shape \(1, 2, 2, 1\)",
        ),
        (
            lambda: refcnn.max_pool_backward(np.zeros((1, 1, 2, 3, 1)), X3, 2),
            ValueError,
            r"^max_pool_backward: dy must have shape \(1, 1, 2, 2, 1\) \(the forward output for "
            r"x shape \(1, 2, 4, 4, 1\)\), got \(1, 1, 2, 3, 1\)",
        ),
        (
            lambda: refcnn.max_pool_backward(None, X3, 2),
            TypeError,
            r"^max_pool_backward: dy must be an array, got None",
        ),
        (
            lambda: refcnn.avg_pool_backward(DY3, (1, 2, 4, 4, 1, 1), 2),
            ValueError,
            r"^avg_pool_backward: input_shape must be 3 or 4 or 5 non-negative ints",
        ),
        (
            lambda: refcnn.avg_pool_backward(DY3, (1, 2, 4, 4, 1), 2, data_format="NCHW"),
            ValueError,
            r"^avg_pool_backward: data_format must be None, 'NDHWC' or 'NCDHW' for 3 spatial",
        ),
        (
            lambda: refcnn.avg_pool_backward(DY3.astype(np.int64), X3.shape, 2),
            TypeError,
            r"^avg_pool_backward: dy must have a real floating or object",
        ),
        (
            lambda: refcnn.avg_pool(X3.astype(np.int32), 2),
            TypeError,
            r"^avg_pool: x must have a real floating or object .*int32",
        ),
        (
            lambda: refcnn.avg_pool_backward(np.zeros((1, 1, 2, 2, 2)), X3.shape, 2),
            ValueError,
            r"^avg_pool_backward: dy must have shape \(1, 1, 2, 2, 1\) \(the forward output for "
            r"input_shape \(1, 2, 4, 4, 1\)\)",
        ),
        (
            lambda: refcnn.max_pool1d(X1, 2, padding=((10**20, 0),)),
            ValueError,
            r"^max_pool1d: ksize, strides, dilations and padding give coordinates up to",
        ),
        # global pools
        (
            lambda: refcnn.global_max_pool(np.zeros((1, 0, 2, 1))),
            ValueError,
            r"^global_max_pool: x of shape \(1, 0, 2, 1\) has an empty spatial axis",
        ),
        (
            lambda: refcnn.global_avg_pool(np.zeros((1, 2, 2, 1)), keepdims=None),
            TypeError,
            r"^global_avg_pool: keepdims must be a bool, got None",
        ),
        (
            lambda: refcnn.global_avg_pool(np.zeros((1, 2, 2, 1), dtype=np.int8)),
            TypeError,
            r"^global_avg_pool: x must have a real floating or object .*int8",
        ),
        (
            lambda: refcnn.global_max_pool(np.zeros((1, 2, 2, 1)), data_format="NCW"),
            ValueError,
            r"^global_max_pool: x must be 3-D \(N, C, W\), got shape \(1, 2, 2, 1\)",
        ),
        (
            lambda: refcnn.global_max_pool_backward(
                np.zeros((1, 1, 1, 1)), np.zeros((1, 2, 2, 1)), keepdims=False
            ),
            ValueError,
            r"^global_max_pool_backward: dy must have shape \(1, 1\) \(the forward output for x "
            r"shape \(1, 2, 2, 1\)\), got \(1, 1, 1, 1\)",
        ),
        (
            lambda: refcnn.global_max_pool_backward(
                G.astype(np.float32), np.zeros((1, 2, 1)), keepdims=False
            ),
            TypeError,
            r"^global_max_pool_backward: arrays must share one dtype",
        ),
        (
            lambda: refcnn.global_max_pool_backward(None, np.zeros((1, 2, 1))),
            TypeError,
            r"^global_max_pool_backward: dy must be an array, got None",
        ),
        (
            lambda: refcnn.global_avg_pool_backward(G, (1, 2), keepdims=False),
            ValueError,
            r"^global_avg_pool_backward: input_shape must be 3 or 4 or 5 non-negative ints",
        ),
        (
            lambda: refcnn.global_avg_pool_backward(G, (1, 2, 2, 1)),
            ValueError,
            r"^global_avg_pool_backward: dy must have shape \(1, 1, 1, 1\)",
        ),
        (
            lambda: refcnn.global_avg_pool_backward(
                G, (1, 2, 1), data_format="NCHW", keepdims=False
            ),
            ValueError,
            r"^global_avg_pool_backward: data_format must be None, 'NWC' or 'NCW' for 1 spatial",
        ),
    ],
)
def test_bad_input_raises(call: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------------
# The tap plan of one axis, against brute force
# --------------------------------------------------------------------------------------------


@given(
    st.integers(1, 12),
    st.integers(1, 40),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(0, 40),
    st.integers(1, 30),
)
def test_axis_spans_are_exactly_the_real_taps(
    size: int, kernel: int, stride: int, dilation: int, before: int, out: int
) -> None:
    spans = _pool_routes.axis_spans(1, size, out, kernel, stride, dilation, before).spans
    real = {
        (i, t)
        for i in range(out)
        for t in range(kernel)
        if 0 <= i * stride + t * dilation - before < size
    }
    listed = set()
    for span in spans:
        for i in range(span.lo, span.hi):
            position = i * stride + span.tap * dilation - before
            assert position == span.first + (i - span.lo) * stride
            listed.add((i, span.tap))
        # Windows [lo, lo + fresh) have no earlier real tap; the rest have one.
        for i in range(span.lo, span.hi):
            earlier = any((i, t) in real for t in range(span.tap))
            assert earlier == (i >= span.lo + span.fresh), (i, span)
    assert listed == real
    assert [s.tap for s in spans] == sorted({t for _, t in real})
    # Never more spans than (window, real element) pairs: the cost bound.
    assert len(spans) <= len(real)


def test_signed_zero_ties_keep_the_first_index() -> None:
    # -0.0 == +0.0: a tie. The index is the first; the zero's sign is not specified.
    x = row([-0.0, 0.0, -1.0])
    y, argmax = refcnn.max_pool_with_argmax(x, 3)
    assert flat(y) == [0.0]
    assert flat(argmax) == [0]
    assert flat(refcnn.max_pool_backward(row([1.0]), x, 3)) == [1.0, 0.0, 0.0]


def test_validated_calls_are_cached_by_value_and_type() -> None:
    # A valid call is reused; an equal-comparing argument of the wrong type still raises.
    x = np.ones((1, 4, 4, 1))
    assert refcnn.max_pool2d(x, 2, ceil_mode=True).shape == (1, 2, 2, 1)
    with pytest.raises(TypeError, match=r"^max_pool2d: ceil_mode must be a bool, got 1"):
        refcnn.max_pool2d(x, 2, ceil_mode=1)
    with pytest.raises(TypeError, match=r"^max_pool2d: ksize must be an int, got 2\.0"):
        refcnn.max_pool2d(x, 2.0)
    with pytest.raises(TypeError, match=r"^max_pool2d: strides must be an int, got True"):
        refcnn.max_pool2d(x, 2, strides=(True, 1))
    # Lists key apart from tuples and give the same result; arrays are not cached at all.
    np.testing.assert_array_equal(
        refcnn.max_pool2d(x, [2, 2], padding=[[0, 1], [1, 0]]),
        refcnn.max_pool2d(x, (2, 2), padding=((0, 1), (1, 0))),
    )
    np.testing.assert_array_equal(
        refcnn.max_pool2d(x, np.array([2, 2])), refcnn.max_pool2d(x, (2, 2))
    )
    # The cached per-axis counts are shared, so they are read-only.
    for _ in range(2):
        y = refcnn.avg_pool2d(x, 3, strides=1, padding="SAME")
        assert y.flags.writeable
