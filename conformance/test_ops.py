"""Conformance tests: one test per refcnn API function, forward and every backward.

Each test is parametrized by framework id (``none`` when only the float64 oracle is
compared) and dtype, so ``-k test_conv2d_backward_input`` selects one function. The
comparison itself lives in :mod:`conformance.harness`; the cases in
:mod:`conformance.strategies`; the bounds in :mod:`conformance.tolerance`.
"""

from __future__ import annotations

from hypothesis import given

from conformance import strategies as cs
from conformance.harness import Harness

# --- convolution ---------------------------------------------------------------------------


@given(case=cs.conv2d_cases(op="conv2d"))
def test_conv2d(harness: Harness, framework: str, dtype: str, case: cs.Conv2DCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.conv2d_cases(op="conv2d_backward_input"))
def test_conv2d_backward_input(
    harness: Harness, framework: str, dtype: str, case: cs.Conv2DCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.conv2d_cases(op="conv2d_backward_filter"))
def test_conv2d_backward_filter(
    harness: Harness, framework: str, dtype: str, case: cs.Conv2DCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.conv2d_cases(op="conv2d_backward_bias"))
def test_conv2d_backward_bias(
    harness: Harness, framework: str, dtype: str, case: cs.Conv2DCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.conv2d_cases(op="conv2d_backward"))
def test_conv2d_backward(harness: Harness, framework: str, dtype: str, case: cs.Conv2DCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


# --- pooling -------------------------------------------------------------------------------


@given(case=cs.pool_cases(op="max_pool2d"))
def test_max_pool2d(harness: Harness, framework: str, dtype: str, case: cs.PoolCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.pool_cases(op="max_pool2d_backward"))
def test_max_pool2d_backward(
    harness: Harness, framework: str, dtype: str, case: cs.PoolCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.pool_cases(op="avg_pool2d"))
def test_avg_pool2d(harness: Harness, framework: str, dtype: str, case: cs.PoolCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.pool_cases(op="avg_pool2d_backward"))
def test_avg_pool2d_backward(
    harness: Harness, framework: str, dtype: str, case: cs.PoolCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


# --- flatten and dense ---------------------------------------------------------------------


@given(case=cs.flatten_cases(op="flatten"))
def test_flatten(harness: Harness, framework: str, dtype: str, case: cs.FlattenCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.flatten_cases(op="flatten_backward"))
def test_flatten_backward(
    harness: Harness, framework: str, dtype: str, case: cs.FlattenCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.dense_cases(op="dense"))
def test_dense(harness: Harness, framework: str, dtype: str, case: cs.DenseCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.dense_cases(op="dense_backward"))
def test_dense_backward(harness: Harness, framework: str, dtype: str, case: cs.DenseCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


# --- activations ---------------------------------------------------------------------------


@given(case=cs.activation_cases(op="relu"))
def test_relu(harness: Harness, framework: str, dtype: str, case: cs.ActivationCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.activation_cases(op="relu_backward"))
def test_relu_backward(
    harness: Harness, framework: str, dtype: str, case: cs.ActivationCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.activation_cases(op="sigmoid"))
def test_sigmoid(harness: Harness, framework: str, dtype: str, case: cs.ActivationCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.activation_cases(op="sigmoid_backward"))
def test_sigmoid_backward(
    harness: Harness, framework: str, dtype: str, case: cs.ActivationCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.activation_cases(op="tanh"))
def test_tanh(harness: Harness, framework: str, dtype: str, case: cs.ActivationCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.activation_cases(op="tanh_backward"))
def test_tanh_backward(
    harness: Harness, framework: str, dtype: str, case: cs.ActivationCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


# --- softmax -------------------------------------------------------------------------------


@given(case=cs.softmax_cases(op="softmax"))
def test_softmax(harness: Harness, framework: str, dtype: str, case: cs.SoftmaxCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.softmax_cases(op="log_softmax"))
def test_log_softmax(harness: Harness, framework: str, dtype: str, case: cs.SoftmaxCase) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.softmax_cases(op="softmax_jacobian"))
def test_softmax_jacobian(
    harness: Harness, framework: str, dtype: str, case: cs.SoftmaxCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.softmax_cases(op="softmax_backward"))
def test_softmax_backward(
    harness: Harness, framework: str, dtype: str, case: cs.SoftmaxCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


# --- losses --------------------------------------------------------------------------------


@given(case=cs.cross_entropy_cases(op="cross_entropy"))
def test_cross_entropy(
    harness: Harness, framework: str, dtype: str, case: cs.CrossEntropyCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.cross_entropy_cases(op="cross_entropy_backward"))
def test_cross_entropy_backward(
    harness: Harness, framework: str, dtype: str, case: cs.CrossEntropyCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.softmax_cross_entropy_cases(op="softmax_cross_entropy"))
def test_softmax_cross_entropy(
    harness: Harness, framework: str, dtype: str, case: cs.SoftmaxCrossEntropyCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)


@given(case=cs.softmax_cross_entropy_cases(op="softmax_cross_entropy_backward"))
def test_softmax_cross_entropy_backward(
    harness: Harness, framework: str, dtype: str, case: cs.SoftmaxCrossEntropyCase
) -> None:
    harness.check(case, framework=framework, dtype=dtype)
