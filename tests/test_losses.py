"""cross_entropy and softmax_cross_entropy: literals, PyTorch values, loop oracle, gradients."""

from __future__ import annotations

import math
from collections.abc import Callable
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

# Relative tolerance against a float64 reference, by dtype. float64: the losses are sums of
# non-negative terms c * (-log p) (weights > 0 here), so op and oracle, which round
# differently, agree to a few ulp per term; 1e-12 has margin and still sees any O(1) slip.
# float32/float16: see tests/test_activations.py.
RTOL = {np.float64: 1e-12, np.float32: 1e-6, np.float16: 1e-3}
TINY = float(np.finfo(np.float64).smallest_subnormal)
REDUCTIONS = ("none", "sum", "mean")


def five_point(f: Callable[[Array], float], x: Array, direction: Array, h: float) -> float:
    """Directional derivative of ``f`` at ``x`` by the O(h^4) central stencil."""
    return (
        -f(x + 2 * h * direction)
        + 8 * f(x + h * direction)
        - 8 * f(x - h * direction)
        + f(x - 2 * h * direction)
    ) / (12 * h)


# --- cross_entropy on probabilities: literals ------------------------------------------------

P2 = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
Y2 = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_cross_entropy_of_a_one_hot_target_is_minus_log_p() -> None:
    # -log 0.7 = 0.35667494393873237891 (mpmath), -log 0.5 = log 2.
    per_sample = [0.35667494393873237891, math.log(2.0)]
    np.testing.assert_allclose(
        refcnn.cross_entropy(P2, Y2, reduction="none"), per_sample, rtol=1e-15
    )
    np.testing.assert_allclose(refcnn.cross_entropy(P2, Y2), sum(per_sample), rtol=1e-15)
    np.testing.assert_allclose(
        refcnn.cross_entropy(P2, Y2, reduction="mean"), sum(per_sample) / 2, rtol=1e-15
    )
    # Gradient -y/p: -1/0.7 and -1/0.5 at the targets, 0 elsewhere; "mean" halves it.
    dp = refcnn.cross_entropy_backward(P2, Y2)
    np.testing.assert_allclose(dp, [[0.0, -1 / 0.7, 0.0], [-2.0, 0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(
        refcnn.cross_entropy_backward(P2, Y2, reduction="mean"), dp / 2, rtol=1e-15
    )
    # The class axis can be any axis.
    np.testing.assert_allclose(
        refcnn.cross_entropy(P2.T, Y2.T, axis=0, reduction="none"), per_sample, rtol=1e-15
    )


def test_zero_times_log_zero_is_zero_and_missing_mass_is_inf_without_warnings() -> None:
    p = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(refcnn.cross_entropy(p, y, reduction="none"), [0.0, np.inf])
    # Where y is 0 the gradient is 0, even at p == 0; where y > 0 and p == 0 it is -inf.
    np.testing.assert_array_equal(
        refcnn.cross_entropy_backward(p, y), [[0.0, -1.0, 0.0], [0.0, 0.0, -np.inf]]
    )


def test_eps_reproduces_the_tutorial_clamp_and_its_derivative() -> None:
    eps = 1e-12
    p = np.array([[0.0, 1.0], [eps, 1 - eps], [0.5, 1.5]])
    y = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = refcnn.cross_entropy(p, y, reduction="none", eps=eps)
    # -log(1e-12) = 27.631021115928548208 (mpmath) for the first two rows; p = 1.5 clamps to 1.
    np.testing.assert_allclose(loss, [27.631021115928548208] * 2 + [0.0], rtol=1e-15)
    # The clamp's derivative: 0 where p < eps (p = 0) or p > 1 (p = 1.5), -y/p on [eps, 1].
    np.testing.assert_array_equal(
        refcnn.cross_entropy_backward(p, y, eps=eps), [[0.0, -0.0], [-1 / eps, -0.0], [-0.0, 0.0]]
    )
    # eps=None is exact: no clamp, the zero probability of a target class costs inf.
    assert refcnn.cross_entropy(p[:1], y[:1]) == np.inf


def test_mean_over_no_samples_is_nan_and_sum_is_zero() -> None:
    empty = np.zeros((0, 3))
    assert np.isnan(refcnn.cross_entropy(empty, empty, reduction="mean"))
    assert refcnn.cross_entropy(empty, empty) == 0.0
    assert refcnn.cross_entropy_backward(empty, empty, reduction="mean").shape == (0, 3)


# --- cross_entropy: oracle, exactness, finite differences ----------------------------------------


class ProbabilityCase(NamedTuple):
    """Shape, class axis, reduction, clamp and seed: ``repr`` reproduces the case."""

    shape: tuple[int, ...]
    axis: int
    reduction: str
    eps: float | None
    seed: int


@st.composite
def probability_cases(draw: st.DrawFn) -> ProbabilityCase:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    return ProbabilityCase(
        shape,
        draw(st.integers(-ndim, ndim - 1)),
        draw(st.sampled_from(REDUCTIONS)),
        draw(st.sampled_from([None, 1e-12, 0.05])),
        draw(st.integers(0, 2**32 - 1)),
    )


def probabilities_of(case: ProbabilityCase) -> tuple[Array, Array]:
    """A softmax output with some exact zeros, and non-negative targets with some zeros."""
    rng = np.random.default_rng(case.seed)
    p = refcnn.softmax(rng.standard_normal(case.shape) * 3, case.axis)
    p = np.where(rng.random(case.shape) < 0.15, 0.0, p)
    y = np.where(rng.random(case.shape) < 0.4, 0.0, rng.random(case.shape))
    return p, y


@given(probability_cases())
def test_cross_entropy_matches_loop_oracle(case: ProbabilityCase) -> None:
    p, y = probabilities_of(case)
    kwargs: dict[str, Any] = {"axis": case.axis, "reduction": case.reduction, "eps": case.eps}
    np.testing.assert_allclose(
        refcnn.cross_entropy(p, y, **kwargs),
        _naive.cross_entropy(p, y, **kwargs),
        rtol=RTOL[np.float64],
    )
    np.testing.assert_allclose(
        refcnn.cross_entropy_backward(p, y, **kwargs),
        _naive.cross_entropy_backward(p, y, **kwargs),
        rtol=RTOL[np.float64],
    )


@given(probability_cases())
def test_cross_entropy_backward_is_exact_on_fractions(case: ProbabilityCase) -> None:
    rng = np.random.default_rng(case.seed)
    size = math.prod(case.shape)
    p = np.array([Fraction(int(a), 40) for a in rng.integers(1, 41, size)], dtype=object)
    y = np.array([Fraction(int(a), 7) for a in rng.integers(0, 8, size)], dtype=object)
    p, y = p.reshape(case.shape), y.reshape(case.shape)
    eps = None if case.eps is None else Fraction(1, 8)  # some p fall below it, some not
    kwargs: dict[str, Any] = {"axis": case.axis, "reduction": case.reduction, "eps": eps}
    dp = refcnn.cross_entropy_backward(p, y, **kwargs)
    assert dp.dtype == object
    assert (dp == _naive.cross_entropy_backward(p, y, **kwargs)).all()


def test_cross_entropy_backward_on_fractions_refuses_an_infinite_gradient() -> None:
    p = np.array([Fraction(0), Fraction(1)], dtype=object)
    y = np.array([Fraction(1, 2), Fraction(1, 2)], dtype=object)
    with pytest.raises(ValueError, match=r"p is 0 where y != 0 \(at index \(0,\)\)"):
        refcnn.cross_entropy_backward(p, y)


@given(probability_cases())
def test_cross_entropy_backward_matches_finite_differences(case: ProbabilityCase) -> None:
    rng = np.random.default_rng(case.seed)
    # p in [0.2, 0.9] keeps the smooth part's derivatives moderate and 2h clear of the kink
    # at 1; with eps = 0.05 some entries sit on the flat part of the clamp, 2h clear of eps.
    p = rng.uniform(0.2, 0.9, case.shape)
    if case.eps == 0.05:
        p = np.where(rng.random(case.shape) < 0.3, rng.uniform(0.001, 0.02, case.shape), p)
    y, direction = rng.random(case.shape), rng.standard_normal(case.shape)
    kwargs: dict[str, Any] = {"axis": case.axis, "reduction": case.reduction, "eps": case.eps}
    # "none": f = sum_b r_b loss_b, whose gradient is r_b times sample b's own gradient.
    loss_shape = refcnn.cross_entropy(p, y, **kwargs).shape
    per_sample = rng.standard_normal(loss_shape) if case.reduction == "none" else np.ones(())

    def f(p_: Array) -> float:
        return float(np.sum(refcnn.cross_entropy(p_, y, **kwargs) * per_sample))

    grad = refcnn.cross_entropy_backward(p, y, **kwargs)
    if case.reduction == "none":
        grad = grad * np.expand_dims(per_sample, case.axis)
    # h = 1e-4: |f^(5)| = 24 y / p^5 <= 8e4 for p >= 0.2 gives truncation 1e-17 * 8e4 / 30
    # per entry; rounding eps * |f| / h ~ 1e-11: a 1e-8 bound has margin.
    numeric = five_point(f, p, direction, 1e-4)
    analytic = float(np.sum(grad * direction))
    assert abs(numeric - analytic) <= 1e-8 * (1 + float(np.sum(np.abs(grad * direction))))


# --- softmax_cross_entropy: literals and PyTorch values ---------------------------------------

Z5 = np.array(
    [
        [1.0, 2.0, 0.5, -1.0],
        [0.0, -0.5, 3.0, 1.0],
        [2.0, 2.0, 2.0, 2.0],
        [-1.0, 0.0, 1.0, 2.0],
        [0.3, -0.2, 0.1, 0.0],
    ]
)
W4 = np.array([0.5, 1.0, 2.0, 1.5])


def test_textbook_case_gradient_is_softmax_minus_one_hot() -> None:
    labels = np.array([1, 2, 0, 3, 0])
    onehot = np.eye(4)[labels]
    p = refcnn.softmax(Z5)
    loss = refcnn.softmax_cross_entropy(Z5, labels, reduction="none")
    np.testing.assert_allclose(loss, -np.log(p[np.arange(5), labels]), rtol=1e-14)
    # No weights, no smoothing, nothing ignored: d loss / dz = softmax(z) - onehot(y), over N
    # for the mean. (Entries of size <= 1, so a few-ulp absolute tolerance.)
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy_backward(Z5, labels, reduction="sum"),
        p - onehot,
        rtol=0,
        atol=4e-16,
    )
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy_backward(Z5, labels), (p - onehot) / 5, rtol=0, atol=1e-16
    )
    # Index labels and their one-hot probabilities agree whenever nothing is weighted.
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(Z5, onehot),
        refcnn.softmax_cross_entropy(Z5, labels),
        rtol=1e-15,
    )


