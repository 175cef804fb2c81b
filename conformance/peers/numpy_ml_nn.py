"""numpy-ml's neural-network layers as an ``--impl``: its forwards and its own backward passes.

numpy-ml (``numpy_ml.neural_nets``) is NHWC with HWIO filters, like refcnn, so no layout
changes are needed. Each function builds the numpy-ml layer with the case's parameters and
runs its ``forward`` (and, for a gradient, its ``backward``); the adapter only translates
arguments. Conventions of numpy-ml that differ from refcnn's are refused with
``NotImplementedError`` (counted by the suite as not expressible), never emulated.

Translation
-----------
- Strides are one int in numpy-ml: unequal ``(sh, sw)`` are not expressible; so are unequal
  dilations. numpy-ml's ``dilation`` counts the zeros inserted: refcnn's ``d`` is its
  ``d - 1``.
- Padding: numpy-ml's ``pad`` is an int, ``(top, bottom, left, right)``, or ``"same"``.
  ``"same"`` is numpy-ml's own rule ("output dimensions equal to the input"), which is
  TensorFlow's SAME at stride 1 only, so ``"SAME"`` at stride 1 is passed as ``"same"`` and
  every other mode as the explicit pads of :mod:`refcnn.padding` (which numpy-ml applies
  itself, in ``pad2D``).
- ``conv2d`` family: ``layers.Conv2D`` (identity activation), bias ``(1, 1, 1, O)``;
  ``b=None`` is a zero bias of the input dtype. Backward: ``Conv2D.backward``. numpy-ml
  refuses an empty output on purpose (its ``im2col`` checks ``out_rows > 0``): refused
  here too. Its crashes (an empty batch in the backward pass) are left to the suite.
- ``max_pool2d`` / ``avg_pool2d``: ``layers.Pool2D(mode="max" | "average")``. numpy-ml pads
  pooling with zeros (its documented ``pad``: "the number of rows/columns of 0's"), so a
  padded max pool, and an average without padding counted (``count_include_pad=False``), are
  not expressible; its average is over the full window. Backward: ``Pool2D.backward``.
- ``flatten``: ``layers.Flatten`` with ``keep_dim`` ``"first"`` (axis 1), ``"last"``
  (axis ``ndim - 1``) or ``-1`` (axis 0); other axes are not expressible.
- ``dense``: ``layers.FullyConnected`` (``W`` is ``(I, O)``, bias ``(1, O)``).
- ``relu`` / ``sigmoid`` / ``tanh``: ``activations.ReLU`` / ``Sigmoid`` / ``Tanh``; forward
  is their ``fn`` (their ``__call__`` reshapes a 1-D input to ``(1, n)``), backward
  ``dy * grad(x)``, the product numpy-ml's layers form.
- ``softmax``: ``layers.Softmax(dim=axis)``, which takes ``(n_ex, n_in)``-like inputs of two
  or more axes. There is no ``softmax_backward``: the layer differentiates at its cached
  input ``z``, and the API gives ``p = softmax(z)``.
- ``softmax_cross_entropy_backward``: ``losses.CrossEntropy.grad(y, softmax(z))``, numpy-ml's
  gradient "through both the cross-entropy loss AND the softmax", for one-hot labels summed
  over a 2-D ``(N, K)`` batch (``reduction="sum"``, no weights, no ignored index, no
  smoothing). The losses themselves (``cross_entropy``, ``softmax_cross_entropy``) are
  absent: numpy-ml's ``CrossEntropy.loss`` always adds ``np.finfo(float).eps`` inside the
  log, a different result from refcnn's (which clips with ``eps`` only when asked).

numpy-ml 0.1.2 does not import on Python >= 3.10 (``from collections import Hashable``,
removed from ``collections`` in 3.10): the adapter restores that alias, to
``collections.abc.Hashable``, before importing it.
"""

from __future__ import annotations

import collections
import collections.abc
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from conformance.frameworks._common import Array, conv_geometry, pair, pool_geometry

if not hasattr(collections, "Hashable"):  # numpy-ml 0.1.2 predates Python 3.10
    collections.Hashable = collections.abc.Hashable  # type: ignore[attr-defined]

