"""ONNX Runtime adapter: each forward op as a one-node ONNX model run by the CPU provider.

Same names, signatures and conventions as :mod:`refcnn` (NHWC data, HWIO filters,
cross-correlation, TensorFlow argument names). ONNX is NCHW with OIHW filters: the adapter
transposes in NumPy around the node (exact). Only forward functions exist: ONNX Runtime is
an inference engine without automatic differentiation (``vjp = None``), so every backward
function of the API is counted as not expressible, never skipped silently.

Translation
-----------
- Models are built with ``onnx.helper`` (opset :data:`OPSET`), one node each, and run by an
  ``InferenceSession`` on the ``CPUExecutionProvider`` with one intra-op thread; sessions are
  cached by (op, attributes, dtypes).
- Padding: ``"VALID"``, ``"SAME"`` and ``"SAME_LOWER"`` become ONNX's own ``auto_pad``
  (``VALID``, ``SAME_UPPER``, ``SAME_LOWER``), so ONNX Runtime's padding rules are what is
  compared; explicit pads become ``pads = [top, left, bottom, right]``.
- ``conv2d``: ``Conv`` (``strides``, ``dilations``, the bias as its third input).
- ``max_pool2d`` / ``avg_pool2d``: ``MaxPool`` / ``AveragePool`` with ``kernel_shape``,
  ``strides`` (default: the kernel), and ``count_include_pad``.
- ``flatten``: ``Flatten(axis)``, ONNX's own definition of refcnn's flatten.
- ``dense``: ``Gemm`` (``x @ w + b``).
- ``relu`` / ``sigmoid`` / ``tanh`` / ``softmax`` / ``log_softmax``: the ONNX ops of those
  names (``Softmax``/``LogSoftmax`` with ``axis``, opset >= 13 semantics: one axis).
- ``softmax_cross_entropy``: ``SoftmaxCrossEntropyLoss`` with the class axis moved to 1
  (``(K,)`` logits become a batch of one), integer labels, ``weights``, ``ignore_index`` and
  ``reduction``; it has no label smoothing and no probability labels (not expressible).
- A kernel the CPU provider lacks for a dtype (``Conv`` and ``AveragePool`` in float64)
  is reported by ONNX Runtime as NOT_IMPLEMENTED and counted as not expressible with that
  message.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import helper

from conformance.frameworks import NotExpressible
from conformance.frameworks._common import Array, conv_geometry, pair, pool_geometry
from refcnn.padding import normalize_padding, window_geometry

NAME = "onnxruntime"
REQUIRES = "onnxruntime"
DISTRIBUTIONS = ("onnxruntime",)
DEVICES = ("cpu",)
LIMITS = {
    "backward functions": "ONNX Runtime is an inference engine without automatic "
    "differentiation: every backward function is not expressible",
    "training": "ONNX Runtime (inference) provides no training trajectory",
    "cross_entropy": "ONNX has no cross-entropy of probabilities in one operator "
    "(NegativeLogLikelihoodLoss takes log-probabilities and class indices)",
}

#: Kernels accurate in absolute terms only (measured on 200001 points in [-120, 120] against
#: float64 sigmoid): ONNX Runtime 1.32's CPU Sigmoid (MLAS) is within 1.25 eps of the truth
#: in absolute terms in float32 and 1.0 in float64, but its relative error reaches 17
#: (float32) and 22 (float64) eps already where sigma > 2**-5; below x = -16 (float32) and
#: -36.7 (float64) its results are 0 or off by over 100% (sigmoid(-17) = 4.14e-8 comes out
#: 8.94e-8; conformance/test_framework_bugs.py pins it). Every other
#: framework, and refcnn, is within 6 eps relative. Reported as an accuracy finding; the
#: comparison allows it 2 eps absolute, counted as a rule.
ABSOLUTE_ACCURACY = {
    "sigmoid": (
        2.0,
        "ONNX Runtime's Sigmoid is accurate to 1.25 eps absolute, not relative: off by "
        "over 100% below x = -16 in float32",
    ),
}

#: The ONNX opset the one-node models declare.
OPSET = 21

#: ONNX Runtime computes no gradients: the backward functions are not expressible.
vjp = None

_AUTO_PAD = {"VALID": "VALID", "SAME": "SAME_UPPER", "SAME_LOWER": "SAME_LOWER"}


def setup(device: str, *, allow_tf32: bool) -> dict[str, str]:
    """Record the version; the CPU provider is the only one this suite uses."""
    if device != "cpu":
        msg = "this suite runs ONNX Runtime's CPUExecutionProvider only"
        raise RuntimeError(msg)
    return {
        "version": importlib.metadata.version("onnxruntime"),
        "device": "cpu (CPUExecutionProvider)",
        "onnx": importlib.metadata.version("onnx"),
    }


def tensor(a: Array) -> Array:
    """ONNX Runtime takes NumPy arrays: a contiguous copy (the caller's array stays apart)."""
    # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    return np.array(a, copy=True, order="C")


def array(t: Any) -> Array:
    """Copy an ONNX Runtime result into a fresh NumPy array."""
    return np.array(t, copy=True)


def _attribute_key(attributes: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items()))


