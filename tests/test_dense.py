"""dense, flatten and their gradients: literals, loop oracle, exact arithmetic, adjoints."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refcnn
from refcnn import _naive

Array = npt.NDArray[Any]


def random_fractions(shape: tuple[int, ...], seed: int) -> Array:
    rng = np.random.default_rng(seed)
    size = math.prod(shape)
    out = np.empty(shape, dtype=object)
    out.flat[:] = [
        Fraction(int(p), int(q))
        for p, q in zip(rng.integers(-50, 51, size), rng.integers(1, 13, size), strict=True)
    ]
    return out


def small_ints(shape: tuple[int, ...], seed: int) -> Array:
    # Small-integer float64 values make every sum exact, so op and oracle must agree bit for bit.
    return np.random.default_rng(seed).integers(-9, 10, shape).astype(np.float64)


class DenseCase(NamedTuple):
    """Batch, input and output sizes and a seed: ``repr`` reproduces the case."""

    n: int
    i: int
    o: int
    seed: int


dense_cases = st.builds(
    DenseCase, st.integers(0, 4), st.integers(0, 5), st.integers(0, 4), st.integers(0, 2**32 - 1)
)


# --- dense: hand-worked values -----------------------------------------------------------------


def test_dense_literal_values_keep_integer_dtype() -> None:
    x = np.array([[1, 2], [3, 4]])
    w = np.array([[1, 0, -1], [2, 1, 0]])
    b = np.array([1, 1, 1])
    y = refcnn.dense(x, w, b)
    assert y.dtype == x.dtype
    # [1*1 + 2*2 + 1, 1*0 + 2*1 + 1, 1*-1 + 2*0 + 1] and the same for row (3, 4).
    np.testing.assert_array_equal(y, [[6, 3, 0], [12, 5, -2]])
    np.testing.assert_array_equal(refcnn.dense(x, w), [[5, 2, -1], [11, 4, -3]])
    dy = np.array([[1, 0, 0], [0, 1, -1]])
    grads = refcnn.dense_backward(dy, x, w)
    assert isinstance(grads, refcnn.DenseGradients)
    # dx = dy w^T, dw = x^T dy, db = column sums of dy.
    np.testing.assert_array_equal(grads.dx, [[1, 2], [1, 1]])
    np.testing.assert_array_equal(grads.dw, [[1, 3, -3], [2, 4, -4]])
    np.testing.assert_array_equal(grads.db, [1, 1, -1])


# --- dense: oracle, exactness, finite differences ------------------------------------------------


@given(dense_cases)
def test_dense_matches_loop_oracle_exactly(case: DenseCase) -> None:
    x, w = small_ints((case.n, case.i), case.seed), small_ints((case.i, case.o), case.seed + 1)
    b, dy = small_ints((case.o,), case.seed + 2), small_ints((case.n, case.o), case.seed + 3)
    np.testing.assert_array_equal(refcnn.dense(x, w, b), _naive.dense(x, w, b))
    np.testing.assert_array_equal(refcnn.dense(x, w), _naive.dense(x, w))
    for got, expected in zip(
        refcnn.dense_backward(dy, x, w), _naive.dense_backward(dy, x, w), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


@given(dense_cases)
def test_dense_is_exact_on_fractions_and_gradients_are_adjoints(case: DenseCase) -> None:
    x, w = (
        random_fractions((case.n, case.i), case.seed),
        random_fractions((case.i, case.o), case.seed + 1),
    )
    b, dy = (
        random_fractions((case.o,), case.seed + 2),
        random_fractions((case.n, case.o), case.seed + 3),
    )
    y = refcnn.dense(x, w, b)
    assert y.dtype == object
    assert (y == _naive.dense(x, w, b)).all()
    dx, dw, db = refcnn.dense_backward(dy, x, w)
    assert all(
        (a == e).all() for a, e in zip((dx, dw, db), _naive.dense_backward(dy, x, w), strict=True)
    )
    # <dense(x, w) - b, dy> == <x, dx> == <w, dw> and <b, db> == <1 b, dy>, exactly.
    forward = sum(((y - b) * dy).flat, Fraction(0))
    assert forward == sum((x * dx).flat, Fraction(0))
    assert forward == sum((w * dw).flat, Fraction(0))
    assert sum((b * db).flat, Fraction(0)) == sum(
        (np.broadcast_to(b, y.shape) * dy).flat, Fraction(0)
    )


@given(dense_cases.filter(lambda c: c.n * c.i * c.o > 0))
def test_dense_gradients_match_central_differences(case: DenseCase) -> None:
    rng = np.random.default_rng(case.seed)
    x, w = rng.standard_normal((case.n, case.i)), rng.standard_normal((case.i, case.o))
    b, dy = rng.standard_normal(case.o), rng.standard_normal((case.n, case.o))
    grads = refcnn.dense_backward(dy, x, w)

    def loss(x_: Array, w_: Array, b_: Array) -> float:
        return float(np.sum(refcnn.dense(x_, w_, b_) * dy))

    # The loss is linear in each argument: a central difference has no truncation error,
    # only rounding of size eps * |loss| / h; with h = 1e-3 that is far below 1e-8.
    h = 1e-3
    for index, grad in enumerate(grads):
        direction = rng.standard_normal(grad.shape)
        plus, minus = [x, w, b], [x, w, b]
        plus[index] = plus[index] + h * direction
        minus[index] = minus[index] - h * direction
        numeric = (loss(*plus) - loss(*minus)) / (2 * h)
        analytic = float(np.sum(grad * direction))
        assert abs(numeric - analytic) <= 1e-8 * (1 + float(np.sum(np.abs(grad * direction))))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_kept_and_float16_accumulates_in_float32(dtype: type) -> None:
    # 4096 ones: a float16 running sum stalls at 2048 (2048 + 1 rounds back to 2048), while
    # float32 accumulation reaches 4096, which float16 represents exactly. (refcnn casts to
    # float32 itself; NumPy 2's float16 matmul and sum happen to accumulate in float32 too,
    # so this pins the behaviour rather than refcnn's cast alone.)
    x, w = np.ones((2, 4096), dtype=dtype), np.ones((4096, 3), dtype=dtype)
    y = refcnn.dense(x, w, np.zeros(3, dtype=dtype))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, np.full((2, 3), 4096.0))
    grads = refcnn.dense_backward(np.ones((4096, 2), dtype=dtype), w, np.ones((3, 2), dtype=dtype))
    assert {g.dtype for g in grads} == {np.dtype(dtype)}
    np.testing.assert_array_equal(grads.db, [4096.0, 4096.0])
    np.testing.assert_array_equal(grads.dw, np.full((3, 2), 4096.0))


def test_nan_and_inf_propagate() -> None:
    x = np.array([[np.nan, 1.0], [np.inf, 0.0]])
    w = np.array([[1.0], [1.0]])
    y = refcnn.dense(x, w)
    assert np.isnan(y[0, 0])
    assert y[1, 0] == np.inf


# --- flatten ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("axis", "shape"),
    [
        (0, (1, 120)),
        (1, (2, 60)),
        (2, (6, 20)),
        (3, (24, 5)),
        (4, (120, 1)),
        (-1, (24, 5)),
        (-4, (1, 120)),
    ],
)
def test_flatten_shapes_follow_onnx(axis: int, shape: tuple[int, int]) -> None:
    x = np.arange(120).reshape(2, 3, 4, 5)
    y = refcnn.flatten(x, axis)
    assert y.shape == shape
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y.ravel(), np.arange(120))  # row-major, nothing reordered


def test_flatten_of_nhwc_puts_channels_fastest() -> None:
    # Feature (h, w, c) of an (N, H, W, C) map lands in column (h * W + w) * C + c: Keras order.
    x = np.zeros((1, 2, 3, 4), dtype=np.int64)
    x[0, 1, 2, 3] = 7
    y = refcnn.flatten(x)
    assert y.shape == (1, 24)
    assert y[0, (1 * 3 + 2) * 4 + 3] == 7


@given(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3), st.data())
def test_flatten_matches_loop_oracle_and_backward_inverts_it(
    shape: tuple[int, ...], data: st.DataObject
) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape)), label="axis")
    x = random_fractions(shape, 0) if math.prod(shape) else np.zeros(shape, dtype=object)
    y = refcnn.flatten(x, axis)
    assert y.shape == _naive.flatten(x, axis).shape
    assert (y == _naive.flatten(x, axis)).all()
    dy = random_fractions(y.shape, 1) if y.size else np.zeros(y.shape, dtype=object)
    dx = refcnn.flatten_backward(dy, shape, axis)
    assert dx.shape == shape
    # flatten_backward is the adjoint (and the inverse) of flatten.
    assert sum((y * dy).flat, Fraction(0)) == sum(np.asarray(x * dx).flat, Fraction(0))
    assert (refcnn.flatten_backward(y, shape, axis) == x).all()


def test_flatten_returns_a_new_array() -> None:
    x = np.arange(6.0).reshape(2, 3)
    y = refcnn.flatten(x)
    y[0, 0] = 100.0
    assert x[0, 0] == 0.0
    dx = refcnn.flatten_backward(y, (2, 3))
    dx[0, 0] = -1.0
    assert y[0, 0] == 100.0


def test_inputs_are_never_modified() -> None:
    rng = np.random.default_rng(0)
    x, w, b, dy = (rng.standard_normal(s) for s in ((3, 4), (4, 2), (2,), (3, 2)))
    x4 = rng.standard_normal((2, 2, 3, 1))
    arrays = (x, w, b, dy, x4)
    copies = [a.copy() for a in arrays]
    for array in arrays:
        array.setflags(write=False)  # any write now raises instead of passing silently
    refcnn.dense(x, w, b)
    refcnn.dense_backward(dy, x, w)
    refcnn.flatten(x4)
    refcnn.flatten_backward(x, (3, 2, 2), 1)
    for array, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# --- bad input ---------------------------------------------------------------------------

X, W = np.zeros((2, 3)), np.zeros((3, 4))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: refcnn.dense(None, W), TypeError, "dense: x must be an array, got None"),
        (lambda: refcnn.dense(X[0], W), ValueError, r"dense: x must be 2-D \(N, I\), got shape"),
        (lambda: refcnn.dense(X, W[0]), ValueError, r"dense: w must be 2-D \(I, O\)"),
        (
            lambda: refcnn.dense(X, np.zeros((2, 4))),
            ValueError,
            r"dense: x has I=3 input features \(shape \(2, 3\)\) but w expects 2",
        ),
        (
            lambda: refcnn.dense(X, W, np.zeros(3)),
            ValueError,
            r"dense: b must have shape \(4,\) \(one per output\), got \(3,\)",
        ),
        (lambda: refcnn.dense(X, W, np.zeros((1, 4))), ValueError, "dense: b must be 1-D"),
        (lambda: refcnn.dense(X, W.astype(np.float32)), TypeError, "share one dtype"),
        (lambda: refcnn.dense(X, W, np.zeros(4, dtype=np.float32)), TypeError, "share one dtype"),
        (lambda: refcnn.dense(X.astype(complex), W.astype(complex)), TypeError, "dtype complex"),
        (
            lambda: refcnn.dense_backward(np.zeros((2, 3)), X, W),
            ValueError,
            r"dense_backward: dy must have shape \(2, 4\) \(the forward output \(N, O\)\), got "
            r"\(2, 3\)",
        ),
        (
            lambda: refcnn.dense_backward(np.zeros((2, 4)), X, np.zeros((2, 4))),
            ValueError,
            "dense_backward: x has I=3 input features",
        ),
        (
            lambda: refcnn.dense_backward(np.zeros(4), X, W),
            ValueError,
            r"dense_backward: dy must be 2-D \(N, O\)",
        ),
        (lambda: refcnn.flatten(None), TypeError, "flatten: x must be an array"),
        (
            lambda: refcnn.flatten(X, 3),
            ValueError,
            r"flatten: axis must be in \[-2, 2\] for an input of shape \(2, 3\), got 3",
        ),
        (lambda: refcnn.flatten(X, -3), ValueError, r"flatten: axis must be in \[-2, 2\]"),
        (lambda: refcnn.flatten(X, 1.0), TypeError, "flatten: axis must be an int, got 1.0"),
        (
            lambda: refcnn.flatten_backward(np.zeros((2, 3)), (2, 4)),
            ValueError,
            r"flatten_backward: dy must have shape \(2, 4\) \(flatten of input_shape \(2, 4\) at "
            r"axis 1\), got \(2, 3\)",
        ),
        (
            lambda: refcnn.flatten_backward(np.zeros(6), (2, 3)),
            ValueError,
            r"flatten_backward: dy must be 2-D \(R, C\)",
        ),
        (
            lambda: refcnn.flatten_backward(X, 6),
            TypeError,
            "flatten_backward: input_shape must be a sequence of ints, got 6",
        ),
        (
            lambda: refcnn.flatten_backward(X, (2, -3)),
            ValueError,
            "flatten_backward: input_shape must be 2 non-negative ints",
        ),
        (lambda: refcnn.flatten_backward(X, (2, 3), 5), ValueError, "flatten_backward: axis"),
    ],
)
def test_bad_input_names_the_argument(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_float16_overflow_is_inf_without_warning() -> None:
    # 300 * 300 = 90000 > 65504: rounded once from float32 to inf, without NumPy's warning.
    x = np.full((1, 1), 300.0, dtype=np.float16)
    assert refcnn.dense(x, x)[0, 0] == np.inf
    dx, dw, db = refcnn.dense_backward(np.full((2, 1), 60000.0, dtype=np.float16), x[[0, 0]], x)
    assert dx[0, 0] == np.inf
    assert dw[0, 0] == np.inf
    assert db[0] == np.inf
