"""Framework bugs the suite found, pinned so the adapters' workarounds cannot regress.

Each case is one the property tests shrank to; the adapter must give refcnn's (and the
framework's float64) answer, not the buggy one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import refcnn
from conformance.frameworks import NotExpressible, adapter


def test_torch_float32_conv2d_single_channel_permuted_input() -> None:
    # torch 2.13 CPU, float32: an NCHW view of an NHWC array with C = 1 keeps channels-last
    # strides and conv2d returns [120, 162, 248]; float64 and refcnn give [120, 184, 248].
    pytest.importorskip("torch")
    torch_api = adapter("torch")
    x = np.arange(24, dtype=np.float32).reshape(1, 6, 4, 1)
    w = np.ones((4, 4, 1, 1), dtype=np.float32)
    expected = refcnn.conv2d(x, w, strides=(1, 3))
    np.testing.assert_array_equal(expected.ravel(), [120, 184, 248])
    np.testing.assert_array_equal(torch_api.conv2d(x, w, strides=(1, 3)), expected)


def _onnx_nodes(op: str, inputs: list[np.ndarray], **attributes: object) -> np.ndarray:
    """Run one ONNX node on ONNX Runtime's CPU provider, without the adapter's translation."""
    ort = pytest.importorskip("onnxruntime")
    helper = pytest.importorskip("onnx.helper")
    tensor_type = helper.np_dtype_to_tensor_dtype(inputs[0].dtype)
    names = [f"in{i}" for i in range(len(inputs))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attributes)],
        op,
        [
            helper.make_tensor_value_info(name, tensor_type, list(a.shape))
            for name, a in zip(names, inputs, strict=True)
        ],
        [helper.make_tensor_value_info("y", tensor_type, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = dict(zip(names, inputs, strict=True))
    return np.asarray(session.run(None, feeds)[0])


def _onnx_node(op: str, x: np.ndarray, **attributes: object) -> np.ndarray:
    """Run a one-input ONNX node on ONNX Runtime's CPU provider (no adapter translation)."""
    return _onnx_nodes(op, [x], **attributes)


def test_onnxruntime_average_pool_same_upper_with_stride_above_window_crops() -> None:
    # ONNX's SAME pad total (out - 1) * s + k - n is not clamped at 0 (TensorFlow's is):
    # H = 3, k = 1, s = 3 gives -2, and ONNX Runtime 1.32's AveragePool crops a row from
    # each side instead of refusing (its MaxPool raises "padding values must be
    # non-negative"), so the window reads row 1 instead of row 0: -1 instead of 1.
    x = np.array([0.0, 2.0, -1.0, -1.0, 2.0, -3.0], dtype=np.float32).reshape(1, 3, 2, 1)
    expected = refcnn.avg_pool2d(x, (1, 2), strides=(3, 1), padding="SAME")
    np.testing.assert_array_equal(expected.ravel(), [1.0, 2.0])
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    raw = _onnx_node(
        "AveragePool", nchw, kernel_shape=[1, 2], strides=[3, 1], auto_pad="SAME_UPPER"
    )
    assert raw.ravel()[0] == -1.0  # the finding; if this changes, revisit the adapter
    with pytest.raises(Exception, match="padding values must be non-negative"):
        _onnx_node("MaxPool", nchw, kernel_shape=[1, 2], strides=[3, 1], auto_pad="SAME_UPPER")
    # The adapter passes refcnn's (TensorFlow's) pads explicitly, always.
    ort_api = adapter("onnxruntime")
    np.testing.assert_array_equal(
        ort_api.avg_pool(x, (1, 2), strides=(3, 1), padding="SAME"), expected
    )
    np.testing.assert_array_equal(
        ort_api.avg_pool2d(x, (1, 2), strides=(3, 1), padding="SAME"), expected
    )


