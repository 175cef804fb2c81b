"""Bugs the suite found in the peers, pinned: the peer's current (wrong) answer and refcnn's.

Each case is the shrunk reproducer of a suite failure, checked by hand and against PyTorch
and TensorFlow (conformance/frameworks adapters) before it was called a bug. The peers are
called directly, without the adapters in this package, so each test shows the peer's own
behaviour. When a peer release fixes one, its test fails: revisit the adapter and the
findings table (README, "Judge your own implementation"), then drop the test.
Versions where these were found: onnx 1.23.2, numpy-ml 0.1.2, mygrad 2.5.0.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest

import refcnn


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _onnx_node(op: str, *inputs: np.ndarray, **attributes: Any) -> np.ndarray:
    """Run one ONNX node with onnx.reference.ReferenceEvaluator (no adapter translation)."""
    helper = pytest.importorskip("onnx.helper")
    reference = pytest.importorskip("onnx.reference")
    names = [f"in{i}" for i in range(len(inputs))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["out"], **attributes)],
        op,
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, inputs, strict=True)
        ],
        [
            helper.make_tensor_value_info(
                "out", helper.np_dtype_to_tensor_dtype(inputs[0].dtype), None
            )
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    feeds = dict(zip(names, inputs, strict=True))
    return np.asarray(reference.ReferenceEvaluator(model).run(None, feeds)[0])


# -- ONNX's reference evaluator -----------------------------------------------------------------


def test_onnx_reference_strided_maxpool_same_lower_floors_the_output_size() -> None:
    # ONNX: SAME_LOWER gives ceil(n / s) outputs, the odd pad first. At stride > 1 the
    # evaluator's MaxPool takes floor(n / s) (and puts the odd pad last): 2x2 instead of 3x3.
    x = np.arange(25.0).reshape(1, 5, 5, 1)
    raw = _onnx_node(
        "MaxPool", _nchw(x), kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"
    )
    assert raw[0, 0].tolist() == [[12.0, 14.0], [22.0, 24.0]]  # the finding
    expected = refcnn.max_pool2d(x, 2, strides=2, padding="SAME_LOWER")
    assert expected[0, :, :, 0].tolist() == [[0, 2, 4], [10, 12, 14], [20, 22, 24]]


def test_onnx_reference_strided_maxpool_same_negative_total_shifts_the_windows() -> None:
    # W = 4, window 1, stride 2: ONNX's total pad (out - 1) * s + k - n = -1 is not clamped at
    # 0 (TensorFlow's is); the evaluator pads -1 // 2 = -1 in front and reads [2, 4].
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)
    raw = _onnx_node(
        "MaxPool", _nchw(x), kernel_shape=[1, 1], strides=[1, 2], auto_pad="SAME_UPPER"
    )
    assert raw.ravel().tolist() == [2.0, 4.0]  # the finding
    expected = refcnn.max_pool2d(x, 1, strides=(1, 2), padding="SAME")
    assert expected.ravel().tolist() == [1.0, 3.0]


def test_onnx_reference_averagepool_same_negative_total_raises() -> None:
    # The same geometry in AveragePool reaches np.pad with a negative width.
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 4, 1)
    with pytest.raises(ValueError, match="negative"):
        _onnx_node(
            "AveragePool", _nchw(x), kernel_shape=[1, 1], strides=[1, 2], auto_pad="SAME_UPPER"
        )
    expected = refcnn.avg_pool2d(x, 1, strides=(1, 2), padding="SAME")
    assert expected.ravel().tolist() == [1.0, 3.0]


def test_onnx_reference_unstrided_maxpool_reads_pads_in_the_wrong_order() -> None:
    # ONNX pads are [x1_begin, x2_begin, x1_end, x2_end]. At stride 1 the evaluator's MaxPool
    # reads them per axis ([x1_begin, x1_end, x2_begin, x2_end]): one column in front becomes
    # one row below. Its AveragePool, and its MaxPool at stride > 1, read them right.
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    raw = _onnx_node("MaxPool", _nchw(x), kernel_shape=[2, 2], strides=[1, 1], pads=[0, 1, 0, 0])
    assert raw[0, 0].tolist() == [[5.0, 6.0], [8.0, 9.0], [8.0, 9.0]]  # the finding
    expected = refcnn.max_pool2d(x, 2, strides=1, padding=((0, 0), (1, 0)))
    assert expected[0, :, :, 0].tolist() == [[4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]


def test_onnx_reference_log_softmax_is_the_log_of_softmax() -> None:
    # ONNX's own function body for LogSoftmax is x - max - log(sum(exp(x - max))); the
    # evaluator takes log(softmax(x)), -inf once exp underflows (with a divide warning).
    z = np.array([0.0, -800.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = _onnx_node("LogSoftmax", z, axis=0)
    assert raw.tolist() == [0.0, -np.inf]  # the finding
    assert refcnn.log_softmax(z).tolist() == [0.0, -800.0]


def test_onnx_reference_softmax_cross_entropy_loss_is_infinite_for_a_confident_miss() -> None:
    # SoftmaxCrossEntropyLoss also takes log(softmax): loss inf instead of 800.
    logits, labels = np.array([[0.0, -800.0]]), np.array([1], dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        raw = _onnx_node("SoftmaxCrossEntropyLoss", logits, labels, reduction="mean")
    assert float(raw) == np.inf  # the finding
    assert float(refcnn.softmax_cross_entropy(logits, labels)) == 800.0


def test_onnx_reference_flatten_of_an_empty_batch_raises() -> None:
    # Flatten reshapes to (prod(shape[:axis]), -1), which NumPy cannot infer for 0 elements.
    x = np.zeros((0, 2, 3, 1))
    with pytest.raises(ValueError, match="cannot reshape array of size 0"):
        _onnx_node("Flatten", x, axis=1)
    assert refcnn.flatten(x).shape == (0, 6)


def test_onnx_reference_sigmoid_warns_on_values_it_gets_right() -> None:
    # np.where evaluates both branches (exp(x) and exp(-x)), so a large |x| overflows in the
    # branch it discards: the values are right, the RuntimeWarning fails a warnings-as-errors
    # gate (the suite's policy).
    x = np.array([-100.0, 100.0], dtype=np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = _onnx_node("Sigmoid", x)
    assert any("overflow" in str(w.message) for w in caught)  # the finding
    np.testing.assert_array_equal(raw, refcnn.sigmoid(x))


# -- numpy-ml -----------------------------------------------------------------------------------


def _installed(name: str) -> None:
    # Skip only when the package is absent: numpy-ml 0.1.2 is installed but fails to import
    # (a finding), which importorskip would turn into a skip.
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")


def _numpy_ml() -> Any:
    _installed("numpy_ml")
    from conformance.peers import numpy_ml_nn  # noqa: F401, PLC0415 - its import fixes numpy-ml's

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Agents in `numpy_ml.rl_models`")
        from numpy_ml import neural_nets  # noqa: PLC0415

    return neural_nets


@pytest.mark.skipif(sys.version_info < (3, 10), reason="collections.Hashable exists before 3.10")
def test_numpy_ml_does_not_import_on_python_3_10_and_later() -> None:
    _installed("numpy_ml")
    result = subprocess.run(
        [sys.executable, "-c", "import numpy_ml"], capture_output=True, text=True, check=False
    )
    assert "cannot import name 'Hashable' from 'collections'" in result.stderr  # the finding


def test_numpy_ml_max_pool_backward_reads_the_unpadded_input_at_padded_positions() -> None:
    # Pool2D.backward pads dX but takes each window from the unpadded X at padded indices, so
    # with padding before the input every window is shifted. The input is positive, so
    # numpy-ml's zero padding cannot win a max either: wrong under its own convention too.
    nn = _numpy_ml()
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    layer = nn.layers.Pool2D((2, 2), stride=1, pad=(1, 0, 1, 0), mode="max")
    y = layer.forward(x)
    np.testing.assert_array_equal(y, refcnn.max_pool2d(x, 2, strides=1, padding="SAME_LOWER"))
    dx = layer.backward(np.ones_like(y))
    assert dx[0, :, :, 0].tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]  # the finding
    expected = refcnn.max_pool2d_backward(np.ones_like(y), x, 2, strides=1, padding="SAME_LOWER")
    assert expected[0, :, :, 0].tolist() == [[1, 1, 1], [1, 1, 1], [1, 1, 1]]


def test_numpy_ml_softmax_backward_ignores_dim() -> None:
    # Softmax(dim=0).backward builds each Jacobian from a (1, n) row with softmax along axis
    # 0, a one-element softmax: the Jacobian is 0 and dX is -dY * (row sums). dim=-1 is right.
    nn = _numpy_ml()
    z = np.array([[1.0, 2.0], [3.0, 5.0], [0.0, -1.0]])
    dp = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    layer = nn.layers.Softmax(dim=0)
    np.testing.assert_allclose(layer.forward(z), refcnn.softmax(z, axis=0), rtol=1e-15)
    assert layer.backward(dp).tolist() == [[0.0, -1.0], [0.0, 0.0], [-2.0, 0.0]]  # the finding
    expected = refcnn.softmax_backward(dp, refcnn.softmax(z, axis=0), axis=0)
    np.testing.assert_allclose(expected[:, 0], [0.101155, -0.096357, -0.004797], atol=1e-6)


def test_numpy_ml_pooling_and_conv_gradients_return_float64() -> None:
    # Pool2D.forward fills np.zeros(...) (float64); Conv2D.backward's col2im too; ReLU.grad
    # returns int64, so dy * grad promotes: float32 in, float64 out.
    nn = _numpy_ml()
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    assert nn.layers.Pool2D((2, 2), stride=2).forward(x).dtype == np.float64  # the finding
    conv = nn.layers.Conv2D(1, (2, 2))
    conv.forward(x)
    conv.parameters = {
        "W": np.ones((2, 2, 1, 1), np.float32),
        "b": np.zeros((1, 1, 1, 1), np.float32),
    }
    assert conv.backward(np.ones((1, 3, 3, 1), np.float32)).dtype == np.float64  # the finding
    relu_grad = nn.activations.ReLU().grad(x)
    assert relu_grad.dtype == np.int64  # the finding
    assert refcnn.max_pool2d(x, 2).dtype == np.float32
    assert refcnn.relu_backward(x, x).dtype == np.float32


def test_numpy_ml_pool_window_larger_than_the_input_raises() -> None:
    # out = floor(1 + (n - k) / s) goes negative: np.zeros raises. refcnn: an empty output.
    nn = _numpy_ml()
    x = np.arange(4.0).reshape(1, 1, 4, 1)
    with pytest.raises(ValueError, match="negative dimensions"):
        nn.layers.Pool2D((3, 3), stride=1).forward(x)
    assert refcnn.max_pool2d(x, 3, strides=1).shape == (1, 0, 2, 1)


def test_numpy_ml_empty_batches_raise() -> None:
    # Flatten reshapes to (N, -1) and col2im to (..., -1, N): NumPy cannot infer -1 for 0.
    nn = _numpy_ml()
    with pytest.raises(ValueError, match="cannot reshape array of size 0"):
        nn.layers.Flatten().forward(np.zeros((0, 2, 3, 1)))
    conv = nn.layers.Conv2D(1, (2, 2))
    conv.forward(np.ones((1, 3, 3, 1)))  # initializes the layer's parameters
    conv.forward(np.zeros((0, 3, 3, 1)))
    with pytest.raises(ValueError, match="cannot reshape array of size 0"):
        conv.backward([np.ones((1, 2, 2, 1)), np.zeros((0, 2, 2, 1))])
    assert refcnn.flatten(np.zeros((0, 2, 3, 1))).shape == (0, 6)
    dx, _, _ = refcnn.conv2d_backward(
        np.zeros((0, 2, 2, 1)), np.zeros((0, 3, 3, 1)), np.ones((2, 2, 1, 1))
    )
    assert dx.shape == (0, 3, 3, 1)


def test_numpy_ml_cross_entropy_grad_rejects_float16_probabilities() -> None:
    # is_stochastic asserts np.allclose(rows.sum(), 1) with float64's default tolerance; a
    # float16 softmax row sums to 0.9995 in float16.
    nn = _numpy_ml()
    z = np.array([[0.0, 0.0, 3.0]], dtype=np.float16)
    p = nn.layers.Softmax().forward(z)
    with pytest.raises(AssertionError, match="stochastic"):
        nn.losses.CrossEntropy.grad(np.array([[1, 0, 0]], dtype=np.float16), p)
    dz = refcnn.softmax_cross_entropy_backward(z, np.array([0]), reduction="sum")
    assert dz.dtype == np.float16
    assert dz[0, 0] == np.float16(-0.9546)


def test_numpy_ml_conventions_the_adapter_refuses() -> None:
    # Documented conventions, not bugs; the adapter refuses (or re-expresses) these cases.
    nn = _numpy_ml()
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # all negative: a zero pad wins a max
    y = nn.layers.Pool2D((2, 2), stride=1, pad=(0, 1, 0, 1), mode="max").forward(x)
    assert y[0, -1, -1, 0] == 0.0  # padded with zeros (Pool2D's documented pad)
    assert refcnn.max_pool2d(x, 2, strides=1, padding="SAME")[0, -1, -1, 0] == -9.0
    w = np.ones((3, 3, 1, 1))
    same = nn.utils.conv2D(np.ones((1, 6, 6, 1)), w, 2, "same")
    assert same.shape == (1, 6, 6, 1)  # "same": output = input size at any stride
    assert refcnn.conv2d(np.ones((1, 6, 6, 1)), w, strides=2, padding="SAME").shape == (1, 3, 3, 1)


# -- MyGrad -------------------------------------------------------------------------------------


def test_mygrad_dilated_window_check_uses_k_times_d() -> None:
    # A dilated window spans (k - 1) * d + 1; MyGrad's sliding_window_view checks k * d, so a
    # 3x3 kernel at dilation 2 (span 5) is refused on a 5x5 input.
    mg = pytest.importorskip("mygrad")
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"dilated window \(\(np.int64\(6\)"):
        mg.nnet.conv_nd(x, w, stride=1, dilation=2)
    expected = refcnn.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), dilations=2)
    assert expected.ravel().tolist() == [9.0]


def test_mygrad_max_pool_backward_of_an_empty_batch_raises() -> None:
    mg = pytest.importorskip("mygrad")
    x = mg.Tensor(np.zeros((0, 1, 1, 2)))
    y = mg.nnet.max_pool(x, (1, 2), (1, 2))
    with pytest.raises(ValueError, match="cannot reshape array of size 0"):
        y.backward(np.zeros((0, 1, 1, 1)))
    dx = refcnn.max_pool2d_backward(np.zeros((0, 1, 1, 1)), np.zeros((0, 1, 2, 1)), (1, 2))
    assert dx.shape == (0, 1, 2, 1)


def test_mygrad_softmax_crossentropy_gradient_loses_digits_with_large_logits() -> None:
    # The gradient is exp(x - logsumexp(x)) - onehot: subtracting a logsumexp near 1e4 leaves
    # an absolute error near eps * 1e4 in the exponent, 2000 ulp in p. PyTorch and
    # TensorFlow (max subtracted first) and refcnn are within 0.02 of the bound.
    mg = pytest.importorskip("mygrad")
    # refcnn's layout: axis 0 holds the classes, each column is a sample; MyGrad's is (N, K).
    logits = np.array(
        [[-0.5464115138010502, 9997.671477984457], [-0.6246775302796341, 9998.611805331202]]
    )
    scores = mg.Tensor(logits.T.copy())
    mg.nnet.softmax_crossentropy(scores, np.array([1, 1])).backward()
    got = float(scores.grad[1, 1])
    # Sample 1: logits (9997.67..., 9998.61...), class 1, mean over 2 samples. The difference
    # of the two logits is exact (Sterbenz), so this is right to a few ulp.
    d = 9997.671477984457 - 9998.611805331202
    truth = -np.exp(d) / (1.0 + np.exp(d)) / 2.0
    want = refcnn.softmax_cross_entropy_backward(logits, np.array([1, 1]), axis=0)[1, 1]
    assert abs(want - truth) <= 4 * np.finfo(np.float64).eps * abs(truth)
    assert abs(got - truth) > 1000 * np.finfo(np.float64).eps * abs(truth)  # the finding
