"""The conformance suite's float16 rules (conformance/tolerance.py), checked on literal calls.

NumPy only: the bounds and masks are computed from refcnn; no framework is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.calls import Call
from conformance.ops import bounds
from conformance.tolerance import range_limited, tolerance

Array = npt.NDArray[Any]


def _conv_call(x: Array, w: Array) -> Call:
    params = {"x": x, "w": w, "b": None, "strides": 1, "padding": "VALID", "dilations": 1}
    return Call("conv2d", params, 3)


def _truth(call: Call) -> tuple[Array, ...]:
    return (np.asarray(refcnn.conv2d(*call.args, **call.kwargs), dtype=np.float64),)


def test_float16_partial_sums_past_65504_are_range_limited_and_nothing_else() -> None:
    # Output 0 sums +200*200 nine times (360000: past float16's 65504, so a float16
    # accumulator overflows on the way); output 1 sums 9 * 4 = 36 and stays comparable.
    x = np.full((1, 3, 3, 1), 200.0)
    w = np.stack([np.full((3, 3, 1), 200.0), np.full((3, 3, 1), 0.01)], axis=-1)
    call = _conv_call(x, w)
    truth = _truth(call)
    mask16 = range_limited(bounds(call, truth, np.float16), truth, np.float16)[0]
    assert mask16.tolist() == [[[[True, False]]]]
    for dtype in (np.float32, np.float64):
        assert not range_limited(bounds(call, truth, dtype), truth, dtype)[0].any()


def test_true_infinities_are_still_compared() -> None:
    x = np.full((1, 1, 1, 1), np.inf)
    call = _conv_call(x, np.ones((1, 1, 1, 1)))
    truth = _truth(call)
    assert truth[0][0, 0, 0, 0] == np.inf
    assert not range_limited(bounds(call, truth, np.float16), truth, np.float16)[0].any()


def test_sum_bounds_allow_float16_underflow_but_keep_exact_zeros() -> None:
    # 1e-3 * 1e-3 = 1e-6 is a float16 subnormal: rounding it moves the result by up to half
    # a subnormal step (2.98e-08), far more than c_sum * K * eps * s = 2e-09; where nothing
    # was summed (w = 0) the bound must stay 0, so a stray value there still fails.
    x = np.full((1, 1, 1, 1), 1e-3)
    call = _conv_call(x, np.array([1e-3, 0.0]).reshape(1, 1, 1, 2))
    truth = _truth(call)
    bound = bounds(call, truth, np.float16)[0].bound
    eta = tolerance(np.float16).eta
    got = np.float16(truth[0][0, 0, 0, 0])
    assert abs(float(got) - truth[0][0, 0, 0, 0]) <= bound[0, 0, 0, 0]
    assert bound[0, 0, 0, 0] >= eta
    assert bound[0, 0, 0, 1] == 0