def test_onnxruntime_pool_window_larger_than_input_gives_an_output() -> None:
    # VALID, a 2x2 window on a 1x4 map: ONNX's floor((1 - 2) / 2 + 1) = 0 output rows, as in
    # refcnn and TensorFlow; ONNX Runtime 1.32 truncates (1 - 2) / 2 toward zero and returns
    # one row of maxima over the clipped window. The adapter refuses such cases.
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 4, 1)
    assert refcnn.max_pool2d(x, 2).shape == (1, 0, 2, 1)
    raw = _onnx_node("MaxPool", x.transpose(0, 3, 1, 2).copy(), kernel_shape=[2, 2], strides=[2, 2])
    assert raw.shape == (1, 1, 1, 2)  # the finding
    with pytest.raises(NotExpressible, match="window larger than the input"):
        adapter("onnxruntime").max_pool(x, 2)
    with pytest.raises(NotExpressible, match="window larger than the input"):
        adapter("onnxruntime").max_pool2d(x, 2)


def test_onnxruntime_pool_rejects_pads_as_large_as_the_undilated_window() -> None:
    # ONNX Runtime 1.32's pooling takes only pads below kernel_shape ("Pad should be smaller
    # than kernel"), whatever the dilation; SAME pads of a dilated window reach it: k = 2,
    # d = 3 on W = 3 pads (1, 2), and every window still holds a real element. The adapter
    # passes pads up to k - 1 and applies the rest to the input (-inf for max, zeros for
    # average with count_include_pad=True; count_include_pad=False is not expressible).
    x = np.array([3.0, 1.0, 2.0], dtype=np.float32).reshape(1, 3, 1)
    options: dict[str, Any] = {"strides": 1, "dilations": 3, "padding": "SAME"}
    y, argmax = refcnn.max_pool_with_argmax(x, 2, **options)
    np.testing.assert_array_equal(y.ravel(), [2.0, 3.0, 1.0])
    np.testing.assert_array_equal(argmax.ravel(), [2, 0, 1])
    ncw = np.ascontiguousarray(x.transpose(0, 2, 1))
    for op in ("MaxPool", "AveragePool"):
        with pytest.raises(Exception, match="Pad should be smaller than kernel"):
            _onnx_node(op, ncw, kernel_shape=[2], strides=[1], dilations=[3], pads=[1, 2])
    ort_api = adapter("onnxruntime")
    got_y, got_argmax = ort_api.max_pool_with_argmax(x, 2, **options)
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(got_argmax, argmax)
    mean = refcnn.avg_pool(x, 2, count_include_pad=True, **options)
    np.testing.assert_array_equal(mean.ravel(), [1.0, 1.5, 0.5])
    np.testing.assert_array_equal(ort_api.avg_pool(x, 2, count_include_pad=True, **options), mean)
    with pytest.raises(NotExpressible, match="count_include_pad=False"):
        ort_api.avg_pool(x, 2, **options)


def test_onnxruntime_conv_transpose_output_padding_at_the_stride() -> None:
    # refcnn, like ONNX's spec and PyTorch, allows output_padding < max(stride, dilation);
    # ONNX Runtime 1.32 checks that bound, then refuses output_padding >= stride ("Computed
    # output shape is inconsistent with input spatial dimensions"). The adapter appends zero
    # inputs instead (they add nothing) and trims with the end pad.
    x = np.array([1.0, 2.0], dtype=np.float32).reshape(1, 2, 1)
    w = np.array([1.0, 10.0], dtype=np.float32).reshape(2, 1, 1)
    expected = refcnn.conv_transpose(x, w, dilations=3, output_padding=1)
    np.testing.assert_array_equal(expected.ravel(), [1.0, 2.0, 0.0, 10.0, 20.0, 0.0])
    ncw, oik = x.transpose(0, 2, 1).copy(), w.transpose(2, 1, 0).copy()
    with pytest.raises(Exception, match=r"output_padding \(1\) may be too large"):
        _onnx_nodes("ConvTranspose", [ncw, oik], dilations=[3], output_padding=[1])
    got = adapter("onnxruntime").conv_transpose(x, w, dilations=3, output_padding=1)
    np.testing.assert_array_equal(got, expected)


