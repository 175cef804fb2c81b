"""Convolution: hand-worked cases, loop oracles, exact arithmetic, adjoints, every route.

Covers :func:`refcnn.conv` (1-D, 2-D, 3-D, groups, both data formats), its gradients, the
input-gradient routes, :func:`refcnn.conv_transpose`, and inputs built to be expensive
(pads and dilations that reach only padding, sizes no array can have).
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from refcnn import _conv_routes as routes
from refcnn import _naive
from refcnn import convolution as conv_module
from refcnn.padding import normalize_padding, windows

Array = npt.NDArray[Any]

CLASSIC_X = np.array(
    [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
)
CLASSIC_W = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def nhwc(image: Array) -> Array:
    return image[None, :, :, None]


def hwio(kernel: Array) -> Array:
    return kernel[:, :, None, None]


# --- hand-worked cases: the classic 2-D examples -----------------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.float32, np.float64])
def test_classic_5x5_example(dtype: type) -> None:
    y = refcnn.conv2d(nhwc(CLASSIC_X).astype(dtype), hwio(CLASSIC_W).astype(dtype))
    assert y.dtype == dtype
    np.testing.assert_array_equal(y[0, :, :, 0], [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_two_channel_two_filter_example() -> None:
    # Channel 0 with kernel [[1,0],[0,-1]] gives x[i,j] - x[i+1,j+1] = -4 everywhere; channel 1
    # (a diagonal) with kernel [[1,2],[3,4]] gives [[1+2*4, 2*3], [2*2, 2+3*4]] = [[9,6],[4,14]].
    x = np.zeros((1, 3, 3, 2), dtype=np.int64)
    x[0, :, :, 0] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x[0, :, :, 1] = np.diag([1, 2, 3])
    w = np.zeros((2, 2, 2, 2), dtype=np.int64)
    w[:, :, 0, 0] = [[1, 0], [0, -1]]
    w[:, :, 1, 0] = [[1, 2], [3, 4]]
    w[:, :, :, 1] = -w[:, :, :, 0]
    b = np.array([100, 0])
    y = refcnn.conv2d(x, w, b)
    np.testing.assert_array_equal(y[0, :, :, 0], [[105, 102], [100, 110]])
    np.testing.assert_array_equal(y[0, :, :, 1], [[-5, -2], [0, -10]])


def test_same_padding_on_classic_example() -> None:
    # SAME with a 3x3 kernel pads one zero all round; the corner sees the 2x2 block
    # [[1,1],[0,1]] under kernel taps w11=1 (centre), w12=0, w21=0, w22=1.
    y = refcnn.conv2d(nhwc(CLASSIC_X), hwio(CLASSIC_W), padding="SAME")[0, :, :, 0]
    assert y.shape == (5, 5)
    np.testing.assert_array_equal(y[1:4, 1:4], [[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    assert y[0, 0] == 2


@pytest.mark.parametrize("trial", range(10))
def test_gradient_expansion_3x3_input_2x2_kernel(trial: int) -> None:
    """The classic expansions, 1-indexed: ``da22 = d11*w22 + d12*w21 + d21*w12 + d22*w11``..."""
    rng = np.random.default_rng(trial)
    a = rng.integers(-50, 50, (3, 3))
    w = rng.integers(-50, 50, (2, 2))
    d = rng.integers(-50, 50, (2, 2))
    (a11, a12, a13), (a21, a22, a23), (a31, a32, a33) = a.tolist()
    (w11, w12), (w21, w22) = w.tolist()
    (d11, d12), (d21, d22) = d.tolist()
    expected_da = [
        [d11 * w11, d11 * w12 + d12 * w11, d12 * w12],
        [
            d11 * w21 + d21 * w11,
            d11 * w22 + d12 * w21 + d21 * w12 + d22 * w11,
            d12 * w22 + d22 * w12,
        ],
        [d21 * w21, d21 * w22 + d22 * w21, d22 * w22],
    ]
    expected_dw = [
        [
            a11 * d11 + a12 * d12 + a21 * d21 + a22 * d22,
            a12 * d11 + a13 * d12 + a22 * d21 + a23 * d22,
        ],
        [
            a21 * d11 + a22 * d12 + a31 * d21 + a32 * d22,
            a22 * d11 + a23 * d12 + a32 * d21 + a33 * d22,
        ],
    ]
    grads = refcnn.conv2d_backward(nhwc(d), nhwc(a), hwio(w))
    np.testing.assert_array_equal(grads.dx[0, :, :, 0], expected_da)
    np.testing.assert_array_equal(grads.dw[:, :, 0, 0], expected_dw)
    assert grads.db.tolist() == [d11 + d12 + d21 + d22]


@pytest.mark.parametrize("trial", range(10))
def test_gradient_expansion_4x4_input_2x2_kernel_stride_2(trial: int) -> None:
    # Stride 2 with a 2x2 kernel tiles the input: each input touches exactly one output, so
    # da[2i+p, 2j+q] = d[i,j] * w[p,q] and dw[p,q] = sum_ij a[2i+p, 2j+q] * d[i,j].
    rng = np.random.default_rng(trial)
    a = rng.integers(-50, 50, (4, 4))
    w = rng.integers(-50, 50, (2, 2))
    d = rng.integers(-50, 50, (2, 2))
    grads = refcnn.conv2d_backward(nhwc(d), nhwc(a), hwio(w), strides=2)
    expected_da = np.kron(d, np.ones((2, 2), dtype=np.int64)) * np.tile(w, (2, 2))
    np.testing.assert_array_equal(grads.dx[0, :, :, 0], expected_da)
    expected_dw = [
        [
            sum(int(a[2 * i + p, 2 * j + q] * d[i, j]) for i in range(2) for j in range(2))
            for q in range(2)
        ]
        for p in range(2)
    ]
    np.testing.assert_array_equal(grads.dw[:, :, 0, 0], expected_dw)


# --- hand-worked cases: groups, depthwise, 1-D, 3-D -----------------------------------------


def test_grouped_1x1_example() -> None:
    # groups=2 on 4 channels, 1x1 kernel: output 0 sees channels 0-1, output 1 channels 2-3.
    x = np.arange(1, 9, dtype=np.int64).reshape(1, 1, 2, 4)  # pixels [1,2,3,4] and [5,6,7,8]
    w = np.array([[10, 100], [1, 1000]]).reshape(1, 1, 2, 2)  # (KH, KW, C/groups=2, O=2)
    y = refcnn.conv2d(x, w, groups=2)
    # o=0: 1*10 + 2*1 = 12 and 5*10 + 6*1 = 56; o=1: 3*100 + 4*1000 = 4300, 7*100 + 8*1000.
    np.testing.assert_array_equal(y[0, 0], [[12, 4300], [56, 8700]])


def test_depthwise_example_in_tensorflow_channel_order() -> None:
    # groups = C = 2, multiplier 2: output channel c*2 + j is channel c times filter j.
    x = np.zeros((1, 3, 3, 2), dtype=np.int64)
    x[0, :, :, 0] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    x[0, :, :, 1] = 1
    w = np.zeros((2, 2, 1, 4), dtype=np.int64)
    w[:, :, 0, 0] = [[1, 0], [0, 0]]  # channel 0, filter 0: top-left pixel
    w[:, :, 0, 1] = [[0, 0], [0, 1]]  # channel 0, filter 1: bottom-right pixel
    w[:, :, 0, 2] = [[1, 1], [1, 1]]  # channel 1, filter 0: window sum of ones = 4
    w[:, :, 0, 3] = [[1, -1], [0, 0]]  # channel 1, filter 1: 0
    y = refcnn.conv2d(x, w, groups=2)
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 2], [4, 5]])
    np.testing.assert_array_equal(y[0, :, :, 1], [[5, 6], [8, 9]])
    np.testing.assert_array_equal(y[0, :, :, 2], [[4, 4], [4, 4]])
    np.testing.assert_array_equal(y[0, :, :, 3], [[0, 0], [0, 0]])
    # SAME, stride 2: windows start at rows/columns 0 and 2; the second reads padding after.
    y = refcnn.conv2d(x, w, groups=2, strides=2, padding="SAME")
    np.testing.assert_array_equal(y[0, :, :, 1], [[5, 0], [0, 0]])
    np.testing.assert_array_equal(y[0, :, :, 2], [[4, 2], [2, 1]])


def test_one_dimensional_example() -> None:
    # [1, 2, 4, 8, 16, 32] with [1, 0, -1]: x[i] - x[i+2]; at dilation 2: x[i] - x[i+4].
    x = np.array([1, 2, 4, 8, 16, 32], dtype=np.int64).reshape(1, 6, 1)
    w = np.array([1, 0, -1]).reshape(3, 1, 1)
    np.testing.assert_array_equal(refcnn.conv1d(x, w)[0, :, 0], [-3, -6, -12, -24])
    np.testing.assert_array_equal(refcnn.conv1d(x, w, dilations=2)[0, :, 0], [-15, -30])
    # SAME, stride 2 on 6: 3 windows, total pad 1 after: [x0 - x2, x2 - x4, x4 - 0].
    y = refcnn.conv1d(x, w, strides=2, padding="SAME")
    np.testing.assert_array_equal(y[0, :, 0], [-3, -12, 16])
    # Its input gradient sends dy[i] * w[p] to x[2i + p]: [d0, 0, d1 - d0, 0, d2 - d1, 0].
    dx = refcnn.conv_backward_input(
        np.array([1, 10, 100]).reshape(1, 3, 1), w, x.shape, strides=2, padding="SAME"
    )
    np.testing.assert_array_equal(dx[0, :, 0], [1, 0, 9, 0, 90, 0])


def test_three_dimensional_example() -> None:
    x = np.arange(27, dtype=np.int64).reshape(1, 3, 3, 3, 1)  # x[d, h, w] = 9d + 3h + w
    corners = np.ones((2, 2, 2, 1, 1), dtype=np.int64)
    # Dilation 2: the taps sit on the cube's 8 corners, 0+2+6+8+18+20+24+26 = 104.
    assert refcnn.conv3d(x, corners, dilations=2).tolist() == [[[[[104]]]]]
    # SAME with a 2x2x2 sum: the odd pad goes after, so the last window holds x[2,2,2] only.
    y = refcnn.conv3d(x, corners, padding="SAME")[0, :, :, :, 0]
    assert y.shape == (3, 3, 3)
    assert y[0, 0, 0] == 0 + 1 + 3 + 4 + 9 + 10 + 12 + 13
    assert y[2, 2, 2] == 26
    assert y[2, 2, 0] == 24 + 25


CONVTRANSPOSE_ONNX_X = np.arange(9.0).reshape(1, 3, 3, 1)  # ONNX's test_convtranspose x, NHWC


def test_conv_transpose_onnx_example() -> None:
    # ONNX's test_convtranspose: all-ones 3x3 filter, 2 output channels, stride 1: each output
    # pixel sums the x entries whose 3x3 window covers it.
    w = np.ones((3, 3, 2, 1))
    y = refcnn.conv_transpose(CONVTRANSPOSE_ONNX_X, w)
    expected = [
        [0, 1, 3, 3, 2],
        [3, 8, 15, 12, 7],
        [9, 21, 36, 27, 15],
        [9, 20, 33, 24, 13],
        [6, 13, 21, 15, 8],
    ]
    np.testing.assert_array_equal(y[0, :, :, 0], expected)
    np.testing.assert_array_equal(y[0, :, :, 1], expected)


def test_conv_transpose_onnx_sized_with_output_padding() -> None:
    # ONNX's test_convtranspose_pad: strides (3, 2), output_padding (1, 1): the output is
    # 3*(3-1) + 1 + 3 = 10 by 2*(3-1) + 1 + 3 = 8; the last row and column are the padding.
    w = np.ones((3, 3, 1, 1))
    y = refcnn.conv_transpose(CONVTRANSPOSE_ONNX_X, w, strides=(3, 2), output_padding=1)
    rows = [[0, 0, 1, 1, 3, 2, 2, 0], [3, 3, 7, 4, 9, 5, 5, 0], [6, 6, 13, 7, 15, 8, 8, 0]]
    expected = np.array([*[rows[0]] * 3, *[rows[1]] * 3, *[rows[2]] * 3, [0] * 8])
    np.testing.assert_array_equal(y[0, :, :, 0], expected)
    # The same array through output_shape (TensorFlow's conv_transpose).
    np.testing.assert_array_equal(
        refcnn.conv_transpose(CONVTRANSPOSE_ONNX_X, w, strides=(3, 2), output_shape=(10, 8)), y
    )
    # pads (1, 1) on rows, (2, 2) on columns crop that: ONNX's test_convtranspose_pads.
    cropped = refcnn.conv_transpose(
        CONVTRANSPOSE_ONNX_X, w, strides=(3, 2), padding=((1, 1), (2, 2))
    )
    np.testing.assert_array_equal(cropped[0, :, :, 0], expected[1:8, 2:5])


def test_conv_transpose_one_dimensional_onnx_example() -> None:
    y = refcnn.conv_transpose(np.array([0.0, 1.0, 2.0]).reshape(1, 3, 1), np.ones((3, 2, 1)))
    np.testing.assert_array_equal(y[0].T, [[0, 1, 3, 3, 2], [0, 1, 3, 3, 2]])


# --- generated cases ----------------------------------------------------------------------


class ConvCase(NamedTuple):
    """One convolution, channels-last; the repr is a reproducer."""

    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    padding: Any
    groups: int

    @property
    def rank(self) -> int:
        return len(self.x_shape) - 2

    def kwargs(self) -> dict[str, Any]:
        return {
            "strides": self.strides,
            "padding": self.padding,
            "dilations": self.dilations,
            "groups": self.groups,
        }


def paddings(rank: int, most: int = 3) -> st.SearchStrategy[Any]:
    pair = st.tuples(st.integers(0, most), st.integers(0, most))
    return st.one_of(
        st.sampled_from(["VALID", "SAME", "SAME_LOWER"]),
        st.tuples(*(pair for _ in range(rank))),
    )


@st.composite
def conv_cases(
    draw: st.DrawFn,
    *,
    ranks: tuple[int, ...] = (1, 2, 3),
    max_side: int = 7,
    max_kernel: int = 4,
    max_batch: int = 2,
) -> ConvCase:
    """Shapes, strides, dilations, paddings and groups (plain, grouped and depthwise)."""
    rank = draw(st.sampled_from(ranks))
    # 3-D loops are cubic in the side: keep the oracle's work comparable across ranks.
    side = {1: max_side + 3, 2: max_side, 3: min(max_side, 4)}[rank]
    kernel_max = {1: max_kernel + 1, 2: max_kernel, 3: min(max_kernel, 3)}[rank]
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    per_group_in = 1 if draw(st.booleans()) else draw(st.integers(1, 2))
    per_group_out = draw(st.integers(1, 2))
    sizes = tuple(draw(st.integers(1, side)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, kernel_max)) for _ in range(rank))
    return ConvCase(
        (draw(st.integers(0, max_batch)), *sizes, groups * per_group_in),
        (*kernel, per_group_in, groups * per_group_out),
        tuple(draw(st.integers(1, 3)) for _ in range(rank)),
        tuple(draw(st.integers(1, 3)) for _ in range(rank)),
        draw(paddings(rank)),
        groups,
    )


def small_ints(shape: tuple[int, ...], seed: int) -> Array:
    return np.random.default_rng(seed).integers(-9, 10, shape).astype(np.float64)


def fractions_of(array: Array) -> Array:
    out = np.empty(array.shape, dtype=object)
    out.flat[:] = [Fraction(v) for v in array.flat]
    return out


def random_fractions(shape: tuple[int, ...], seed: int) -> Array:
    rng = np.random.default_rng(seed)
    size = math.prod(shape)
    out = np.empty(shape, dtype=object)
    out.flat[:] = [
        Fraction(int(p), int(q))
        for p, q in zip(rng.integers(-50, 51, size), rng.integers(1, 13, size), strict=True)
    ]
    return out


def inner(a: Array, b: Array) -> Fraction:
    return sum((a * b).flat, Fraction(0))


def output_shape(case: ConvCase) -> tuple[int, ...]:
    resolved = windows(
        case.x_shape[1:-1],
        case.w_shape[: case.rank],
        case.strides,
        case.dilations,
        normalize_padding("test", case.padding, case.rank),
    )
    return (case.x_shape[0], *resolved.out, case.w_shape[-1])


@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_fast_path_equals_loop_oracle_exactly(case: ConvCase, seed: int) -> None:
    # Small-integer float64 values make every sum exact, so any index error shows as inequality.
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    b = small_ints(case.w_shape[-1:], seed + 2)
    y = refcnn.conv(x, w, b, **case.kwargs())
    np.testing.assert_array_equal(y, _naive.conv(x, w, b, **case.kwargs()))
    dy = small_ints(y.shape, seed + 3)
    grads = refcnn.conv_backward(dy, x, w, **case.kwargs())
    np.testing.assert_array_equal(
        grads.dx, _naive.conv_backward_input(dy, w, x.shape, **case.kwargs())
    )
    np.testing.assert_array_equal(
        grads.dw, _naive.conv_backward_filter(dy, x, w.shape, **case.kwargs())
    )
    np.testing.assert_array_equal(grads.db, dy.reshape(-1, dy.shape[-1]).sum(axis=0))


@given(conv_cases(max_side=5), st.integers(0, 2**32 - 1))
def test_exact_fractions_match_oracle_and_adjoint_identity(case: ConvCase, seed: int) -> None:
    x, w = random_fractions(case.x_shape, seed), random_fractions(case.w_shape, seed + 1)
    y = refcnn.conv(x, w, **case.kwargs())
    assert y.dtype == object
    assert (y == _naive.conv(x, w, **case.kwargs())).all()
    dy = random_fractions(y.shape, seed + 2)
    dx = refcnn.conv_backward_input(dy, w, x.shape, **case.kwargs())
    dw = refcnn.conv_backward_filter(dy, x, w.shape, **case.kwargs())
    # <conv(x, w), dy> == <x, dx> == <w, dw>, exactly: the gradients are the true adjoints.
    forward = inner(y, dy)
    assert forward == inner(x, dx)
    assert forward == inner(w, dw)


def _setup(case: ConvCase) -> routes.Problem:
    return conv_module._setup(
        "test",
        case.x_shape,
        case.w_shape,
        strides=case.strides,
        padding=case.padding,
        dilations=case.dilations,
        groups=case.groups,
        where="test",
    ).problem


def forward_routes(case: ConvCase) -> list[str]:
    depthwise = case.groups > 1 and case.w_shape[-2] == 1
    return ["im2col", "taps", *(["depthwise", "depthwise-taps"] if depthwise else [])]


@given(conv_cases(max_side=5), st.integers(0, 2**32 - 1))
def test_every_route_is_the_same_sums(case: ConvCase, seed: int) -> None:
    x, w = random_fractions(case.x_shape, seed), random_fractions(case.w_shape, seed + 1)
    problem = _setup(case)
    results = {
        m: conv_module._correlate(x, w, problem, case.groups, method=m)
        for m in forward_routes(case)
    }
    first = results["im2col"]
    assert first.shape == output_shape(case)
    for method, y in results.items():
        assert (y == first).all(), method
    dy = random_fractions(first.shape, seed + 2)
    filters = {
        m: conv_module._filter_gradient(dy, x, problem, case.groups, method=m)
        for m in forward_routes(case)
    }
    for method, dw in filters.items():
        assert dw.shape == case.w_shape, method
        assert (dw == filters["im2col"]).all(), method
    # Every input-gradient route (and the default choice between them) is the same sums.
    dx_routes = {
        m: refcnn.conv_backward_input(dy, w, x.shape, **case.kwargs(), method=m)
        for m in ("auto", "col2im", "polyphase", "rot180")
    }
    for method, dx in dx_routes.items():
        assert dx.shape == case.x_shape, method
        assert (dx == dx_routes["rot180"]).all(), method


class ProblemCase(NamedTuple):
    """A correlation with arbitrary leading offsets (negative: windows start inside)."""

    problem: routes.Problem
    channels: int
    out_channels: int
    groups: int


@st.composite
def problems(draw: st.DrawFn) -> ProblemCase:
    rank = draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2]))
    cg = draw(st.integers(1, 2))
    problem = routes.Problem(
        tuple(draw(st.integers(1, 6)) for _ in range(rank)),
        tuple(draw(st.integers(0, 5)) for _ in range(rank)),
        tuple(draw(st.integers(1, 4)) for _ in range(rank)),
        tuple(draw(st.integers(1, 3)) for _ in range(rank)),
        tuple(draw(st.integers(1, 3)) for _ in range(rank)),
        tuple(draw(st.integers(-4, 8)) for _ in range(rank)),
    )
    return ProblemCase(problem, groups * cg, groups * draw(st.integers(1, 2)), groups)


def correlate_by_definition(x: Array, w: Array, case: ProblemCase) -> Array:
    """``y[n,i,o] = sum_{p,c} x[n, i*s + p*d - before, g*Cg + c] w[p,c,o]`` as loops."""
    p = case.problem
    n, c, o = x.shape[0], case.channels, case.out_channels
    cg, og = c // case.groups, o // case.groups
    y = np.zeros((n, *p.out, o), dtype=object)
    for i in np.ndindex(*p.out):
        for tap in np.ndindex(*p.kernel):
            r = tuple(
                i[a] * p.strides[a] + tap[a] * p.dilations[a] - p.before[a] for a in range(len(i))
            )
            if all(0 <= r[a] < p.sizes[a] for a in range(len(r))):
                for out in range(o):
                    g = out // og
                    xs = x[(slice(None), *r, slice(g * cg, (g + 1) * cg))]
                    y[(slice(None), *i, out)] += xs @ w[(*tap, slice(None), out)]
    return y


@given(problems(), st.integers(0, 2**32 - 1))
def test_routes_agree_on_any_offsets(case: ProblemCase, seed: int) -> None:
    # The routes meet negative leading pads and windows that stop short of the input's end
    # inside the input gradients; check them on those directly.
    p = case.problem
    x = random_fractions((2, *p.sizes, case.channels), seed)
    w = random_fractions((*p.kernel, case.channels // case.groups, case.out_channels), seed + 1)
    expected = correlate_by_definition(x, w, case)
    depthwise = case.channels == case.groups > 1
    methods = ["im2col", "taps"] + (["depthwise", "depthwise-taps"] if depthwise else [])
    for method in methods:
        y = conv_module._correlate(x, w, p, case.groups, method=method)
        assert (y == expected).all(), method
    dy = random_fractions(expected.shape, seed + 2)
    dw = [conv_module._filter_gradient(dy, x, p, case.groups, method=m) for m in methods]
    dx = [
        conv_module._input_gradient("test", dy, w, p, case.groups, m)
        for m in ("col2im", "polyphase", "rot180")
    ]
    for got in dw:
        assert inner(got, w) == inner(expected, dy)
    for got in dx:
        assert inner(got, x) == inner(expected, dy)
        assert (got == dx[0]).all()


@given(conv_cases(max_side=6), st.integers(0, 2**32 - 1))
def test_float64_within_rounding_bound_of_exact(case: ConvCase, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape) * 10.0 ** rng.integers(-3, 4, case.x_shape)
    w = rng.standard_normal(case.w_shape)
    y = refcnn.conv(x, w, **case.kwargs())
    exact = refcnn.conv(fractions_of(x), fractions_of(w), **case.kwargs())
    # A sum of K products in float64 is within K * eps * sum|terms| of the exact sum (the
    # textbook recursive-summation bound, with one more eps for each product).
    k = math.prod(case.w_shape[:-1])
    magnitude = refcnn.conv(np.abs(x), np.abs(w), **case.kwargs())
    error = np.abs((exact - fractions_of(y)).astype(np.float64))
    assert (error <= (k + 1) * np.finfo(np.float64).eps * magnitude).all()


@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_same_modes_equal_explicit_pads_then_valid(case: ConvCase, seed: int) -> None:
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    for mode in ("SAME", "SAME_LOWER"):
        resolved = windows(
            case.x_shape[1:-1], case.w_shape[: case.rank], case.strides, case.dilations, mode
        )
        padded = np.pad(x, ((0, 0), *resolved.pads, (0, 0)))
        kwargs = {**case.kwargs(), "padding": mode}
        np.testing.assert_array_equal(
            refcnn.conv(x, w, **kwargs), refcnn.conv(padded, w, **{**kwargs, "padding": "VALID"})
        )


@given(conv_cases(max_side=5), st.integers(0, 2**32 - 1))
def test_gradients_match_central_differences(case: ConvCase, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(case.x_shape), rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.w_shape[-1])
    dy = rng.standard_normal(output_shape(case))
    grads = refcnn.conv_backward(dy, x, w, **case.kwargs())

    def loss(x_: Array, w_: Array, b_: Array) -> float:
        return float(np.sum(refcnn.conv(x_, w_, b_, **case.kwargs()) * dy))

    # Directional derivatives along random directions (the VJP inner product). The loss is
    # linear in each argument, so the central difference has no truncation error and only
    # rounding of size eps * |loss| / h remains; h = 1e-3 keeps that far below 1e-7.
    h = 1e-3
    for index, grad in enumerate((grads.dx, grads.dw, grads.db)):
        direction = rng.standard_normal(grad.shape)
        plus, minus = [x, w, b], [x, w, b]
        plus[index] = plus[index] + h * direction
        minus[index] = minus[index] - h * direction
        numeric = (loss(*plus) - loss(*minus)) / (2 * h)
        analytic = float(np.sum(grad * direction))
        scale = float(np.sum(np.abs(grad * direction))) + 1.0
        assert abs(numeric - analytic) <= 1e-8 * scale


CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


@given(conv_cases(max_side=5), st.integers(0, 2**32 - 1))
def test_channels_first_is_channels_last_transposed(case: ConvCase, seed: int) -> None:
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    b = small_ints(case.w_shape[-1:], seed + 2)
    dy = small_ints(output_shape(case), seed + 3)
    first, last = CHANNELS_FIRST[case.rank], CHANNELS_LAST[case.rank]

    def cf(a: Array) -> Array:
        return np.moveaxis(a, -1, 1)

    kwargs = case.kwargs()
    y = refcnn.conv(x, w, b, **kwargs)
    np.testing.assert_array_equal(refcnn.conv(x, w, b, **kwargs, data_format=last), y)
    y_cf = refcnn.conv(cf(x), w, b, **kwargs, data_format=first)
    assert y_cf.flags.c_contiguous
    np.testing.assert_array_equal(y_cf, cf(y))
    grads = refcnn.conv_backward(dy, x, w, **kwargs)
    grads_cf = refcnn.conv_backward(cf(dy), cf(x), w, **kwargs, data_format=first)
    np.testing.assert_array_equal(grads_cf.dx, cf(grads.dx))
    np.testing.assert_array_equal(grads_cf.dw, grads.dw)
    np.testing.assert_array_equal(grads_cf.db, grads.db)
    np.testing.assert_array_equal(refcnn.conv_backward_bias(cf(dy), data_format=first), grads.db)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_rank_functions_are_conv_restricted_to_their_rank(rank: int) -> None:
    # Small integers: every route's sums are exact, so they compare equal.
    x = small_ints((2, *(5,) * rank, 4), rank)
    w = small_ints((*(3,) * rank, 2, 6), rank + 1)
    kwargs: dict[str, Any] = {"strides": 2, "padding": "SAME", "groups": 2}
    function = {1: refcnn.conv1d, 2: refcnn.conv2d, 3: refcnn.conv3d}[rank]
    np.testing.assert_array_equal(function(x, w, **kwargs), refcnn.conv(x, w, **kwargs))
    other = {1: refcnn.conv2d, 2: refcnn.conv3d, 3: refcnn.conv1d}[rank]
    with pytest.raises(ValueError, match="x must be"):
        other(x, w, **kwargs)
    if rank == 2:
        dy = small_ints(refcnn.conv(x, w, **kwargs).shape, 3)
        grads = refcnn.conv2d_backward(dy, x, w, **kwargs)
        assert isinstance(grads, refcnn.Conv2DGradients)
        assert isinstance(grads, refcnn.ConvGradients)
        reference = refcnn.conv_backward(dy, x, w, **kwargs)
        for got, expected in zip(grads, reference, strict=True):
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            refcnn.conv2d_backward_input(dy, w, x.shape, **kwargs, method="rot180"),
            reference.dx,
        )
        np.testing.assert_array_equal(
            refcnn.conv2d_backward_filter(dy, x, w.shape, **kwargs), reference.dw
        )
        np.testing.assert_array_equal(refcnn.conv2d_backward_bias(dy), reference.db)


@given(conv_cases(max_side=5), st.integers(0, 2**32 - 1))
def test_integers_are_exact(case: ConvCase, seed: int) -> None:
    x = small_ints(case.x_shape, seed).astype(np.int64)
    w = small_ints(case.w_shape, seed + 1).astype(np.int64)
    y = refcnn.conv(x, w, **case.kwargs())
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, _naive.conv(x, w, **case.kwargs()))
    dy = small_ints(y.shape, seed + 2).astype(np.int64)
    grads = refcnn.conv_backward(dy, x, w, **case.kwargs())
    assert {grads.dx.dtype, grads.dw.dtype, grads.db.dtype} == {np.dtype(np.int64)}
    np.testing.assert_array_equal(
        grads.dx, _naive.conv_backward_input(dy, w, x.shape, **case.kwargs())
    )


# --- conv_transpose -----------------------------------------------------------------------


class TransposeCase(NamedTuple):
    """A transposed convolution, channels-last; the repr is a reproducer."""

    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    padding: Any
    output_padding: tuple[int, ...]
    groups: int

    def kwargs(self) -> dict[str, Any]:
        return {
            "strides": self.strides,
            "padding": self.padding,
            "dilations": self.dilations,
            "output_padding": self.output_padding,
            "groups": self.groups,
        }


@st.composite
def transpose_cases(draw: st.DrawFn, *, below_stride: bool = False) -> TransposeCase:
    """Cases whose output is not empty; ``below_stride``: output_padding < stride."""
    case = draw(conv_cases(max_side=4, max_kernel=3))
    rank = case.rank
    x_shape = (case.x_shape[0], *case.x_shape[1:-1], case.w_shape[-1])
    padding = case.padding
    limit = [
        s if below_stride else max(s, d) for s, d in zip(case.strides, case.dilations, strict=True)
    ]
    extra = tuple(draw(st.integers(0, n - 1)) for n in limit)
    if isinstance(padding, str) and padding != "VALID":
        extra = (0,) * rank
    elif not isinstance(padding, str):
        # Pads may remove at most the whole full output.
        full = [
            s * (n - 1) + e + (k - 1) * d + 1
            for s, n, e, k, d in zip(
                case.strides, x_shape[1:-1], extra, case.w_shape[:rank], case.dilations, strict=True
            )
        ]
        padding = tuple(
            (min(b, f // 2), min(a, f - f // 2 - 1))
            for (b, a), f in zip(padding, full, strict=True)
        )
    return TransposeCase(
        x_shape, case.w_shape, case.strides, case.dilations, padding, extra, case.groups
    )


@given(transpose_cases(), st.integers(0, 2**32 - 1))
def test_conv_transpose_is_onnx_convtranspose_exactly(case: TransposeCase, seed: int) -> None:
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    b = small_ints((case.groups * case.w_shape[-2],), seed + 2)
    y = refcnn.conv_transpose(x, w, b, **case.kwargs())
    np.testing.assert_array_equal(y, _naive.conv_transpose(x, w, b, **case.kwargs()))
    for method in ("col2im", "polyphase", "rot180"):
        np.testing.assert_array_equal(
            refcnn.conv_transpose(x, w, b, **case.kwargs(), method=method), y
        )


@given(transpose_cases(below_stride=True), st.integers(0, 2**32 - 1))
def test_conv_transpose_is_the_adjoint_of_conv(case: TransposeCase, seed: int) -> None:
    x, w = random_fractions(case.x_shape, seed), random_fractions(case.w_shape, seed + 1)
    y = refcnn.conv_transpose(x, w, **case.kwargs())
    z = random_fractions(y.shape, seed + 2)
    forward = {k: v for k, v in case.kwargs().items() if k != "output_padding"}
    conv_z = refcnn.conv(z, w, **forward)
    # output_padding < stride: the conv of the transposed output's shape has x's shape, and
    # <conv(z), x> == <z, conv_transpose(x)> exactly.
    assert conv_z.shape == x.shape
    assert inner(conv_z, x) == inner(z, y)
    # With output_shape it is conv_backward_input of that shape (TensorFlow's definition).
    dx = refcnn.conv_backward_input(x, w, y.shape, **forward)
    assert (dx == y).all()
    spatial = y.shape[1:-1]
    for shape in (spatial, y.shape):
        got = refcnn.conv_transpose(x, w, output_shape=shape, **forward)
        assert (got == y).all()


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode", ["SAME", "SAME_LOWER"])
def test_conv_transpose_same_is_input_times_stride(rank: int, mode: str) -> None:
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((2, *(3,) * rank, 4))
    w = rng.standard_normal((*(4,) * rank, 3, 4))
    y = refcnn.conv_transpose(x, w, strides=2, padding=mode)
    assert y.shape == (2, *(6,) * rank, 3)
    np.testing.assert_array_equal(
        y, refcnn.conv_backward_input(x, w, y.shape, strides=2, padding=mode)
    )
    first = CHANNELS_FIRST[rank]
    y_cf = refcnn.conv_transpose(
        np.moveaxis(x, -1, 1), w, strides=2, padding=mode, data_format=first
    )
    np.testing.assert_array_equal(y_cf, np.moveaxis(y, -1, 1))
    full = refcnn.conv_transpose(
        np.moveaxis(x, -1, 1),
        w,
        output_shape=(2, 3, *(6,) * rank),
        strides=2,
        padding=mode,
        data_format=first,
    )
    np.testing.assert_array_equal(full, y_cf)


def test_conv_transpose_where_onnx_same_split_differs() -> None:
    # Kernel extent 1 < stride 2 under SAME: the forward SAME conv of 2*in needs no pad, so its
    # adjoint puts each x[i] at 2i (the odd output after). ONNX's total = s*(in-1) + extent -
    # in*s = -1 splits as pads (-1, 0) for SAME_UPPER in its reference (a zero first instead);
    # refcnn follows the adjoint, so conv_transpose(SAME) == conv_backward_input(SAME).
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 3, 1)
    w = np.ones((1, 1, 1))
    y = refcnn.conv_transpose(x, w, strides=2, padding="SAME")
    np.testing.assert_array_equal(y[0, :, 0], [1, 0, 2, 0, 3, 0])
    y = refcnn.conv_transpose(x, w, strides=2, padding="SAME_LOWER")
    np.testing.assert_array_equal(y[0, :, 0], [1, 0, 2, 0, 3, 0])


def test_conv_transpose_output_padding_up_to_the_dilation() -> None:
    # ONNX allows output_padding < max(stride, dilation): with stride 1 and dilation 3 the
    # extra output indices after the full output are zero.
    x = np.array([1.0, 2.0]).reshape(1, 2, 1)
    w = np.array([1.0, 10.0]).reshape(2, 1, 1)
    y = refcnn.conv_transpose(x, w, dilations=3, output_padding=2)
    # full output: x[i] * w[p] at i + 3p -> [1, 2, 0, 10, 20], then two zeros.
    np.testing.assert_array_equal(y[0, :, 0], [1, 2, 0, 10, 20, 0, 0])


# --- dtypes, edges, memory, purity ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dtype_is_kept_and_close_to_float64(dtype: type, rank: int) -> None:
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((2, *(5,) * rank, 4)).astype(dtype)
    w = rng.standard_normal((*(3,) * rank, 2, 4)).astype(dtype)
    kwargs: dict[str, Any] = {"strides": 2, "padding": "SAME", "groups": 2}
    y = refcnn.conv(x, w, **kwargs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = refcnn.conv_backward(dy, x, w, **kwargs)
    z = refcnn.conv_transpose(dy, w, **kwargs)
    assert {y.dtype, grads.dx.dtype, grads.dw.dtype, grads.db.dtype, z.dtype} == {np.dtype(dtype)}
    reference = refcnn.conv(x.astype(np.float64), w.astype(np.float64), **kwargs)
    # float16 accumulates in float32 and rounds once: within one float16 ulp of the result
    # (plus float32's own sum error, far smaller); others: the K-term summation bound.
    k = 3**rank * 2
    relative = np.finfo(dtype).eps * (1 if dtype == np.float16 else k + 1)
    magnitude = refcnn.conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), **kwargs)
    assert (np.abs(y.astype(np.float64) - reference) <= relative * magnitude).all()


def test_bias_is_one_value_per_filter() -> None:
    x, w = np.zeros((2, 4, 5, 3)), np.zeros((2, 2, 3, 4))
    b = np.array([1.0, 2.0, 3.0, 4.0])
    y = refcnn.conv2d(x, w, b)
    assert y.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(y, np.broadcast_to(b, y.shape))
    np.testing.assert_array_equal(refcnn.conv2d_backward_bias(np.ones(y.shape)), [24.0] * 4)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "strides", "padding", "y_shape"),
    [
        ((0, 5, 5, 2), (3, 3, 2, 4), 1, "SAME", (0, 5, 5, 4)),  # empty batch
        ((2, 5, 2, 1), (4, 3, 1, 1), 2, "VALID", (2, 1, 0, 1)),  # empty output (TF segfault case)
        ((1, 2, 2, 1), (3, 3, 1, 2), 1, "VALID", (1, 0, 0, 2)),  # kernel larger than input
        ((1, 4, 3, 2), (4, 3, 2, 1), 1, "VALID", (1, 1, 1, 1)),  # kernel equal to input
        ((1, 7, 7, 1), (1, 1, 1, 1), 3, "VALID", (1, 3, 3, 1)),  # kernel smaller than stride
        ((1, 6, 5, 1), (2, 4, 1, 1), 1, "SAME", (1, 6, 5, 1)),  # even kernels
    ],
)
def test_edge_shapes_like_tensorflow(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    strides: int,
    padding: str,
    y_shape: tuple[int, ...],
) -> None:
    x, w = small_ints(x_shape, 0), small_ints(w_shape, 1)
    y = refcnn.conv2d(x, w, strides=strides, padding=padding)
    assert y.shape == y_shape
    np.testing.assert_array_equal(y, _naive.conv2d(x, w, strides=strides, padding=padding))
    dy = small_ints(y_shape, 2)
    grads = refcnn.conv2d_backward(dy, x, w, strides=strides, padding=padding)
    assert grads.dx.shape == x_shape
    assert grads.dw.shape == w_shape
    np.testing.assert_array_equal(
        grads.dx, _naive.conv2d_backward_input(dy, w, x_shape, strides=strides, padding=padding)
    )
    np.testing.assert_array_equal(
        grads.dw, _naive.conv2d_backward_filter(dy, x, w_shape, strides=strides, padding=padding)
    )


def test_uncovered_rows_get_exactly_zero_gradient() -> None:
    # VALID, 3x3 kernel, stride 2 on 6 rows: windows start at rows 0 and 2, so row 5 is never
    # read by the forward pass and its gradient must be exactly zero.
    x, w = np.ones((1, 6, 6, 1)), np.ones((3, 3, 1, 1))
    for method in ("auto", "col2im", "polyphase", "rot180"):
        dx = refcnn.conv2d_backward_input(
            np.ones((1, 2, 2, 1)), w, x.shape, strides=2, method=method
        )
        assert (dx[0, 5, :, 0] == 0).all()
        assert (dx[0, :, 5, 0] == 0).all()
        assert (dx[0, :5, :5, 0] > 0).all()


def test_nan_and_inf_propagate() -> None:
    x = np.zeros((1, 3, 3, 1))
    x[0, 0, 0, 0] = np.nan
    x[0, 2, 2, 0] = np.inf
    y = refcnn.conv2d(x, np.ones((2, 2, 1, 1)))
    assert np.isnan(y[0, 0, 0, 0])
    assert y[0, 1, 1, 0] == np.inf
    assert y[0, 0, 1, 0] == 0
    depthwise = refcnn.conv2d(np.repeat(x, 2, axis=-1), np.ones((2, 2, 1, 2)), groups=2)
    np.testing.assert_array_equal(depthwise[..., 0], y[..., 0])


@pytest.mark.parametrize("method", ["auto", "col2im", "polyphase", "rot180"])
def test_large_strided_input_gradient_stays_small_in_memory(method: str) -> None:
    # Zero-inserting dy for this case and taking im2col of it would need ~2.5 GB
    # (8*112*112 rows x 7*7*64 columns); the tap formulation of the textbook route keeps the
    # peak near 0.2 GB, col2im and polyphase work batch chunk by batch chunk.
    rng = np.random.default_rng(0)
    w = rng.standard_normal((7, 7, 3, 64))
    dy = rng.standard_normal((8, 56, 56, 64))
    tracemalloc.start()
    try:
        dx = refcnn.conv2d_backward_input(
            dy, w, (8, 112, 112, 3), strides=2, padding="SAME", method=method
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dx.shape == (8, 112, 112, 3)
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_inputs_are_never_modified() -> None:
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 5, 6, 4)), rng.standard_normal((3, 2, 2, 4)), np.ones(4)
    w_depthwise = rng.standard_normal((3, 2, 1, 8))
    dy = rng.standard_normal((2, 3, 3, 4))
    dy_depthwise = rng.standard_normal((2, 3, 3, 8))
    arrays = (x, w, b, dy, w_depthwise, dy_depthwise)
    copies = [a.copy() for a in arrays]
    for array in arrays:
        array.setflags(write=False)  # any write now raises instead of passing silently
    kwargs: dict[str, Any] = {"strides": (2, 2), "padding": "SAME_LOWER", "groups": 2}
    refcnn.conv2d(x, w, b, **kwargs)
    refcnn.conv2d_backward(dy, x, w, **kwargs)
    for method in ("col2im", "polyphase", "rot180"):
        refcnn.conv2d_backward_input(dy, w, x.shape, **kwargs, method=method)
    refcnn.conv_transpose(dy, w, b, **kwargs)
    depthwise: dict[str, Any] = {**kwargs, "groups": 4}
    refcnn.conv2d(x, w_depthwise, **depthwise)
    refcnn.conv2d_backward(dy_depthwise, x, w_depthwise, **depthwise)
    cf = np.moveaxis(x, -1, 1)
    refcnn.conv2d(cf, w, b, **kwargs, data_format="NCHW")
    for array, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# --- bad input ---------------------------------------------------------------------------

X, W = np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 2, 4))
X4, X1 = np.zeros((1, 5, 5, 4)), np.zeros((1, 5, 2))
DY = np.zeros((1, 3, 3, 4))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: refcnn.conv2d(None, W), TypeError, "x must be an array, got None"),
        (lambda: refcnn.conv2d(X, None), TypeError, "w must be an array, got None"),
        (lambda: refcnn.conv2d(X[0], W), ValueError, r"x must be 4-D \(N, H, W, C\), got shape"),
        (
            lambda: refcnn.conv2d(X[0], W, data_format="NCHW"),
            ValueError,
            r"x must be 4-D \(N, C, H, W\)",
        ),
        (lambda: refcnn.conv2d(X, W[0]), ValueError, r"w must be 4-D \(KH, KW, C, O\)"),
        (lambda: refcnn.conv1d(X, W), ValueError, r"x must be 3-D \(N, W, C\)"),
        (lambda: refcnn.conv3d(X, W), ValueError, r"x must be 5-D \(N, D, H, W, C\)"),
        (lambda: refcnn.conv(X[0, 0], W), ValueError, "x must be 3-D, 4-D or 5-D"),
        (lambda: refcnn.conv(X1, W), ValueError, r"w must be 3-D \(KW, C, O\)"),
        (lambda: refcnn.conv2d(X, np.zeros((3, 3, 3, 4))), ValueError, "input channels C=2"),
        (lambda: refcnn.conv2d(X, np.zeros((0, 3, 2, 4))), ValueError, "filter spatial size"),
        (lambda: refcnn.conv2d(X, W, np.zeros(3)), ValueError, r"b must have shape \(4,\)"),
        (lambda: refcnn.conv2d(X, W, np.zeros((1, 4))), ValueError, r"b must be 1-D"),
        (lambda: refcnn.conv2d(X, W, strides=0), ValueError, "strides must be >= 1"),
        (lambda: refcnn.conv2d(X, W, strides=(1, -2)), ValueError, "strides must be >= 1"),
        (lambda: refcnn.conv2d(X, W, strides=(1, 2, 3)), ValueError, "strides must be an int or"),
        (
            lambda: refcnn.conv(
                np.zeros((1, 3, 3, 3, 1)), np.zeros((1, 1, 1, 1, 1)), strides=(1, 2)
            ),
            ValueError,
            "strides must be an int or a sequence of 3 ints",
        ),
        (lambda: refcnn.conv2d(X, W, strides=1.5), TypeError, "strides must be an int"),
        (lambda: refcnn.conv2d(X, W, strides=True), TypeError, "strides must be an int"),
        (lambda: refcnn.conv2d(X, W, dilations=0), ValueError, "dilations must be >= 1"),
        (lambda: refcnn.conv2d(X, W, padding="FULL"), ValueError, "padding must be one of"),
        (lambda: refcnn.conv2d(X, W, padding=((1, -1), (0, 0))), ValueError, "negative pad"),
        (lambda: refcnn.conv2d(X, W, padding=((1, 1),)), ValueError, "padding must be"),
        (
            lambda: refcnn.conv1d(X1, np.zeros((3, 2, 1)), padding=((1, 1), (1, 1))),
            ValueError,
            r"1 \(before, after\) pairs",
        ),
        (lambda: refcnn.conv2d(X.astype(complex), W.astype(complex)), TypeError, "dtype complex"),
        (lambda: refcnn.conv2d(X.astype(bool), W.astype(bool)), TypeError, "dtype bool"),
        (lambda: refcnn.conv2d(np.full((1, 2, 2, 1), "a"), W), TypeError, "x must have"),
        (lambda: refcnn.conv2d(X.astype(np.float32), W), TypeError, "share one dtype"),
        # groups
        (lambda: refcnn.conv2d(X, W, groups=0), ValueError, "groups must be >= 1"),
        (lambda: refcnn.conv2d(X, W, groups=2.0), TypeError, "groups must be an int"),
        (
            lambda: refcnn.conv2d(X, np.zeros((3, 3, 1, 4)), groups=3),
            ValueError,
            "groups=3 must divide the input channels C=2",
        ),
        (
            lambda: refcnn.conv2d(X4, np.zeros((3, 3, 2, 3)), groups=2),
            ValueError,
            "groups=2 must divide the filter's output channels O=3",
        ),
        (
            lambda: refcnn.conv2d(X4, np.zeros((3, 3, 4, 4)), groups=2),
            ValueError,
            r"input channels C=4 .* in groups=2 \(2 per group\) must match the filter's "
            "in-channels 4",
        ),
        # data_format
        (
            lambda: refcnn.conv2d(X, W, data_format="NCW"),
            ValueError,
            "data_format must be None, 'NHWC' or 'NCHW' for 2 spatial axes, "
            r"got 'NCW' \(a 1-D layout\)",
        ),
        (
            lambda: refcnn.conv(X1, np.zeros((3, 2, 1)), data_format="NCHW"),
            ValueError,
            "data_format must be None, 'NWC' or 'NCW'",
        ),
        (
            lambda: refcnn.conv2d(X, W, data_format="nchw"),
            ValueError,
            "data_format must be None or 'NHWC' or 'NCHW', got 'nchw'",
        ),
        (lambda: refcnn.conv2d(X, W, data_format=1), TypeError, "data_format must be None"),
        (
            lambda: refcnn.conv2d_backward_bias(DY, data_format="NCDHW"),
            ValueError,
            "conv2d_backward_bias: data_format must be",
        ),
        # gradients
        (
            lambda: refcnn.conv2d_backward_input(DY, W, (1, 5, 5)),
            ValueError,
            "input_shape must be 4",
        ),
        (
            lambda: refcnn.conv2d_backward_input(DY, W, (1, 6, 5, 2)),
            ValueError,
            r"dy must have shape \(1, 4, 3, 4\)",
        ),
        (
            lambda: refcnn.conv2d_backward_input(
                np.zeros((1, 3, 3, 4)), W, (1, 2, 5, 5), data_format="NCHW"
            ),
            ValueError,
            r"dy must have shape \(1, 4, 3, 3\)",
        ),
        (
            lambda: refcnn.conv2d_backward_input(DY, W, (1, 5, 5, 3)),
            ValueError,
            "input channels C=3",
        ),
        (
            lambda: refcnn.conv2d_backward_input(DY, W, None),
            TypeError,
            "input_shape must be a sequence",
        ),
        (
            lambda: refcnn.conv2d_backward_input(DY, W, (1, -5, 5, 2)),
            ValueError,
            "input_shape must be 4 non-negative ints",
        ),
        (
            lambda: refcnn.conv2d_backward_filter(np.zeros((1, 3, 3, 5)), X, (3, 3, 2, 4)),
            ValueError,
            r"dy must have shape \(1, 3, 3, 4\)",
        ),
        (
            lambda: refcnn.conv2d_backward_filter(DY, X, (3, 3, 2)),
            ValueError,
            "filter_shape must be 4",
        ),
        (
            lambda: refcnn.conv_backward_filter(DY, X4, (3, 3, 4, 4), groups=2),
            ValueError,
            "in groups=2",
        ),
        (lambda: refcnn.conv2d_backward_bias(np.zeros(4)), ValueError, "dy must be 4-D"),
        (lambda: refcnn.conv_backward_bias(np.zeros((4, 4))), ValueError, "dy must be 3-D, 4-D"),
        (
            lambda: refcnn.conv2d_backward_input(DY, W, (1, 5, 5, 2), method="fft"),
            ValueError,
            "method must be 'auto', 'col2im', 'polyphase' or 'rot180'",
        ),
        (
            lambda: refcnn.conv2d_backward(np.zeros((1, 2, 2, 4)), X, W),
            ValueError,
            "conv2d_backward: dy must have shape",
        ),
        (
            lambda: refcnn.conv_backward(np.zeros((1, 2, 2, 4)), X4, W[:, :, :1], groups=4),
            ValueError,
            "conv_backward: dy must have shape",
        ),
        # conv_transpose
        (
            lambda: refcnn.conv_transpose(DY, np.zeros((3, 3, 2, 3))),
            ValueError,
            r"input channels C_in=4 .* must equal the filter's last axis 3",
        ),
        (
            lambda: refcnn.conv_transpose(DY, np.zeros((3, 3, 2, 4)), groups=3),
            ValueError,
            "groups=3 must divide",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, strides=2, output_padding=2),
            ValueError,
            "output_padding must be smaller than the stride or the dilation",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, strides=2, dilations=3, output_padding=(3, 0)),
            ValueError,
            "output_padding must be smaller than the stride or the dilation",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, strides=2, output_padding=-1),
            ValueError,
            "output_padding must be >= 0",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, strides=2, padding="SAME", output_padding=1),
            ValueError,
            "output_padding must be 0 under padding='SAME'",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, output_shape=(5, 5), output_padding=1, strides=2),
            ValueError,
            "give output_shape or output_padding, not both",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, output_shape=(6, 5)),
            ValueError,
            r"a conv of output_shape \(6, 5\) .* has spatial sizes \(4, 3\), but x has \(3, 3\)",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, output_shape=(1, 5, 5, 3)),
            ValueError,
            r"output_shape \(1, 5, 5, 3\) must have batch 1 and 2 channels",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, output_shape=(5, 5, 2)),
            ValueError,
            "output_shape must be 2 spatial sizes or the full shape of 4 ints",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, padding=((3, 3), (0, 0))),
            ValueError,
            "removes more than the full output on axis 0",
        ),
        (
            lambda: refcnn.conv_transpose(DY, W, method="fft"),
            ValueError,
            "conv_transpose: method must be",
        ),
    ],
)
def test_bad_input_names_the_argument(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_float16_overflow_is_inf_without_warning() -> None:
    # 486 * 486 = 236196 > 65504: float16 has no such value. The sum is carried in float32
    # and rounded once; the rounding gives inf, as float16 arithmetic would, and (pytest
    # runs with warnings as errors) NumPy's "overflow encountered in cast" stays silent.
    x = np.full((1, 1, 1, 1), 486.0, dtype=np.float16)
    y = refcnn.conv2d(x, x)
    assert y.dtype == np.float16
    assert y[0, 0, 0, 0] == np.inf
    dy = np.full((1, 1, 1, 1), -486.0, dtype=np.float16)
    assert refcnn.conv2d_backward_input(dy, x, x.shape)[0, 0, 0, 0] == -np.inf
    assert refcnn.conv2d_backward_filter(dy, x, x.shape)[0, 0, 0, 0] == -np.inf
    big = np.full((2, 2, 2, 1), 60000.0, dtype=np.float16)
    assert refcnn.conv2d_backward_bias(big)[0] == np.inf


# --- hostile input: work proportional to the data ----------------------------------------


@contextmanager
def bounded(seconds: float = 1.0, megabytes: float = 200.0) -> Iterator[None]:
    """Fail unless the block runs in under ``seconds`` with a peak under ``megabytes``."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes * 2**20, f"peak {peak / 2**20:.0f} MiB"