# PyTorch 2.13.0+cpu, float64: F.cross_entropy(torch.tensor(Z5), torch.tensor(labels),
# weight=torch.tensor(W4), ignore_index=-100, label_smoothing=0.1, reduction=...), gradient by
# autograd of loss.sum(). Printed with 17 digits and pasted here; torch is not imported.
TORCH_LOSS = {
    "none": [0.7075614455380025, 0.5753888572541683, 0.0, 0.7867798053777632, 0.6964341154638185],
    "sum": 2.7661642236337527,
    "mean": 0.5532328447267505,
}
TORCH_GRAD_SUM = [
    [0.2173130134994062, -0.3003034614611509, 0.08938863868834318, -0.006398190726598371],
    [0.0663599936674484, 0.022831003984051558, -0.2660546854301199, 0.17686368777862033],
    [0.0, 0.0, 0.0, 0.0],
    [0.034786439838125356, 0.10353787014449806, 0.2994021566826175, -0.4377264666652409],
    [-0.280887385484243, 0.08515361889437827, 0.09869183265094693, 0.0970419339389178],
]
TORCH_GRAD_MEAN = [
    [0.04346260269988124, -0.060060692292230176, 0.017877727737668634, -0.0012796381453196732],
    [0.013271998733489675, 0.004566200796810311, -0.053210937086023986, 0.035372737555724065],
    [0.0, 0.0, 0.0, 0.0],
    [0.0069572879676250724, 0.02070757402889961, 0.05988043133652351, -0.08754529333304815],
    [-0.05617747709684861, 0.01703072377887565, 0.019738366530189382, 0.019408386787783557],
]
# Same source, probability labels P5 with weight=W4, label_smoothing=0.2, reduction="mean".
P5 = np.array(
    [
        [0.1, 0.2, 0.3, 0.4],
        [1.0, 0.0, 0.0, 0.0],
        [0.25, 0.25, 0.25, 0.25],
        [0.0, 0.0, 0.5, 0.5],
        [0.6, 0.1, 0.1, 0.1],  # sums to 0.9: probability labels need not be normalized
    ]
)
TORCH_PROBABILITY_MEAN = 1.9428524212344658
TORCH_PROBABILITY_GRAD = [
    [0.050226604689592724, 0.12986773060288337, -0.07765112574623143, -0.10244320954624465],
    [-0.07967439003804247, -0.0067698542764017145, 0.08696773552939452, -0.0005234912149503163],
    [0.0375, 0.012499999999999997, -0.037500000000000006, -0.012500000000000011],
    [0.005579339082428047, 0.018757625184870754, -0.10182867003032965, 0.07749170576303088],
    [0.0006941642916151003, 0.006567156890511834, -0.008038936433633086, 0.000777615251506127],
]
# Different summation orders: a few ulp of the largest term (~0.5, ulp 1.1e-16) apart.
TORCH_TOL = {"rtol": 1e-13, "atol": 1e-15}


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_index_labels_with_weights_smoothing_and_ignore_index_match_pytorch(
    reduction: str,
) -> None:
    labels = np.array([1, 2, -100, 3, 0])
    kwargs: dict[str, Any] = {
        "weights": W4,
        "ignore_index": -100,
        "label_smoothing": 0.1,
        "reduction": reduction,
    }
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(Z5, labels, **kwargs), TORCH_LOSS[reduction], **TORCH_TOL
    )
    expected = TORCH_GRAD_MEAN if reduction == "mean" else TORCH_GRAD_SUM
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy_backward(Z5, labels, **kwargs), expected, **TORCH_TOL
    )


