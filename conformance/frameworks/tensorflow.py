"""TensorFlow adapter: refcnn's forward ops on TF tensors; the backwards derive from them.

Same names, signatures and conventions as :mod:`refcnn` (NHWC data, HWIO filters,
cross-correlation, TensorFlow argument names), which are TensorFlow's own; the output dtype is
the input dtype (float16, float32 and float64 all run on the CPU). Only the framework-specific
translation is documented here; see the refcnn function of the same name for the semantics,
and :mod:`conformance.frameworks` for how every backward function is derived (one
``tf.GradientTape`` over the forward below, with the caller's upstream gradient).

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
- Gradients: derived (:mod:`conformance.frameworks`) by ``tf.GradientTape`` over the
  forwards below; bias gradients go through ``tf.nn.bias_add`` (``BiasAddGrad``). Two
  documented quirks are overridden:

  * ``softmax_backward`` evaluates, with TF ops on the given p, the expression TF registers
    as Softmax's gradient (``(g - sum(g * p, axis)) * p``, computed from the softmax
    output): TF has no kernel for it, and going through ``z = log p`` would perturb p by
    ``eps |log p|`` before TF runs at all (``softmax_jacobian`` is built from it row by row);
  * dilated conv gradients: the CPU ``Conv2DBackpropInput``/``Filter`` kernels reject
    dilations > 1, so the gradients differentiate ``tf.nn.convolution`` (TF's
    space-to-batch dilated conv), which accepts only stride 1 with dilations > 1: the input
    is padded explicitly (``tf.pad``), convolved at stride 1 with VALID padding, and the
    output subsampled by the strides (``y[:, ::sh, ::sw]``), the same sums as the strided
    conv. The forward ``conv2d`` uses ``tf.nn.conv2d``'s native dilation.
- ``softmax_cross_entropy``: composed from ``tf.nn.log_softmax``, ``tf.gather`` and reductions,
  reproducing ``torch.nn.functional.cross_entropy`` term by term (class weights, ignore_index,
  label smoothing ``(1 - s) * nll + s / K * smooth`` with the weighted mean's denominator
  ``sum(w[y])`` for both terms; probability labels ``t * (1 - s) + s / K`` and a mean over
  ``numel / K`` samples).
- Determinism: ``enable_op_determinism`` and one inter/intra-op thread, set by ``setup`` (the
  thread counts only if TensorFlow's runtime was not started before).
  ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2; oneDNN stays at TensorFlow's default (on).
- Device: GPUs are hidden unless ``--device cuda``; TensorFloat-32 is off unless
  ``--allow-tf32``.

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
import importlib.metadata
import os
from collections.abc import Callable, Sequence
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
    window_counts,
)
from conformance.network import CLASSES, INPUT_SHAPE, LR, MOMENTUM, Trajectory
from refcnn.padding import AxisPads, Geometry

NAME = "tensorflow"
REQUIRES = "tensorflow"
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")
DEVICES = ("cpu", "cuda")
LIMITS = {
    "empty outputs": "TF 2.21's CPU conv and pooling kernels crash or return uninitialized "
    "memory on empty outputs; such cases are refused before any kernel runs",
}

#: Which element of a max-pool window receives the gradient when several equal the maximum.
MAX_POOL_TIE_RULE = "first"


def setup(device: str, *, allow_tf32: bool) -> dict[str, str]:
    """Deterministic kernels, fixed threads and placement on ``device``; return report info.

    Reductions must not depend on how work is split between threads, and the comparison is
    against a float64 oracle, so TensorFloat-32 stays off unless asked for.
    """
    with contextlib.suppress(RuntimeError):  # raised once TF's runtime has started
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        if device == "cpu":
            tf.config.set_visible_devices([], "GPU")
    tf.config.experimental.enable_op_determinism()
    tf.config.experimental.enable_tensor_float_32_execution(allow_tf32)
    info = {"version": tf.__version__, "device": device}
    if device == "cuda":
        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            msg = "tf.config.list_physical_devices('GPU') is empty"
            raise RuntimeError(msg)
        build = tf.sysconfig.get_build_info()
        info |= {
            "device": str(tf.config.experimental.get_device_details(gpus[0]).get("device_name")),
            "cuda": str(build.get("cuda_version", "?")),
            "cudnn": str(build.get("cudnn_version", "?")),
            "tf32": "on" if allow_tf32 else "off",
        }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        info["version"] = importlib.metadata.version("tensorflow-cpu")
    return info


# -- tensors in and out -------------------------------------------------------------------------


def tensor(a: Array) -> Any:
    """Copy ``a`` into a TF constant of its own dtype (some ops turn bare float16 to float32)."""
    array_ = np.asarray(a)
    return tf.constant(array_, dtype=tf.as_dtype(array_.dtype))


def array(t: Any) -> Array:
    """Copy a TF result into a fresh NumPy array (an ``IndexedSlices`` gradient made dense)."""
    return np.array(tf.convert_to_tensor(t).numpy(), copy=True)


def vjp(f: Callable[..., Any], primals: Sequence[Any], cotangent: Any | None) -> list[Any]:
    """Return ``tf.GradientTape`` gradients of ``f(*primals)`` for ``cotangent`` (None: ones)."""
    with tf.GradientTape() as tape:
        for source in primals:
            tape.watch(source)
        y = f(*primals)
    upstream = tf.ones_like(y) if cotangent is None else cotangent
    grads = tape.gradient(
        y,
        list(primals),
        output_gradients=upstream,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    # tf.gather's gradient may arrive as IndexedSlices; the adapters return dense arrays.
    return [tf.convert_to_tensor(g) for g in grads]


def _explicit(pads: AxisPads) -> list[list[int]]:
    (top, bottom), (left, right) = pads
    return [[0, 0], [top, bottom], [left, right], [0, 0]]


# -- conv -------------------------------------------------------------------------------------


def _conv_setup(
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: Any,
    dilations: int | Sequence[int],
) -> tuple[str | list[list[int]], Geometry]:
    """TF's padding argument and the geometry; NotExpressible for the cases TF mishandles."""
    mode, geometry = conv_geometry("conv2d", x_shape, w_shape, strides, padding, dilations)
    if int(w_shape[2]) == 0:
        msg = (
            "tensorflow conv2d: C = 0 input channels: TF's Conv2D rejects them "
            "('filter depth must be strictly positive')"
        )
        raise NotExpressible(msg)
    out = (int(x_shape[0]), geometry.out_h, geometry.out_w, int(w_shape[3]))
    if 0 in out:
        msg = (
            f"tensorflow conv2d: the conv output (N, out_h, out_w, O) = {out} is empty and TF "
            "2.21's CPU conv kernels mishandle empty outputs: the float64 gradients segfault "
            "or return an uninitialized filter gradient, oneDNN (float32/float16) returns an "
            "uninitialized tensor of the input's shape or rejects O = 0 (not run)"
        )
        raise NotExpressible(msg)
    if isinstance(mode, str) and mode != "SAME_LOWER":
        return mode, geometry  # VALID and SAME: TF's own rules are refcnn's
    return _explicit(geometry.pads), geometry