HOSTILE_X = np.arange(1.0, 17.0).reshape(1, 4, 4, 1)
HOSTILE_W = np.arange(1.0, 10.0).reshape(3, 3, 1, 1)


def test_dilation_reaching_only_padding_costs_nothing() -> None:
    # SAME with dilation 10**9: every tap but the centre lands in the padding, so the result
    # is the centre tap times the input (NumPy used to refuse: "array is too big").
    kwargs: dict[str, Any] = {"dilations": 10**9, "padding": "SAME"}
    dy = np.arange(16.0).reshape(1, 4, 4, 1) - 5
    with bounded():
        y = refcnn.conv2d(HOSTILE_X, HOSTILE_W, **kwargs)
        grads = refcnn.conv2d_backward(dy, HOSTILE_X, HOSTILE_W, **kwargs)
        by_route = [
            refcnn.conv2d_backward_input(dy, HOSTILE_W, (1, 4, 4, 1), **kwargs, method=m)
            for m in ("col2im", "polyphase", "rot180")
        ]
    centre = HOSTILE_W[1, 1, 0, 0]
    np.testing.assert_array_equal(y, HOSTILE_X * centre)
    np.testing.assert_array_equal(grads.dx, dy * centre)
    for dx in by_route:
        np.testing.assert_array_equal(dx, dy * centre)
    expected_dw = np.zeros((3, 3, 1, 1))
    expected_dw[1, 1] = np.sum(HOSTILE_X * dy)
    np.testing.assert_array_equal(grads.dw, expected_dw)
    np.testing.assert_array_equal(grads.db, [np.sum(dy)])