with warnings.catch_warnings():
    # numpy_ml/__init__ imports its reinforcement-learning agents, which warn that gym is
    # missing; nothing here uses them.
    warnings.filterwarnings("ignore", message="Agents in `numpy_ml.rl_models`")
    from numpy_ml.neural_nets import activations, layers, losses

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_bias",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "dense",
    "dense_backward",
    "flatten",
    "flatten_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_cross_entropy_backward",
    "tanh",
    "tanh_backward",
]


def _one_int(op: str, name: str, value: Any) -> int:
    """numpy-ml takes one int for both axes: an unequal pair is not expressible."""
    first, second = pair(value)
    if first != second:
        msg = f"{op}: numpy-ml takes one int {name} for both axes, got {value!r}"
        raise NotImplementedError(msg)
    return first


def _pad(mode: Any, pads: tuple[tuple[int, int], ...], stride: int) -> Any:
    """numpy-ml's ``pad``: its own ``"same"`` where it is TensorFlow's SAME, else the pads."""
    if mode == "SAME" and stride == 1:
        return "same"
    (top, bottom), (left, right) = pads
    return (top, bottom, left, right)


# -- convolution --------------------------------------------------------------------------------


def _conv_layer(
    op: str,
    x_shape: Sequence[int],
    w: Array,
    b: Array | None,
    strides: Any,
    padding: Any,
    dilations: Any,
) -> Any:
    stride = _one_int(op, "stride", strides)
    dilation = _one_int(op, "dilation", dilations)
    mode, geometry = conv_geometry(op, x_shape, w.shape, strides, padding, dilations)
    if 0 in geometry.out_hw:
        msg = (
            f"{op}: the output is empty (out_h, out_w) = {geometry.out_hw}, which numpy-ml's "
            "im2col refuses by design ('Dimension mismatch during convolution')"
        )
        raise NotImplementedError(msg)
    kh, kw, _, o = w.shape
    layer = layers.Conv2D(
        int(o),
        (int(kh), int(kw)),
        pad=_pad(mode, geometry.pads, stride),
        stride=stride,
        dilation=dilation - 1,
    )
    # Parameters set directly: forward would otherwise draw random ones on first use.
    bias = np.zeros(int(o), dtype=w.dtype) if b is None else b
    layer.in_ch = int(w.shape[2])
    layer.parameters = {"W": w, "b": bias.reshape(1, 1, 1, -1)}
    layer.gradients = {"W": np.zeros_like(w), "b": np.zeros((1, 1, 1, int(o)), dtype=w.dtype)}
    layer.derived_variables = {"Z": [], "out_rows": [], "out_cols": []}
    layer.is_initialized = True
    return layer


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d (numpy-ml ``Conv2D.forward``)."""
    layer = _conv_layer("conv2d", x.shape, w, b, strides, padding, dilations)
    return layer.forward(x, retain_derived=False)


def conv2d_backward(
    dy: Array,
    x: Array,
    w: Array,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> tuple[Any, Any, Any]:
    """See refcnn.conv2d_backward (numpy-ml ``Conv2D.backward``; ``db`` from ``(1, 1, 1, O)``)."""
    layer = _conv_layer("conv2d_backward", x.shape, w, None, strides, padding, dilations)
    layer.forward(x)
    dx = layer.backward(dy)
    return dx, layer.gradients["W"], layer.gradients["b"].reshape(-1)


def conv2d_backward_input(
    dy: Array,
    w: Array,
    input_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d_backward_input (``Conv2D.backward`` at ``x = 0``: dx is linear in dy)."""
    x = np.zeros(tuple(input_shape), dtype=dy.dtype)
    return conv2d_backward(dy, x, w, strides=strides, padding=padding, dilations=dilations)[0]