def test_onnxruntime_conv_refuses_dilation_under_auto_pad_same() -> None:
    # ONNX Runtime 1.32's Conv: "Dilation not supported for AutoPadType::SAME_UPPER or
    # AutoPadType::SAME_LOWER"; the adapter passes refcnn's SAME pads explicitly.
    x = np.array([1.0, 2.0, 4.0], dtype=np.float32).reshape(1, 3, 1)
    w = np.array([1.0, 10.0], dtype=np.float32).reshape(2, 1, 1)
    expected = refcnn.conv(x, w, dilations=2, padding="SAME")
    np.testing.assert_array_equal(expected.ravel(), [20.0, 41.0, 2.0])
    ncw, oik = x.transpose(0, 2, 1).copy(), w.transpose(2, 1, 0).copy()
    with pytest.raises(Exception, match="Dilation not supported"):
        _onnx_nodes("Conv", [ncw, oik], dilations=[2], auto_pad="SAME_UPPER")
    got = adapter("onnxruntime").conv(x, w, dilations=2, padding="SAME")
    np.testing.assert_array_equal(got, expected)


def test_onnxruntime_sigmoid_is_accurate_in_absolute_terms_only() -> None:
    # The documented rule in the adapter's ABSOLUTE_ACCURACY: sigmoid(-17) = 4.14e-8 is a
    # normal float32; ONNX Runtime 1.32 returns 8.94e-8 (off by 116%, torch and TensorFlow
    # are within 6 eps relative) and 0 for some x below -16, while staying within 2 eps
    # absolute everywhere.
    x = np.array([-17.0, -3.5], dtype=np.float32)
    raw = _onnx_node("Sigmoid", x).astype(np.float64)
    truth = refcnn.sigmoid(x.astype(np.float64))
    assert abs(raw[0] - truth[0]) / truth[0] > 1.0  # the finding
    assert np.all(np.abs(raw - truth) <= 2 * np.finfo(np.float32).eps)


def test_jax_clip_gradient_at_the_bound_is_one_half() -> None:
    # JAX splits max/min gradients between tied arguments, so jnp.clip(p, eps, 1) has
    # derivative 0.5 at p == 1; refcnn (and torch.clamp, tf.clip_by_value) pass 1. The
    # adapter clamps with jnp.where; pinned so the adapter keeps refcnn's value.
    jax = pytest.importorskip("jax")
    assert float(jax.grad(lambda p: jax.numpy.clip(p, 1e-7, 1.0))(1.0)) == 0.5
    p = np.array([1.0])
    expected = refcnn.cross_entropy_backward(p, p, eps=1e-7)
    np.testing.assert_array_equal(expected, [-1.0])
    np.testing.assert_array_equal(adapter("jax").cross_entropy_backward(p, p, eps=1e-7), expected)


def test_jax_max_gradient_splits_ties() -> None:
    # jnp.max's gradient is shared evenly by tied maxima (jax 0.10.2): [0.5, 0.5] for
    # [1, 1]; refcnn's global_max_pool_backward sends it to the first maximum. The adapter's
    # global_max_pool is a reduce_window max, whose gradient goes to one element, the first.
    jax = pytest.importorskip("jax")
    x = np.ones((1, 2, 1))
    split = jax.grad(lambda v: jax.numpy.max(v, axis=1).sum())(x)
    np.testing.assert_array_equal(split.ravel(), [0.5, 0.5])
    dy = np.ones((1, 1, 1))
    expected = refcnn.global_max_pool_backward(dy, x)
    np.testing.assert_array_equal(expected.ravel(), [1.0, 0.0])
    np.testing.assert_array_equal(adapter("jax").global_max_pool_backward(dy, x), expected)