@functools.lru_cache(maxsize=512)
def _session(
    op: str,
    attributes: tuple[tuple[str, Any], ...],
    input_types: tuple[tuple[str, int], ...],
    output_type: str,
) -> ort.InferenceSession:
    # Inputs of known rank and dtype, every dimension symbolic: one session serves every
    # shape, and ONNX Runtime infers the output's.
    inputs = [
        helper.make_tensor_value_info(
            f"in{i}",
            helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
            [f"in{i}_{axis}" for axis in range(rank)],
        )
        for i, (dtype, rank) in enumerate(input_types)
    ]
    output = helper.make_tensor_value_info(
        "out", helper.np_dtype_to_tensor_dtype(np.dtype(output_type)), None
    )
    attrs: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in attributes}
    node = helper.make_node(op, [f"in{i}" for i in range(len(input_types))], ["out"], **attrs)
    graph = helper.make_graph([node], op, inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _run(op: str, inputs: Sequence[Array], **attributes: Any) -> Array:
    """Run one ONNX node on ``inputs``; the output has the first input's dtype."""
    types = tuple((str(a.dtype), a.ndim) for a in inputs)
    try:
        session = _session(op, _attribute_key(attributes), types, types[0][0])
    except ort.capi.onnxruntime_pybind11_state.NotImplemented as exc:
        msg = f"onnxruntime {op} ({types[0][0]}): the CPU provider has no kernel for it"
        raise NotExpressible(msg, whole=True) from exc
    feeds = {f"in{i}": np.array(a, copy=False, order="C") for i, a in enumerate(inputs)}
    (out,) = session.run(None, feeds)
    return np.asarray(out)


def _pads(
    op: str,
    padding: Any,
    input_hw: Sequence[int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int] = (1, 1),
) -> dict[str, Any]:
    """ONNX's ``auto_pad`` for the named modes where ONNX Runtime can run it, else ``pads``.

    ``pads`` lists all begins, then all ends, from :mod:`refcnn.padding`. ``auto_pad`` is
    kept where ONNX Runtime's own SAME rule applies: it refuses dilation under SAME for Conv,
    and computes ONNX's ``(out - 1) * s + e - n`` without TensorFlow's clamp at 0, which is
    negative when the stride exceeds the window (MaxPool then raises "padding values must
    be non-negative" and AveragePool silently crops the input: a wrong window, see
    conformance/test_framework_bugs.py); those cases get the explicit pads.
    """
    mode = normalize_padding(op, padding)
    geometry = window_geometry(
        (int(input_hw[0]), int(input_hw[1])), kernel, strides, dilations, mode
    )
    if isinstance(mode, str):
        unclamped = [
            (out - 1) * s + (k - 1) * d + 1 - n
            for out, s, k, d, n in zip(
                geometry.out_hw, strides, kernel, dilations, input_hw, strict=True
            )
        ]
        if mode == "VALID" or (dilations == (1, 1) and min(unclamped) >= 0):
            return {"auto_pad": _AUTO_PAD[mode]}
    (top, bottom), (left, right) = geometry.pads
    return {"pads": [top, left, bottom, right]}


def _nchw(x: Array) -> Array:
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def _nhwc(y: Array) -> Array:
    return np.ascontiguousarray(np.transpose(y, (0, 2, 3, 1)))


# -- conv and pooling ---------------------------------------------------------------------------


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Array:
    """See refcnn.conv2d (ONNX ``Conv``; HWIO -> OIHW)."""
    inputs = [_nchw(x), np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))]
    if b is not None:
        inputs.append(b)
    kernel = (int(w.shape[0]), int(w.shape[1]))
    _, geometry = conv_geometry("conv2d", x.shape, w.shape, strides, padding, dilations)
    if 0 in geometry.out_hw:
        msg = (
            f"onnxruntime conv2d: empty output (out_h, out_w) = {geometry.out_hw}: ONNX "
            "Runtime's Conv rejects it ('Invalid input shape')"
        )
        raise NotExpressible(msg)
    attributes = {
        "kernel_shape": list(kernel),
        "strides": list(pair(strides)),
        "dilations": list(pair(dilations)),
        **_pads("conv2d", padding, x.shape[1:3], kernel, pair(strides), pair(dilations)),
    }
    return _nhwc(_run("Conv", inputs, **attributes))


