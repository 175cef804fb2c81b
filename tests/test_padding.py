"""Padding geometry: TensorFlow's documented SAME rule, ONNX SAME_LOWER, VALID, explicit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcnn.padding import axis_geometry, normalize_padding, window_geometry

sizes = st.integers(0, 40)
kernels = st.integers(1, 7)
steps = st.integers(1, 5)


# (size, kernel, stride, dilation, mode) -> (out, before, after), worked by hand from the
# formulas TensorFlow documents for SAME/VALID ("extra padding goes to the end").
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "dilation", "mode", "expected"),
    [
        (5, 3, 1, 1, "SAME", (5, 1, 1)),
        (5, 3, 2, 1, "SAME", (3, 1, 1)),
        (4, 3, 2, 1, "SAME", (2, 0, 1)),
        (4, 3, 2, 1, "SAME_LOWER", (2, 1, 0)),
        (4, 2, 1, 1, "SAME", (4, 0, 1)),
        (4, 2, 1, 1, "SAME_LOWER", (4, 1, 0)),
        (5, 3, 1, 2, "SAME", (5, 2, 2)),
        (6, 3, 1, 2, "SAME", (6, 2, 2)),
        (7, 1, 3, 1, "SAME", (3, 0, 0)),
        (2, 5, 1, 1, "SAME", (2, 2, 2)),
        (5, 3, 2, 1, "VALID", (2, 0, 0)),
        (6, 3, 2, 1, "VALID", (2, 0, 0)),
        (7, 3, 2, 2, "VALID", (2, 0, 0)),
        (2, 3, 1, 1, "VALID", (0, 0, 0)),
        (5, 5, 1, 1, "VALID", (1, 0, 0)),
        (5, 3, 2, 1, (1, 2), (3, 1, 2)),
        (1, 3, 1, 1, (0, 1), (0, 0, 1)),
        (0, 1, 1, 1, "SAME", (0, 0, 0)),
    ],
)
def test_hand_worked_geometry(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    mode: str | tuple[int, int],
    expected: tuple[int, int, int],
) -> None:
    assert axis_geometry(size, kernel, stride, dilation, mode) == expected


@given(sizes, kernels, steps, steps)
def test_same_follows_tensorflow_rule(size: int, kernel: int, stride: int, dilation: int) -> None:
    out, before, after = axis_geometry(size, kernel, stride, dilation, "SAME")
    extent = (kernel - 1) * dilation + 1
    assert out == math.ceil(size / stride)
    total = max((out - 1) * stride + extent - size, 0) if out else 0
    assert (before, after) == (total // 2, total - total // 2)
    lower = axis_geometry(size, kernel, stride, dilation, "SAME_LOWER")
    assert lower == (out, after, before)
    # No SAME window is made only of padding: each pad is shorter than the kernel extent,
    # which is what lets max pooling use SAME without an undefined window.
    assert before < extent
    assert after < extent


@given(sizes, kernels, steps, steps, st.integers(0, 6), st.integers(0, 6))
def test_explicit_output_is_last_window_that_fits(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int
) -> None:
    out, got_before, got_after = axis_geometry(size, kernel, stride, dilation, (before, after))
    extent = (kernel - 1) * dilation + 1
    padded = size + before + after
    assert (got_before, got_after) == (before, after)
    # Window i spans [i*stride, i*stride + extent): out windows fit, one more would not.
    if out:
        assert (out - 1) * stride + extent <= padded
    assert out * stride + extent > padded


@given(sizes, kernels, steps, steps, st.sampled_from(["SAME", "SAME_LOWER", "VALID"]))
def test_modes_equal_their_explicit_pads(
    size: int, kernel: int, stride: int, dilation: int, mode: str
) -> None:
    out, before, after = axis_geometry(size, kernel, stride, dilation, mode)
    if size:
        assert axis_geometry(size, kernel, stride, dilation, (before, after))[0] == out


def test_window_geometry_is_per_axis() -> None:
    geometry = window_geometry((4, 5), (3, 2), (2, 1), (1, 2), "SAME")
    assert geometry.out_hw == (2, 5)
    assert geometry.pads == ((0, 1), (1, 1))


def test_mode_strings_are_case_insensitive() -> None:
    assert normalize_padding("op", "same") == "SAME"
    assert normalize_padding("op", "Same_Lower") == "SAME_LOWER"


@pytest.mark.parametrize(
    ("padding", "error", "match"),
    [
        ("FULL", ValueError, "padding must be one of"),
        ("", ValueError, "padding must be one of"),
        (3, TypeError, "padding must be"),
        (None, TypeError, "padding must be"),
        (((1, 1),), ValueError, "padding must be"),
        (((1, 1), (1,)), ValueError, "padding must be"),
        (((1, -1), (0, 0)), ValueError, "negative pad"),
        (((1.5, 1), (0, 0)), TypeError, "padding must be"),
        (((True, 1), (0, 0)), TypeError, "padding must be"),
    ],
)
def test_bad_padding_is_named(padding: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        normalize_padding("conv2d", padding)