def test_jax_has_no_dilated_max_pool_gradient() -> None:
    # jax 0.10.2: the forward of a dilated reduce_window max runs, its VJP raises
    # NotImplementedError (select_and_gather with window dilation); the adapter reports such
    # a case not expressible, with JAX's words, instead of failing it.
    pytest.importorskip("jax")
    x = np.arange(5.0).reshape(1, 5, 1)
    jax_api = adapter("jax")
    np.testing.assert_array_equal(
        jax_api.max_pool(x, 2, strides=1, dilations=2),
        refcnn.max_pool(x, 2, strides=1, dilations=2),
    )
    dy = np.ones((1, 3, 1))
    with pytest.raises(NotExpressible, match="VJP not implemented for select_and_gather"):
        jax_api.max_pool_backward(dy, x, 2, strides=1, dilations=2)


@pytest.mark.parametrize("rank", [2, 3])
def test_torch_float32_conv_single_channel_channels_last_strides(rank: int) -> None:
    # torch 2.13 CPU, float32, oneDNN: conv2d/conv3d of a C = 1 NC* view of a channels-last
    # array (it counts as contiguous, so .contiguous() keeps its strides) is wrong, and the
    # wrong values change with the thread count and between calls; a real NC* copy, float64
    # and conv1d are right. The adapter passes the copy.
    torch = pytest.importorskip("torch")
    torch_api = adapter("torch")
    if rank == 2:
        x = np.arange(24, dtype=np.float32).reshape(1, 6, 4, 1)
        w = np.ones((4, 4, 1, 1), dtype=np.float32)
        strides: tuple[int, ...] = (1, 3)
        right = [120, 184, 248]
    else:
        x = np.arange(30, dtype=np.float32).reshape(2, 1, 5, 3, 1)
        w = np.ones((1, 4, 3, 1, 1), dtype=np.float32)
        strides = (1, 1, 2)
        right = [66, 102, 246, 282]
    expected = refcnn.conv(x, w, strides=strides)
    np.testing.assert_array_equal(expected.ravel(), right)
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    view = torch.from_numpy(x).movedim(-1, 1)
    oik = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w, (-1, -2), (0, 1))))
    raw = conv(view, oik, stride=strides).numpy()
    assert not np.array_equal(raw.ravel(), right)  # the finding; if it changes, revisit
    copy = view.clone(memory_format=torch.contiguous_format)
    np.testing.assert_array_equal(conv(copy, oik, stride=strides).numpy().ravel(), right)
    np.testing.assert_array_equal(torch_api.conv(x, w, strides=strides), expected)


def test_torch_avg_pool3d_rejects_an_input_smaller_than_the_window_despite_padding() -> None:
    # W = 1, ksize 3, padding 1 on W: avg_pool1d/2d and max_pool3d pool the padded row, torch
    # 2.13's avg_pool3d raises. The adapter takes its F.pad route there.
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = np.array([2.0]).reshape(1, 1, 1, 1, 1)
    expected = refcnn.avg_pool3d(x, (1, 1, 3), padding="SAME")
    np.testing.assert_array_equal(expected.ravel(), [2.0])
    t = torch.from_numpy(x)
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        functional.avg_pool3d(t, (1, 1, 3), padding=(0, 0, 1), count_include_pad=False)
    two_d = functional.avg_pool2d(t[0], (1, 3), padding=(0, 1), count_include_pad=False)
    assert two_d.item() == 2.0
    assert functional.max_pool3d(t, (1, 1, 3), padding=(0, 0, 1)).item() == 2.0
    np.testing.assert_array_equal(
        adapter("torch").avg_pool3d(x, (1, 1, 3), padding="SAME"), expected
    )


def test_torch_float16_avg_pool3d_has_no_cpu_kernel() -> None:
    # Refused as a whole for avg_pool3d, case by case for avg_pool (its 1-D/2-D cases run).
    torch = pytest.importorskip("torch")
    x = np.ones((1, 2, 2, 2, 1), dtype=np.float16)
    with pytest.raises(NotImplementedError, match="Half"):
        torch.nn.functional.avg_pool3d(torch.ones(1, 1, 2, 2, 2, dtype=torch.float16), 2)
    torch_api = adapter("torch")
    with pytest.raises(NotExpressible, match="no float16 CPU kernel") as whole:
        torch_api.avg_pool3d(x, 2)
    assert whole.value.whole
    with pytest.raises(NotExpressible, match="no float16 CPU kernel") as one:
        torch_api.avg_pool(x, 2)
    assert not one.value.whole
    np.testing.assert_array_equal(torch_api.avg_pool(x[:, 0], 2), refcnn.avg_pool(x[:, 0], 2))


