"""TensorFlow adapter: refcnn's API computed with TensorFlow on the CPU, NumPy in and out.

Same names, signatures and conventions as :mod:`refcnn` (NHWC data, HWIO filters,
cross-correlation, TensorFlow argument names), which are TensorFlow's own; the output dtype is
the input dtype (float16, float32 and float64 all run on the CPU). Only the framework-specific
translation is documented here; see the refcnn function of the same name for the semantics.

Translation
-----------
- Padding: ``"VALID"``/``"SAME"`` are passed through (TensorFlow's SAME rule is refcnn's);
  ``"SAME_LOWER"`` and explicit pads, resolved by :mod:`refcnn.padding`, become
  ``tf.nn.conv2d``'s explicit ``[[0, 0], [t, b], [l, r], [0, 0]]``. Pooling with those pads
  applies ``tf.pad`` (``-inf`` for max, zeros for average) then a VALID pool (TF's native
  explicit MaxPool rejects a pad >= the window and AvgPool has none).
- ``avg_pool2d``: TF's own SAME already excludes pads from the divisor
  (``count_include_pad=False``); every other padded case is a VALID ``tf.nn.avg_pool2d`` of
  the zero-padded input (divisor ``kh * kw``, i.e. ``count_include_pad=True``), rescaled for
  ``count_include_pad=False`` by ``kh * kw / count`` with ``count`` the number of real elements
  per window (a constant; NaN for a window lying wholly in explicit padding).
- Gradients: ``tf.GradientTape`` over TF's forward op with the caller's upstream gradient;
  inputs whose values do not matter (linear ops) are zeros. Bias gradients come from
  ``tf.nn.bias_add`` (``BiasAddGrad``). ``softmax_backward``/``softmax_jacobian`` evaluate,
  with TF ops on the given p, the expression TF registers as Softmax's gradient
  (``(g - sum(g * p, axis)) * p``, computed from the softmax output): TF has no kernel for it,
  and going through ``z = log p`` would perturb p by ``eps |log p|`` before TF runs at all.
- Dilated conv gradients: the CPU ``Conv2DBackpropInput``/``Filter`` kernels reject
  dilations > 1, so the gradient functions differentiate ``tf.nn.convolution`` (TF's
  space-to-batch dilated conv), which accepts only stride 1 with dilations > 1: the input is
  padded explicitly (``tf.pad``), convolved at stride 1 with VALID padding, and the output
  subsampled by the strides (``y[:, ::sh, ::sw]``), the same sums as the strided conv. The
  forward ``conv2d`` uses ``tf.nn.conv2d``'s native dilation (strides > 1 allowed).
- ``softmax_cross_entropy``: composed from ``tf.nn.log_softmax``, ``tf.gather`` and reductions,
  reproducing ``torch.nn.functional.cross_entropy`` term by term (class weights, ignore_index,
  label smoothing ``(1 - s) * nll + s / K * smooth`` with the weighted mean's denominator
  ``sum(w[y])`` for both terms; probability labels ``t * (1 - s) + s / K`` and a mean over
  ``numel / K`` samples).
- Determinism: ``enable_op_determinism`` and one inter/intra-op thread, set at import (the
  thread counts only if TensorFlow's runtime was not started before this import).
  ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2; oneDNN stays at TensorFlow's default (on).

Findings (TensorFlow 2.21, CPU; float32/float16 convs and max pools run oneDNN, float64 Eigen)
---------------------------------------------------------------------------------------------
- Max-pool gradient ties (``MaxPoolGrad``): exactly one element per window, the first maximum
  in row-major window order, as in refcnn (``MAX_POOL_TIE_RULE = "first"``; checked on
  all-ones and random small-integer inputs, float16/32/64, overlapping windows).
- NaN in max pool: the forward ignores NaN (a window's output is the max of its other
  elements) but the gradient goes to the window's *first* element when that is NaN (else NaN
  is skipped). An all ``-inf`` window outputs the lowest finite value, not ``-inf``.
- ``xlogy`` backward w.r.t. ``p`` is ``xdivy(y, p)``: 0 at ``y == p == 0`` (torch: NaN).
- Crashes and garbage with empty outputs (probed in subprocesses), all raised as
  :class:`~conformance.frameworks.NotExpressible` before any TF kernel runs:

  * conv with an empty output ``(N, out_h, out_w, O)``: the float64 input and filter gradients
    *segfault* when the empty spatial axis has stride > 1 (e.g. x (2, 5, 2, 1), w (4, 3, 1, 1),
    VALID, stride 2) and the filter gradient is uninitialized memory otherwise; oneDNN
    (float32/float16) returns an uninitialized tensor of the *input's* shape for the forward
    (also for N == 0), aborts in the gradients and rejects O == 0. ``C == 0`` is rejected.
  * pooling with an empty ``out_h``/``out_w``: oneDNN MaxPool (float32/float16) dies of SIGFPE
    or aborts, float64 MaxPoolGrad returns uninitialized memory, and TF rejects VALID windows
    overhanging the input by more than the stride; ``C == 0``: AvgPoolGrad (float32) fails.
    Batch ``N == 0`` pools fine and is run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

# Before the import: TF's C++ start-up logging would otherwise flood every test run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from conformance.frameworks import NotExpressible
from conformance.frameworks._common import (
    Array,
    conv_geometry,
    flatten_shape,
    pair,
    pool_geometry,
    sample_count,
    to_numpy,
    window_counts,
)
from refcnn.padding import ExplicitPads, Geometry

__all__ = [
    "MAX_POOL_TIE_RULE",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_bias",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "cross_entropy",
    "cross_entropy_backward",
    "dense",
    "dense_backward",
    "flatten",
    "flatten_backward",
    "log_softmax",
    "max_pool2d",
    "max_pool2d_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "softmax_jacobian",
    "tanh",
    "tanh_backward",
]

#: Which element of a max-pool window receives the gradient when several equal the maximum.
MAX_POOL_TIE_RULE = "first"

# Reproducible results for a comparison against a float64 oracle: deterministic kernels and
# fixed thread counts (reductions must not depend on how work is split between threads).
with contextlib.suppress(RuntimeError):  # raised once TF's runtime has started: keep its pools
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.experimental.enable_op_determinism()


# -- tensors in and out -------------------------------------------------------------------------


def _const(a: Array) -> Any:
    # An explicit dtype: some tf.nn ops convert a bare float16 ndarray to float32.
    array = np.asarray(a)
    return tf.constant(array, dtype=tf.as_dtype(array.dtype))


def _zeros(shape: Sequence[int], dtype: np.dtype[Any]) -> Any:
    return tf.zeros(tuple(int(n) for n in shape), dtype=tf.as_dtype(dtype))


def _out(t: Any, dtype: np.dtype[Any]) -> Array:
    return to_numpy(t.numpy(), dtype)


def _grads(function: Any, sources: Sequence[Any], dy: Any | None = None) -> list[Any]:
    """Gradients of ``function()`` w.r.t. ``sources`` for upstream ``dy`` (ones when None)."""
    with tf.GradientTape() as tape:
        for source in sources:
            tape.watch(source)
        y = function()
    upstream = tf.ones_like(y) if dy is None else dy
    grads = tape.gradient(y, list(sources), output_gradients=upstream)
    # tf.gather's gradient may arrive as IndexedSlices; the adapters return dense arrays.
    return [tf.convert_to_tensor(g) for g in grads]


def _explicit(pads: ExplicitPads) -> list[list[int]]:
    (top, bottom), (left, right) = pads
    return [[0, 0], [top, bottom], [left, right], [0, 0]]


# -- conv -------------------------------------------------------------------------------------


def _conv_setup(
    op: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: Any,
    dilations: int | Sequence[int],
) -> tuple[str | list[list[int]], Geometry]:
    """TF's padding argument and the geometry; NotExpressible for the cases TF mishandles."""
    mode, geometry = conv_geometry(op, x_shape, w_shape, strides, padding, dilations)
    if int(w_shape[2]) == 0:
        msg = (
            f"tensorflow {op}: C = 0 input channels: TF's Conv2D rejects them "
            "('filter depth must be strictly positive')"
        )
        raise NotExpressible(msg)
    out = (int(x_shape[0]), geometry.out_h, geometry.out_w, int(w_shape[3]))
    if 0 in out:
        msg = (
            f"tensorflow {op}: the conv output (N, out_h, out_w, O) = {out} is empty and TF "
            "2.21's CPU conv kernels mishandle empty outputs: the float64 gradients segfault "
            "or return an uninitialized filter gradient, oneDNN (float32/float16) returns an "
            "uninitialized tensor of the input's shape or rejects O = 0 (not run)"
        )
        raise NotExpressible(msg)
    if isinstance(mode, str) and mode != "SAME_LOWER":
        return mode, geometry  # VALID and SAME: TF's own rules are refcnn's
    return _explicit(geometry.pads), geometry