def test_pads_and_stride_of_a_million_cost_nothing() -> None:
    # Pads of 10**6 with stride 10**6: three windows per axis, only the middle one reads the
    # input (its top-left 3x3 block); the padded input would be 29 TiB.
    kwargs: dict[str, Any] = {"strides": 10**6, "padding": ((10**6, 10**6), (10**6, 10**6))}
    dy = np.zeros((1, 3, 3, 1))
    dy[0, 1, 1, 0] = 2.0
    dy[0, 0, 2, 0] = 7.0  # reads padding only: must not reach dx or dw
    with bounded():
        y = refcnn.conv2d(HOSTILE_X, HOSTILE_W, np.array([0.5]), **kwargs)
        grads = refcnn.conv2d_backward(dy, HOSTILE_X, HOSTILE_W, **kwargs)
        by_route = [
            refcnn.conv2d_backward_input(dy, HOSTILE_W, (1, 4, 4, 1), **kwargs, method=m)
            for m in ("col2im", "polyphase", "rot180")
        ]
    expected = np.full((1, 3, 3, 1), 0.5)
    expected[0, 1, 1, 0] += np.sum(HOSTILE_X[0, :3, :3, 0] * HOSTILE_W[:, :, 0, 0])
    np.testing.assert_array_equal(y, expected)
    expected_dx = np.zeros((1, 4, 4, 1))
    expected_dx[0, :3, :3, 0] = 2.0 * HOSTILE_W[:, :, 0, 0]
    np.testing.assert_array_equal(grads.dx, expected_dx)
    for dx in by_route:
        np.testing.assert_array_equal(dx, expected_dx)
    np.testing.assert_array_equal(grads.dw[:, :, 0, 0], 2.0 * HOSTILE_X[0, :3, :3, 0])
    np.testing.assert_array_equal(grads.db, [9.0])


