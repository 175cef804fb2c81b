"""refcnn.testing: the suite's bounds for users' own tests, tight and failing with its message."""

from __future__ import annotations

import numpy as np
import pytest

import refcnn
from refcnn.testing import assert_close, bound


def test_refcnn_in_float32_is_close_to_itself_and_one_ulp_more_is_still_fine() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 5, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    y = refcnn.conv2d(x, w, padding="SAME")
    assert_close("conv2d", y, x, w, padding="SAME")
    assert_close("conv2d", np.nextafter(y, np.inf), x, w, padding="SAME")


def test_a_wrong_element_fails_with_the_worst_element_and_its_bound() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 4, 1))
    w = rng.standard_normal((2, 2, 1, 1))
    y = refcnn.conv2d(x, w)
    y[0, 1, 2, 0] += 1e-9  # far below any rtol a user would guess, far above the bound
    with pytest.raises(AssertionError, match=r"at y\[0, 1, 2, 0\].*allowed \|got - truth\|"):
        assert_close("conv2d", y, x, w)


def test_exact_ops_are_held_to_exact_equality() -> None:
    x = np.array([[-1.0, 2.0, 3.0]])
    (b,) = bound("relu", x)
    np.testing.assert_array_equal(b, 0.0)
    with pytest.raises(AssertionError):
        assert_close("relu", np.array([[0.0, 2.0, 3.0 + 1e-15]]), x)


def test_several_outputs_shapes_and_dtypes_are_checked() -> None:
    rng = np.random.default_rng(2)
    dy, x, w = rng.standard_normal((3, 2)), rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    assert_close("dense_backward", refcnn.dense_backward(dy, x, w), dy, x, w)
    dx, dw, db = refcnn.dense_backward(dy, x, w)
    with pytest.raises(AssertionError, match="output dw must have shape"):
        assert_close("dense_backward", (dx, dw.T, db), dy, x, w)
    with pytest.raises(AssertionError, match="dtype float64"):
        assert_close("dense_backward", (dx.astype(np.float32), dw, db), dy, x, w)


def test_bounds_scale_with_the_dtype() -> None:
    x = np.linspace(-3, 3, 7)
    (b64,) = bound("sigmoid", x)
    (b32,) = bound("sigmoid", x.astype(np.float32))
    assert np.all(b32 > b64 * 1e8)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="op must be one of"):
        assert_close("conv9d", np.zeros(1), np.zeros(1))
    with pytest.raises(TypeError, match=r"do not fit refcnn\.relu"):
        assert_close("relu", np.zeros(1), np.zeros(1), np.zeros(1))