def test_probability_labels_with_weights_and_smoothing_match_pytorch() -> None:
    kwargs: dict[str, Any] = {"weights": W4, "label_smoothing": 0.2}
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(Z5, P5, **kwargs), TORCH_PROBABILITY_MEAN, **TORCH_TOL
    )
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy_backward(Z5, P5, **kwargs), TORCH_PROBABILITY_GRAD, **TORCH_TOL
    )


def test_weighted_mean_divisor_differs_between_index_and_probability_labels() -> None:
    labels = np.array([1, 2, 0, 3, 0])
    onehot = np.eye(4)[labels]
    by_index = refcnn.softmax_cross_entropy(Z5, labels, weights=W4, reduction="none")
    by_probability = refcnn.softmax_cross_entropy(Z5, onehot, weights=W4, reduction="none")
    np.testing.assert_allclose(by_index, by_probability, rtol=1e-15)
    # Index labels: sum_b w[y_b] loss_b / sum_b w[y_b]; probability labels: / N (PyTorch).
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(Z5, labels, weights=W4),
        by_index.sum() / W4[labels].sum(),
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(Z5, onehot, weights=W4), by_index.sum() / 5, rtol=1e-15
    )


def test_mean_runs_over_every_axis_but_the_class_axis() -> None:
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((2, 3, 4, 5))  # (N, K, H, W): PyTorch's layout, axis=1
    labels = rng.integers(0, 3, (2, 4, 5))
    per_pixel = refcnn.softmax_cross_entropy(logits, labels, axis=1, reduction="none")
    assert per_pixel.shape == (2, 4, 5)
    channels_last = refcnn.softmax_cross_entropy(
        np.moveaxis(logits, 1, -1), labels, reduction="none"
    )
    np.testing.assert_array_equal(per_pixel, channels_last)
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(logits, labels, axis=1), per_pixel.sum() / 40, rtol=1e-15
    )