def _with_bias(y: Any, b: Any) -> Any:
    return y if b is None else tf.nn.bias_add(y, b)


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d (``tf.nn.conv2d`` then ``tf.nn.bias_add``)."""
    tf_padding, _ = _conv_setup(tuple(x.shape), tuple(w.shape), strides, padding, dilations)
    y = tf.nn.conv2d(
        x, w, strides=list(pair(strides)), padding=tf_padding, dilations=list(pair(dilations))
    )
    return _with_bias(y, b)


def _conv2d_for_gradients(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """conv2d as differentiated: ``tf.nn.convolution`` at stride 1, subsampled, when dilated."""
    tf_padding, geometry = _conv_setup(tuple(x.shape), tuple(w.shape), strides, padding, dilations)
    if pair(dilations) == (1, 1):
        y = tf.nn.conv2d(x, w, strides=list(pair(strides)), padding=tf_padding)
        return _with_bias(y, b)
    stride_1 = tf.nn.convolution(
        tf.pad(x, _explicit(geometry.pads)),
        w,
        strides=1,
        padding="VALID",
        dilations=list(pair(dilations)),
    )
    sh, sw = pair(strides)
    return _with_bias(stride_1[:, ::sh, ::sw, :], b)


GRADIENT_FORWARDS = {
    "conv2d": (
        _conv2d_for_gradients,
        "TF 2.21's CPU Conv2DBackpropInput/Filter kernels reject dilations > 1 and "
        "tf.nn.convolution rejects stride > 1 with dilation > 1: the gradients differentiate "
        "pad + stride-1 dilated VALID convolution + [::sh, ::sw], the same sums",
    ),
}


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


def max_pool2d(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Any:
    """See refcnn.max_pool2d (native SAME/VALID, else ``-inf`` pads then VALID)."""
    pool = _Pool("max_pool2d", tuple(x.shape), ksize, strides, padding)
    if pool.native is not None:
        return tf.nn.max_pool2d(x, pool.kernel, pool.strides, pool.native)
    return tf.nn.max_pool2d(pool.padded(x, -np.inf), pool.kernel, pool.strides, "VALID")


def avg_pool2d(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Any:
    """See refcnn.avg_pool2d (``tf.nn.avg_pool2d``, padded cases emulated; module doc)."""
    pool = _Pool("avg_pool2d", tuple(x.shape), ksize, strides, padding)
    if pool.native == "VALID" or (pool.native == "SAME" and not count_include_pad):
        return tf.nn.avg_pool2d(x, pool.kernel, pool.strides, pool.native)
    y = tf.nn.avg_pool2d(pool.padded(x, 0.0), pool.kernel, pool.strides, "VALID")
    if count_include_pad:
        return y
    counts = window_counts(pool.input_hw, pool.geometry, pool.kernel, pool.strides)
    with np.errstate(divide="ignore"):  # count 0: a window wholly in padding -> 0 * inf
        scale = (pool.kernel[0] * pool.kernel[1]) / counts.astype(np.float64)
    return y * tf.constant(scale[:, :, np.newaxis], dtype=y.dtype)


# -- flatten and dense ------------------------------------------------------------------------


def flatten(x: Any, axis: int = 1) -> Any:
    """See refcnn.flatten (``tf.reshape`` to ONNX Flatten's 2-D shape)."""
    return tf.reshape(x, flatten_shape(tuple(x.shape), axis))


def dense(x: Any, w: Any, b: Any = None) -> Any:
    """See refcnn.dense (``tf.linalg.matmul`` then ``tf.nn.bias_add``, as Keras Dense)."""
    return _with_bias(tf.linalg.matmul(x, w), b)


# -- activations ------------------------------------------------------------------------------


def relu(x: Any) -> Any:
    """See refcnn.relu (``tf.nn.relu``; ``ReluGrad`` is 0 at ``x == 0``)."""
    return tf.nn.relu(x)


def sigmoid(x: Any) -> Any:
    """See refcnn.sigmoid (``tf.math.sigmoid``)."""
    return tf.math.sigmoid(x)


def tanh(x: Any) -> Any:
    """See refcnn.tanh (``tf.math.tanh``)."""
    return tf.math.tanh(x)


# -- softmax ----------------------------------------------------------------------------------


def softmax(z: Any, axis: int = -1) -> Any:
    """See refcnn.softmax (``tf.nn.softmax``)."""
    return tf.nn.softmax(z, axis=axis)


def log_softmax(z: Any, axis: int = -1) -> Any:
    """See refcnn.log_softmax (``tf.nn.log_softmax``)."""
    return tf.nn.log_softmax(z, axis=axis)


def _softmax_backward(dp: Array, p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_backward (TF's registered Softmax gradient, evaluated at ``p``)."""
    g, pt = tensor(dp), tensor(p)
    return array((g - tf.math.reduce_sum(g * pt, axis=axis, keepdims=True)) * pt)


OVERRIDES = {
    "softmax_backward": (
        _softmax_backward,
        "TF has no kernel for the softmax VJP: its registered gradient is the expression "
        "(g - sum(g * p)) * p of the softmax output p, which the API gives (recovering "
        "z = log p would perturb p by eps*|log p|)",
    ),
}


# -- losses -----------------------------------------------------------------------------------


def _reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return tf.math.reduce_sum(per_sample)
    return tf.math.reduce_mean(per_sample)


def cross_entropy(
    p: Any,
    y: Any,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Any:
    """See refcnn.cross_entropy (``tf.math.xlogy``, whose gradient is 0 at ``y == p == 0``)."""
    clipped = p if eps is None else tf.clip_by_value(p, eps, 1.0)
    per_sample = -tf.math.reduce_sum(tf.math.xlogy(y, clipped), axis=axis)
    return _reduce(per_sample, reduction)


def softmax_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Any = None,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> Any:
    """torch.nn.functional.cross_entropy's loss, term by term, from TensorFlow ops."""
    ndim = len(logits.shape)
    class_axis = axis % ndim
    # The class axis moves last; the other axes keep their order (that of the int labels).
    perm = [i for i in range(ndim) if i != class_axis] + [class_axis]
    logp = tf.nn.log_softmax(tf.transpose(logits, perm), axis=-1)
    k = int(logp.shape[-1])
    w = weights
    smoothing = label_smoothing > 0  # torch skips the smoothing terms entirely at 0
    if not isinstance(labels, np.ndarray):  # class probabilities (a floating tensor)
        target = tf.transpose(labels, perm)
        if smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / k
        product = logp * target if w is None else logp * target * w
        if reduction == "none":
            return -tf.math.reduce_sum(product, axis=-1)
        total = -tf.math.reduce_sum(product)
        return total if reduction == "sum" else total / sample_count(tuple(labels.shape), axis)
    index = tf.constant(labels.astype(np.int64))
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


# -- network ----------------------------------------------------------------------------------


def train_network(initial: dict[str, Array], batches: list[tuple[Array, Array]]) -> Trajectory:
    """Train the network of :mod:`conformance.network` as Keras layers with Keras SGD."""
    keras = tf.keras
    dtype = str(initial["dense/kernel"].dtype)
    layers = {
        "conv2d": keras.layers.Conv2D(4, 3, padding="same", dtype=dtype),
        "conv2d_1": keras.layers.Conv2D(6, 2, padding="valid", dtype=dtype),
        "dense": keras.layers.Dense(CLASSES, dtype=dtype),
    }
    net = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, dtype=dtype),
            layers["conv2d"],
            keras.layers.ReLU(dtype=dtype),
            keras.layers.MaxPooling2D(2, dtype=dtype),
            layers["conv2d_1"],
            keras.layers.Activation("tanh", dtype=dtype),
            keras.layers.Flatten(dtype=dtype),
            layers["dense"],
        ]
    )
    for name, layer in layers.items():
        layer.set_weights([initial[f"{name}/kernel"], initial[f"{name}/bias"]])
    # dtype: Keras losses otherwise compute in floatx (float32) whatever the model's dtype.
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)
    optimizer = keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM)
    losses, params = [], []
    for x, labels in batches:
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.constant(labels), net(tf.constant(x), training=True))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        losses.append(float(loss))
        params.append(
            {
                f"{name}/{key}": np.array(weight)
                for name, layer in layers.items()
                for key, weight in zip(("kernel", "bias"), layer.get_weights(), strict=True)
            }
        )
    return Trajectory(losses, params)
