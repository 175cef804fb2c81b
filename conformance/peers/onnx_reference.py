"""ONNX's reference evaluator as an ``--impl``: each function one ONNX node, run in NumPy.

``onnx.reference.ReferenceEvaluator`` is ONNX's executable specification, written in NumPy.
Each refcnn function becomes a one-node model (opset :data:`OPSET`) run by it; the adapter
only translates arguments. ONNX is NCHW with OIHW filters: the adapter transposes around the
node (exact). There are no backward functions: ONNX's operators are forward definitions,
so the suite reports every backward "not implemented".

Translation
-----------
- Padding: ``"VALID"``, ``"SAME"`` and ``"SAME_LOWER"`` become ONNX's own ``auto_pad``
  (``VALID``, ``SAME_UPPER``, ``SAME_LOWER``), so the evaluator's own padding rules are what
  the suite judges; explicit pads become ``pads = [top, left, bottom, right]``.
- ``conv2d``: ``Conv`` (``kernel_shape``, ``strides``, ``dilations``, the bias as its third
  input). ``max_pool2d`` / ``avg_pool2d``: ``MaxPool`` / ``AveragePool`` (``kernel_shape``,
  ``strides``, default the kernel; ``count_include_pad``). An empty MaxPool output at
  stride 1, which the evaluator refuses by design, is not expressible.
- ``flatten``: ``Flatten(axis)``, which defines refcnn's flatten. ``dense``: ``Gemm``.
- ``relu`` / ``sigmoid`` / ``tanh`` / ``softmax`` / ``log_softmax``: the ONNX operators of
  those names (``axis`` with opset >= 13 semantics: one axis).
- ``softmax_cross_entropy``: ``SoftmaxCrossEntropyLoss`` with the class axis moved to 1
  (``(K,)`` logits become a batch of one), integer labels, ``weights``, ``ignore_index``,
  ``reduction``. ONNX has no label smoothing and no probability labels: not expressible
  (``NotImplementedError``).
- ``cross_entropy``: not provided; ONNX's ``NegativeLogLikelihoodLoss`` takes class indices,
  refcnn's cross-entropy takes probability labels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import helper
from onnx.reference import ReferenceEvaluator

from conformance.frameworks._common import Array, pair
from refcnn.padding import AxisPads, normalize_padding

__all__ = [
    "OPSET",
    "avg_pool2d",
    "conv2d",
    "dense",
    "flatten",
    "log_softmax",
    "max_pool2d",
    "relu",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "tanh",
]

#: The ONNX opset the one-node models declare.
OPSET = 21

_AUTO_PAD = {"VALID": "VALID", "SAME": "SAME_UPPER", "SAME_LOWER": "SAME_LOWER"}


def _frozen(attributes: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in attributes.items()))


@functools.lru_cache(maxsize=256)
def _evaluator(
    op: str, attributes: tuple[tuple[str, Any], ...], input_types: tuple[tuple[str, int], ...]
) -> ReferenceEvaluator:
    # Inputs of known dtype and rank, every dimension symbolic: one evaluator per op,
    # attributes and dtypes serves every shape.
    inputs = [
        helper.make_tensor_value_info(
            f"in{i}",
            helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
            [f"in{i}_{axis}" for axis in range(rank)],
        )
        for i, (dtype, rank) in enumerate(input_types)
    ]
    output_type = helper.np_dtype_to_tensor_dtype(np.dtype(input_types[0][0]))
    output = helper.make_tensor_value_info("out", output_type, None)
    attrs: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in attributes}
    node = helper.make_node(op, [f"in{i}" for i in range(len(input_types))], ["out"], **attrs)
    graph = helper.make_graph([node], op, inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return ReferenceEvaluator(model)


def _run(op: str, inputs: Sequence[Array], **attributes: Any) -> Any:
    """Run one ONNX node on ``inputs`` with the reference evaluator; return its one output."""
    types = tuple((str(a.dtype), a.ndim) for a in inputs)
    evaluator = _evaluator(op, _frozen(attributes), types)
    # The evaluator reads its feeds; a contiguous copy keeps the caller's arrays apart.
    feeds = {f"in{i}": np.array(a, copy=True, order="C") for i, a in enumerate(inputs)}
    (out,) = evaluator.run(None, feeds)
    return out


def _padding(
    op: str,
    padding: Any,
    input_hw: Sequence[int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int] = (1, 1),
) -> dict[str, Any]:
    """``auto_pad`` for the named modes, ``pads`` for explicit ones; refuse ONNX-invalid sizes.

    Where the input (plus pads) is shorter than the dilated window, refcnn and TensorFlow
    give an empty output; ONNX's size ``floor((n + pads - e) / s) + 1`` is then 0 (a valid
    empty tensor, passed on) or negative: no ONNX model has that shape, not expressible.
    """
    mode = normalize_padding(op, padding)
    if mode in ("SAME", "SAME_LOWER"):
        return {"auto_pad": _AUTO_PAD[str(mode)]}
    axis_pads: AxisPads = ((0, 0), (0, 0)) if isinstance(mode, str) else mode
    size_zero = False
    for n, k, s, d, (before, after) in zip(
        input_hw, kernel, strides, dilations, axis_pads, strict=True
    ):
        size = (int(n) + before + after - ((k - 1) * d + 1)) // s + 1
        if size < 0:
            msg = (
                f"{op}: ONNX's output size floor((n + pads - e) / s) + 1 = {size} for n={n}, "
                f"pads={(before, after)}, window {k} dilated {d}, stride {s}: no ONNX model "
                "has a negative dimension (refcnn and TensorFlow give an empty output)"
            )
            raise NotImplementedError(msg)
        size_zero = size_zero or size == 0
    if op.startswith("max_pool2d") and strides == (1, 1) and size_zero:
        msg = (
            f"{op}: the output is empty; the evaluator's MaxPool at stride 1 refuses that by "
            "design ('output shape cannot be null or negative')"
        )
        raise NotImplementedError(msg)
    if mode == "VALID":
        return {"auto_pad": "VALID"}
    (top, bottom), (left, right) = axis_pads
    return {"pads": [top, left, bottom, right]}


def _nchw(x: Array) -> Array:
    return np.transpose(x, (0, 3, 1, 2))


def _nhwc(y: Any) -> Any:
    return np.transpose(y, (0, 2, 3, 1)) if isinstance(y, np.ndarray) and y.ndim == 4 else y


# -- conv and pooling ---------------------------------------------------------------------------


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d (ONNX ``Conv``; HWIO -> OIHW)."""
    inputs = [_nchw(x), np.transpose(w, (3, 2, 0, 1))]
    if b is not None:
        inputs.append(b)
    kernel = (int(w.shape[0]), int(w.shape[1]))
    attributes = {
        "kernel_shape": list(kernel),
        "strides": list(pair(strides)),
        "dilations": list(pair(dilations)),
        **_padding("conv2d", padding, x.shape[1:3], kernel, pair(strides), pair(dilations)),
    }
    return _nhwc(_run("Conv", inputs, **attributes))