def test_every_sample_ignored_gives_nan_mean_and_zero_gradient_without_warnings() -> None:
    labels = np.full(5, -100)
    for weights in (None, W4):
        kwargs: dict[str, Any] = {"ignore_index": -100, "weights": weights, "label_smoothing": 0.1}
        assert np.isnan(refcnn.softmax_cross_entropy(Z5, labels, **kwargs))  # 0/0 (PyTorch)
        assert refcnn.softmax_cross_entropy(Z5, labels, reduction="sum", **kwargs) == 0.0
        np.testing.assert_array_equal(
            refcnn.softmax_cross_entropy_backward(Z5, labels, **kwargs), np.zeros((5, 4))
        )


def test_zero_total_target_weight_gives_nan_mean_and_nan_gradient() -> None:
    labels = np.array([0, 0, 1, 0, -1])
    weights = np.array([0.0, 0.0, 1.0, 1.0])
    kwargs: dict[str, Any] = {"ignore_index": -1, "weights": weights}
    assert np.isnan(refcnn.softmax_cross_entropy(Z5, labels, **kwargs))
    grad = refcnn.softmax_cross_entropy_backward(Z5, labels, **kwargs)
    assert np.isnan(grad[:4]).all()  # counted samples: the mean is 0/0, as in PyTorch
    np.testing.assert_array_equal(grad[4], np.zeros(4))  # the ignored one: exactly 0