def test_two_far_apart_taps_each_reading_the_input() -> None:
    # 1-D, stride = dilation = pad = 10**9 on 4 elements: window 0 reads x[0] through tap 1,
    # window 1 reads x[0] through tap 0. The padded span is 2*10**9 long; the tap loop and the
    # polyphase gradient never build it.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1)
    w = np.array([10.0, 100.0]).reshape(2, 1, 1)
    kwargs: dict[str, Any] = {"strides": 10**9, "dilations": 10**9, "padding": ((10**9, 10**9),)}
    dy = np.array([1.0, -1.0]).reshape(1, 2, 1)
    with bounded():
        y = refcnn.conv1d(x, w, **kwargs)
        grads = refcnn.conv_backward(dy, x, w, **kwargs)
        dx_col2im = refcnn.conv_backward_input(dy, w, x.shape, **kwargs, method="col2im")
        z = refcnn.conv_transpose(dy, w, output_shape=(4,), **kwargs)
    np.testing.assert_array_equal(y[0, :, 0], [100.0, 10.0])
    np.testing.assert_array_equal(grads.dx[0, :, 0], [100.0 - 10.0, 0, 0, 0])
    np.testing.assert_array_equal(dx_col2im, grads.dx)
    np.testing.assert_array_equal(z, grads.dx)
    np.testing.assert_array_equal(grads.dw[:, 0, 0], [-1.0, 1.0])