def _pool_attributes(op: str, x: Array, ksize: Any, strides: Any, padding: Any) -> dict[str, Any]:
    kernel = pair(ksize)
    steps = pair(kernel if strides is None else strides)
    return {
        "kernel_shape": list(kernel),
        "strides": list(steps),
        **_padding(op, padding, x.shape[1:3], kernel, steps),
    }


def max_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Any:
    """See refcnn.max_pool2d (ONNX ``MaxPool``)."""
    attributes = _pool_attributes("max_pool2d", x, ksize, strides, padding)
    return _nhwc(_run("MaxPool", [_nchw(x)], **attributes))


def avg_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Any:
    """See refcnn.avg_pool2d (ONNX ``AveragePool`` with ``count_include_pad``)."""
    attributes = _pool_attributes("avg_pool2d", x, ksize, strides, padding)
    attributes["count_include_pad"] = int(count_include_pad)
    return _nhwc(_run("AveragePool", [_nchw(x)], **attributes))


# -- flatten, dense, activations, softmax ---------------------------------------------------------


def flatten(x: Array, axis: int = 1) -> Any:
    """See refcnn.flatten (ONNX ``Flatten``, which defines it)."""
    return _run("Flatten", [x], axis=axis)


def dense(x: Array, w: Array, b: Array | None = None) -> Any:
    """See refcnn.dense (ONNX ``Gemm``: ``x @ w + b``)."""
    return _run("Gemm", [x, w] if b is None else [x, w, b])


def relu(x: Array) -> Any:
    """See refcnn.relu (ONNX ``Relu``)."""
    return _run("Relu", [x])


def sigmoid(x: Array) -> Any:
    """See refcnn.sigmoid (ONNX ``Sigmoid``)."""
    return _run("Sigmoid", [x])


def tanh(x: Array) -> Any:
    """See refcnn.tanh (ONNX ``Tanh``)."""
    return _run("Tanh", [x])


def softmax(z: Array, axis: int = -1) -> Any:
    """See refcnn.softmax (ONNX ``Softmax`` along ``axis``)."""
    return _run("Softmax", [z], axis=axis)


def log_softmax(z: Array, axis: int = -1) -> Any:
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
) -> Any:
    """See refcnn.softmax_cross_entropy (ONNX ``SoftmaxCrossEntropyLoss``, class axis 1)."""
    if labels.dtype.kind == "f" or label_smoothing:
        msg = (
            "softmax_cross_entropy: ONNX's SoftmaxCrossEntropyLoss takes class indices only "
            "and has no label smoothing"
        )
        raise NotImplementedError(msg)
    batched = logits.ndim >= 2
    scores = np.moveaxis(logits, axis, 1) if batched else logits[np.newaxis]
    index = (labels if batched else labels[np.newaxis]).astype(np.int64)
    attributes: dict[str, Any] = {"reduction": reduction}
    if ignore_index is not None:
        attributes["ignore_index"] = ignore_index
    inputs = [scores, index] if weights is None else [scores, index, weights]
    loss = _run("SoftmaxCrossEntropyLoss", inputs, **attributes)
    return loss if batched or reduction != "none" else loss[0]