# --- softmax_cross_entropy: stability and special values ----------------------------------------


def test_confident_sample_keeps_full_relative_precision() -> None:
    # loss = log1p(exp(-40)) = 4.2483542552915889863e-18 and the gradient is
    # (s, -s) with s = exp(-40) / (1 + exp(-40)) = 4.2483542552915889773e-18 (mpmath).
    # log(sum exp) and p - 1 both round these to 0.
    z = np.array([[0.0, 40.0]])
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(z, np.array([1])), 4.2483542552915889863e-18, rtol=1e-15
    )
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy_backward(z, np.array([1])),
        [[4.2483542552915889773e-18, -4.2483542552915889773e-18]],
        rtol=1e-15,
    )


def test_wide_and_mixed_magnitude_logits_are_finite_and_correct() -> None:
    z = np.array([[1e4, 0.0, -1e4], [0.1, 0.2, 0.3], [-1e4, -1e4 + 1.0, -1e4 + 2.0]])
    labels = np.array([2, 0, 1])
    loss = refcnn.softmax_cross_entropy(z, labels, reduction="none")
    # Row 0: -log_softmax = 2e4 + log1p(exp(-1e4) + exp(-2e4)) = 2e4 in float64. Row 2 is
    # log_softmax([0, 1, 2])[1] = -1.4076059644443803045 (mpmath), shifted by -1e4 exactly.
    np.testing.assert_allclose(loss[[0, 2]], [2e4, 1.4076059644443803045], rtol=1e-12)
    np.testing.assert_allclose(
        loss[1], _naive.softmax_cross_entropy(z[1:2], labels[1:2], reduction="sum"), rtol=1e-15
    )
    grad = refcnn.softmax_cross_entropy_backward(z, labels, reduction="sum")
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad[0], [1.0, 0.0, -1.0], rtol=0, atol=1e-300)
    np.testing.assert_allclose(grad[2], refcnn.softmax(z[2]) - [0, 1, 0], rtol=0, atol=3e-16)


def test_minus_inf_logit_marks_an_impossible_class() -> None:
    z = np.array([[-np.inf, 0.0, 1.0]])
    finite = refcnn.softmax_cross_entropy(z[:, 1:], np.array([0]))
    # Index label elsewhere: the impossible class simply drops out (as in PyTorch).
    np.testing.assert_allclose(refcnn.softmax_cross_entropy(z, np.array([1])), finite, rtol=1e-15)
    # Probability labels with 0 on it: 0 * log 0 = 0 (PyTorch returns NaN here).
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(z, np.array([[0.0, 1.0, 0.0]])), finite, rtol=1e-15
    )
    grad = refcnn.softmax_cross_entropy_backward(z, np.array([1]))
    assert grad[0, 0] == 0.0
    # A target on the impossible class costs +inf.
    assert refcnn.softmax_cross_entropy(z, np.array([0])) == np.inf


# --- softmax_cross_entropy: oracle and finite differences in general ------------------------


class LossCase(NamedTuple):
    """Everything the loss takes, as data: ``repr`` reproduces the case."""

    batch_shape: tuple[int, ...]
    num_classes: int
    axis: int
    probability_labels: bool
    weighted: bool
    ignore_index: int | None
    label_smoothing: float
    reduction: str
    seed: int


@st.composite
def loss_cases(draw: st.DrawFn) -> LossCase:
    batch = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2))))
    num_classes = draw(st.integers(1, 5))
    probability = draw(st.booleans())
    ignore = None if probability else draw(st.sampled_from([None, -100, 0]))
    return LossCase(
        batch,
        num_classes,
        draw(st.integers(0, len(batch))),
        probability,
        draw(st.booleans()),
        ignore,
        draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        draw(st.sampled_from(REDUCTIONS)),
        draw(st.integers(0, 2**32 - 1)),
    )