def test_torch_max_pool_nan_index_is_the_last_nan() -> None:
    # A documented convention difference, not drawn by the suite (no NaN inputs): torch 2.13
    # scans with `val > max || isnan(val)`, so the last NaN of a window wins the index (and
    # the gradient); refcnn's is the first NaN. The values agree (NaN).
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = np.array([1.0, np.nan, 3.0, np.nan]).reshape(1, 4, 1)
    y, argmax = refcnn.max_pool_with_argmax(x, 4)
    assert np.isnan(y).all()
    assert argmax.item() == 1
    t = torch.from_numpy(x).movedim(-1, 1)
    assert functional.max_pool1d(t, 4, return_indices=True)[1].item() == 3
    assert functional.adaptive_max_pool1d(t, 1, return_indices=True)[1].item() == 3
    assert adapter("torch").max_pool_with_argmax(x, 4)[1].item() == 3
    dx = adapter("torch").max_pool_backward(np.ones((1, 1, 1)), x, 4)
    np.testing.assert_array_equal(dx.ravel(), [0.0, 0.0, 0.0, 1.0])


def test_torch_max_pool_emulated_pads_refuse_negative_infinity() -> None:
    # Pads torch's max pooling rejects (here asymmetric) are applied as -inf F.pad; on an
    # all -inf window torch's first maximum is then the pad (index 0 of the padded row,
    # outside the input), where its own padding (pad 1 both sides) picks the real element.
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    t = torch.full((1, 1, 2), -np.inf)
    assert functional.max_pool1d(t, 2, 1, padding=1, return_indices=True)[1][0, 0, 0] == 0
    padded = functional.pad(t, (1, 0), value=-np.inf)
    assert functional.max_pool1d(padded, 2, 1, return_indices=True)[1][0, 0, 0] == 0  # a pad
    x = np.full((1, 2, 1), -np.inf)
    with pytest.raises(NotExpressible, match="holds -inf"):
        adapter("torch").max_pool(x, 2, strides=1, padding=((1, 0),))
    finite = np.array([1.0, -2.0]).reshape(1, 2, 1)
    np.testing.assert_array_equal(
        adapter("torch").max_pool(finite, 2, strides=1, padding=((1, 0),)),
        refcnn.max_pool(finite, 2, strides=1, padding=((1, 0),)),
    )


@pytest.mark.parametrize("rank", [2, 3])
def test_tensorflow_float32_strided_conv_single_channel(rank: int) -> None:
    # TF 2.21 CPU, float32, oneDNN: a strided conv2d/conv3d with C = 1 returns wrong values
    # (in 2-D some are uninitialized memory); float64 and stride 1 are right. The adapter runs
    # such convs at stride 1 and subsamples.
    tf = pytest.importorskip("tensorflow")
    tf_api = adapter("tensorflow")
    if rank == 2:
        x = np.arange(60, dtype=np.float32).reshape(2, 6, 5, 1)
        w = np.ones((4, 4, 1, 1), dtype=np.float32)
        strides: tuple[int, ...] = (1, 2)
        right = [144, 224, 304, 624, 704, 784]
        raw = tf.nn.conv2d(x, w, [1, *strides, 1], "VALID").numpy()
    else:
        x = np.arange(30, dtype=np.float32).reshape(2, 1, 5, 3, 1)
        w = np.ones((1, 4, 3, 1, 1), dtype=np.float32)
        strides = (1, 1, 2)
        right = [66, 102, 246, 282]
        raw = tf.nn.conv3d(x, w, [1, *strides, 1], "VALID").numpy()
    expected = refcnn.conv(x, w, strides=strides)
    np.testing.assert_array_equal(expected.ravel(), right)
    assert not np.array_equal(raw.ravel(), right)  # the finding; if it changes, revisit
    unit = [1] * (rank + 2)
    stride_1 = tf.nn.convolution(x, w, unit[1:-1], "VALID").numpy()
    index = (slice(None), *(slice(None, None, s) for s in strides), slice(None))
    np.testing.assert_array_equal(stride_1[index].ravel(), right)
    np.testing.assert_array_equal(tf_api.conv(x, w, strides=strides), expected)
    np.testing.assert_array_equal(
        tf_api.conv_backward_input(np.ones_like(expected), w, x.shape, strides=strides),
        refcnn.conv_backward_input(np.ones_like(expected), w, x.shape, strides=strides),
    )


