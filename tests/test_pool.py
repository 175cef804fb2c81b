"""Max and average pooling: hand-worked cases, tie and NaN routing, and properties.

Oracles: literal values worked by hand, the loop transcriptions in :mod:`refcnn._naive`,
exact ``fractions.Fraction`` arithmetic, central finite differences that are exact by
construction, and the adjoint identity. Float results are compared exactly wherever the
arithmetic is exact (small integers, dyadic steps); the one float64 comparison that is not
uses the a-priori summation error bound, derived in :func:`assert_within_summation_bound`.
"""

from __future__ import annotations

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
from refcnn import _naive
from refcnn.padding import normalize_padding, window_geometry

Array = npt.NDArray[Any]
Padding = str | tuple[tuple[int, int], tuple[int, int]]

# The loop oracles and Fraction arithmetic are slow: run half the active profile's examples.
FEW = settings(max_examples=max(10, settings().max_examples // 2), deadline=None)

_fraction = np.frompyfunc(Fraction, 2, 1)


def image(rows: Any, dtype: Any = np.float64) -> Array:
    """One single-channel image ``(1, H, W, 1)`` from a nested list of rows."""
    return np.asarray(rows, dtype=dtype)[None, :, :, None]


def plane(a: Array) -> list[list[Any]]:
    """The ``(H, W)`` plane of a one-image, one-channel NHWC array, as nested lists."""
    assert a.shape[0] == 1, a.shape
    assert a.shape[3] == 1, a.shape
    return a[0, :, :, 0].tolist()


# --------------------------------------------------------------------------------------------
# Hypothesis strategies
# --------------------------------------------------------------------------------------------


class PoolCase(NamedTuple):
    """One pooling geometry; its repr is a reproducer."""

    shape: tuple[int, int, int, int]
    ksize: int | tuple[int, int]
    strides: int | tuple[int, int] | None
    padding: Padding

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"strides": self.strides, "padding": self.padding}

    @property
    def kernel(self) -> tuple[int, int]:
        k = self.ksize
        return (k, k) if isinstance(k, int) else k

    def out_shape(self) -> tuple[int, int, int, int]:
        k = self.kernel
        s = self.strides if self.strides is not None else k
        s = (s, s) if isinstance(s, int) else s
        geo = window_geometry(
            self.shape[1:3], k, s, (1, 1), normalize_padding("test", self.padding)
        )
        return (self.shape[0], geo.out_h, geo.out_w, self.shape[3])


@st.composite
def pool_cases(
    draw: st.DrawFn, *, max_batch: int = 3, max_side: int = 9, max_channels: int = 3
) -> PoolCase:
    """Shapes, kernels 1-4, strides 1-4 (also above the kernel, also the default), all paddings."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ksize: int | tuple[int, int] = kh if kh == kw and draw(st.booleans()) else (kh, kw)
    strides = draw(st.none() | st.integers(1, 4) | st.tuples(st.integers(1, 4), st.integers(1, 4)))
    mode = draw(st.sampled_from(["VALID", "SAME", "SAME_LOWER", "explicit"]))
    padding: Padding = mode
    if mode == "explicit":
        # Any pads smaller than the kernel, asymmetric included.
        padding = (
            (draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))),
            (draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))),
        )
    shape = (
        draw(st.integers(0, max_batch)),
        draw(st.integers(1, max_side)),
        draw(st.integers(1, max_side)),
        draw(st.integers(1, max_channels)),
    )
    return PoolCase(shape, ksize, strides, padding)


def small_ints(shape: tuple[int, ...], lo: int = -3, hi: int = 3) -> st.SearchStrategy[Array]:
    """Small integers (many ties), as int64; cast them to float for exact float arithmetic."""
    return hnp.arrays(np.int64, shape, elements=st.integers(lo, hi))


@st.composite
def fraction_arrays(draw: st.DrawFn, shape: tuple[int, ...]) -> Array:
    """Object arrays of ``Fraction``s with small numerators and denominators 1-6."""
    nums = draw(small_ints(shape, -9, 9))
    dens = draw(small_ints(shape, 1, 6))
    return np.asarray(_fraction(nums, dens), dtype=object)


def assert_exact_fractions(a: Array) -> None:
    """Every element is an exact rational (nothing went through float on the way).

    Positions no window reaches hold the ``int`` 0 of ``np.zeros(..., dtype=object)``.
    """
    assert a.dtype == object
    assert all(isinstance(v, Fraction | int) for v in a.flat), a


def assert_within_summation_bound(
    actual: Array, exact: Array, abs_exact: Array, terms: int
) -> None:
    """``|actual - exact| <= gamma_terms * abs_exact`` elementwise, checked in exact rationals.

    For a float64 result of (at most) ``terms - 1`` recursive additions and one division per
    term or per sum, Higham's a-priori bound (Accuracy and Stability of Numerical Algorithms,
    2nd ed., eqs. 3.4 and 4.4) is ``gamma_m * sum |terms_i|`` with ``gamma_m = m u / (1 - m u)``
    and unit roundoff ``u = 2**-53``. ``abs_exact`` is that exact sum of magnitudes.
    """
    u = Fraction(1, 2**53)
    gamma = terms * u / (1 - terms * u)
    assert actual.shape == exact.shape == abs_exact.shape
    for index in np.ndindex(actual.shape):
        error = abs(Fraction(float(actual[index])) - exact[index])
        assert error <= gamma * abs_exact[index], (index, actual[index], exact[index])


# --------------------------------------------------------------------------------------------
# Hand-worked cases
# --------------------------------------------------------------------------------------------

X4 = [
    [1, 3, 2, 4],
    [5, 7, 6, 8],
    [9, 2, 1, 0],
    [3, 4, 8, 5],
]


def test_max_pool_4x4_k2_s2_hand_worked() -> None:
    # Windows: {1,3,5,7} {2,4,6,8} / {9,2,3,4} {1,0,8,5}.
    assert plane(refcnn.max_pool2d(image(X4), 2)) == [[7, 8], [9, 8]]
    assert plane(refcnn.max_pool2d(image(X4), (2, 2), strides=2)) == [[7, 8], [9, 8]]


def test_max_pool_backward_4x4_k2_s2_hand_worked() -> None:
    # Each window's dy lands on its max: 7 at (1,1), 8 at (1,3), 9 at (2,0), 8 at (3,2).
    dx = refcnn.max_pool2d_backward(image([[1, 2], [3, 4]]), image(X4), 2)
    assert plane(dx) == [
        [0, 0, 0, 0],
        [0, 1, 0, 2],
        [3, 0, 0, 0],
        [0, 0, 4, 0],
    ]


def test_max_pool_3x3_k2_s1_overlapping_hand_worked() -> None:
    x = image([[1, 5, 2], [4, 3, 9], [0, 6, 7]])
    assert plane(refcnn.max_pool2d(x, 2, strides=1)) == [[5, 9], [6, 9]]
    # The 9 at (1,2) is the max of two windows: their gradients add up.
    dx = refcnn.max_pool2d_backward(image([[1, 2], [3, 4]]), x, 2, strides=1)
    assert plane(dx) == [[0, 1, 0], [0, 0, 6], [0, 3, 0]]


X3 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


@pytest.mark.parametrize(
    ("padding", "count_include_pad", "expected"),
    [
        # SAME, 3x3 input, 2x2 windows, stride 2: out 2x2, one pad row after, one pad col after.
        # Windows {1,2,4,5}, {3,6 | 2 pads}, {7,8 | 2 pads}, {9 | 3 pads}.
        ("SAME", False, [[12 / 4, 9 / 2], [15 / 2, 9 / 1]]),
        ("SAME", True, [[12 / 4, 9 / 4], [15 / 4, 9 / 4]]),
        # SAME_LOWER: the pad row and column go before.
        # Windows {1 | 3 pads}, {2,3 | 2 pads}, {4,7 | 2 pads}, {5,6,8,9}.
        ("SAME_LOWER", False, [[1 / 1, 5 / 2], [11 / 2, 28 / 4]]),
        ("SAME_LOWER", True, [[1 / 4, 5 / 4], [11 / 4, 28 / 4]]),
        # The same geometry as SAME, spelled out.
        (((0, 1), (0, 1)), False, [[3.0, 4.5], [7.5, 9.0]]),
        # No padding: both divisors agree.
        ("VALID", False, [[3.0]]),
        ("VALID", True, [[3.0]]),
    ],
)
def test_avg_pool_count_include_pad_hand_worked(
    padding: Padding, count_include_pad: bool, expected: list[list[float]]
) -> None:
    y = refcnn.avg_pool2d(
        image(X3), 2, strides=2, padding=padding, count_include_pad=count_include_pad
    )
    assert plane(y) == expected


@pytest.mark.parametrize(
    ("count_include_pad", "expected"),
    [
        # dy = 1 per window, shared over its real elements: 1/4, 1/2, 1/2, 1/1.
        (False, [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]]),
        # Shared over the full 2x2 window; what the pads would have received is dropped.
        (True, [[0.25, 0.25, 0.25], [0.25, 0.25, 0.25], [0.25, 0.25, 0.25]]),
    ],
)
def test_avg_pool_backward_same_hand_worked(
    count_include_pad: bool, expected: list[list[float]]
) -> None:
    dx = refcnn.avg_pool2d_backward(
        image(np.ones((2, 2))),
        (1, 3, 3, 1),
        2,
        padding="SAME",
        count_include_pad=count_include_pad,
    )
    assert plane(dx) == expected


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int64])
def test_max_pool_padding_never_wins(dtype: Any) -> None:
    # All-negative input, 3x3 SAME: zero padding would return 0 at every border position.
    x = image(-np.asarray(X3), dtype)
    y = refcnn.max_pool2d(x, 3, strides=1, padding="SAME")
    assert y.dtype == dtype
    assert plane(y) == [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]]


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32])
def test_max_pool_integer_extremes(dtype: Any) -> None:
    # The dtype minimum is an ordinary value: no sentinel can collide with it.
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    x = image([[lo, lo, lo], [lo, hi, lo]], dtype)
    y = refcnn.max_pool2d(x, 2, strides=1, padding="SAME_LOWER")
    assert y.dtype == dtype
    assert plane(y) == [[lo, lo, lo], [lo, hi, hi]]
    dx = refcnn.max_pool2d_backward(np.ones_like(y), x, 2, strides=1, padding="SAME_LOWER")
    assert dx.dtype == dtype
    # Top row: each window's first real element; bottom row: the max.
    assert plane(dx) == [[3, 1, 0], [0, 2, 0]]


# --------------------------------------------------------------------------------------------
# Ties and NaN
# --------------------------------------------------------------------------------------------


# (x, ksize, strides, padding, dy, expected dx). PyTorch 2.13 and TensorFlow 2.21 (CPU) give
# the same dx on the four unpadded cases (checked outside this suite; both take the first max).
TIES = [
    # All equal, overlapping (stride 1): each window's top-left element takes its dy.
    ([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 2, 1, "VALID", [[1, 2], [3, 4]],
     [[1, 2, 0], [3, 4, 0], [0, 0, 0]]),
    # Windows 0 5 / 5 5, 5 5 / 5 0, 5 5 / 5 0, 5 0 / 0 5: the first 5 in row-major order.
    ([[0, 5, 5], [5, 5, 0], [5, 0, 5]], 2, 1, "VALID", [[1, 10], [100, 1000]],
     [[0, 11, 0], [100, 1000, 0], [0, 0, 0]]),
    # All equal, non-overlapping: exactly one element per window.
    ([[2, 2, 2, 2]] * 4, 2, 2, "VALID", [[1, 2], [3, 4]],
     [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]),
    # Anti-diagonal tie: (0,1) comes before (1,0).
    ([[0, 7], [7, 0]], 2, 2, "VALID", [[1]], [[0, 1], [0, 0]]),
    # All equal and negative with the pads before: the first *real* element, x[0,0], wins
    # every window (a pad, or a zero pad, never takes the gradient).
    ([[-1, -1], [-1, -1]], 2, 1, "SAME_LOWER", [[1, 2], [3, 4]], [[10, 0], [0, 0]]),
]  # fmt: skip


@pytest.mark.parametrize("case", TIES)
@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_max_pool_ties_go_to_first_in_row_major_order(case: tuple[Any, ...], dtype: Any) -> None:
    x, ksize, strides, padding, dy, expected = case
    dx = refcnn.max_pool2d_backward(
        image(dy, dtype), image(x, dtype), ksize, strides=strides, padding=padding
    )
    assert dx.dtype == dtype
    assert plane(dx) == expected


def test_max_pool_nan_propagates_forward() -> None:
    x = image([[1, np.nan, 3, 4], [5, 6, 7, 8]])
    y = refcnn.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0])
    assert y[0, 0, 1, 0] == 8  # the other window is unaffected


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([[np.nan, 1], [2, 3]], [[1, 0], [0, 0]]),
        ([[1, np.nan], [9, np.nan]], [[0, 1], [0, 0]]),  # first NaN, not the larger 9
        ([[1, 2], [3, np.nan]], [[0, 0], [0, 1]]),
    ],
)
def test_max_pool_nan_gradient_goes_to_first_nan(x: list[list[float]], expected: Any) -> None:
    assert np.isnan(refcnn.max_pool2d(image(x), 2)).all()
    dx = refcnn.max_pool2d_backward(image([[1.0]]), image(x), 2)
    assert plane(dx) == expected


@FEW
@given(st.data())
def test_max_pool_nan_properties(data: st.DataObject) -> None:
    case = data.draw(pool_cases(max_batch=2, max_side=6))
    x = data.draw(small_ints(case.shape)).astype(np.float64)
    x[data.draw(hnp.arrays(np.bool_, case.shape))] = np.nan
    y = refcnn.max_pool2d(x, case.ksize, **case.kwargs)
    np.testing.assert_array_equal(y, _naive.max_pool(x, case.ksize, **case.kwargs))
    dy = data.draw(small_ints(y.shape)).astype(np.float64)
    np.testing.assert_array_equal(
        refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs),
        _naive.max_pool_backward(dy, x, case.ksize, **case.kwargs),
    )


# --------------------------------------------------------------------------------------------
# Properties against the loop oracles
# --------------------------------------------------------------------------------------------


@FEW
@given(st.data())
def test_forward_matches_naive_float64(data: st.DataObject) -> None:
    # Small-integer data: every sum is exact and both sides divide the same sum by the same
    # count, so the results are bitwise equal; ties are frequent.
    case = data.draw(pool_cases())
    x = data.draw(small_ints(case.shape)).astype(np.float64)
    y = refcnn.max_pool2d(x, case.ksize, **case.kwargs)
    assert y.shape == case.out_shape()
    np.testing.assert_array_equal(y, _naive.max_pool(x, case.ksize, **case.kwargs))
    for include in (False, True):
        np.testing.assert_array_equal(
            refcnn.avg_pool2d(x, case.ksize, count_include_pad=include, **case.kwargs),
            _naive.avg_pool(x, case.ksize, count_include_pad=include, **case.kwargs),
        )


@FEW
@given(st.data())
def test_max_pool_backward_matches_naive_with_ties(data: st.DataObject) -> None:
    case = data.draw(pool_cases())
    x = data.draw(small_ints(case.shape, -2, 2)).astype(np.float64)
    dy = data.draw(small_ints(case.out_shape(), -9, 9)).astype(np.float64)
    dx = refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs)
    np.testing.assert_array_equal(dx, _naive.max_pool_backward(dy, x, case.ksize, **case.kwargs))
    # One element per window: with dy = 1 the total gradient counts the windows.
    ones = np.ones(case.out_shape())
    assert refcnn.max_pool2d_backward(ones, x, case.ksize, **case.kwargs).sum() == ones.size


@FEW
@given(st.data())
def test_all_four_match_naive_exactly_in_fractions(data: st.DataObject) -> None:
    case = data.draw(pool_cases(max_batch=2, max_channels=2))
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    y = refcnn.max_pool2d(x, case.ksize, **case.kwargs)
    np.testing.assert_array_equal(y, _naive.max_pool(x, case.ksize, **case.kwargs))
    dx = refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs)
    np.testing.assert_array_equal(dx, _naive.max_pool_backward(dy, x, case.ksize, **case.kwargs))
    for include in (False, True):
        kwargs = {**case.kwargs, "count_include_pad": include}
        y = refcnn.avg_pool2d(x, case.ksize, **kwargs)
        assert_exact_fractions(y)
        np.testing.assert_array_equal(y, _naive.avg_pool(x, case.ksize, **kwargs))
        dx = refcnn.avg_pool2d_backward(dy, case.shape, case.ksize, **kwargs)
        assert_exact_fractions(dx)
        np.testing.assert_array_equal(
            dx, _naive.avg_pool_backward(dy, case.shape, case.ksize, **kwargs)
        )


@FEW
@given(st.data())
def test_avg_pool_float64_within_summation_bound(data: st.DataObject) -> None:
    # Arbitrary float64 data against the exact rational result of the same float inputs.
    case = data.draw(pool_cases(max_batch=2, max_channels=2))
    finite = st.floats(-1e3, 1e3, allow_subnormal=False)
    x = data.draw(hnp.arrays(np.float64, case.shape, elements=finite))
    dy = data.draw(hnp.arrays(np.float64, case.out_shape(), elements=finite))
    as_fractions = np.frompyfunc(Fraction, 1, 1)
    xf, dyf = as_fractions(x).astype(object), as_fractions(dy).astype(object)
    terms = case.kernel[0] * case.kernel[1]  # terms per window, and windows per pixel
    for include in (False, True):
        kwargs = {**case.kwargs, "count_include_pad": include}
        assert_within_summation_bound(
            refcnn.avg_pool2d(x, case.ksize, **kwargs),
            refcnn.avg_pool2d(xf, case.ksize, **kwargs),
            refcnn.avg_pool2d(abs(xf), case.ksize, **kwargs),
            terms,
        )
        assert_within_summation_bound(
            refcnn.avg_pool2d_backward(dy, case.shape, case.ksize, **kwargs),
            refcnn.avg_pool2d_backward(dyf, case.shape, case.ksize, **kwargs),
            refcnn.avg_pool2d_backward(abs(dyf), case.shape, case.ksize, **kwargs),
            terms,
        )


# --------------------------------------------------------------------------------------------
# Gradient identities
# --------------------------------------------------------------------------------------------


@FEW
@given(st.data())
def test_avg_pool_backward_is_the_adjoint(data: st.DataObject) -> None:
    # <avg(x), dy> == <x, avg_backward(dy)>, exactly, in rationals.
    case = data.draw(pool_cases(max_batch=2, max_channels=2))
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    for include in (False, True):
        kwargs = {**case.kwargs, "count_include_pad": include}
        lhs = np.sum(refcnn.avg_pool2d(x, case.ksize, **kwargs) * dy)
        rhs = np.sum(x * refcnn.avg_pool2d_backward(dy, case.shape, case.ksize, **kwargs))
        assert lhs == rhs


@FEW
@given(st.data())
def test_max_pool_backward_picks_window_maxima(data: st.DataObject) -> None:
    # Each window's dy lands on an element equal to its max: <dx, x> == <dy, max_pool(x)>.
    case = data.draw(pool_cases(max_batch=2, max_channels=2))
    x = data.draw(fraction_arrays(case.shape))
    dy = data.draw(fraction_arrays(case.out_shape()))
    dx = refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs)
    assert np.sum(dx * x) == np.sum(dy * refcnn.max_pool2d(x, case.ksize, **case.kwargs))


@FEW
@given(st.data())
def test_max_pool_backward_matches_central_differences(data: st.DataObject) -> None:
    # Distinct integers, a step of 1/4 and integer dy: x +- h keeps every window's order (the
    # values stay >= 1/2 apart), and every sum and quotient is a small dyadic rational, so the
    # central difference of L(x) = <max_pool(x), dy> is exact and equals dx bit for bit.
    case = data.draw(pool_cases(max_batch=2, max_side=6, max_channels=2))
    size = int(np.prod(case.shape))
    order = data.draw(st.permutations(range(size)))
    x = np.asarray(order, dtype=np.float64).reshape(case.shape)
    dy = data.draw(small_ints(case.out_shape(), -5, 5)).astype(np.float64)
    dx = refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs)

    def loss(v: Array) -> float:
        return float(np.sum(refcnn.max_pool2d(v, case.ksize, **case.kwargs) * dy))

    h = 0.25
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        numeric[index] = (loss(x + step) - loss(x - step)) / (2 * h)
    np.testing.assert_array_equal(dx, numeric)


# --------------------------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------------------------


@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 7))
def test_same_never_makes_a_window_of_padding_only(size: int, kernel: int, stride: int) -> None:
    # out = ceil(n/s) gives (out-1)*s <= n-1, so total = (out-1)*s + k - n <= k-1.
    for mode in ("SAME", "SAME_LOWER"):
        geo = window_geometry((size, size), (kernel, kernel), (stride, stride), (1, 1), mode)
        assert max(geo.pads[0]) < kernel
        # ...and every window meets the input: the last one starts inside it.
        assert (geo.out_h - 1) * stride - geo.pads[0][0] < size


@FEW
@given(st.data())
def test_padding_means_minus_inf_for_max_and_zero_for_avg(data: st.DataObject) -> None:
    # Any padding == VALID on an input padded by hand: -inf for max (never wins), zeros for
    # the sum, and a padded mask of ones to count the real elements.
    case = data.draw(pool_cases(max_batch=2, max_channels=2))
    x = data.draw(fraction_arrays(case.shape))
    k = case.kernel
    s = case.strides if case.strides is not None else k
    s = (s, s) if isinstance(s, int) else s
    pads = window_geometry(
        case.shape[1:3], k, s, (1, 1), normalize_padding("test", case.padding)
    ).pads
    widths = ((0, 0), pads[0], pads[1], (0, 0))
    valid = {"strides": case.strides, "padding": "VALID"}

    x_neg_inf = np.pad(x, widths, constant_values=-np.inf)
    np.testing.assert_array_equal(
        refcnn.max_pool2d(x, case.ksize, **case.kwargs),
        refcnn.max_pool2d(x_neg_inf, case.ksize, **valid),
    )
    x_zero = np.pad(x, widths, constant_values=Fraction(0))
    mask = np.pad(
        np.full(case.shape, Fraction(1), dtype=object), widths, constant_values=Fraction(0)
    )
    mean_with_pads = refcnn.avg_pool2d(x_zero, case.ksize, **valid)
    np.testing.assert_array_equal(
        refcnn.avg_pool2d(x, case.ksize, count_include_pad=True, **case.kwargs), mean_with_pads
    )
    np.testing.assert_array_equal(
        refcnn.avg_pool2d(x, case.ksize, **case.kwargs),
        mean_with_pads / refcnn.avg_pool2d(mask, case.ksize, **valid),
    )


@FEW
@given(st.data())
def test_max_pool_all_negative_never_pools_to_zero(data: st.DataObject) -> None:
    case = data.draw(pool_cases())
    x = data.draw(small_ints(case.shape, -9, -1)).astype(np.float64)
    assert (refcnn.max_pool2d(x, case.ksize, **case.kwargs) < 0).all()


# --------------------------------------------------------------------------------------------
# Dtypes, empty shapes, inputs left alone
# --------------------------------------------------------------------------------------------


@FEW
@given(st.data(), st.sampled_from([np.float16, np.float32]))
def test_max_pool_backward_narrow_floats_match_naive_with_ties(
    data: st.DataObject, dtype: Any
) -> None:
    # float16/float32 gradients are summed in float64 by a scatter-add; small integers keep
    # every sum exact, so any misrouted or dropped window shows up as a difference.
    case = data.draw(pool_cases())
    x = data.draw(small_ints(case.shape, -2, 2)).astype(dtype)
    dy = data.draw(small_ints(case.out_shape(), -9, 9)).astype(dtype)
    dx = refcnn.max_pool2d_backward(dy, x, case.ksize, **case.kwargs)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, _naive.max_pool_backward(dy, x, case.ksize, **case.kwargs))


@pytest.mark.parametrize("padding", ["VALID", "SAME", "SAME_LOWER"])
def test_max_pool_backward_float_scatter_matches_integer_scatter_across_batch_chunks(
    padding: str,
) -> None:
    # Images of 128*128*8 elements (1 MiB in 8-byte dtypes) are one batch chunk each, so the
    # 5 images cross four chunk boundaries; float64 and int64 scatter in their own dtype.
    # Small integers: both are exact.
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 4, size=(5, 128, 128, 8))
    y = refcnn.max_pool2d(x, 3, strides=2, padding=padding)
    dy = rng.integers(-9, 10, size=y.shape)
    by_loop = refcnn.max_pool2d_backward(dy, x, 3, strides=2, padding=padding)
    by_scatter = refcnn.max_pool2d_backward(
        dy.astype(np.float64), x.astype(np.float64), 3, strides=2, padding=padding
    )
    assert by_loop.dtype == np.int64
    np.testing.assert_array_equal(by_scatter, by_loop)


def test_max_pool_backward_integer_gradients_stay_exact_beyond_float64() -> None:
    # 2**60 + 1 is not a float64; overlapping windows sum such gradients in int64 exactly.
    x = np.zeros((1, 3, 3, 1), dtype=np.int64)
    x[0, 1, 1, 0] = 1  # the max of all four 2x2 windows
    dy = np.full((1, 2, 2, 1), 2**60 + 1, dtype=np.int64)
    dx = refcnn.max_pool2d_backward(dy, x, 2, strides=1)
    assert dx.dtype == np.int64
    assert dx[0, 1, 1, 0] == 4 * (2**60 + 1)
    assert dx.sum() == 4 * (2**60 + 1)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64])
def test_max_pool_keeps_integer_dtype(dtype: Any) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 100, size=(2, 5, 6, 3)).astype(dtype)
    for padding in ("VALID", "SAME", ((1, 0), (2, 1))):
        y = refcnn.max_pool2d(x, (2, 3), strides=(1, 2), padding=padding)
        assert y.dtype == dtype
        np.testing.assert_array_equal(
            y, _naive.max_pool(x, (2, 3), strides=(1, 2), padding=padding)
        )
        dx = refcnn.max_pool2d_backward(np.ones_like(y), x, (2, 3), strides=(1, 2), padding=padding)
        assert dx.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtypes_are_kept(dtype: Any) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 5, 2)).astype(dtype)
    kwargs: dict[str, Any] = {"strides": 2, "padding": "SAME"}
    y = refcnn.max_pool2d(x, 3, **kwargs)
    assert y.dtype == dtype
    assert refcnn.max_pool2d_backward(y, x, 3, **kwargs).dtype == dtype
    y = refcnn.avg_pool2d(x, 3, **kwargs)
    assert y.dtype == dtype
    assert refcnn.avg_pool2d_backward(y, x.shape, 3, **kwargs).dtype == dtype


def test_float16_avg_pool_accumulates_in_float32() -> None:
    # float16 steps by 2 at 2048: summing in float16 gives 2048 + 1 + 1 + 1 = 2048 -> 512.
    # In float32 the sum is 2051, 2051/4 = 512.75, a tie between float16 neighbours 512.5 and
    # 513 that rounds to even: 513 (PyTorch gives 513, TensorFlow's CPU kernel 512).
    x = image([[2048, 1], [1, 1]], np.float16)
    y = refcnn.avg_pool2d(x, 2)
    assert y.dtype == np.float16
    assert plane(y) == [[513.0]]
    # Backward: the centre pixel of a 3x3 input is in all four 2x2 windows and receives
    # 4096/4 + 3 * (2/4) = 1025.5, rounded once to even: 1026. Summed in float16 from the
    # large share on, each 1024 + 0.5 would round back to 1024.
    dy = image([[2, 2], [2, 4096]], np.float16)
    dx = refcnn.avg_pool2d_backward(dy, (1, 3, 3, 1), 2, strides=1)
    assert dx.dtype == np.float16
    assert dx[0, 1, 1, 0] == 1026


@pytest.mark.parametrize(
    ("shape", "ksize", "padding", "out_shape"),
    [
        ((0, 4, 4, 3), 2, "VALID", (0, 2, 2, 3)),  # empty batch
        ((2, 2, 2, 3), 3, "VALID", (2, 0, 0, 3)),  # kernel larger than the input (as TF)
        ((2, 2, 5, 1), (3, 1), "VALID", (2, 0, 5, 1)),
        ((1, 4, 4, 0), 2, "SAME", (1, 2, 2, 0)),  # no channels
        ((0, 3, 3, 1), 2, ((1, 1), (0, 1)), (0, 2, 2, 1)),
    ],
)
def test_empty_shapes(
    shape: tuple[int, int, int, int], ksize: Any, padding: Padding, out_shape: tuple[int, ...]
) -> None:
    x = np.ones(shape)
    y = refcnn.max_pool2d(x, ksize, padding=padding)
    assert y.shape == out_shape
    assert refcnn.avg_pool2d(x, ksize, padding=padding).shape == out_shape
    dy = np.ones(out_shape)
    dx = refcnn.max_pool2d_backward(dy, x, ksize, padding=padding)
    assert dx.shape == shape
    assert not dx.any()
    dx = refcnn.avg_pool2d_backward(dy, shape, ksize, padding=padding)
    assert dx.shape == shape
    assert not dx.any()


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 3, size=(2, 5, 4, 2)).astype(np.float64)
    kwargs: dict[str, Any] = {"strides": 1, "padding": ((1, 0), (0, 1))}
    dy = np.ones(refcnn.max_pool2d(x, 2, **kwargs).shape)
    x_copy, dy_copy = x.copy(), dy.copy()
    x.flags.writeable = False  # any write would raise
    dy.flags.writeable = False
    refcnn.max_pool2d(x, 2, **kwargs)
    refcnn.max_pool2d_backward(dy, x, 2, **kwargs)
    refcnn.avg_pool2d(x, 2, **kwargs)
    refcnn.avg_pool2d_backward(dy, x.shape, 2, **kwargs)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dy, dy_copy)


def test_accepts_nested_lists_and_defaults_strides_to_ksize() -> None:
    x = image(X4).tolist()
    assert plane(refcnn.max_pool2d(x, 2)) == plane(refcnn.max_pool2d(np.asarray(x), 2, strides=2))
    assert refcnn.max_pool2d(np.asarray(x), 2, strides=1).shape == (1, 3, 3, 1)


# --------------------------------------------------------------------------------------------
# Bad input: every class raises, names the function and the argument
# --------------------------------------------------------------------------------------------

X = np.zeros((1, 4, 4, 1))
DY = np.zeros((1, 2, 2, 1))
S = (1, 4, 4, 1)
max_pool, max_back = refcnn.max_pool2d, refcnn.max_pool2d_backward
avg_pool, avg_back = refcnn.avg_pool2d, refcnn.avg_pool2d_backward


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        # x / dy: None, rank, dtype
        (lambda: max_pool(None, 2), TypeError, r"^max_pool2d: x must be an array, got None"),
        (
            lambda: max_pool(np.zeros((4, 4, 1)), 2),
            ValueError,
            r"^max_pool2d: x must be 4-D \(N, H, W, C\), got shape \(4, 4, 1\)",
        ),
        (
            lambda: avg_pool(np.zeros((1, 1, 4, 4, 1)), 2),
            ValueError,
            r"^avg_pool2d: x must be 4-D .*got shape \(1, 1, 4, 4, 1\)",
        ),
        (lambda: max_pool(X.astype(complex), 2), TypeError, r"^max_pool2d: x .*complex128"),
        (lambda: max_pool(X.astype(bool), 2), TypeError, r"^max_pool2d: x .*dtype bool"),
        (lambda: max_pool(np.full((1, 2, 2, 1), "a"), 2), TypeError, r"^max_pool2d: x .*<U1"),
        (
            lambda: avg_pool(X.astype(np.int64), 2),
            TypeError,
            r"^avg_pool2d: x must have a real floating or object .*dtype int64",
        ),
        (lambda: avg_pool(X.astype(complex), 2), TypeError, r"^avg_pool2d: x .*complex128"),
        (lambda: max_back(None, X, 2), TypeError, r"^max_pool2d_backward: dy must be an array"),
        (lambda: max_back(DY, None, 2), TypeError, r"^max_pool2d_backward: x must be an array"),
        (
            lambda: max_back(DY[0], X, 2),
            ValueError,
            r"^max_pool2d_backward: dy must be 4-D .*got shape \(2, 2, 1\)",
        ),
        (
            lambda: max_back(DY.astype(np.float32), X, 2),
            TypeError,
            r"^max_pool2d_backward: .*dy=float32, x=float64",
        ),
        (lambda: avg_back(None, S, 2), TypeError, r"^avg_pool2d_backward: dy must be an array"),
        (
            lambda: avg_back(DY.astype(np.int32), S, 2),
            TypeError,
            r"^avg_pool2d_backward: dy .*dtype int32",
        ),
        # dy inconsistent with the forward output
        (
            lambda: max_back(np.zeros((1, 3, 3, 1)), X, 2),
            ValueError,
            r"^max_pool2d_backward: dy must have shape \(1, 2, 2, 1\) .*got \(1, 3, 3, 1\)",
        ),
        (
            lambda: max_back(np.zeros((2, 2, 2, 1)), X, 2),
            ValueError,
            r"^max_pool2d_backward: dy must have shape \(1, 2, 2, 1\)",
        ),
        (
            lambda: avg_back(DY, S, 2, strides=1),
            ValueError,
            r"^avg_pool2d_backward: dy must have shape \(1, 3, 3, 1\) .*got \(1, 2, 2, 1\)",
        ),
        (
            lambda: avg_back(DY, (1, 4, 4, 2), 2),
            ValueError,
            r"^avg_pool2d_backward: dy must have shape \(1, 2, 2, 2\)",
        ),
        # input_shape
        (lambda: avg_back(DY, None, 2), TypeError, r"^avg_pool2d_backward: input_shape .*None"),
        (
            lambda: avg_back(DY, (1, 4, 4), 2),
            ValueError,
            r"^avg_pool2d_backward: input_shape must be 4 non-negative ints, got \(1, 4, 4\)",
        ),
        (
            lambda: avg_back(DY, (1, 4, 4, -1), 2),
            ValueError,
            r"^avg_pool2d_backward: input_shape must be 4 non-negative ints",
        ),
        (
            lambda: avg_back(DY, (1, 4, 4, 1.0), 2),
            TypeError,
            r"^avg_pool2d_backward: input_shape must be an int, got 1\.0",
        ),
        (lambda: avg_back(DY, "1441", 2), TypeError, r"^avg_pool2d_backward: input_shape"),
        # ksize / strides
        (lambda: max_pool(X, 0), ValueError, r"^max_pool2d: ksize must be >= 1 .*got 0"),
        (lambda: max_pool(X, (2, -1)), ValueError, r"^max_pool2d: ksize must be >= 1"),
        (lambda: max_pool(X, None), TypeError, r"^max_pool2d: ksize must be an int, got None"),
        (lambda: avg_pool(X, 2.0), TypeError, r"^avg_pool2d: ksize must be an int, got 2\.0"),
        (lambda: avg_pool(X, True), TypeError, r"^avg_pool2d: ksize must be an int, got True"),
        (
            lambda: max_pool(X, (2, 2, 2)),
            ValueError,
            r"^max_pool2d: ksize must be an int or a pair \(h, w\), got \(2, 2, 2\)",
        ),
        (lambda: max_pool(X, 2, strides=0), ValueError, r"^max_pool2d: strides must be >= 1"),
        (
            lambda: max_back(DY, X, 2, strides=(2, 0)),
            ValueError,
            r"^max_pool2d_backward: strides must be >= 1",
        ),
        (
            lambda: avg_back(DY, S, 2, strides="2"),
            TypeError,
            r"^avg_pool2d_backward: strides must be an int",
        ),
        # padding
        (
            lambda: max_pool(X, 2, padding="FULL"),
            ValueError,
            r"^max_pool2d: padding must be one of VALID, SAME, SAME_LOWER .*'FULL'",
        ),
        (lambda: max_pool(X, 2, padding=None), TypeError, r"^max_pool2d: padding .*None"),
        (lambda: avg_pool(X, 2, padding=((1, 1),)), ValueError, r"^avg_pool2d: padding"),
        (
            lambda: avg_pool(X, 2, padding=((-1, 1), (0, 0))),
            ValueError,
            r"^avg_pool2d: padding .*negative",
        ),
        (
            lambda: max_pool(X, 2, padding=((2, 0), (0, 0))),
            ValueError,
            r"^max_pool2d: padding \(\(2, 0\), \(0, 0\)\) with ksize \(2, 2\), strides \(2, 2\) "
            r"and dilations \(1, 1\) gives window 0 of spatial axis 0 \(input size 4, pads "
            r"\(2, 0\)\) no real element",
        ),
        (
            lambda: max_back(DY, X, (3, 2), padding=((0, 0), (0, 2))),
            ValueError,
            r"^max_pool2d_backward: padding .* with ksize \(3, 2\), .* gives window 2 of "
            r"spatial axis 1 \(input size 4, pads \(0, 2\)\) no real element",
        ),
        (
            lambda: avg_pool(X, 1, padding=((0, 0), (1, 0))),
            ValueError,
            r"^avg_pool2d: padding .* with ksize \(1, 1\), .* gives window 0 of spatial axis 1 ",
        ),
        (
            lambda: avg_back(DY, S, 2, padding=((0, 3), (0, 0))),
            ValueError,
            r"^avg_pool2d_backward: padding .* gives window 2 of spatial axis 0 .* no real",
        ),
        (
            lambda: max_pool(np.zeros((1, 0, 3, 1)), 2, padding=((1, 1), (0, 0))),
            ValueError,
            r"^max_pool2d: padding \(\(1, 1\), \(0, 0\)\) with ksize \(2, 2\), .* gives window 0 "
            r"of spatial axis 0 \(input size 0, pads \(1, 1\)\) no real element",
        ),
        # count_include_pad
        (
            lambda: avg_pool(X, 2, count_include_pad="yes"),
            TypeError,
            r"^avg_pool2d: count_include_pad must be a bool, got 'yes'",
        ),
        (
            lambda: avg_back(DY, S, 2, count_include_pad=None),
            TypeError,
            r"^avg_pool2d_backward: count_include_pad must be a bool, got None",
        ),
    ],
)
def test_bad_input_raises(call: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_float16_overflowing_sums_are_inf_without_warning() -> None:
    # Four overlapping windows send 60000 each to the centre: 240000 is past float16's 65504.
    x = np.zeros((1, 3, 3, 1), dtype=np.float16)
    x[0, 1, 1, 0] = 1
    dy = np.full((1, 2, 2, 1), 60000.0, dtype=np.float16)
    dx = refcnn.max_pool2d_backward(dy, x, 2, strides=1)
    assert dx.dtype == np.float16
    assert dx[0, 1, 1, 0] == np.inf
