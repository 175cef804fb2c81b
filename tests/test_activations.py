"""relu, sigmoid, tanh and their gradients: hand-worked values, loop oracle, stability, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refcnn
from refcnn import _naive

Array = npt.NDArray[Any]

# Relative tolerance against a float64 reference, by dtype. float64: the op and the loop
# oracle each round a handful of times (exp, +, /, *), so a few ulp (~1e-15) apart; 1e-12
# leaves margin without hiding an index or formula error (those are O(1)). float32: a few
# float32 ulp (eps 1.2e-7) of computation. float16: computed in float32, rounded once to
# float16, i.e. within half a float16 ulp (eps 9.8e-4 / 2) plus the float32 error.
RTOL = {np.float64: 1e-12, np.float32: 1e-6, np.float16: 1e-3}
# Results below the smallest normal number are subnormal, whose spacing is fixed: rounding
# there is off by up to half the smallest subnormal in absolute terms, not relative ones.
ATOL = {dtype: float(np.finfo(dtype).smallest_subnormal) for dtype in RTOL}

FORWARD = {"relu": refcnn.relu, "sigmoid": refcnn.sigmoid, "tanh": refcnn.tanh}
BACKWARD = {
    "relu": refcnn.relu_backward,
    "sigmoid": refcnn.sigmoid_backward,
    "tanh": refcnn.tanh_backward,
}
NAIVE_FORWARD: dict[str, Callable[[Array], Array]] = {
    "relu": _naive.relu,
    "sigmoid": _naive.sigmoid,
    "tanh": _naive.tanh,
}
NAIVE_BACKWARD: dict[str, Callable[[Array, Array], Array]] = {
    "relu": _naive.relu_backward,
    "sigmoid": _naive.sigmoid_backward,
    "tanh": _naive.tanh_backward,
}

# |x| <= 300 keeps the oracle's math.cosh(x)**2 finite (it overflows past ~355) and every
# derivative a normal float64 (4 exp(-600) ~ 1e-261), so relative comparison is meaningful.
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
moderate = st.floats(-300, 300, allow_nan=False, allow_infinity=False)


# --- hand-worked values --------------------------------------------------------------------


def test_relu_literal_values() -> None:
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(refcnn.relu(x), [0.0, 0.0, 0.0, 0.5, 3.0])
    dy = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    # The derivative at exactly 0 is 0, as in PyTorch and TensorFlow.
    np.testing.assert_array_equal(refcnn.relu_backward(dy, x), [0.0, 0.0, 0.0, 40.0, 50.0])


def test_sigmoid_and_tanh_literal_values() -> None:
    # sigmoid(log 3) = 1 / (1 + 1/3) = 3/4; tanh(log 2) = (2 - 1/2) / (2 + 1/2) = 3/5.
    x = np.array([0.0, math.log(3.0)])
    np.testing.assert_allclose(refcnn.sigmoid(x), [0.5, 0.75], rtol=1e-15)
    np.testing.assert_allclose(refcnn.sigmoid_backward(np.ones(2), x), [0.25, 0.1875], rtol=1e-15)
    t = np.array([0.0, math.log(2.0)])
    np.testing.assert_allclose(refcnn.tanh(t), [0.0, 0.6], rtol=1e-15, atol=0)
    # 1 - tanh^2 = 1 - 9/25 = 16/25.
    np.testing.assert_allclose(refcnn.tanh_backward(np.ones(2), t), [1.0, 0.64], rtol=1e-15)


# --- loop oracle -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@given(data=st.data())
def test_forward_and_backward_match_loop_oracle(name: str, data: st.DataObject) -> None:
    shape = data.draw(shapes, label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=moderate), label="x")
    dy = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, 10)), label="dy")
    np.testing.assert_allclose(FORWARD[name](x), NAIVE_FORWARD[name](x), rtol=RTOL[np.float64])
    # A subnormal result has fewer significant bits: one subnormal step there is a large
    # relative error (5e-324 of 3.3e-314 is 1.5e-10), so the comparison allows that step.
    np.testing.assert_allclose(
        BACKWARD[name](dy, x),
        NAIVE_BACKWARD[name](dy, x),
        rtol=RTOL[np.float64],
        atol=2 * np.finfo(np.float64).smallest_subnormal,
    )


@given(st.lists(st.fractions(), min_size=0, max_size=8), st.integers(0, 2**32 - 1))
def test_relu_is_exact_on_fractions(values: list[Fraction], seed: int) -> None:
    x = np.array([*values, Fraction(0)], dtype=object)
    rng = np.random.default_rng(seed)
    dy = np.array([Fraction(int(v), 7) for v in rng.integers(-20, 21, x.size)], dtype=object)
    y, dx = refcnn.relu(x), refcnn.relu_backward(dy, x)
    assert y.dtype == object
    assert dx.dtype == object
    assert (y == _naive.relu(x)).all()
    assert (dx == _naive.relu_backward(dy, x)).all()
    # relu(x) = x * relu'(x) exactly (ReLU is positively homogeneous).
    assert (y == x * refcnn.relu_backward(np.ones(x.shape, dtype=object), x)).all()


def test_relu_keeps_integer_dtype() -> None:
    x = np.array([-3, 0, 4], dtype=np.int32)
    y = refcnn.relu(x)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, [0, 0, 4])
    dx = refcnn.relu_backward(np.array([5, 6, 7], dtype=np.int32), x)
    assert dx.dtype == np.int32
    np.testing.assert_array_equal(dx, [0, 0, 7])


# --- gradients by finite differences -------------------------------------------------------


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@given(st.integers(0, 2**32 - 1), hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
def test_backward_matches_finite_differences(name: str, seed: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4, 4, shape)
    if name == "relu":
        x = np.where(np.abs(x) < 0.05, 0.5, x)  # ReLU has a kink at 0; stay 10 h away from it
    dy, direction = rng.standard_normal(shape), rng.standard_normal(shape)

    def loss(x_: Array) -> float:
        return float(np.sum(FORWARD[name](x_) * dy))

    # Five-point stencil: truncation error h^4/30 * |f^(5)| ~ 3e-14 (sigmoid and tanh have
    # derivatives of order 1 on [-4, 4]; summing a few dozen entries keeps it < 1e-11) and
    # rounding eps * |loss| / h ~ 1e-12: 1e-9 of the scale is a safe yet meaningful bound.
    h = 1e-3
    numeric = (
        -loss(x + 2 * h * direction)
        + 8 * loss(x + h * direction)
        - 8 * loss(x - h * direction)
        + loss(x - 2 * h * direction)
    ) / (12 * h)
    grad = BACKWARD[name](dy, x)
    analytic = float(np.sum(grad * direction))
    assert abs(numeric - analytic) <= 1e-9 * (1.0 + float(np.sum(np.abs(grad * direction))))


# --- stability and special values ---------------------------------------------------------


def test_sigmoid_is_stable_and_accurate_for_large_magnitudes() -> None:
    x = np.array([-1e308, -1000.0, -745.0, -40.0, 40.0, 1000.0, 1e308])
    y = refcnn.sigmoid(x)  # filterwarnings=error: any overflow warning fails this test
    expected = [0.0, 0.0, math.exp(-745.0), math.exp(-40.0) / (1 + math.exp(-40.0)), 1.0, 1.0, 1.0]
    np.testing.assert_allclose(y, expected, rtol=1e-15, atol=0)
    # The derivative keeps its relative precision where 1 - sigmoid(x) has rounded to 0.
    slope = refcnn.sigmoid_backward(np.ones(2), np.array([-40.0, 40.0]))
    exact = math.exp(-40.0) / (1 + math.exp(-40.0)) ** 2
    np.testing.assert_allclose(slope, [exact, exact], rtol=1e-15)
    assert 1 - refcnn.sigmoid(np.array(40.0)) == 0  # why the naive s * (1 - s) would fail


def test_tanh_derivative_is_accurate_where_one_minus_tanh_squared_cancels() -> None:
    x = np.array([-30.0, 30.0, 400.0])
    slope = refcnn.tanh_backward(np.ones(3), x)
    e30, e400 = math.exp(-60.0), math.exp(-800.0)
    np.testing.assert_allclose(slope, [4 * e30 / (1 + e30) ** 2] * 2 + [4 * e400], rtol=1e-15)
    assert (1 - refcnn.tanh(x[:2]) ** 2 == 0).all()  # the formula it must not use


def test_nan_and_inf_propagate_without_warnings() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0])
    np.testing.assert_array_equal(refcnn.relu(x), [np.nan, np.inf, 0.0, 0.0])
    np.testing.assert_array_equal(refcnn.sigmoid(x), [np.nan, 1.0, 0.0, 0.5])
    np.testing.assert_array_equal(refcnn.tanh(x), [np.nan, 1.0, -1.0, 0.0])
    ones = np.ones(4)
    np.testing.assert_array_equal(refcnn.relu_backward(ones, x), [np.nan, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(refcnn.sigmoid_backward(ones, x), [np.nan, 0.0, 0.0, 0.25])
    np.testing.assert_array_equal(refcnn.tanh_backward(ones, x), [np.nan, 0.0, 0.0, 1.0])
    # ReLU selects dy, it does not multiply it: inf or NaN where x <= 0 still gives 0.
    np.testing.assert_array_equal(
        refcnn.relu_backward(np.array([np.inf, np.nan]), np.array([-1.0, 0.0])), [0.0, 0.0]
    )
    # The smooth gradients multiply: inf * 0 is NaN (IEEE), and no warning escapes.
    assert np.isnan(refcnn.sigmoid_backward(np.array([np.inf]), np.array([np.inf]))).all()
    assert np.isnan(refcnn.tanh_backward(np.array([np.inf]), np.array([-np.inf]))).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_dtype_is_kept_and_close_to_float64(name: str, dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-6, 6, (3, 5)).astype(dtype)
    dy = rng.standard_normal((3, 5)).astype(dtype)
    y, dx = FORWARD[name](x), BACKWARD[name](dy, x)
    assert y.dtype == dtype
    assert dx.dtype == dtype
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    tol = {"rtol": RTOL[dtype], "atol": ATOL[dtype]}
    np.testing.assert_allclose(y, NAIVE_FORWARD[name](x64), **tol)
    np.testing.assert_allclose(dx, NAIVE_BACKWARD[name](dy64, x64), **tol)


def test_zero_dimensional_and_empty_inputs() -> None:
    assert refcnn.sigmoid(np.float64(0.0)).shape == ()
    assert refcnn.tanh_backward(np.float64(2.0), np.float64(0.0)) == 2.0
    assert refcnn.relu(np.zeros((0, 3))).shape == (0, 3)


def test_inputs_are_never_modified() -> None:
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    copies = [x.copy(), dy.copy()]
    for array in (x, dy):
        array.setflags(write=False)  # any write now raises instead of passing silently
    for name, forward in FORWARD.items():
        forward(x)
        BACKWARD[name](dy, x)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(dy, copies[1])


# --- bad input ---------------------------------------------------------------------------

X = np.zeros((2, 3))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: refcnn.relu(None), TypeError, "relu: x must be an array, got None"),
        (lambda: refcnn.relu(X.astype(complex)), TypeError, "relu: x must have .* dtype complex"),
        (lambda: refcnn.relu(X.astype(bool)), TypeError, "dtype bool"),
        (lambda: refcnn.sigmoid(np.arange(3)), TypeError, "sigmoid: x must have a real floating"),
        (
            lambda: refcnn.tanh(np.array([Fraction(1)], dtype=object)),
            TypeError,
            "tanh: x must have a real floating dtype .* got dtype object",
        ),
        (
            lambda: refcnn.relu_backward(np.zeros(3), X),
            ValueError,
            r"relu_backward: dy must have shape \(2, 3\) \(the shape of x\), got \(3,\)",
        ),
        (lambda: refcnn.relu_backward(X.astype(np.float32), X), TypeError, "share one dtype"),
        (
            lambda: refcnn.sigmoid_backward(np.zeros((3, 2)), X),
            ValueError,
            r"sigmoid_backward: dy must have shape \(2, 3\)",
        ),
        (
            lambda: refcnn.sigmoid_backward(X, np.zeros((2, 3), dtype=int)),
            TypeError,
            "sigmoid_backward: x must have a real floating dtype",
        ),
        (
            lambda: refcnn.tanh_backward(np.zeros((2, 1)), X),
            ValueError,
            r"tanh_backward: dy must have shape \(2, 3\)",
        ),
        (lambda: refcnn.tanh_backward(None, X), TypeError, "tanh_backward: dy must be an array"),
    ],
)
def test_bad_input_names_the_argument(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