def inputs_of(case: LossCase, scale: float = 3.0) -> tuple[Array, Array, dict[str, Any]]:
    rng = np.random.default_rng(case.seed)
    shape = (*case.batch_shape[: case.axis], case.num_classes, *case.batch_shape[case.axis :])
    logits = rng.standard_normal(shape) * scale
    if case.probability_labels:
        labels = rng.random(shape)  # not normalized: the general case
    else:
        labels = rng.integers(0, case.num_classes, case.batch_shape)
        if case.ignore_index is not None:
            labels = np.where(rng.random(case.batch_shape) < 0.3, case.ignore_index, labels)
    weights = rng.uniform(0.1, 2.0, case.num_classes) if case.weighted else None
    kwargs = {
        "axis": case.axis,
        "reduction": case.reduction,
        "weights": weights,
        "ignore_index": case.ignore_index,
        "label_smoothing": case.label_smoothing,
    }
    return logits, labels, kwargs


def gradient_scale(case: LossCase, labels: Array, weights: Array | None) -> Array:
    """Per sample, ``sum_k |c_k|`` over the mean divisor: a bound on every gradient entry."""
    k = case.num_classes
    w = np.ones(k) if weights is None else weights
    if case.probability_labels:
        targets = np.moveaxis(labels, case.axis, -1)
        counted = np.ones(case.batch_shape, dtype=bool)
    else:
        counted = labels != case.ignore_index
        targets = np.eye(k)[np.where(counted, labels, 0)]
    targets = (1 - case.label_smoothing) * targets + case.label_smoothing / k
    scale = np.where(counted, np.abs(targets) @ np.abs(w), 0.0)
    if case.reduction == "mean":
        divisor = (
            counted.size
            if case.probability_labels
            else np.sum(np.where(counted, w[np.where(counted, labels, 0)], 0.0))
        )
        scale = scale / divisor if divisor else np.full(scale.shape, np.inf)
    return np.expand_dims(scale, case.axis)


@given(loss_cases())
def test_softmax_cross_entropy_matches_loop_oracle(case: LossCase) -> None:
    logits, labels, kwargs = inputs_of(case)
    np.testing.assert_allclose(
        refcnn.softmax_cross_entropy(logits, labels, **kwargs),
        _naive.softmax_cross_entropy(logits, labels, **kwargs),
        rtol=RTOL[np.float64],
        atol=TINY,
    )
    grad = refcnn.softmax_cross_entropy_backward(logits, labels, **kwargs)
    expected = _naive.softmax_cross_entropy_backward(logits, labels, **kwargs)
    assert np.array_equal(np.isnan(grad), np.isnan(expected))
    # Entry j is p_j sum_{k != j} c_k - c_j sum_{k != j} p_k, which may cancel: each side is
    # accurate to a few ulp of the terms, bounded by sum_k |c_k| (over the divisor).
    bound = 1e-13 * gradient_scale(case, labels, kwargs["weights"])
    finite = ~np.isnan(expected)
    assert (np.abs(grad - expected)[finite] <= np.broadcast_to(bound, grad.shape)[finite]).all()


@given(loss_cases())
def test_softmax_cross_entropy_backward_matches_finite_differences(case: LossCase) -> None:
    logits, labels, kwargs = inputs_of(case, scale=1.0)
    loss = refcnn.softmax_cross_entropy(logits, labels, **kwargs)
    if np.isnan(loss).any():
        return  # every sample ignored under "mean": a constant NaN has no derivative to check
    rng = np.random.default_rng(case.seed + 1)
    direction = rng.standard_normal(logits.shape)
    # "none": f = sum_b r_b loss_b, whose gradient is r_b times sample b's own gradient.
    per_sample = rng.standard_normal(loss.shape) if case.reduction == "none" else np.ones(())

    def f(z: Array) -> float:
        return float(np.sum(refcnn.softmax_cross_entropy(z, labels, **kwargs) * per_sample))

    grad = refcnn.softmax_cross_entropy_backward(logits, labels, **kwargs)
    if case.reduction == "none":
        grad = grad * np.expand_dims(per_sample, case.axis)
    # h = 1e-3 on unit-scale logits: log-softmax's derivatives of every order are O(1), so
    # truncation is ~h^4 = 1e-12 per sample; rounding eps * |f| / h with |f| < 100 is < 1e-11.
    numeric = five_point(f, logits, direction, 1e-3)
    analytic = float(np.sum(grad * direction))
    assert abs(numeric - analytic) <= 1e-9 * (1 + float(np.sum(np.abs(grad * direction))))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtype_is_kept_and_close_to_float64(dtype: type) -> None:
    labels = np.array([1, 2, -100, 3, 0])
    z = Z5.astype(dtype)
    kwargs: dict[str, Any] = {
        "weights": W4.astype(dtype),
        "ignore_index": -100,
        "label_smoothing": 0.1,
    }
    kwargs64 = {**kwargs, "weights": kwargs["weights"].astype(np.float64)}
    loss = refcnn.softmax_cross_entropy(z, labels, **kwargs)
    grad = refcnn.softmax_cross_entropy_backward(z, labels, **kwargs)
    assert loss.dtype == dtype
    assert grad.dtype == dtype
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(
        loss, refcnn.softmax_cross_entropy(z64, labels, **kwargs64), rtol=RTOL[dtype]
    )
    # Gradient entries cancel (p S - c): compare against the scale of the largest entry.
    expected = refcnn.softmax_cross_entropy_backward(z64, labels, **kwargs64)
    np.testing.assert_allclose(grad, expected, rtol=0, atol=RTOL[dtype] * np.abs(expected).max())
    p = refcnn.softmax(z)
    assert refcnn.cross_entropy(p, p).dtype == dtype
    assert refcnn.cross_entropy_backward(p, p).dtype == dtype


