"""softmax, log_softmax, the softmax Jacobian and its product: literals, oracle, stability."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from refcnn import _naive

Array = npt.NDArray[Any]

# Relative tolerance against a float64 reference, by dtype. float64: the op and the loop
# oracle compute the same shifted logits (z - m rounds identically in both), then exp and a
# sum of at most a few dozen terms: a few ulp apart, far inside 1e-12, while any wrong
# index or axis is an O(1) error. float32/float16: see tests/test_activations.py.
RTOL = {np.float64: 1e-12, np.float32: 1e-6, np.float16: 1e-3}
# Subnormal results have a fixed spacing; rounding there is absolute, not relative.
ATOL = {dtype: float(np.finfo(dtype).smallest_subnormal) for dtype in RTOL}


class SoftmaxCase(NamedTuple):
    """A logits shape, the class axis and a seed: ``repr`` reproduces the case."""

    shape: tuple[int, ...]
    axis: int
    scale: float
    seed: int


@st.composite
def softmax_cases(draw: st.DrawFn, *, min_classes: int = 1) -> SoftmaxCase:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape = tuple(max(s, min_classes) if i == axis % ndim else s for i, s in enumerate(shape))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4]))
    return SoftmaxCase(shape, axis, scale, draw(st.integers(0, 2**32 - 1)))


def logits_of(case: SoftmaxCase) -> Array:
    rng = np.random.default_rng(case.seed)
    return rng.standard_normal(case.shape) * case.scale


def random_fractions(shape: tuple[int, ...], seed: int) -> Array:
    rng = np.random.default_rng(seed)
    out = np.empty(shape, dtype=object)
    out.flat[:] = [
        Fraction(int(p), int(q))
        for p, q in zip(
            rng.integers(-30, 31, int(np.prod(shape))),
            rng.integers(1, 9, int(np.prod(shape))),
            strict=True,
        )
    ]
    return out


# --- hand-worked values --------------------------------------------------------------------


def test_softmax_of_one_two_three() -> None:
    # exp(k) / (e + e^2 + e^3), evaluated to 20 digits with mpmath.
    z = np.array([1.0, 2.0, 3.0])
    expected = [0.090030573170380457998, 0.24472847105479765247, 0.66524095577482188953]
    np.testing.assert_allclose(refcnn.softmax(z), expected, rtol=1e-15)
    np.testing.assert_allclose(
        refcnn.log_softmax(z),
        [-2.4076059644443803045, -1.4076059644443803045, -0.40760596444438030448],
        rtol=1e-15,
    )


def test_jacobian_literal_for_two_classes() -> None:
    p = np.array([0.25, 0.75])
    # diag(p) - p p^T = [[p0 - p0^2, -p0 p1], [-p1 p0, p1 - p1^2]].
    expected = [[0.1875, -0.1875], [-0.1875, 0.1875]]
    np.testing.assert_array_equal(refcnn.softmax_jacobian(p), expected)
    # J^T dp with dp = (1, 0): p0 * (1 - p0) and -p1 * p0.
    np.testing.assert_array_equal(
        refcnn.softmax_backward(np.array([1.0, 0.0]), p), [0.1875, -0.1875]
    )


def test_each_slice_is_shifted_by_its_own_maximum() -> None:
    # A global max (1e4) would underflow every exp of the second row to 0 and give 0/0.
    z = np.array([[1e4, 1e4 + 1.0, 1e4 + 2.0], [1.0, 2.0, 3.0], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    p = refcnn.softmax(z)
    np.testing.assert_allclose(
        p, np.broadcast_to(refcnn.softmax(np.array([0.0, 1.0, 2.0])), (3, 3)), rtol=1e-15
    )
    np.testing.assert_allclose(refcnn.log_softmax(z, axis=1), np.log(p), rtol=1e-15)
    # Along axis 0 the columns mix scales: the largest entry takes everything.
    np.testing.assert_array_equal(refcnn.softmax(z, axis=0), [[1, 1, 1], [0, 0, 0], [0, 0, 0]])
    log_p = refcnn.log_softmax(z, axis=0)
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(log_p[2], [-2e4, -2e4, -2e4], rtol=1e-15)


def test_log_softmax_of_the_top_class_keeps_relative_precision() -> None:
    # log_softmax([0, 40])[1] = -log1p(exp(-40)) = -4.2483542552915889863e-18 (mpmath); the
    # textbook log(sum exp) rounds 1 + exp(-40) to 1 and returns 0.
    np.testing.assert_allclose(
        refcnn.log_softmax(np.array([0.0, 40.0]))[1], -4.2483542552915889863e-18, rtol=1e-15
    )


# --- loop oracle and identities --------------------------------------------------------------


@given(softmax_cases())
def test_softmax_and_log_softmax_match_loop_oracle(case: SoftmaxCase) -> None:
    z = logits_of(case)
    tol = {"rtol": RTOL[np.float64], "atol": ATOL[np.float64]}
    np.testing.assert_allclose(refcnn.softmax(z, case.axis), _naive.softmax(z, case.axis), **tol)
    np.testing.assert_allclose(
        refcnn.log_softmax(z, case.axis), _naive.log_softmax(z, case.axis), **tol
    )


@given(softmax_cases())
def test_jacobian_and_backward_are_exact_on_fractions(case: SoftmaxCase) -> None:
    # Any p (not only a softmax output) makes the formulas exact identities in Q.
    p = random_fractions(case.shape, case.seed)
    dp = random_fractions(case.shape, case.seed + 1)
    jacobian = refcnn.softmax_jacobian(p, case.axis)
    assert jacobian.dtype == object
    assert (jacobian == _naive.softmax_jacobian(p, case.axis)).all()
    dz = refcnn.softmax_backward(dp, p, case.axis)
    assert (dz == _naive.softmax_backward(dp, p, case.axis)).all()
    # softmax_backward == J^T dp, with the class axis moved last for the product.
    dp_last = np.moveaxis(dp, case.axis, -1)
    vjp = np.sum(jacobian * dp_last[..., :, np.newaxis], axis=-2)
    assert (np.moveaxis(dz, case.axis, -1) == vjp).all()


@given(softmax_cases())
def test_backward_equals_jacobian_transpose_product_in_float64(case: SoftmaxCase) -> None:
    z = logits_of(case)
    p = refcnn.softmax(z, case.axis)
    dp = np.random.default_rng(case.seed + 1).standard_normal(case.shape)
    jacobian = refcnn.softmax_jacobian(p, case.axis)
    dp_last = np.moveaxis(dp, case.axis, -1)
    vjp = np.einsum("...ij,...i->...j", jacobian, dp_last)
    dz = np.moveaxis(refcnn.softmax_backward(dp, p, case.axis), case.axis, -1)
    # Two evaluations of the same K-term sum. Each is off by at most ~K eps times the size of
    # what it adds up: p_j (|dp_j| + sum_i p_i |dp_i|) bounds both (it cancels when p_j ~ 1,
    # so the bound must be on the terms, not on the result).
    p_last = np.moveaxis(p, case.axis, -1)
    inner = np.sum(p_last * np.abs(dp_last), axis=-1, keepdims=True)
    magnitude = p_last * (np.abs(dp_last) + inner)
    assert (np.abs(dz - vjp) <= 1e-13 * magnitude + ATOL[np.float64]).all()


@given(softmax_cases())
def test_jacobian_and_backward_match_finite_differences(case: SoftmaxCase) -> None:
    z = logits_of(case) / case.scale  # unit scale: the stencil error bound below needs it
    rng = np.random.default_rng(case.seed + 2)
    dp, direction = rng.standard_normal(case.shape), rng.standard_normal(case.shape)

    def loss(z_: Array) -> float:
        return float(np.sum(refcnn.softmax(z_, case.axis) * dp))

    # Five-point stencil, h = 1e-3: truncation h^4/30 * |f^(5)| with softmax's derivatives
    # O(1) in z gives ~1e-13 per slice, rounding eps * |loss| / h ~ 1e-12: bound 1e-9.
    h = 1e-3
    numeric = (
        -loss(z + 2 * h * direction)
        + 8 * loss(z + h * direction)
        - 8 * loss(z - h * direction)
        + loss(z - 2 * h * direction)
    ) / (12 * h)
    dz = refcnn.softmax_backward(dp, refcnn.softmax(z, case.axis), case.axis)
    assert abs(numeric - float(np.sum(dz * direction))) <= 1e-9 * (1 + np.sum(np.abs(dz)))


def test_jacobian_columns_match_finite_differences() -> None:
    z = np.array([[0.3, -1.2, 2.0, 0.5], [1.0, 1.0, -0.5, 0.0]])
    jacobian = refcnn.softmax_jacobian(refcnn.softmax(z))
    h = 1e-3
    for j in range(4):
        step = np.zeros(4)
        step[j] = h
        # Central difference of p along z_j: J[b, :, j] (J is symmetric; error O(h^2) ~ 1e-7
        # with p's third derivatives < 1, so 1e-6 is a bound with margin).
        column = (refcnn.softmax(z + step) - refcnn.softmax(z - step)) / (2 * h)
        np.testing.assert_allclose(jacobian[:, :, j], column, atol=1e-6, rtol=0)


def test_jacobian_is_vectorized_over_leading_axes_with_class_axis_moved_last() -> None:
    z = np.random.default_rng(3).standard_normal((2, 5, 3))
    p = refcnn.softmax(z, axis=1)
    jacobian = refcnn.softmax_jacobian(p, axis=1)
    assert jacobian.shape == (2, 3, 5, 5)
    q = p[1, :, 2]
    np.testing.assert_allclose(jacobian[1, 2], np.diag(q) - np.outer(q, q), rtol=1e-15)


# --- special values, dtypes, shapes ----------------------------------------------------------


def test_minus_inf_marks_an_impossible_class() -> None:
    z = np.array([[-np.inf, 0.0, 0.0], [-np.inf, -np.inf, 5.0]])
    np.testing.assert_array_equal(refcnn.softmax(z), [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    log_p = refcnn.log_softmax(z)
    np.testing.assert_array_equal(log_p[:, 0], [-np.inf, -np.inf])
    np.testing.assert_allclose(log_p[0, 1:], [-np.log(2.0)] * 2, rtol=1e-15)
    assert log_p[1, 2] == 0.0


def test_nan_plus_inf_and_all_minus_inf_slices_are_nan_without_warnings() -> None:
    z = np.array(
        [
            [-np.inf, -np.inf, -np.inf],  # 0/0: NaN, as in PyTorch and TensorFlow
            [np.inf, 0.0, 1.0],  # inf - inf
            [np.nan, 0.0, 1.0],
            [0.0, 1.0, 2.0],  # untouched by its neighbours
        ]
    )
    for out in (refcnn.softmax(z), refcnn.log_softmax(z)):
        assert np.isnan(out[:3]).all()
        assert np.isfinite(out[3]).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_kept_and_close_to_float64(dtype: type) -> None:
    z = (np.random.default_rng(2).standard_normal((4, 6)) * 5).astype(dtype)
    z64 = z.astype(np.float64)
    tol = {"rtol": RTOL[dtype], "atol": ATOL[dtype]}
    p = refcnn.softmax(z)
    assert p.dtype == dtype
    np.testing.assert_allclose(p, _naive.softmax(z64), **tol)
    assert refcnn.log_softmax(z).dtype == dtype
    np.testing.assert_allclose(refcnn.log_softmax(z), _naive.log_softmax(z64), **tol)
    assert refcnn.softmax_jacobian(p).dtype == dtype
    assert refcnn.softmax_backward(p, p).dtype == dtype


def test_float16_logits_near_the_top_of_the_range_do_not_overflow() -> None:
    z = np.array([60000.0, 59999.0, -60000.0], dtype=np.float16)
    p = refcnn.softmax(z)  # float32 inside; exp(60000) would be inf in any float
    np.testing.assert_allclose(
        p.astype(np.float64),
        _naive.softmax(z.astype(np.float64)),
        rtol=RTOL[np.float16],
        atol=ATOL[np.float16],
    )


def test_empty_class_axis_and_empty_batch() -> None:
    assert refcnn.softmax(np.zeros((2, 0))).shape == (2, 0)
    assert refcnn.log_softmax(np.zeros((0, 3))).shape == (0, 3)
    assert refcnn.softmax_jacobian(np.zeros((2, 0))).shape == (2, 0, 0)
    assert refcnn.softmax_backward(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)


def test_inputs_are_never_modified() -> None:
    rng = np.random.default_rng(0)
    z, dp = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    p = refcnn.softmax(z)
    copies = [a.copy() for a in (z, dp, p)]
    for array in (z, dp, p):
        array.setflags(write=False)  # any write now raises instead of passing silently
    refcnn.softmax(z, 0)
    refcnn.log_softmax(z)
    refcnn.softmax_jacobian(p)
    refcnn.softmax_backward(dp, p)
    for array, copy in zip((z, dp, p), copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# --- bad input ---------------------------------------------------------------------------

Z = np.zeros((2, 3))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: refcnn.softmax(None), TypeError, "softmax: z must be an array, got None"),
        (
            lambda: refcnn.softmax(np.arange(3)),
            TypeError,
            r"softmax: z must have a real floating dtype \(exp and log",
        ),
        (
            lambda: refcnn.log_softmax(np.array([Fraction(1)], dtype=object)),
            TypeError,
            "log_softmax: z must have a real floating dtype",
        ),
        (
            lambda: refcnn.softmax(np.float64(1.0)),
            ValueError,
            r"softmax: z must have at least 1 dimension \(the class axis\), got shape \(\)",
        ),
        (
            lambda: refcnn.softmax(Z, axis=2),
            ValueError,
            r"softmax: axis must be in \[-2, 2\) for an input of shape \(2, 3\), got 2",
        ),
        (lambda: refcnn.log_softmax(Z, axis=-3), ValueError, "log_softmax: axis must be in"),
        (lambda: refcnn.softmax(Z, axis=1.0), TypeError, "softmax: axis must be an int"),
        (lambda: refcnn.softmax(Z, axis=True), TypeError, "softmax: axis must be an int"),
        (
            lambda: refcnn.softmax_jacobian(np.arange(3)),
            TypeError,
            "softmax_jacobian: p must have a real floating or object",
        ),
        (
            lambda: refcnn.softmax_backward(np.zeros(3), Z),
            ValueError,
            r"softmax_backward: dp must have shape \(2, 3\) \(the shape of p\), got \(3,\)",
        ),
        (
            lambda: refcnn.softmax_backward(Z.astype(np.float32), Z),
            TypeError,
            "softmax_backward: arrays must share one dtype",
        ),
        (
            lambda: refcnn.softmax_backward(Z, Z, axis=5),
            ValueError,
            "softmax_backward: axis must be in",
        ),
    ],
)
def test_bad_input_names_the_argument(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