def test_conv_transpose_with_huge_dilation_costs_nothing() -> None:
    x = np.arange(1.0, 17.0).reshape(1, 4, 4, 1)
    with bounded():
        y = refcnn.conv_transpose(x, HOSTILE_W, dilations=10**9, padding="SAME")
        z = refcnn.conv_transpose(
            x, HOSTILE_W, dilations=10**9, padding=((10**9, 10**9), (10**9, 10**9))
        )
    np.testing.assert_array_equal(y, x * HOSTILE_W[1, 1, 0, 0])
    np.testing.assert_array_equal(z, x * HOSTILE_W[1, 1, 0, 0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: refcnn.conv2d(HOSTILE_X, HOSTILE_W, padding=((10**10, 10**10),) * 2),
            "conv2d: padding would need an array of shape",
        ),
        (
            lambda: refcnn.conv2d_backward_input(
                np.zeros((1, 1, 1, 1)),
                np.ones((1, 1, 1, 1)),
                (1, 10**10, 10**10, 1),
                strides=10**10,
            ),
            "conv2d_backward_input: input_shape would need an array",
        ),
        (
            lambda: refcnn.conv2d_backward_filter(
                np.zeros((1, 1, 1, 1)),
                np.zeros((1, 1, 1, 1)),
                (10**10, 10**10, 1, 1),
                padding="SAME",
            ),
            "conv2d_backward_filter: filter_shape would need an array",
        ),
        (
            lambda: refcnn.conv_transpose(
                np.zeros((1, 2, 2, 1)), np.ones((1, 1, 1, 1)), strides=10**10
            ),
            "conv_transpose: strides, padding and output_padding would need an array",
        ),
        (
            lambda: refcnn.conv_transpose(
                np.zeros((1, 1, 1, 1)),
                np.ones((1, 1, 1, 1)),
                output_shape=(10**10, 10**10),
                strides=10**10,
            ),
            "conv_transpose: output_shape would need an array",
        ),
        (
            lambda: refcnn.conv2d_backward_input(
                np.zeros((1, 2, 2, 1)),
                np.ones((2, 2, 1, 1)),
                (1, 4, 4, 1),
                strides=10**10,
                dilations=10**10,
                padding=((10**10, 10**10), (10**10, 10**10)),
                method="rot180",
            ),
            "strides \\(method='rot180' inserts stride - 1 zeros",
        ),
    ],
)
def test_unaddressable_sizes_are_named_errors(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@given(conv_cases(max_side=5), st.integers(0, 2**32 - 1))
def test_chunk_boundaries_change_nothing(case: ConvCase, seed: int) -> None:
    # With 64-byte chunks every image is cut along its first output axis and every batch
    # chunk holds one image: the blocks must tile the output exactly.
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    dy = small_ints(output_shape(case), seed + 2)
    expected = (
        refcnn.conv(x, w, **case.kwargs()),
        *refcnn.conv_backward(dy, x, w, **case.kwargs()),
        refcnn.conv_backward_input(dy, w, x.shape, **case.kwargs(), method="col2im"),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(routes, "CHUNK_BYTES", 64)
        got = (
            refcnn.conv(x, w, **case.kwargs()),
            *refcnn.conv_backward(dy, x, w, **case.kwargs()),
            refcnn.conv_backward_input(dy, w, x.shape, **case.kwargs(), method="col2im"),
        )
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[0], _naive.conv(x, w, **case.kwargs()))


def test_row_chunks_tile_each_image() -> None:
    # An image of 5 rows with 3 chunks of buffer: 0.6 chunk per row, one row per block.
    blocks = routes.row_chunks(2, 5, 3 * routes.CHUNK_BYTES)
    rows = [(b.start, r.start, r.stop) for b, r in blocks]
    assert rows == [(n, i, i + 1) for n in range(2) for i in range(5)]
    assert all(b.stop - b.start == 1 for b, _ in blocks)
    # 0.3 chunk per row: three rows per block.
    blocks = routes.row_chunks(1, 5, 3 * routes.CHUNK_BYTES // 2)
    assert [(r.start, r.stop) for _, r in blocks] == [(0, 3), (3, 5)]
    assert routes.row_chunks(3, 5, routes.CHUNK_BYTES // 2) == [
        (slice(0, 2), slice(None)),
        (slice(2, 3), slice(None)),
    ]