def test_inputs_are_never_modified() -> None:
    labels, weights, p5 = np.array([1, 2, -100, 3, 0]), W4.copy(), P5.copy()
    z, y2, p2 = Z5.copy(), Y2.copy(), P2.copy()
    arrays = (labels, weights, p5, z, y2, p2)
    copies = [a.copy() for a in arrays]
    for array in arrays:
        array.setflags(write=False)  # any write now raises instead of passing silently
    for reduction in REDUCTIONS:
        refcnn.cross_entropy(p2, y2, reduction=reduction, eps=1e-3)
        refcnn.cross_entropy_backward(p2, y2, reduction=reduction, eps=1e-3)
        kwargs: dict[str, Any] = {
            "reduction": reduction,
            "weights": weights,
            "label_smoothing": 0.2,
        }
        refcnn.softmax_cross_entropy(z, labels, ignore_index=-100, **kwargs)
        refcnn.softmax_cross_entropy_backward(z, labels, ignore_index=-100, **kwargs)
        refcnn.softmax_cross_entropy(z, p5, **kwargs)
        refcnn.softmax_cross_entropy_backward(z, p5, **kwargs)
    for array, copy in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(array, copy)


# --- bad input ---------------------------------------------------------------------------

SCE = refcnn.softmax_cross_entropy
LABELS = np.array([1, 2, 0, 3, 0])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: refcnn.cross_entropy(None, Y2), TypeError, "cross_entropy: p must be an array"),
        (
            lambda: refcnn.cross_entropy(P2, Y2[:1]),
            ValueError,
            r"cross_entropy: y must have shape \(2, 3\) \(the shape of p\), got \(1, 3\)",
        ),
        (lambda: refcnn.cross_entropy(P2, Y2.astype(np.float32)), TypeError, "share one dtype"),
        (
            lambda: refcnn.cross_entropy(P2.astype(int), Y2.astype(int)),
            TypeError,
            "cross_entropy: p must have a real floating dtype",
        ),
        (
            lambda: refcnn.cross_entropy(P2, Y2, reduction="avg"),
            ValueError,
            "cross_entropy: reduction must be one of 'none', 'sum', 'mean', got 'avg'",
        ),
        (
            lambda: refcnn.cross_entropy(P2, Y2, eps=0.0),
            ValueError,
            r"cross_entropy: eps must be None or in \(0, 1\), got 0.0",
        ),
        (lambda: refcnn.cross_entropy(P2, Y2, eps=float("nan")), ValueError, "eps must be None"),
        (
            lambda: refcnn.cross_entropy(P2, Y2, eps="1e-12"),
            TypeError,
            "cross_entropy: eps must be a real number",
        ),
        (lambda: refcnn.cross_entropy(P2, Y2, axis=2), ValueError, "cross_entropy: axis must be"),
        (
            lambda: refcnn.cross_entropy_backward(P2, Y2[0]),
            ValueError,
            "cross_entropy_backward: y must have shape",
        ),
        (lambda: SCE(None, LABELS), TypeError, "softmax_cross_entropy: logits must be an array"),
        (
            lambda: SCE(Z5.astype(int), LABELS),
            TypeError,
            "softmax_cross_entropy: logits must have a real floating dtype",
        ),
        (
            lambda: SCE(Z5, np.array([1, 2, 0, 4, 0])),
            ValueError,
            r"softmax_cross_entropy: labels must be class indices in \[0, 4\), got 4 at \(3,\)",
        ),
        (
            lambda: SCE(Z5, np.array([1, 2, -100, 3, 0])),
            ValueError,
            r"labels must be class indices in \[0, 4\), got -100 at \(2,\)",
        ),
        (
            lambda: SCE(Z5, np.array([1, 2, -1, 3, 0]), ignore_index=-100),
            ValueError,
            r"class indices in \[0, 4\) or ignore_index=-100, got -1 at \(2,\)",
        ),
        (
            lambda: SCE(Z5, LABELS[:4]),
            ValueError,
            r"integer labels are class indices and must have shape \(5,\) \(logits shape "
            r"\(5, 4\) without axis 1\), got \(4,\)",
        ),
        (
            lambda: SCE(Z5, LABELS.astype(np.float64)),
            ValueError,
            r"floating labels are class probabilities and must have the logits' shape \(5, 4\)",
        ),
        (lambda: SCE(Z5, P5.astype(np.float32)), TypeError, "share one dtype"),
        (
            lambda: SCE(Z5, P5, ignore_index=-100),
            ValueError,
            "ignore_index=-100 applies to integer class-index labels only",
        ),
        (lambda: SCE(Z5, LABELS.astype(bool)), TypeError, "labels must have .* dtype bool"),
        (
            lambda: SCE(Z5, LABELS.astype(object)),
            TypeError,
            "labels must be integer class indices or floating probabilities, got dtype object",
        ),
        (
            lambda: SCE(Z5, LABELS, weights=np.ones(3)),
            ValueError,
            r"weights must have shape \(4,\) \(one per class along axis 1",
        ),
        (lambda: SCE(Z5, LABELS, weights=np.ones((1, 4))), ValueError, "weights must be 1-D"),
        (
            lambda: SCE(Z5, LABELS, weights=np.ones(4, dtype=np.float32)),
            TypeError,
            "share one dtype",
        ),
        (
            lambda: SCE(Z5, LABELS, label_smoothing=1.5),
            ValueError,
            r"label_smoothing must be in \[0, 1\] \(as in PyTorch\), got 1.5",
        ),
        (
            lambda: SCE(Z5, LABELS, label_smoothing=None),
            TypeError,
            "label_smoothing must be a real number",
        ),
        (
            lambda: SCE(Z5, LABELS, ignore_index=1.0),
            TypeError,
            "ignore_index must be None or an int, got 1.0",
        ),
        (lambda: SCE(Z5, LABELS, reduction=None), ValueError, "reduction must be one of"),
        (
            lambda: SCE(np.zeros((5, 0)), LABELS),
            ValueError,
            r"logits must have at least one class along axis 1, got shape \(5, 0\)",
        ),
        (lambda: SCE(Z5, LABELS, axis=2), ValueError, "softmax_cross_entropy: axis must be in"),
        (
            lambda: refcnn.softmax_cross_entropy_backward(Z5, np.array([1, 2, 0, 7, 0])),
            ValueError,
            "softmax_cross_entropy_backward: labels must be class indices",
        ),
    ],
)
def test_bad_input_names_the_argument(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_cross_entropy_backward_overflow_is_inf_without_warning() -> None:
    # 1 / 1e-45 is beyond float32's range: -inf, like -y / 0, and no RuntimeWarning escapes
    # (pytest turns warnings into errors). Under "mean" the scale is applied to p first, so
    # a quotient that fits after dividing by the sample count stays finite.
    p = np.array([[1e-45, 1.0]], dtype=np.float32)
    y = np.array([[1.0, 0.0]], dtype=np.float32)
    dp = refcnn.cross_entropy_backward(p, y)
    assert dp[0, 0] == -np.inf
    p_mean = np.array([[2e-39, 1.0]] * 4, dtype=np.float32)  # 1/2e-39 overflows, /4 fits
    dp_mean = refcnn.cross_entropy_backward(p_mean, np.tile(y, (4, 1)), reduction="mean")
    expected = -1.0 / (4.0 * np.float64(np.float32(2e-39)))
    np.testing.assert_allclose(dp_mean[:, 0], expected, rtol=4 * np.finfo(np.float32).eps)
