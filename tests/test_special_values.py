"""IEEE special values in, IEEE results out, and no NumPy warning (the suite makes them errors).

Found by the bad-input fuzzer: products and sums of infinities and of the largest floats
warned ("invalid value encountered in matmul", "overflow encountered in reduce") where the
result (NaN, inf) is exactly what computing in the dtype gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import refcnn

Array = np.ndarray[Any, Any]

BIG = np.finfo(np.float64).max
FILLS = {
    "inf": np.inf,
    "-inf": -np.inf,
    "max": BIG,
    "mixed": np.array([np.nan, np.inf, -np.inf, BIG, -BIG, 5e-324, -0.0, 1.0]),
}


def special(shape: tuple[int, ...], fill: str) -> Array:
    return np.resize(np.asarray(FILLS[fill], dtype=np.float64), shape)


def cut(values: Array, shape: tuple[int, ...]) -> Array:
    return values[: int(np.prod(shape))].reshape(shape)


X, W, B = np.ones((2, 3)), np.ones((3, 4)), np.ones(4)
P = np.full((2, 4), 0.25)
LABELS = np.array([1, 3])

CALLS: dict[str, Callable[[Array], Any]] = {
    "dense x": lambda s: refcnn.dense(cut(s, (2, 3)), W, B),
    "dense w": lambda s: refcnn.dense(X, cut(s, (3, 4)), B),
    "dense_backward dy": lambda s: refcnn.dense_backward(cut(s, (2, 4)), X, W),
    "dense_backward w": lambda s: refcnn.dense_backward(np.ones((2, 4)), X, cut(s, (3, 4))),
    "softmax z": lambda s: refcnn.softmax(cut(s, (2, 4))),
    "log_softmax z": lambda s: refcnn.log_softmax(cut(s, (2, 4))),
    "softmax_backward dp": lambda s: refcnn.softmax_backward(cut(s, (2, 4)), P),
    "softmax_backward p": lambda s: refcnn.softmax_backward(np.ones((2, 4)), cut(s, (2, 4))),
    "softmax_jacobian p": lambda s: refcnn.softmax_jacobian(cut(s, (2, 4))),
    "cross_entropy y": lambda s: refcnn.cross_entropy(P, cut(s, (2, 4))),
    "softmax_cross_entropy weights": lambda s: refcnn.softmax_cross_entropy(
        np.zeros((2, 4)), LABELS, weights=s[:4]
    ),
    "softmax_cross_entropy_backward weights": lambda s: refcnn.softmax_cross_entropy_backward(
        np.zeros((2, 4)), LABELS, weights=s[:4]
    ),
    "tanh_backward x": lambda s: refcnn.tanh_backward(np.ones(12), s),
}


@pytest.mark.parametrize("fill", list(FILLS))
@pytest.mark.parametrize("name", list(CALLS))
def test_special_values_give_ieee_results_without_warnings(name: str, fill: str) -> None:
    result = CALLS[name](special((12,), fill))
    for array in result if isinstance(result, tuple) else (result,):
        assert np.asarray(array).dtype == np.float64


def test_dense_inf_times_zero_is_nan() -> None:
    x = np.array([[np.inf, 0.0]])
    w = np.array([[0.0], [1.0]])
    np.testing.assert_array_equal(refcnn.dense(x, w), [[np.nan]])
    np.testing.assert_array_equal(refcnn.dense(np.array([[BIG, BIG]]), np.ones((2, 1))), [[np.inf]])