def _conv(
    x: Any,
    w: Any,
    padding: str | list[list[int]],
    pads: ExplicitPads,
    strides: int | Sequence[int],
    dilations: int | Sequence[int],
) -> Any:
    """Build the differentiable conv: native conv2d, or tf.nn.convolution when dilated."""
    if pair(dilations) == (1, 1):
        return tf.nn.conv2d(x, w, strides=list(pair(strides)), padding=padding)
    stride_1 = tf.nn.convolution(
        tf.pad(x, _explicit(pads)), w, strides=1, padding="VALID", dilations=list(pair(dilations))
    )
    sh, sw = pair(strides)
    return stride_1[:, ::sh, ::sw, :]


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Array:
    """See refcnn.conv2d (``tf.nn.conv2d`` then ``tf.nn.bias_add``)."""
    tf_padding, _ = _conv_setup("conv2d", x.shape, w.shape, strides, padding, dilations)
    y = tf.nn.conv2d(
        _const(x),
        _const(w),
        strides=list(pair(strides)),
        padding=tf_padding,
        dilations=list(pair(dilations)),
    )
    if b is not None:
        y = tf.nn.bias_add(y, _const(b))
    return _out(y, x.dtype)


def conv2d_backward_input(
    dy: Array,
    w: Array,
    input_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Array:
    """See refcnn.conv2d_backward_input (GradientTape of the conv at a zero input)."""
    op = "conv2d_backward_input"
    tf_padding, geometry = _conv_setup(op, input_shape, w.shape, strides, padding, dilations)
    x, wt = _zeros(input_shape, dy.dtype), _const(w)
    (dx,) = _grads(
        lambda: _conv(x, wt, tf_padding, geometry.pads, strides, dilations), [x], _const(dy)
    )
    return _out(dx, dy.dtype)


def conv2d_backward_filter(
    dy: Array,
    x: Array,
    filter_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Array:
    """See refcnn.conv2d_backward_filter (GradientTape of the conv at a zero filter)."""
    op = "conv2d_backward_filter"
    tf_padding, geometry = _conv_setup(op, x.shape, filter_shape, strides, padding, dilations)
    xt, w = _const(x), _zeros(filter_shape, dy.dtype)
    (dw,) = _grads(
        lambda: _conv(xt, w, tf_padding, geometry.pads, strides, dilations), [w], _const(dy)
    )
    return _out(dw, dy.dtype)


def conv2d_backward_bias(dy: Array) -> Array:
    """See refcnn.conv2d_backward_bias (``BiasAddGrad`` via ``tf.nn.bias_add``)."""
    b = _zeros((dy.shape[3],), dy.dtype)
    zeros = _zeros(dy.shape, dy.dtype)
    (db,) = _grads(lambda: tf.nn.bias_add(zeros, b), [b], _const(dy))
    return _out(db, dy.dtype)


def conv2d_backward(
    dy: Array,
    x: Array,
    w: Array,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> tuple[Array, Array, Array]:
    """See refcnn.conv2d_backward (one tape over the conv and ``tf.nn.bias_add``)."""
    tf_padding, geometry = _conv_setup(
        "conv2d_backward", x.shape, w.shape, strides, padding, dilations
    )
    xt, wt, b = _const(x), _const(w), _zeros((w.shape[3],), dy.dtype)
    dx, dw, db = _grads(
        lambda: tf.nn.bias_add(_conv(xt, wt, tf_padding, geometry.pads, strides, dilations), b),
        [xt, wt, b],
        _const(dy),
    )
    return _out(dx, dy.dtype), _out(dw, dy.dtype), _out(db, dy.dtype)


# -- pooling ----------------------------------------------------------------------------------


class _Pool:
    """A resolved pooling call: kernel, strides, normalized padding and geometry."""

    def __init__(
        self,
        op: str,
        x_shape: Sequence[int],
        ksize: int | Sequence[int],
        strides: int | Sequence[int] | None,
        padding: Any,
    ) -> None:
        self.mode, self.geometry = pool_geometry(op, x_shape, ksize, strides, padding)
        self.kernel = pair(ksize)
        self.strides = pair(ksize if strides is None else strides)
        self.input_hw = (int(x_shape[1]), int(x_shape[2]))
        out = (self.geometry.out_h, self.geometry.out_w, int(x_shape[3]))
        if 0 in out:
            msg = (
                f"tensorflow {op}: (out_h, out_w, C) = {out} has an empty dim and TF 2.21's "
                "CPU pooling mishandles it: oneDNN MaxPool (float32/float16) dies of SIGFPE "
                "or aborts, float64 MaxPoolGrad returns uninitialized memory, VALID windows "
                "overhanging the input by more than the stride are rejected, AvgPoolGrad "
                "(float32) fails for C = 0 (not run)"
            )
            raise NotExpressible(msg)

    @property
    def native(self) -> str | None:
        """TF's own padding string when it states the pads, else None."""
        if isinstance(self.mode, str) and self.mode != "SAME_LOWER":
            return self.mode
        return None

    def padded(self, x: Any, value: float) -> Any:
        """``x`` padded with ``value`` by the resolved pads."""
        return tf.pad(x, _explicit(self.geometry.pads), constant_values=value)

    def max(self, x: Any) -> Any:
        """TF's max pool of ``x`` (native SAME/VALID, else ``-inf`` pads then VALID)."""
        if self.native is not None:
            return tf.nn.max_pool2d(x, self.kernel, self.strides, self.native)
        return tf.nn.max_pool2d(self.padded(x, -np.inf), self.kernel, self.strides, "VALID")

    def avg(self, x: Any, *, count_include_pad: bool) -> Any:
        """TF's average pool of ``x`` with refcnn's ``count_include_pad`` (module doc)."""
        if self.native == "VALID" or (self.native == "SAME" and not count_include_pad):
            return tf.nn.avg_pool2d(x, self.kernel, self.strides, self.native)
        y = tf.nn.avg_pool2d(self.padded(x, 0.0), self.kernel, self.strides, "VALID")
        if count_include_pad:
            return y
        counts = window_counts(self.input_hw, self.geometry, self.kernel, self.strides)
        with np.errstate(divide="ignore"):  # count 0: a window wholly in padding -> 0 * inf
            scale = (self.kernel[0] * self.kernel[1]) / counts.astype(np.float64)
        return y * tf.constant(scale[:, :, np.newaxis], dtype=y.dtype)


def max_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Array:
    """See refcnn.max_pool2d (``tf.nn.max_pool2d``)."""
    pool = _Pool("max_pool2d", x.shape, ksize, strides, padding)
    return _out(pool.max(_const(x)), x.dtype)


def max_pool2d_backward(
    dy: Array,
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Array:
    """See refcnn.max_pool2d_backward (``MaxPoolGrad`` at ``x``; ties: ``MAX_POOL_TIE_RULE``)."""
    pool = _Pool("max_pool2d_backward", x.shape, ksize, strides, padding)
    xt = _const(x)
    (dx,) = _grads(lambda: pool.max(xt), [xt], _const(dy))
    return _out(dx, dy.dtype)


def avg_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """See refcnn.avg_pool2d (``tf.nn.avg_pool2d``, padded cases emulated; module doc)."""
    pool = _Pool("avg_pool2d", x.shape, ksize, strides, padding)
    return _out(pool.avg(_const(x), count_include_pad=count_include_pad), x.dtype)


def avg_pool2d_backward(
    dy: Array,
    input_shape: Sequence[int],
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """See refcnn.avg_pool2d_backward (GradientTape of the pool at a zero input)."""
    pool = _Pool("avg_pool2d_backward", input_shape, ksize, strides, padding)
    x = _zeros(input_shape, dy.dtype)
    (dx,) = _grads(lambda: pool.avg(x, count_include_pad=count_include_pad), [x], _const(dy))
    return _out(dx, dy.dtype)


# -- flatten and dense ------------------------------------------------------------------------


def flatten(x: Array, axis: int = 1) -> Array:
    """See refcnn.flatten (``tf.reshape`` to ONNX Flatten's 2-D shape)."""
    return _out(tf.reshape(_const(x), flatten_shape(x.shape, axis)), x.dtype)


def flatten_backward(dy: Array, input_shape: Sequence[int], axis: int = 1) -> Array:
    """See refcnn.flatten_backward (GradientTape of the reshape)."""
    x = _zeros(input_shape, dy.dtype)
    shape = flatten_shape(tuple(input_shape), axis)
    (dx,) = _grads(lambda: tf.reshape(x, shape), [x], _const(dy))
    return _out(dx, dy.dtype)


def dense(x: Array, w: Array, b: Array | None = None) -> Array:
    """See refcnn.dense (``tf.linalg.matmul`` then ``tf.nn.bias_add``, as Keras Dense)."""
    y = tf.linalg.matmul(_const(x), _const(w))
    if b is not None:
        y = tf.nn.bias_add(y, _const(b))
    return _out(y, x.dtype)


def dense_backward(dy: Array, x: Array, w: Array) -> tuple[Array, Array, Array]:
    """See refcnn.dense_backward (GradientTape of matmul + bias_add with a zero bias)."""
    xt, wt, b = _const(x), _const(w), _zeros((w.shape[1],), dy.dtype)
    dx, dw, db = _grads(
        lambda: tf.nn.bias_add(tf.linalg.matmul(xt, wt), b), [xt, wt, b], _const(dy)
    )
    return _out(dx, dy.dtype), _out(dw, dy.dtype), _out(db, dy.dtype)


# -- activations ------------------------------------------------------------------------------


def _activation_backward(function: Any, dy: Array, x: Array) -> Array:
    xt = _const(x)
    (dx,) = _grads(lambda: function(xt), [xt], _const(dy))
    return _out(dx, dy.dtype)


def relu(x: Array) -> Array:
    """See refcnn.relu (``tf.nn.relu``)."""
    return _out(tf.nn.relu(_const(x)), x.dtype)


def relu_backward(dy: Array, x: Array) -> Array:
    """See refcnn.relu_backward (``ReluGrad`` at ``x``; 0 at ``x == 0``)."""
    return _activation_backward(tf.nn.relu, dy, x)


def sigmoid(x: Array) -> Array:
    """See refcnn.sigmoid (``tf.math.sigmoid``)."""
    return _out(tf.math.sigmoid(_const(x)), x.dtype)


def sigmoid_backward(dy: Array, x: Array) -> Array:
    """See refcnn.sigmoid_backward (GradientTape of ``tf.math.sigmoid`` at ``x``)."""
    return _activation_backward(tf.math.sigmoid, dy, x)


def tanh(x: Array) -> Array:
    """See refcnn.tanh (``tf.math.tanh``)."""
    return _out(tf.math.tanh(_const(x)), x.dtype)


def tanh_backward(dy: Array, x: Array) -> Array:
    """See refcnn.tanh_backward (GradientTape of ``tf.math.tanh`` at ``x``)."""
    return _activation_backward(tf.math.tanh, dy, x)


# -- softmax ----------------------------------------------------------------------------------


def softmax(z: Array, axis: int = -1) -> Array:
    """See refcnn.softmax (``tf.nn.softmax``)."""
    return _out(tf.nn.softmax(_const(z), axis=axis), z.dtype)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """See refcnn.log_softmax (``tf.nn.log_softmax``)."""
    return _out(tf.nn.log_softmax(_const(z), axis=axis), z.dtype)


def _softmax_vjp(dp: Any, p: Any, axis: int) -> Any:
    # TF's registered Softmax gradient, evaluated on the softmax output p itself.
    return (dp - tf.math.reduce_sum(dp * p, axis=axis, keepdims=True)) * p


def softmax_jacobian(p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_jacobian (row i is TF's softmax VJP of ``e_i`` at ``p``)."""
    pt = _const(np.moveaxis(p, axis, -1))
    k = int(pt.shape[-1])
    if k == 0:
        return np.zeros((*pt.shape, 0), dtype=p.dtype)
    basis = tf.eye(k, dtype=pt.dtype)
    rows = [_softmax_vjp(tf.broadcast_to(basis[i], pt.shape), pt, -1) for i in range(k)]
    return _out(tf.stack(rows, axis=-2), p.dtype)


def softmax_backward(dp: Array, p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_backward (TF's Softmax gradient expression at ``p``)."""
    return _out(_softmax_vjp(_const(dp), _const(p), axis), dp.dtype)


# -- losses -----------------------------------------------------------------------------------


def _reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return tf.math.reduce_sum(per_sample)
    return tf.math.reduce_mean(per_sample)


def _cross_entropy(p: Any, y: Array, axis: int, reduction: str, eps: float | None) -> Any:
    clipped = p if eps is None else tf.clip_by_value(p, eps, 1.0)
    per_sample = -tf.math.reduce_sum(tf.math.xlogy(_const(y), clipped), axis=axis)
    return _reduce(per_sample, reduction)


def cross_entropy(
    p: Array,
    y: Array,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Array:
    """See refcnn.cross_entropy (``tf.math.xlogy``: 0 * log 0 = 0; ``clip_by_value`` for eps)."""
    return _out(_cross_entropy(_const(p), y, axis, reduction, eps), p.dtype)


def cross_entropy_backward(
    p: Array,
    y: Array,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Array:
    """See refcnn.cross_entropy_backward (GradientTape; 0 at ``y == p == 0``, module doc)."""
    pt = _const(p)
    (dp,) = _grads(lambda: _cross_entropy(pt, y, axis, reduction, eps), [pt])
    return _out(dp, p.dtype)


def _softmax_cross_entropy(
    logits: Any,
    labels: Array,
    axis: int,
    reduction: str,
    weights: Array | None,
    ignore_index: int | None,
    label_smoothing: float,
) -> Any:
    """torch.nn.functional.cross_entropy's loss, term by term, from TensorFlow ops."""
    ndim = len(logits.shape)
    class_axis = axis % ndim
    # The class axis moves last; the other axes keep their order (that of the int labels).
    perm = [i for i in range(ndim) if i != class_axis] + [class_axis]
    logp = tf.nn.log_softmax(tf.transpose(logits, perm), axis=-1)
    k = int(logp.shape[-1])
    w = None if weights is None else _const(weights)
    smoothing = label_smoothing > 0  # torch skips the smoothing terms entirely at 0
    if labels.dtype.kind == "f":  # class probabilities
        target = tf.transpose(_const(labels), perm)
        if smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / k
        product = logp * target if w is None else logp * target * w
        if reduction == "none":
            return -tf.math.reduce_sum(product, axis=-1)
        total = -tf.math.reduce_sum(product)
        return total if reduction == "sum" else total / sample_count(labels.shape, axis)
    index = _const(labels.astype(np.int64))
    keep = tf.ones_like(index, dtype=tf.bool) if ignore_index is None else index != ignore_index
    safe = tf.where(keep, index, tf.zeros_like(index))  # any valid class; masked out below
    flat = tf.reshape(logp, (-1, k))
    picked = tf.reshape(tf.gather(flat, tf.reshape(safe, (-1, 1)), batch_dims=1), index.shape)
    class_weight = tf.ones_like(picked) if w is None else tf.gather(w, safe)
    zeros = tf.zeros_like(picked)
    nll = tf.where(keep, -class_weight * picked, zeros)
    smooth = None
    if smoothing:
        summed = tf.math.reduce_sum(logp if w is None else logp * w, axis=-1)
        smooth = tf.where(keep, -summed, zeros)
    if reduction == "none":
        per_sample = nll
        if smooth is not None:
            per_sample = (1 - label_smoothing) * nll + smooth * (label_smoothing / k)
        return per_sample
    nll_total = tf.math.reduce_sum(nll)
    smooth_total = None if smooth is None else tf.math.reduce_sum(smooth)
    if reduction == "mean":
        denominator = tf.math.reduce_sum(tf.where(keep, class_weight, zeros))
        nll_total = nll_total / denominator
        smooth_total = None if smooth_total is None else smooth_total / denominator
    if smooth_total is None:
        return nll_total
    return (1 - label_smoothing) * nll_total + smooth_total * (label_smoothing / k)


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
    """See refcnn.softmax_cross_entropy (torch's semantics from TF ops; module doc)."""
    loss = _softmax_cross_entropy(
        _const(logits), labels, axis, reduction, weights, ignore_index, label_smoothing
    )
    return _out(loss, logits.dtype)


def softmax_cross_entropy_backward(
    logits: Array,
    labels: Array,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Array:
    """See refcnn.softmax_cross_entropy_backward (GradientTape of the composed loss)."""
    z = _const(logits)
    (dz,) = _grads(
        lambda: _softmax_cross_entropy(
            z, labels, axis, reduction, weights, ignore_index, label_smoothing
        ),
        [z],
    )
    return _out(dz, logits.dtype)
