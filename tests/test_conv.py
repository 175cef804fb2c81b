"""conv2d and its gradients: hand-worked cases, loop oracle, exact arithmetic, adjoints."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from refcnn import _naive
from refcnn import conv as conv_module

Array = npt.NDArray[Any]

CLASSIC_X = np.array(
    [[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]
)
CLASSIC_W = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def nhwc(image: Array) -> Array:
    return image[None, :, :, None]


def hwio(kernel: Array) -> Array:
    return kernel[:, :, None, None]


# --- hand-worked cases -------------------------------------------------------------------


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


# --- generated cases ----------------------------------------------------------------------


class ConvCase(NamedTuple):
    x_shape: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    padding: Any


paddings = st.one_of(
    st.sampled_from(["VALID", "SAME", "SAME_LOWER"]),
    st.tuples(
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)


@st.composite
def conv_cases(draw: st.DrawFn, max_side: int = 8) -> ConvCase:
    n = draw(st.integers(0, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    strides = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilations = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return ConvCase((n, h, w, c), (kh, kw, c, o), strides, dilations, draw(paddings))


def small_ints(shape: tuple[int, ...], seed: int) -> Array:
    return np.random.default_rng(seed).integers(-9, 10, shape).astype(np.float64)


def fractions_of(array: Array) -> Array:
    out = np.empty(array.shape, dtype=object)
    out.flat[:] = [Fraction(v) for v in array.flat]
    return out


def random_fractions(shape: tuple[int, ...], seed: int) -> Array:
    rng = np.random.default_rng(seed)
    out = np.empty(shape, dtype=object)
    out.flat[:] = [
        Fraction(int(p), int(q))
        for p, q in zip(
            rng.integers(-50, 51, int(np.prod(shape))),
            rng.integers(1, 13, int(np.prod(shape))),
            strict=True,
        )
    ]
    return out


def kwargs_of(case: ConvCase) -> dict[str, Any]:
    return {"strides": case.strides, "padding": case.padding, "dilations": case.dilations}


@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_fast_path_equals_loop_oracle_exactly(case: ConvCase, seed: int) -> None:
    # Small-integer float64 values make every sum exact, so any index error shows as inequality.
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    b = small_ints(case.w_shape[3:], seed + 2)
    y = refcnn.conv2d(x, w, b, **kwargs_of(case))
    np.testing.assert_array_equal(y, _naive.conv2d(x, w, b, **kwargs_of(case)))
    dy = small_ints(y.shape, seed + 3)
    np.testing.assert_array_equal(
        refcnn.conv2d_backward_input(dy, w, x.shape, **kwargs_of(case)),
        _naive.conv2d_backward_input(dy, w, x.shape, **kwargs_of(case)),
    )
    np.testing.assert_array_equal(
        refcnn.conv2d_backward_filter(dy, x, w.shape, **kwargs_of(case)),
        _naive.conv2d_backward_filter(dy, x, w.shape, **kwargs_of(case)),
    )


@given(conv_cases(max_side=6), st.integers(0, 2**32 - 1))
def test_exact_fractions_match_oracle_and_adjoint_identity(case: ConvCase, seed: int) -> None:
    x, w = random_fractions(case.x_shape, seed), random_fractions(case.w_shape, seed + 1)
    y = refcnn.conv2d(x, w, **kwargs_of(case))
    assert y.dtype == object
    assert (y == _naive.conv2d(x, w, **kwargs_of(case))).all()
    dy = random_fractions(y.shape, seed + 2)
    dx = refcnn.conv2d_backward_input(dy, w, x.shape, **kwargs_of(case))
    dw = refcnn.conv2d_backward_filter(dy, x, w.shape, **kwargs_of(case))
    # <conv(x, w), dy> == <x, dx> == <w, dw>, exactly: the gradients are the true adjoints.
    forward = sum((y * dy).flat, Fraction(0))
    assert forward == sum((x * dx).flat, Fraction(0))
    assert forward == sum((w * dw).flat, Fraction(0))


@given(conv_cases(max_side=6), st.integers(0, 2**32 - 1))
def test_im2col_and_tap_formulations_agree_exactly(case: ConvCase, seed: int) -> None:
    x, w = random_fractions(case.x_shape, seed), random_fractions(case.w_shape, seed + 1)
    setup = conv_module._setup("test", x.shape, w.shape, case.strides, case.padding, case.dilations)
    xp = conv_module._pad_or_crop(x, setup.geometry.pads)
    by_columns = conv_module._correlate(
        xp, w, setup.geometry.out_hw, setup.strides, setup.dilations, method="im2col"
    )
    by_taps = conv_module._correlate(
        xp, w, setup.geometry.out_hw, setup.strides, setup.dilations, method="taps"
    )
    assert (by_columns == by_taps).all()
    dy = random_fractions(by_columns.shape, seed + 2)
    dx_columns = conv_module._backward_input_rot180(dy, w, x.shape, setup, method="im2col")
    dx_taps = conv_module._backward_input_rot180(dy, w, x.shape, setup, method="taps")
    assert (dx_columns == dx_taps).all()
    # Every input-gradient route (and the default choice between them) is the same sums.
    for method in ("auto", "col2im", "polyphase", "rot180"):
        dx = refcnn.conv2d_backward_input(dy, w, x.shape, **kwargs_of(case), method=method)
        assert dx.shape == x.shape, method
        assert (dx == dx_columns).all(), method


@given(conv_cases(max_side=7), st.integers(0, 2**32 - 1))
def test_float64_within_rounding_bound_of_exact(case: ConvCase, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape) * 10.0 ** rng.integers(-3, 4, case.x_shape)
    w = rng.standard_normal(case.w_shape)
    y = refcnn.conv2d(x, w, **kwargs_of(case))
    exact = refcnn.conv2d(fractions_of(x), fractions_of(w), **kwargs_of(case))
    # A sum of K products in float64 is within K * eps * sum|terms| of the exact sum (the
    # textbook recursive-summation bound, with one more eps for each product).
    k = case.w_shape[0] * case.w_shape[1] * case.w_shape[2]
    magnitude = refcnn.conv2d(np.abs(x), np.abs(w), **kwargs_of(case))
    error = np.abs((exact - fractions_of(y)).astype(np.float64))
    assert (error <= (k + 1) * np.finfo(np.float64).eps * magnitude).all()


@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_same_modes_equal_explicit_pads_then_valid(case: ConvCase, seed: int) -> None:
    x, w = small_ints(case.x_shape, seed), small_ints(case.w_shape, seed + 1)
    for mode in ("SAME", "SAME_LOWER"):
        geometry = refcnn.padding.window_geometry(
            case.x_shape[1:3], case.w_shape[:2], case.strides, case.dilations, mode
        )
        (top, bottom), (left, right) = geometry.pads
        padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
        np.testing.assert_array_equal(
            refcnn.conv2d(x, w, strides=case.strides, padding=mode, dilations=case.dilations),
            refcnn.conv2d(padded, w, strides=case.strides, dilations=case.dilations),
        )


@given(conv_cases(max_side=6), st.integers(0, 2**32 - 1))
def test_gradients_match_central_differences(case: ConvCase, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(case.x_shape), rng.standard_normal(case.w_shape)
    b = rng.standard_normal(case.w_shape[3])
    dy = rng.standard_normal(refcnn.conv2d(x, w, **kwargs_of(case)).shape)
    grads = refcnn.conv2d_backward(dy, x, w, **kwargs_of(case))

    def loss(x_: Array, w_: Array, b_: Array) -> float:
        return float(np.sum(refcnn.conv2d(x_, w_, b_, **kwargs_of(case)) * dy))

    # Directional derivatives along random directions (the VJP inner product). The loss is
    # linear in each argument, so the central difference has no truncation error and only
    # rounding of size eps * |loss| / h remains; h = 1e-3 keeps that far below 1e-7.
    h = 1e-3
    for args, index, grad in ((0, 0, grads.dx), (1, 1, grads.dw), (2, 2, grads.db)):
        del args
        direction = rng.standard_normal(grad.shape)
        plus, minus = [x, w, b], [x, w, b]
        plus[index] = plus[index] + h * direction
        minus[index] = minus[index] - h * direction
        numeric = (loss(*plus) - loss(*minus)) / (2 * h)
        analytic = float(np.sum(grad * direction))
        scale = float(np.sum(np.abs(grad * direction))) + 1.0
        assert abs(numeric - analytic) <= 1e-8 * scale


# --- dtypes, edges, memory, purity ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_is_kept_and_close_to_float64(dtype: type) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 2, 3, 4))
    dy = rng.standard_normal((2, 4, 3, 4))
    kwargs: dict[str, Any] = {"strides": 2, "padding": "SAME"}
    y = refcnn.conv2d(x.astype(dtype), w.astype(dtype), **kwargs)
    grads = refcnn.conv2d_backward(dy.astype(dtype), x.astype(dtype), w.astype(dtype), **kwargs)
    assert {y.dtype, grads.dx.dtype, grads.dw.dtype, grads.db.dtype} == {np.dtype(dtype)}
    reference = refcnn.conv2d(
        x.astype(dtype).astype(np.float64), w.astype(dtype).astype(np.float64), **kwargs
    )
    # float16 accumulates in float32 and rounds once: within one float16 ulp of the result.
    relative = np.finfo(dtype).eps * (1 if dtype == np.float16 else 3 * 3 * 2 * 3)
    magnitude = refcnn.conv2d(
        np.abs(x.astype(dtype)).astype(np.float64),
        np.abs(w.astype(dtype)).astype(np.float64),
        **kwargs,
    )
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
    dx = refcnn.conv2d_backward_input(np.ones((1, 2, 2, 1)), w, x.shape, strides=2)
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
    x, w, b = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 2, 3, 2)), np.ones(2)
    dy = rng.standard_normal((2, 3, 3, 2))
    copies = [a.copy() for a in (x, w, b, dy)]
    for array in (x, w, b, dy):
        array.setflags(write=False)  # any write now raises instead of passing silently
    kwargs: dict[str, Any] = {"strides": (2, 2), "padding": "SAME_LOWER"}
    refcnn.conv2d(x, w, b, **kwargs)
    refcnn.conv2d_backward(dy, x, w, **kwargs)
    for array, copy in zip((x, w, b, dy), copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# --- bad input ---------------------------------------------------------------------------

X, W = np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 2, 4))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: refcnn.conv2d(None, W), TypeError, "x must be an array, got None"),
        (lambda: refcnn.conv2d(X, None), TypeError, "w must be an array, got None"),
        (lambda: refcnn.conv2d(X[0], W), ValueError, r"x must be 4-D \(N, H, W, C\), got shape"),
        (lambda: refcnn.conv2d(X, W[0]), ValueError, r"w must be 4-D \(KH, KW, C, O\)"),
        (lambda: refcnn.conv2d(X, np.zeros((3, 3, 3, 4))), ValueError, "input channels C=2"),
        (lambda: refcnn.conv2d(X, np.zeros((0, 3, 2, 4))), ValueError, "filter spatial size"),
        (lambda: refcnn.conv2d(X, W, np.zeros(3)), ValueError, r"b must have shape \(4,\)"),
        (lambda: refcnn.conv2d(X, W, np.zeros((1, 4))), ValueError, r"b must be 1-D"),
        (lambda: refcnn.conv2d(X, W, strides=0), ValueError, "strides must be >= 1"),
        (lambda: refcnn.conv2d(X, W, strides=(1, -2)), ValueError, "strides must be >= 1"),
        (lambda: refcnn.conv2d(X, W, strides=(1, 2, 3)), ValueError, "strides must be an int or"),
        (lambda: refcnn.conv2d(X, W, strides=1.5), TypeError, "strides must be an int"),
        (lambda: refcnn.conv2d(X, W, strides=True), TypeError, "strides must be an int"),
        (lambda: refcnn.conv2d(X, W, dilations=0), ValueError, "dilations must be >= 1"),
        (lambda: refcnn.conv2d(X, W, padding="FULL"), ValueError, "padding must be one of"),
        (lambda: refcnn.conv2d(X, W, padding=((1, -1), (0, 0))), ValueError, "negative pad"),
        (lambda: refcnn.conv2d(X, W, padding=((1, 1),)), ValueError, "padding must be"),
        (lambda: refcnn.conv2d(X.astype(complex), W.astype(complex)), TypeError, "dtype complex"),
        (lambda: refcnn.conv2d(X.astype(bool), W.astype(bool)), TypeError, "dtype bool"),
        (lambda: refcnn.conv2d(np.full((1, 2, 2, 1), "a"), W), TypeError, "x must have"),
        (lambda: refcnn.conv2d(X.astype(np.float32), W), TypeError, "share one dtype"),
        (
            lambda: refcnn.conv2d_backward_input(np.zeros((1, 3, 3, 4)), W, (1, 5, 5)),
            ValueError,
            "input_shape must be 4",
        ),
        (
            lambda: refcnn.conv2d_backward_input(np.zeros((1, 3, 3, 4)), W, (1, 6, 5, 2)),
            ValueError,
            r"dy must have shape \(1, 4, 3, 4\)",
        ),
        (
            lambda: refcnn.conv2d_backward_input(np.zeros((1, 3, 3, 4)), W, (1, 5, 5, 3)),
            ValueError,
            "input channels C=3",
        ),
        (
            lambda: refcnn.conv2d_backward_input(np.zeros((1, 3, 3, 4)), W, None),
            TypeError,
            "input_shape must be a sequence",
        ),
        (
            lambda: refcnn.conv2d_backward_input(np.zeros((1, 3, 3, 4)), W, (1, -5, 5, 2)),
            ValueError,
            "input_shape must be 4 non-negative ints",
        ),
        (
            lambda: refcnn.conv2d_backward_filter(np.zeros((1, 3, 3, 5)), X, (3, 3, 2, 4)),
            ValueError,
            r"dy must have shape \(1, 3, 3, 4\)",
        ),
        (
            lambda: refcnn.conv2d_backward_filter(np.zeros((1, 3, 3, 4)), X, (3, 3, 2)),
            ValueError,
            "filter_shape must be 4",
        ),
        (lambda: refcnn.conv2d_backward_bias(np.zeros(4)), ValueError, "dy must be 4-D"),
        (
            lambda: refcnn.conv2d_backward_input(
                np.zeros((1, 3, 3, 4)), W, (1, 5, 5, 2), method="fft"
            ),
            ValueError,
            "method must be 'auto', 'col2im', 'polyphase' or 'rot180'",
        ),
        (
            lambda: refcnn.conv2d_backward(np.zeros((1, 2, 2, 4)), X, W),
            ValueError,
            "dy must have shape",
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