def _pool_attributes(op: str, x: Array, ksize: Any, strides: Any, padding: Any) -> dict[str, Any]:
    kernel = pair(ksize)
    steps = pair(kernel if strides is None else strides)
    _, geometry = pool_geometry(op, x.shape, ksize, strides, padding)
    if 0 in geometry.out_hw or x.shape[3] == 0:
        msg = (
            f"onnxruntime {op}: (out_h, out_w, C) = {(*geometry.out_hw, x.shape[3])} has an "
            "empty dim: ONNX Runtime 1.32's pooling rejects C = 0 ('Only N can be zero') and "
            "gives a window larger than the input one output instead of none (its size "
            "formula truncates (n - k) / s toward zero where ONNX's floors it; see "
            "conformance/test_framework_bugs.py)"
        )
        raise NotExpressible(msg)
    return {
        "kernel_shape": list(kernel),
        "strides": list(steps),
        **_pads(op, padding, x.shape[1:3], kernel, steps),
    }


def max_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Array:
    """See refcnn.max_pool2d (ONNX ``MaxPool``: padding never wins)."""
    attributes = _pool_attributes("max_pool2d", x, ksize, strides, padding)
    return _nhwc(_run("MaxPool", [_nchw(x)], **attributes))


def avg_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """See refcnn.avg_pool2d (ONNX ``AveragePool`` with ``count_include_pad``)."""
    attributes = _pool_attributes("avg_pool2d", x, ksize, strides, padding)
    attributes["count_include_pad"] = int(count_include_pad)
    return _nhwc(_run("AveragePool", [_nchw(x)], **attributes))


# -- flatten, dense, activations, softmax ---------------------------------------------------------


def flatten(x: Array, axis: int = 1) -> Array:
    """See refcnn.flatten (ONNX ``Flatten``, which defines it)."""
    return _run("Flatten", [x], axis=axis)


def dense(x: Array, w: Array, b: Array | None = None) -> Array:
    """See refcnn.dense (ONNX ``Gemm``: ``x @ w + b``)."""
    return _run("Gemm", [x, w] if b is None else [x, w, b])


def relu(x: Array) -> Array:
    """See refcnn.relu (ONNX ``Relu``)."""
    return _run("Relu", [x])


def sigmoid(x: Array) -> Array:
    """See refcnn.sigmoid (ONNX ``Sigmoid``)."""
    return _run("Sigmoid", [x])


def tanh(x: Array) -> Array:
    """See refcnn.tanh (ONNX ``Tanh``)."""
    return _run("Tanh", [x])


def softmax(z: Array, axis: int = -1) -> Array:
    """See refcnn.softmax (ONNX ``Softmax`` along ``axis``)."""
    return _run("Softmax", [z], axis=axis)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """See refcnn.log_softmax (ONNX ``LogSoftmax`` along ``axis``)."""
    return _run("LogSoftmax", [z], axis=axis)


# -- losses -----------------------------------------------------------------------------------


def softmax_cross_entropy(
    logits: Array,
    labels: Array,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    """See refcnn.softmax_cross_entropy (ONNX ``SoftmaxCrossEntropyLoss``, class axis 1)."""
    if labels.dtype.kind == "f" or label_smoothing:
        msg = (
            "onnxruntime softmax_cross_entropy: SoftmaxCrossEntropyLoss takes class indices "
            "only and has no label smoothing"
        )
        raise NotExpressible(msg)
    batched = logits.ndim >= 2
    scores = np.moveaxis(logits, axis, 1) if batched else logits[np.newaxis]
    index = labels.astype(np.int64) if batched else labels.astype(np.int64)[np.newaxis]
    attributes: dict[str, Any] = {"reduction": reduction}
    if ignore_index is not None:
        attributes["ignore_index"] = ignore_index
    inputs = [np.ascontiguousarray(scores), np.ascontiguousarray(index)]
    if weights is not None:
        inputs.append(weights)
    loss = _run("SoftmaxCrossEntropyLoss", inputs, **attributes)
    return loss if batched or reduction != "none" else loss[0]