def conv2d_backward_filter(
    dy: Array,
    x: Array,
    filter_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d_backward_filter (``Conv2D.backward`` at ``w = 0``)."""
    w = np.zeros(tuple(filter_shape), dtype=dy.dtype)
    return conv2d_backward(dy, x, w, strides=strides, padding=padding, dilations=dilations)[1]


def conv2d_backward_bias(dy: Array) -> Any:
    """See refcnn.conv2d_backward_bias (``Conv2D.backward`` of a 1x1 conv of zeros)."""
    x = np.zeros((*dy.shape[:3], 1), dtype=dy.dtype)
    w = np.zeros((1, 1, 1, dy.shape[3]), dtype=dy.dtype)
    return conv2d_backward(dy, x, w)[2]


# -- pooling ------------------------------------------------------------------------------------


def _pool_layer(
    op: str,
    x_shape: Sequence[int],
    ksize: Any,
    strides: Any,
    padding: Any,
    mode: str,
    count_include_pad: bool = True,
) -> Any:
    kernel = pair(ksize)
    stride = _one_int(op, "stride", kernel if strides is None else strides)
    padding_mode, geometry = pool_geometry(op, x_shape, ksize, strides, padding)
    padded = geometry.pads != ((0, 0), (0, 0))
    if padded and mode == "max":
        msg = (
            f"{op}: numpy-ml pads max pooling with zeros (Pool2D's documented pad: 'the "
            "number of rows/columns of 0's'), where refcnn pads with -inf"
        )
        raise NotImplementedError(msg)
    if padded and not count_include_pad:
        msg = (
            f"{op}: numpy-ml's average pooling divides by the whole window, pads included "
            "(count_include_pad=True only)"
        )
        raise NotImplementedError(msg)
    return layers.Pool2D(
        kernel, stride=stride, pad=_pad(padding_mode, geometry.pads, stride), mode=mode
    )


def max_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Any:
    """See refcnn.max_pool2d (numpy-ml ``Pool2D(mode="max").forward``)."""
    return _pool_layer("max_pool2d", x.shape, ksize, strides, padding, "max").forward(x)


def max_pool2d_backward(
    dy: Array,
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Any:
    """See refcnn.max_pool2d_backward (numpy-ml ``Pool2D(mode="max").backward``)."""
    layer = _pool_layer("max_pool2d_backward", x.shape, ksize, strides, padding, "max")
    layer.forward(x)
    return layer.backward(dy)


def avg_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Any:
    """See refcnn.avg_pool2d (numpy-ml ``Pool2D(mode="average").forward``)."""
    layer = _pool_layer(
        "avg_pool2d", x.shape, ksize, strides, padding, "average", count_include_pad
    )
    return layer.forward(x)


def avg_pool2d_backward(
    dy: Array,
    input_shape: Sequence[int],
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Any:
    """See refcnn.avg_pool2d_backward (``Pool2D(mode="average").backward`` at ``x = 0``)."""
    op = "avg_pool2d_backward"
    layer = _pool_layer(op, input_shape, ksize, strides, padding, "average", count_include_pad)
    layer.forward(np.zeros(tuple(input_shape), dtype=dy.dtype))
    return layer.backward(dy)


# -- flatten and dense --------------------------------------------------------------------------


def _flatten_layer(op: str, ndim: int, axis: int) -> Any:
    split = axis + ndim if axis < 0 else axis
    keep = {1: "first", ndim - 1: "last", 0: -1}
    if ndim < 1 or split not in keep:
        msg = (
            f"{op}: numpy-ml's Flatten keeps the first axis, the last, or none (axis 1, "
            f"{ndim - 1} or 0 of a {ndim}-D input), got axis {axis}"
        )
        raise NotImplementedError(msg)
    return layers.Flatten(keep_dim=keep[split])


def flatten(x: Array, axis: int = 1) -> Any:
    """See refcnn.flatten (numpy-ml ``Flatten.forward``)."""
    return _flatten_layer("flatten", x.ndim, axis).forward(x)


def flatten_backward(dy: Array, input_shape: Sequence[int], axis: int = 1) -> Any:
    """See refcnn.flatten_backward (numpy-ml ``Flatten.backward`` after a forward of zeros)."""
    layer = _flatten_layer("flatten_backward", len(input_shape), axis)
    layer.forward(np.zeros(tuple(input_shape), dtype=dy.dtype))
    return layer.backward(dy)


def _dense_layer(x: Array, w: Array, b: Array | None) -> Any:
    layer = layers.FullyConnected(int(w.shape[1]))
    bias = np.zeros(int(w.shape[1]), dtype=w.dtype) if b is None else b
    layer.n_in = int(w.shape[0])
    layer.parameters = {"W": w, "b": bias.reshape(1, -1)}
    layer.gradients = {"W": np.zeros_like(w), "b": np.zeros((1, int(w.shape[1])), dtype=w.dtype)}
    layer.derived_variables = {"Z": []}
    layer.is_initialized = True
    return layer


def dense(x: Array, w: Array, b: Array | None = None) -> Any:
    """See refcnn.dense (numpy-ml ``FullyConnected.forward``)."""
    return _dense_layer(x, w, b).forward(x, retain_derived=False)


def dense_backward(dy: Array, x: Array, w: Array) -> tuple[Any, Any, Any]:
    """See refcnn.dense_backward (numpy-ml ``FullyConnected.backward``; ``db`` from ``(1, O)``)."""
    layer = _dense_layer(x, w, None)
    layer.forward(x)
    dx = layer.backward(dy)
    return dx, layer.gradients["W"], layer.gradients["b"].reshape(-1)


# -- activations and softmax ----------------------------------------------------------------------


def relu(x: Array) -> Any:
    """See refcnn.relu (numpy-ml ``ReLU.fn``)."""
    return activations.ReLU().fn(x)


def relu_backward(dy: Array, x: Array) -> Any:
    """See refcnn.relu_backward (``dy * ReLU.grad(x)``)."""
    return dy * activations.ReLU().grad(x)


def sigmoid(x: Array) -> Any:
    """See refcnn.sigmoid (numpy-ml ``Sigmoid.fn``)."""
    return activations.Sigmoid().fn(x)


def sigmoid_backward(dy: Array, x: Array) -> Any:
    """See refcnn.sigmoid_backward (``dy * Sigmoid.grad(x)``)."""
    return dy * activations.Sigmoid().grad(x)


def tanh(x: Array) -> Any:
    """See refcnn.tanh (numpy-ml ``Tanh.fn``)."""
    return activations.Tanh().fn(x)


def tanh_backward(dy: Array, x: Array) -> Any:
    """See refcnn.tanh_backward (``dy * Tanh.grad(x)``)."""
    return dy * activations.Tanh().grad(x)


def _softmax_layer(op: str, z: Array, axis: int) -> Any:
    if z.ndim < 2:
        msg = f"{op}: numpy-ml's Softmax layer takes (n_ex, n_in) inputs, got {z.ndim}-D"
        raise NotImplementedError(msg)
    return layers.Softmax(dim=axis)


def softmax(z: Array, axis: int = -1) -> Any:
    """See refcnn.softmax (numpy-ml ``Softmax(dim=axis).forward``)."""
    return _softmax_layer("softmax", z, axis).forward(z, retain_derived=False)


def softmax_cross_entropy_backward(
    logits: Array,
    labels: Array,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Any:
    """See refcnn.softmax_cross_entropy_backward (numpy-ml ``CrossEntropy.grad``)."""
    op = "softmax_cross_entropy_backward"
    if logits.ndim != 2 or axis % 2 != 1:
        msg = f"{op}: numpy-ml's CrossEntropy takes (N, K) rows, got axis {axis} of {logits.shape}"
        raise NotImplementedError(msg)
    if reduction != "sum" or weights is not None or label_smoothing or ignore_index is not None:
        msg = (
            f"{op}: numpy-ml's CrossEntropy is the unweighted sum over samples, without "
            "ignored labels or smoothing"
        )
        raise NotImplementedError(msg)
    if labels.dtype.kind == "f":
        if not np.array_equal(labels, labels.astype(bool)):
            msg = f"{op}: numpy-ml's CrossEntropy takes one-hot labels only"
            raise NotImplementedError(msg)
        onehot = labels
    else:
        onehot = np.eye(logits.shape[1], dtype=logits.dtype)[labels]
    p = _softmax_layer(op, logits, axis).forward(logits, retain_derived=False)
    return losses.CrossEntropy.grad(onehot, p)
