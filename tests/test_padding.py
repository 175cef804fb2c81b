"""Padding geometry: TensorFlow's documented SAME rule, ONNX SAME_LOWER, VALID, explicit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refcnn.padding import (
    adjoint_geometry,
    axis_geometry,
    crop_pads,
    live_span,
    normalize_padding,
    phases,
    tap_range,
    transpose_geometry,
    window_geometry,
    windows,
)

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


# ceil_mode, worked by hand from PyTorch's documented rule (out = ceil((n + pads - e)/s) + 1,
# minus one when the last window would start at or past n + before).
@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "floor_out", "ceil_out"),
    [
        (5, 2, 2, (0, 0), 2, 3),  # the last window holds the 5th element alone
        (6, 3, 2, (1, 1), 3, 4),  # it starts at padded 6 < n + before = 7: kept
        (5, 1, 3, (0, 0), 2, 2),  # ceil would give 3, but window 2 starts at 6 >= 5
        (4, 2, 3, (1, 1), 2, 2),
        (5, 3, 2, (1, 1), 3, 3),  # exact fit: ceil changes nothing
        (7, 3, 3, (0, 2), 3, 3),  # ceil gives 3 + 1; that window would start at 9 >= 7
        (2, 3, 1, (0, 0), 0, 0),  # the kernel does not fit either way
        (5, 2, 2, "VALID", 2, 3),
    ],
)
def test_ceil_mode_hand_worked(
    size: int,
    kernel: int,
    stride: int,
    padding: str | tuple[int, int],
    floor_out: int,
    ceil_out: int,
) -> None:
    assert axis_geometry(size, kernel, stride, 1, padding)[0] == floor_out
    assert axis_geometry(size, kernel, stride, 1, padding, ceil_mode=True)[0] == ceil_out


@given(sizes, kernels, steps, steps, st.integers(0, 6), st.integers(0, 6))
def test_ceil_mode_windows_start_inside_the_padded_input(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int
) -> None:
    floor_out = axis_geometry(size, kernel, stride, dilation, (before, after))[0]
    out, _, _ = axis_geometry(size, kernel, stride, dilation, (before, after), ceil_mode=True)
    extent = (kernel - 1) * dilation + 1
    if size and max(before, after) < extent:
        # Pooling's precondition (no window of padding only in floor mode): ceil mode adds
        # at most the one partial window at the end.
        assert floor_out <= out <= floor_out + 1
        # ... and every window starts before the end padding.
        assert out == 0 or (out - 1) * stride < size + before
    resolved = windows(
        (size,), (kernel,), (stride,), (dilation,), ((before, after),), ceil_mode=True
    )
    reach = (out - 1) * stride + extent if out else 0
    assert resolved.overhang == (max(reach - (size + before + after), 0),)
    assert (resolved.overhang[0] > 0) == (out > floor_out and reach > size + before + after)


@given(sizes, kernels, steps, steps, st.sampled_from(["SAME", "SAME_LOWER"]))
def test_ceil_mode_is_a_no_op_under_same(
    size: int, kernel: int, stride: int, dilation: int, mode: str
) -> None:
    assert axis_geometry(size, kernel, stride, dilation, mode, ceil_mode=True) == axis_geometry(
        size, kernel, stride, dilation, mode
    )


@given(
    st.lists(st.tuples(sizes, kernels, steps, steps), min_size=1, max_size=3),
    st.sampled_from(["SAME", "SAME_LOWER", "VALID", "explicit"]),
)
def test_windows_is_axis_geometry_per_axis(
    axes: list[tuple[int, int, int, int]], mode: str
) -> None:
    padding: str | tuple[tuple[int, int], ...] = mode
    if mode == "explicit":
        padding = tuple((k % 3, s % 2) for _, k, s, _ in axes)
    resolved = windows(
        [a[0] for a in axes],
        [a[1] for a in axes],
        [a[2] for a in axes],
        [a[3] for a in axes],
        padding,
    )
    for axis, (size, kernel, stride, dilation) in enumerate(axes):
        axis_padding = padding if isinstance(padding, str) else padding[axis]
        out, before, after = axis_geometry(size, kernel, stride, dilation, axis_padding)
        assert resolved.out[axis] == out
        assert resolved.pads[axis] == (before, after)
        assert resolved.overhang[axis] == 0
    assert resolved.rank == len(axes)


@pytest.mark.parametrize("rank", [1, 3])
def test_explicit_padding_has_one_pair_per_axis(rank: int) -> None:
    pads = tuple((axis, axis + 1) for axis in range(rank))
    assert normalize_padding("conv", pads, rank) == pads
    with pytest.raises(ValueError, match=f"{rank} \\(before, after\\) pairs"):
        normalize_padding("conv", ((1, 1),) * (rank + 1), rank)


def test_huge_sizes_stay_exact() -> None:
    # Python ints: no overflow for sizes no array could have (hostile input is refused by
    # the ops, not miscomputed here).
    out, before, after = axis_geometry(4, 3, 1, 10**9, "SAME")
    assert (out, before, after) == (4, 10**9, 10**9)


# --- tap clipping, live spans, phases, the transposed size rule ---------------------------------

offsets = st.integers(-30, 30)
pads = st.integers(-6, 12)


@given(sizes, st.integers(0, 12), steps, offsets)
def test_tap_range_is_exactly_the_outputs_that_land_inside(
    size: int, out: int, stride: int, offset: int
) -> None:
    lo, hi = tap_range(size, out, stride, offset)
    inside = [i for i in range(out) if 0 <= i * stride + offset < size]
    assert list(range(lo, hi)) == inside
    assert 0 <= lo <= max(hi, 0) <= out or lo == hi


@given(sizes, st.integers(0, 12), kernels, steps, steps, pads)
def test_live_span_keeps_every_read_of_real_input(
    size: int, out: int, kernel: int, stride: int, dilation: int, before: int
) -> None:
    span = live_span(size, out, kernel, stride, dilation, before)
    reads = {
        (i, p)
        for i in range(out)
        for p in range(kernel)
        if 0 <= i * stride + p * dilation - before < size
    }
    assert span.empty == (not reads)
    if reads:
        assert span.out_start == min(i for i, _ in reads)
        assert span.out_stop == max(i for i, _ in reads) + 1
        assert span.tap_start == min(p for _, p in reads)
        assert span.tap_stop == max(p for _, p in reads) + 1
        # Inside the span, the restricted indices read the same input elements.
        for i, p in reads:
            restricted = (i - span.out_start) * stride + (p - span.tap_start) * dilation
            assert restricted - span.before == i * stride + p * dilation - before


def test_live_span_of_huge_dilation_is_the_centre_tap() -> None:
    # SAME, 3 taps at dilation 10**9 on 4 elements: only the centre tap ever reads input.
    out, before, _ = axis_geometry(4, 3, 1, 10**9, "SAME")
    span = live_span(4, out, 3, 1, 10**9, before)
    assert (span.out_start, span.out_stop, span.tap_start, span.tap_stop) == (0, 4, 1, 2)
    assert span.before == 0


def test_live_span_of_huge_pads_and_stride_is_the_middle_window() -> None:
    out, before, _ = axis_geometry(4, 3, 10**6, 1, (10**6, 10**6))
    assert out == 3
    span = live_span(4, out, 3, 10**6, 1, before)
    assert (span.out_start, span.out_stop, span.tap_start, span.tap_stop) == (1, 2, 0, 3)
    assert span.before == 0


@given(sizes, st.integers(1, 12), kernels, steps, steps, pads)
def test_crop_pads_give_the_length_the_windows_read(
    size: int, out: int, kernel: int, stride: int, dilation: int, before: int
) -> None:
    got_before, after = crop_pads(size, out, kernel, stride, dilation, before)
    assert got_before == before
    assert size + before + after == (out - 1) * stride + (kernel - 1) * dilation + 1


@given(st.integers(0, 12), kernels, steps, steps, pads)
def test_adjoint_geometry_inverts_the_index_relation(
    out: int, kernel: int, stride: int, dilation: int, before: int
) -> None:
    # r = i*s + p*d - before  <=>  dyz index i*s = r + q*d - before' with q = K-1-p.
    length, flipped = adjoint_geometry(out, kernel, stride, dilation, before)
    assert length == ((out - 1) * stride + 1 if out else 0)
    for i in range(out):
        for p in range(kernel):
            r = i * stride + p * dilation - before
            q = kernel - 1 - p
            assert r + q * dilation - flipped == i * stride


@given(sizes, kernels, steps, steps, pads)
def test_phases_partition_every_read(
    size: int, kernel: int, stride: int, dilation: int, before: int
) -> None:
    found = set()
    for phase in phases(size, kernel, stride, dilation, before):
        assert 0 <= phase.first < min(stride, size)
        assert phase.length == len(range(phase.first, size, stride))
        assert list(phase.taps) == sorted(phase.taps)
        steps_ = {b - a for a, b in zip(phase.shifts, phase.shifts[1:], strict=False)}
        assert len(steps_) <= 1
        assert phase.dilation == (steps_.pop() if steps_ else 1)
        for tap, shift in zip(phase.taps, phase.shifts, strict=True):
            for u in range(phase.length):
                # Input first + s*u is read by tap `tap` of output u - shift.
                i = u - shift
                assert i * stride + tap * dilation - before == phase.first + stride * u
                found.add((phase.first + stride * u, tap))
    expected = {
        (r, p)
        for r in range(size)
        for p in range(kernel)
        if (r + before - p * dilation) % stride == 0
    }
    assert found == expected


@given(st.integers(0, 9), kernels, steps, steps, st.integers(0, 4), st.integers(0, 4), st.data())
def test_transpose_geometry_is_onnx_size_and_the_forward_adjoint(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    before: int,
    after: int,
    data: st.DataObject,
) -> None:
    extent = (kernel - 1) * dilation + 1
    extra = data.draw(st.integers(0, max(stride, dilation) - 1))
    n, got_before = transpose_geometry(size, kernel, stride, dilation, (before, after), extra)
    # ONNX ConvTranspose: output = s*(in - 1) + output_padding + extent - pads.
    assert n == stride * (size - 1) + extra + extent - before - after
    assert got_before == before
    for mode in ("SAME", "SAME_LOWER"):
        n, got_before = transpose_geometry(size, kernel, stride, dilation, mode)
        assert n == size * stride
        # The forward SAME conv of that length has exactly `size` windows, and its pad.
        out, forward_before, _ = axis_geometry(n, kernel, stride, dilation, mode)
        assert out == size
        assert got_before == forward_before
    assert transpose_geometry(size, kernel, stride, dilation, "VALID") == (
        stride * (size - 1) + extent,
        0,
    )


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "extra", "expected"),
    [
        # ONNX backend cases: convtranspose_pad (3 -> 10 with s=3, op=1), _pads (pads 1,2 / 1,2).
        (3, 3, 3, (0, 0), 1, (10, 0)),
        (3, 3, 2, (0, 0), 1, (8, 0)),
        (3, 3, 3, (1, 1), 0, (7, 1)),
        (3, 3, 2, (2, 2), 0, (3, 2)),
        (3, 3, 2, "SAME", 0, (6, 0)),  # convtranspose_autopad_same: total 1, extra after
        (3, 3, 2, "SAME_LOWER", 0, (6, 1)),
    ],
)
def test_transpose_geometry_hand_worked(
    size: int,
    kernel: int,
    stride: int,
    padding: str | tuple[int, int],
    extra: int,
    expected: tuple[int, int],
) -> None:
    assert transpose_geometry(size, kernel, stride, 1, padding, extra) == expected