def test_tensorflow_reduce_max_gradient_splits_ties() -> None:
    # tf.reduce_max (what Keras' GlobalMaxPooling*D use) splits a tied maximum's gradient
    # evenly; refcnn and TF's max pooling send it to the first maximum. The adapter's
    # global_max_pool is a max pool over the flattened spatial volume.
    tf = pytest.importorskip("tensorflow")
    x = np.array([1.0, 3.0, 3.0, 2.0]).reshape(1, 4, 1)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.reduce_max(t, axis=1)
    np.testing.assert_array_equal(tape.gradient(y, t).numpy().ravel(), [0.0, 0.5, 0.5, 0.0])
    expected = refcnn.global_max_pool_backward(np.ones((1, 1, 1)), x)
    np.testing.assert_array_equal(expected.ravel(), [0.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(
        adapter("tensorflow").global_max_pool_backward(np.ones((1, 1, 1)), x), expected
    )


def test_tensorflow_conv3d_gradient_needs_a_data_format() -> None:
    # TF 2.21 eager: tf.nn.convolution of 3-D input with data_format=None records a Conv3D
    # whose gradient function reads the missing attribute ('NoneType' object has no attribute
    # 'decode'); naming "NDHWC" works. The adapter names it.
    tf = pytest.importorskip("tensorflow")
    x = tf.constant(np.ones((1, 2, 2, 2, 1)))
    w = tf.constant(np.ones((1, 1, 1, 1, 1)))
    for data_format, works in ((None, False), ("NDHWC", True)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.convolution(x, w, padding="VALID", data_format=data_format)
        if works:
            np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.ones((1, 2, 2, 2, 1)))
        else:
            with pytest.raises(AttributeError, match="decode"):
                tape.gradient(y, x)


def test_tensorflow_max_pool3d_gradient_goes_to_every_tied_maximum() -> None:
    # TF 2.21's MaxPool3DGrad (oneDNN or not) gives each tied maximum of a window the whole
    # window gradient: ones(4) with windows of 2 and dy [1, 2, 3] gives [1, 3, 5, 3] (the
    # gradient's sum grows from 6 to 12); MaxPoolGrad (2-D) and refcnn give [1, 2, 3, 0]. The
    # adapter differentiates 3-D max pools as two 2-D ones.
    tf = pytest.importorskip("tensorflow")
    x = np.ones((1, 1, 4, 1, 1), dtype=np.float32)
    dy = np.array([1.0, 2.0, 3.0], dtype=np.float32).reshape(1, 1, 3, 1, 1)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.nn.max_pool3d(t, [1, 2, 1], [1, 1, 1], "VALID")
    raw = tape.gradient(y, t, output_gradients=tf.constant(dy)).numpy()
    np.testing.assert_array_equal(raw.ravel(), [1.0, 3.0, 5.0, 3.0])  # the finding
    expected = refcnn.max_pool_backward(dy, x, (1, 2, 1), strides=1)
    np.testing.assert_array_equal(expected.ravel(), [1.0, 2.0, 3.0, 0.0])
    np.testing.assert_array_equal(
        adapter("tensorflow").max_pool_backward(dy, x, (1, 2, 1), strides=1), expected
    )
