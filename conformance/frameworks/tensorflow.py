"""TensorFlow adapter: refcnn's forward ops on TF tensors; the backwards derive from them.

Same names, signatures and conventions as :mod:`refcnn` (channels-last data by default,
``(*K, C/groups, O)`` filters, cross-correlation, TensorFlow argument names), which are
TensorFlow's own; the output dtype is the input dtype (float16, float32 and float64 all run on
the CPU, except 3-D pooling: float32 only). Only the framework-specific translation is
documented here; see the refcnn function of the same name for the semantics, and
:mod:`conformance.frameworks` for how every backward function is derived (one
``tf.GradientTape`` over the forward below, with the caller's upstream gradient). The 1-D/2-D/3-D
functions (``conv2d``, ``max_pool1d``, ...) are the N-d forwards below; only ``max_pool3d`` and
``avg_pool3d`` are written out, to refuse float64/float16 as a whole.

Translation
-----------
- Layout: channels-first input (``data_format="NCW"/"NCHW"/"NCDHW"``) is transposed to
  channels-last inside the graph (TF's CPU conv and pooling kernels are channels-last only)
  and the result back; filters are TF's own layout. Every TF call names its channels-last
  ``data_format`` (see Findings for why Conv3D needs it).
- Pads always come from :mod:`refcnn.padding`. ``"VALID"``/``"SAME"`` are passed through
  (TensorFlow's SAME rule is refcnn's); ``"SAME_LOWER"`` and explicit pads are a ``tf.pad``
  (zeros for conv and average, ``-inf`` for max) then a VALID op.
- ``conv``: ``tf.nn.conv1d``/``conv2d`` (native strides, dilations and groups: TF runs a grouped
  conv when the input has ``groups`` times the filter's in-channels, output channel ``o`` in
  group ``o // (O/groups)`` as in refcnn) and ``tf.nn.convolution`` (3-D). Dilated 3-D convs
  (CPU Conv3D takes none) and float32 strided convs with C = 1 (Findings) run as
  ``tf.pad`` + stride-1 VALID ``tf.nn.convolution`` (space-to-batch for dilations) +
  ``y[:, ::s1, ::s2, ...]``: each kept output is the same sum.
- ``conv_transpose``: ``tf.nn.conv_transpose`` with an explicit VALID ``output_shape``. TF gives
  any length in ``[L, L + s)`` of the full transposed output (``L = (in - 1)*s + K``; zeros past
  ``L``); refcnn's output is ``full[before : before + n]`` (``n`` from ``output_shape`` or ONNX's
  rule via ``transpose_geometry``, ``before`` the forward conv's leading pad), so the adapter
  asks for the smallest such length holding it, zero-pads a tail beyond ``L + s - 1`` and
  slices (exact: no arithmetic). ``groups > 1``: one ``tf.nn.conv_transpose`` per group (input
  channels and filter columns ``j*C_in/groups ...``) concatenated; no sum crosses a group.
  Dilated: the CPU kernels behind ``tf.nn.conv_transpose`` reject dilations > 1 ("Current CPU
  implementations do not yet support dilation rates larger than 1"), so the full output
  ``L = (in - 1)*s + (K - 1)*d + 1`` is TF's input gradient (``tf.GradientTape``,
  ``output_gradients=x``) of the dilated conv route below (stride-1 ``tf.nn.convolution``,
  subsampled) on a zero input of length ``L``: the adjoint, as ``conv_transpose`` is.
- Pooling: ``tf.nn.max_pool``/``tf.nn.avg_pool`` (N-d); dilated windows through ``tf.nn.pool``
  (space-to-batch) at stride 1, subsampled, since it rejects stride > 1 with dilation > 1.
  ``ceil_mode`` (TF has none): the last, partial window is made whole by growing the end pad by
  refcnn's ``overhang`` (``-inf`` for max, zeros for average), exact. Average pooling: TF's SAME
  already excludes pads from the divisor (``count_include_pad=False``); every other padded case
  is a VALID average of the zero-padded input (divisor ``prod(K)``), rescaled by
  ``prod(K) / count`` where refcnn's divisor ``count`` (real elements, or taps inside the
  padded input for ``count_include_pad=True``, dilation-aware) differs.
- ``max_pool_with_argmax``: ``tf.nn.max_pool_with_argmax`` (``include_batch_in_index=False``;
  1-D as a height-1 2-D pool). TF's index ``(h*Wp + w)*C + c`` (in the ``-inf``-padded input
  it saw, ``Wp`` its padded width; TF's own SAME pads are not in it) becomes refcnn's ``h*W + w``
  in the unpadded input by integer arithmetic.
- Global pools: ``global_max_pool`` reshapes ``(N, *S, C)`` to ``(N, prod(S), C)`` (row-major:
  the first maximum stays first) and takes one ``tf.nn.max_pool1d`` window over it, because
  ``tf.reduce_max``'s gradient splits ties (Findings); ``global_avg_pool`` is
  ``tf.math.reduce_mean`` over the spatial axes (Keras' GlobalAveragePooling). ``keepdims=False``
  reshapes to ``(N, C)``.
- Gradients: derived (:mod:`conformance.frameworks`) by ``tf.GradientTape`` over the
  forwards below; bias gradients go through ``tf.nn.bias_add`` (``BiasAddGrad``). Three
  documented quirks are handled:

  * ``softmax_backward`` evaluates, with TF ops on the given p, the expression TF registers
    as Softmax's gradient (``(g - sum(g * p, axis)) * p``, computed from the softmax
    output): TF has no kernel for it, and going through ``z = log p`` would perturb p by
    ``eps |log p|`` before TF runs at all (``softmax_jacobian`` is built from it row by row);
  * 3-D max-pool gradients (``GRADIENT_FORWARDS["max_pool"]``): through two 2-D max pools,
    for MaxPool3DGrad's tie handling (Findings);
  * conv gradients (``GRADIENT_FORWARDS["conv"]``): the CPU ``Conv2DBackpropInput``/``Filter``
    kernels reject dilations > 1, so dilated convs are differentiated through the stride-1
    ``tf.nn.convolution`` route above (the same sums); the CPU gradients of a grouped conv are
    float32 only, so depthwise convs (``groups == C``, 1-D/2-D) are differentiated through
    ``tf.nn.depthwise_conv2d`` at stride 1, subsampled (the ``(*K, 1, C*M)`` filter reshaped to
    ``(*K, C, M)``: output ``c*M + m``, refcnn's group order; 1-D with a height-1 axis). The
    forward ``conv`` uses the native ops.
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

Not expressible (each raised as :class:`~conformance.frameworks.NotExpressible`, checked)
-----------------------------------------------------------------------------------------
- 3-D pooling in float64/float16: TF 2.21's CPU ``MaxPool3D``/``AvgPool3D`` are float32 only
  ("Value for attr 'T' of double is not in the list of allowed values", "Could not find
  device for node MaxPool3D[T=DT_HALF]"): ``max_pool3d``/``avg_pool3d`` refuse those dtypes as
  a whole, ``max_pool``/``avg_pool`` their 3-D cases one by one.
- Grouped 3-D convs: CPU Conv3D has no grouped form ("Number of channels in filter (2) must
  match last dimension of input (4)"; oneDNN: "input and filter must have the same depth").
- Gradients of grouped convs with ``1 < groups < C`` in float64/float16 (``vjp`` passes TF's
  refusal on: "Gradients for grouped convolutions are not supported on CPU").
- ``max_pool_with_argmax`` in 3-D (the op takes 4-D NHWC input only) or with dilations (it has
  none).
- Empty results and axes (crashes and garbage, probed in subprocesses), all raised before any
  TF kernel runs:

  * conv with an empty output ``(N, *out, O)``: the float64 input and filter gradients
    *segfault* when the empty spatial axis has stride > 1 (e.g. x (2, 5, 2, 1), w (4, 3, 1, 1),
    VALID, stride 2) and the filter gradient is uninitialized memory otherwise; oneDNN
    (float32/float16) returns an uninitialized tensor of the *input's* shape for the forward
    (also for N == 0), aborts in the gradients and rejects O == 0. ``C == 0`` is rejected.
    ``conv_transpose`` with any empty axis is refused likewise.
  * pooling with an empty output axis: oneDNN MaxPool (float32/float16) dies of SIGFPE or
    aborts, float64 MaxPoolGrad returns uninitialized memory, and TF rejects VALID windows
    overhanging the input by more than the stride; ``C == 0``: AvgPoolGrad (float32) fails.
    Batch ``N == 0`` pools fine and is run.

Findings (TensorFlow 2.21, CPU; float32 convs and max pools run oneDNN, float64/float16 Eigen)
---------------------------------------------------------------------------------------------
- float32 ``conv2d``/``conv3d`` (oneDNN) with C = 1 and a stride > 1 return wrong values, some
  of them uninitialized memory: x = arange(60).reshape(2, 6, 5, 1), w = ones(4, 4, 1, 1),
  strides (1, 2), VALID gives [144, 304, g, 624, 784, g'] for [144, 224, 304, 624, 704, 784],
  ``g`` uninitialized memory that changes between runs (-6.5e18, -215.9); the 3-D case
  x = arange(30).reshape(2, 1, 5, 3, 1), w = ones(1, 4, 3, 1, 1), strides (1, 1, 2) gives
  [66, 65, 246, 170] for [66, 102, 246, 282] (the values torch 2.13's oneDNN conv3d gives,
  deterministically). float64, float16, stride 1, C > 1 and ``TF_ENABLE_ONEDNN_OPTS=0`` are
  right; the adapter runs such convs at stride 1 and subsamples (test_framework_bugs.py,
  pinned in test_pinned.py).
- ``tf.nn.convolution`` of 3-D input with ``data_format=None``: the eager gradient fails with
  ``AttributeError: 'NoneType' object has no attribute 'decode'`` (``_Conv3DGrad`` reads the
  missing attribute); the adapter always names the format.
- ``tf.reduce_max``'s gradient splits a tie evenly ([1, 3, 3, 2] -> [0, 0.5, 0.5, 0]) where
  refcnn, TF's max pooling and torch send it all to the first maximum: ``global_max_pool`` is
  a max pool (test in test_framework_bugs.py). Keras' ``GlobalMaxPooling*D`` use
  ``reduce_max``, so a Keras model's global max pool gradients split ties.
- ``MaxPool3DGrad`` (float32, oneDNN or Eigen) gives *every* tied maximum of a window the
  window's whole gradient: ones(4) along one axis, windows of 2, dy [1, 2, 3] gives
  [1, 3, 5, 3] (refcnn, MaxPoolGrad: [1, 2, 3, 0]), so the gradient's sum grows. 3-D max pools
  are differentiated (``GRADIENT_FORWARDS["max_pool"]``) as a 2-D max pool over ``(h, w)`` of
  ``(N*D, H, W, C)`` then one with a ``(kd, 1)`` window over ``(N, D, oh*ow, C)``: the same
  maxima, and each MaxPoolGrad's first maximum makes the gradient reach the first in
  ``(d, h, w)`` order, refcnn's (test in test_framework_bugs.py, pinned).
- Max-pool gradient ties (``MaxPoolGrad``): exactly one element per window, the first maximum
  in row-major window order, as in refcnn (``MAX_POOL_TIE_RULE = "first"``; checked on
  all-ones and random small-integer inputs, float16/32/64, overlapping windows);
  ``tf.nn.max_pool_with_argmax``'s index is the first maximum too.
- NaN in max pool: the forward ignores NaN (a window's output is the max of its other
  elements) but the gradient goes to the window's *first* element when that is NaN (else NaN
  is skipped). An all ``-inf`` window outputs the lowest finite value, not ``-inf``. The suite
  draws neither.
- ``xlogy`` backward w.r.t. ``p`` is ``xdivy(y, p)``: 0 at ``y == p == 0`` (torch: NaN).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

# Before the import: TF's C++ start-up logging would otherwise flood every test run.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from conformance.frameworks import NotExpressible
from conformance.frameworks._common import (
    Array,
    conv_transpose_sizes,
    flatten_shape,
    is_channels_first,
    per_axis,
    sample_count,
    spatial_sizes,
)
from conformance.network import CLASSES, INPUT_SHAPE, LR, MOMENTUM, Trajectory
from refcnn.padding import AxisPads, Windows, normalize_padding, windows

NAME = "tensorflow"
REQUIRES = "tensorflow"
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")
DEVICES = ("cpu", "cuda")
LIMITS = {
    "empty outputs": "TF 2.21's CPU conv and pooling kernels crash or return uninitialized "
    "memory on empty outputs; such cases are refused before any kernel runs",
    "3-D pooling": "CPU MaxPool3D/AvgPool3D are float32 only (float64/float16 refused)",
    "grouped convs": (
        "CPU Conv3D has no groups; grouped-conv gradients (1 < groups < C) are float32 only"
    ),
    "max_pool_with_argmax": "tf.nn.max_pool_with_argmax is 2-D (NHWC) only, without dilations",
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
    try:
        grads = tape.gradient(
            y,
            list(primals),
            output_gradients=upstream,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
    except tf.errors.InvalidArgumentError as exc:
        # TF 2.21's CPU Conv2DBackpropInput/Filter refuse grouped convs except in float32
        # (oneDNN): TF's own refusal, for the case at hand, in its own words.
        if "Gradients for grouped convolutions are not supported" in str(exc):
            msg = f"tensorflow: {_GROUPED_GRADIENTS}"
            raise NotExpressible(msg) from exc
        raise
    # tf.gather's gradient may arrive as IndexedSlices; the adapters return dense arrays.
    return [tf.convert_to_tensor(g) for g in grads]


_GROUPED_GRADIENTS = (
    "the CPU gradients of a grouped conv (1 < groups < C) are float32 only ('Gradients for "
    "grouped convolutions are not supported on CPU. Please file a feature request if you "
    "run into this issue.')"
)


# -- layouts and geometry -----------------------------------------------------------------------

#: TF's channels-last data format per number of spatial axes (passed explicitly: see
#: :func:`_convolution`).
_CHANNELS_LAST = {1: "NWC", 2: "NHWC", 3: "NDHWC"}


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in x.shape)


def _to_channels_last(x: Any, channels_first: bool) -> Any:
    """``(N, C, *S)`` -> ``(N, *S, C)`` inside the graph (TF's CPU kernels are channels-last)."""
    if not channels_first:
        return x
    rank = len(x.shape) - 2
    return tf.transpose(x, [0, *range(2, rank + 2), 1])


def _from_channels_last(y: Any, channels_first: bool) -> Any:
    if not channels_first:
        return y
    rank = len(y.shape) - 2
    return tf.transpose(y, [0, rank + 1, *range(1, rank + 1)])


def _pad(x: Any, pads: Sequence[tuple[int, int]], value: float = 0.0) -> Any:
    """``tf.pad`` of the spatial axes of a channels-last ``x`` (nothing when all pads are 0)."""
    if all(before == 0 and after == 0 for before, after in pads):
        return x
    return tf.pad(x, [[0, 0], *(list(p) for p in pads), [0, 0]], constant_values=value)


def _subsample(y: Any, strides: Sequence[int]) -> Any:
    """``y[:, ::s1, ::s2, ..., :]`` of a channels-last ``y``."""
    if all(s == 1 for s in strides):
        return y
    keys = (slice(None), *(slice(None, None, s) for s in strides), slice(None))
    return y[keys]


def _with_bias(y: Any, b: Any) -> Any:
    return y if b is None else tf.nn.bias_add(y, b)


# -- conv ---------------------------------------------------------------------------------------


class _Conv(NamedTuple):
    """A conv call in TF's terms: per-axis arguments and refcnn's geometry."""

    rank: int
    channels_first: bool
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    geometry: Windows
    native: str | None  # TF's own padding string when it states refcnn's pads

    @property
    def dilated(self) -> bool:
        return any(d != 1 for d in self.dilation)


def _conv_plan(
    x: Any,
    w: Any,
    strides: int | Sequence[int],
    padding: Any,
    dilations: int | Sequence[int],
    groups: int,
    data_format: str | None,
) -> _Conv:
    """Resolve a conv call (pads from refcnn.padding); refuse what TF's CPU kernels mishandle."""
    rank = len(x.shape) - 2
    channels_first = is_channels_first(data_format)
    stride, dilation = per_axis(strides, rank), per_axis(dilations, rank)
    mode = normalize_padding("conv", padding, rank)
    sizes = spatial_sizes(x, channels_first)
    geometry = windows(sizes, _shape(w)[:rank], stride, dilation, mode)
    op = f"tensorflow conv{rank}d"
    if int(w.shape[-2]) == 0:
        msg = (
            f"{op}: C = 0 input channels: TF's Conv2D rejects them "
            "('filter depth must be strictly positive')"
        )
        raise NotExpressible(msg)
    out = (int(x.shape[0]), *geometry.out, int(w.shape[-1]))
    if 0 in out:
        msg = (
            f"{op}: the conv output (N, *out, O) = {out} is empty and TF 2.21's CPU conv "
            "kernels mishandle empty outputs: the float64 gradients segfault or return an "
            "uninitialized filter gradient, oneDNN (float32/float16) returns an uninitialized "
            "tensor of the input's shape or rejects O = 0 (not run)"
        )
        raise NotExpressible(msg)
    if rank == 3 and groups != 1:
        msg = (
            f"{op}: groups = {groups}: TF 2.21's CPU Conv3D has no grouped form ('Number of "
            "channels in filter must match last dimension of input', oneDNN: 'input and "
            "filter must have the same depth')"
        )
        raise NotExpressible(msg)
    native = mode if mode in ("VALID", "SAME") else None
    return _Conv(rank, channels_first, stride, dilation, geometry, native)


def _convolution(x: Any, w: Any, plan: _Conv, stride: Sequence[int], padding: str) -> Any:
    """``tf.nn.convolution`` of a channels-last ``x``, the data format named explicitly.

    With ``data_format=None`` TF 2.21's eager Conv3D gradient fails (``_Conv3DGrad`` calls
    ``.decode()`` on a missing ``data_format`` attribute: AttributeError), so it is given.
    """
    return tf.nn.convolution(
        x,
        w,
        strides=list(stride),
        padding=padding,
        dilations=list(plan.dilation),
        data_format=_CHANNELS_LAST[plan.rank],
    )


def _dilated_stride_1(x: Any, w: Any, plan: _Conv) -> Any:
    """Pad, stride-1 dilated VALID ``tf.nn.convolution``, subsample: the strided conv's sums."""
    padded = _pad(x, plan.geometry.pads)
    return _subsample(_convolution(padded, w, plan, (1,) * plan.rank, "VALID"), plan.stride)


def _onednn_single_channel_strided(x: Any, plan: _Conv) -> bool:
    """Say whether TF 2.21's float32 oneDNN conv gets this wrong: C = 1, 2-D/3-D, strided.

    They return wrong values, some of them uninitialized memory (Findings); at stride 1
    they are right, so such convs run at stride 1 and are subsampled (the same sums).
    """
    return (
        x.dtype == tf.float32
        and int(x.shape[-1]) == 1
        and plan.rank >= 2
        and any(s != 1 for s in plan.stride)
    )


def conv(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Any:
    """See refcnn.conv (``tf.nn.conv1d/conv2d/convolution`` then ``tf.nn.bias_add``)."""
    plan = _conv_plan(x, w, strides, padding, dilations, groups, data_format)
    xl = _to_channels_last(x, plan.channels_first)
    tf_padding = plan.native
    if tf_padding is None:  # SAME_LOWER, explicit pads: zero pads, then VALID
        xl, tf_padding = _pad(xl, plan.geometry.pads), "VALID"
    layout = _CHANNELS_LAST[plan.rank]
    if _onednn_single_channel_strided(xl, plan):
        y = _dilated_stride_1(_to_channels_last(x, plan.channels_first), w, plan)
    elif plan.rank == 1:
        y = tf.nn.conv1d(
            xl, w, list(plan.stride), tf_padding, data_format=layout, dilations=list(plan.dilation)
        )
    elif plan.rank == 2:
        y = tf.nn.conv2d(
            xl, w, list(plan.stride), tf_padding, data_format=layout, dilations=list(plan.dilation)
        )
    elif plan.dilated:
        # CPU Conv3D: "only supports dilated rates of 1"; tf.nn.convolution's space-to-batch
        # route takes dilations at stride 1 only.
        y = _dilated_stride_1(_to_channels_last(x, plan.channels_first), w, plan)
    else:
        y = _convolution(xl, w, plan, plan.stride, tf_padding)
    return _from_channels_last(_with_bias(y, b), plan.channels_first)


def _depthwise(x: Any, w: Any, plan: _Conv) -> Any:
    """Depthwise conv (``groups == C``, 1-D/2-D) as ``tf.nn.depthwise_conv2d`` at stride 1.

    refcnn's ``(*K, 1, C*M)`` filter puts output ``o`` in group ``o // M``: the
    ``(*K, C, M)`` depthwise filter of output ``c*M + m``, a reshape. 1-D runs as a 2-D conv
    with a height-1 axis (as ``tf.nn.conv1d`` does).
    """
    padded = _pad(x, plan.geometry.pads)
    channels = int(x.shape[-1])
    kernel = _shape(w)[: plan.rank]
    filters = tf.reshape(w, (*kernel, channels, int(w.shape[-1]) // channels))
    dilation = list(plan.dilation)
    if plan.rank == 1:
        padded, filters, dilation = padded[:, tf.newaxis], filters[tf.newaxis], [1, *dilation]
    y = tf.nn.depthwise_conv2d(padded, filters, [1, 1, 1, 1], "VALID", dilations=dilation)
    if plan.rank == 1:
        y = y[:, 0]
    return _subsample(y, plan.stride)


def _conv_for_gradients(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Any:
    """Compute conv as differentiated: depthwise convs and dilations at stride 1.

    See the module docstring (Translation, Gradients).
    """
    plan = _conv_plan(x, w, strides, padding, dilations, groups, data_format)
    xl = _to_channels_last(x, plan.channels_first)
    if groups > 1 and groups == int(xl.shape[-1]) and plan.rank <= 2:
        y = _depthwise(xl, w, plan)
    elif plan.dilated or _onednn_single_channel_strided(xl, plan):
        y = _dilated_stride_1(xl, w, plan)
    else:
        return conv(
            x,
            w,
            b,
            strides=strides,
            padding=padding,
            dilations=dilations,
            groups=groups,
            data_format=data_format,
        )
    return _from_channels_last(_with_bias(y, b), plan.channels_first)


GRADIENT_FORWARDS: dict[str, tuple[Callable[..., Any], str]] = {
    "conv": (
        _conv_for_gradients,
        "TF 2.21's CPU Conv2DBackpropInput/Filter kernels reject dilations > 1 and "
        "tf.nn.convolution rejects stride > 1 with dilation > 1: dilated gradients "
        "differentiate pad + stride-1 dilated VALID convolution + [::s], the same sums; "
        "grouped-conv gradients are refused on the CPU except in float32 ('Gradients for "
        "grouped convolutions are not supported on CPU'), so depthwise convs (groups = C, "
        "1-D/2-D) differentiate tf.nn.depthwise_conv2d, the same sums",
    ),
}


# -- conv_transpose -----------------------------------------------------------------------------


def _dilated_transpose(
    x: Any, w: Any, shape: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> Any:
    """Dilated VALID transposed conv of a channels-last ``x`` to the full ``shape``.

    TF 2.21's CPU Conv2DBackpropInput/Conv3DBackpropInputV2 (``tf.nn.conv_transpose``) reject
    dilations > 1 ("Current CPU implementations do not yet support dilation rates larger
    than 1"); the transposed conv is the input gradient of the forward conv, so it is TF's
    gradient (``tf.GradientTape``, ``output_gradients=x``) of the stride-1 dilated VALID
    ``tf.nn.convolution`` of a zero input of ``shape``, subsampled: the conv gradients' route.
    """
    rank = len(shape) - 2
    geometry = Windows(_shape(x)[1:-1], ((0, 0),) * rank, (0,) * rank)
    plan = _Conv(rank, False, tuple(stride), tuple(dilation), geometry, "VALID")
    z = tf.zeros(shape, dtype=x.dtype)
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = _dilated_stride_1(z, w, plan)
    return tape.gradient(y, z, output_gradients=x)


def conv_transpose(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    output_shape: Sequence[int] | None = None,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    output_padding: int | Sequence[int] = 0,
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
    data_format: str | None = None,
    method: str = "auto",  # refcnn's route choice: nothing to translate
) -> Any:
    """See refcnn.conv_transpose (``tf.nn.conv_transpose`` of the full output, sliced)."""
    (rank, channels_first, stride, dilation, kernel, in_sizes, sizes, befores) = (
        conv_transpose_sizes(
            x.shape,
            w.shape,
            channels_first=is_channels_first(data_format),
            output_shape=output_shape,
            strides=strides,
            padding=padding,
            output_padding=output_padding,
            dilations=dilations,
        )
    )
    op = f"tensorflow conv{rank}d_transpose"
    c_out = groups * int(w.shape[-2])
    empty = (int(x.shape[0]), *sizes, c_out, int(x.shape[-1] if not channels_first else x.shape[1]))
    if 0 in empty or 0 in in_sizes:
        msg = (
            f"{op}: an empty axis in (N, *out, C_out, C_in) = {empty} or the input "
            f"{in_sizes}: TF 2.21's CPU conv kernels mishandle empty tensors (not run)"
        )
        raise NotExpressible(msg)
    # The full transposed output (no pads) is L = (in - 1)*s + K on each axis; TF's VALID
    # conv_transpose gives any length in [L, L + s) (the tail past L is zeros), refcnn's
    # output is full[before : before + n]: the smallest such window holding it, then a slice;
    # past L + s - 1 the tail is zero pads (exact: nothing is computed there).
    dilated = any(d != 1 for d in dilation)
    fulls = [(in_sizes[a] - 1) * stride[a] + (kernel[a] - 1) * dilation[a] + 1 for a in range(rank)]
    asked = [
        min(max(fulls[a], befores[a] + sizes[a]), fulls[a] + stride[a] - 1) for a in range(rank)
    ]
    if dilated:
        asked = fulls
    tails = [max(befores[a] + sizes[a] - asked[a], 0) for a in range(rank)]
    xl = _to_channels_last(x, channels_first)
    n = int(xl.shape[0])
    parts = tf.split(xl, groups, axis=-1) if groups > 1 else [xl]
    filters = tf.split(w, groups, axis=-1) if groups > 1 else [w]
    # Groups: input channels j*Og.. and filter columns j*Og.. make output channels j*Cg..;
    # each group is its own transposed conv, concatenated (no arithmetic across groups).
    full_shape = [n, *asked, int(w.shape[-2])]
    if dilated:
        ys = [
            _dilated_transpose(part, f, full_shape, stride, dilation)
            for part, f in zip(parts, filters, strict=True)
        ]
    else:
        ys = [
            tf.nn.conv_transpose(
                part,
                f,
                full_shape,
                strides=list(stride),
                padding="VALID",
                data_format=_CHANNELS_LAST[rank],
            )
            for part, f in zip(parts, filters, strict=True)
        ]
    y = ys[0] if len(ys) == 1 else tf.concat(ys, axis=-1)
    y = _pad(y, [(0, t) for t in tails])
    index = tuple(slice(befores[a], befores[a] + sizes[a]) for a in range(rank))
    keys = (slice(None), *index, slice(None))
    y = y[keys]
    return _from_channels_last(_with_bias(y, b), channels_first)


# -- pooling ------------------------------------------------------------------------------------


class _Pool(NamedTuple):
    """A pooling call in TF's terms: per-axis window arguments and refcnn's geometry."""

    rank: int
    channels_first: bool
    sizes: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    geometry: Windows
    native: str | None  # TF's own padding string when it states refcnn's windows

    @property
    def pads(self) -> AxisPads:
        """Pads ``(before, after)`` per axis, the end pad grown by a ceil-mode overhang."""
        return tuple(
            (before, after + over)
            for (before, after), over in zip(
                self.geometry.pads, self.geometry.overhang, strict=True
            )
        )

    @property
    def dilated(self) -> bool:
        return any(d != 1 for d in self.dilation)


def _pool_plan(
    op: str,
    x: Any,
    ksize: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
    dilations: int | Sequence[int],
    ceil_mode: bool,
    data_format: str | None,
) -> _Pool:
    """Resolve a pooling call (pads from refcnn.padding); refuse what TF's CPU mishandles."""
    rank = len(x.shape) - 2
    channels_first = is_channels_first(data_format)
    kernel = per_axis(ksize, rank)
    stride = kernel if strides is None else per_axis(strides, rank)
    dilation = per_axis(dilations, rank)
    mode = normalize_padding(op, padding, rank)
    sizes = spatial_sizes(x, channels_first)
    geometry = windows(sizes, kernel, stride, dilation, mode, ceil_mode=bool(ceil_mode))
    channels = int(x.shape[1] if channels_first else x.shape[-1])
    out = (*geometry.out, channels)
    if 0 in out:
        msg = (
            f"tensorflow {op}: (*out, C) = {out} has an empty dim and TF 2.21's CPU pooling "
            "mishandles it: oneDNN MaxPool (float32/float16) dies of SIGFPE or aborts, "
            "float64 MaxPoolGrad returns uninitialized memory, VALID windows overhanging the "
            "input by more than the stride are rejected, AvgPoolGrad (float32) fails for "
            "C = 0 (not run)"
        )
        raise NotExpressible(msg)
    if rank == 3 and op == "max_pool_with_argmax":
        msg = f"tensorflow {op}: 3-D: tf.nn.max_pool_with_argmax takes 4-D (NHWC) input only"
        raise NotExpressible(msg)
    if rank == 3 and x.dtype != tf.float32:
        raise NotExpressible(_no_3d_pool(op, x.dtype))
    native = None
    if (
        mode in ("VALID", "SAME")
        and not any(geometry.overhang)
        and not any(d != 1 for d in dilation)
    ):
        native = str(mode)
    return _Pool(rank, channels_first, sizes, kernel, stride, dilation, geometry, native)


def _no_3d_pool(op: str, dtype: Any) -> str:
    return (
        f"tensorflow {op}: {tf.as_dtype(dtype).name} 3-D pooling: TF 2.21's CPU "
        "MaxPool3D/AvgPool3D kernels are float32 only ('Could not find device for node "
        "MaxPool3D[T=DT_HALF]', 'Value for attr 'T' of double is not in the list of allowed "
        "values')"
    )


def _pool(x: Any, plan: _Pool, pooling_type: str, padding: str) -> Any:
    """TF's pooling of a channels-last ``x``: ``tf.nn.max_pool``/``avg_pool``, or dilated.

    Dilated windows go through ``tf.nn.pool`` (space-to-batch), which rejects stride > 1
    with dilation > 1 (and strides above the window): every window is the same at stride 1,
    so the strided result is a subsample.
    """
    if plan.dilated:
        y = tf.nn.pool(
            x,
            list(plan.kernel),
            pooling_type,
            strides=[1] * plan.rank,
            padding=padding,
            dilations=list(plan.dilation),
            data_format=_CHANNELS_LAST[plan.rank],
        )
        return _subsample(y, plan.stride)
    f = tf.nn.max_pool if pooling_type == "MAX" else tf.nn.avg_pool
    return f(
        x, list(plan.kernel), list(plan.stride), padding, data_format=_CHANNELS_LAST[plan.rank]
    )


def max_pool(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Any:
    """See refcnn.max_pool (``tf.nn.pool`` "MAX"; other pads as ``-inf`` ``tf.pad``)."""
    plan = _pool_plan("max_pool", x, ksize, strides, padding, dilations, ceil_mode, data_format)
    xl = _to_channels_last(x, plan.channels_first)
    if plan.native is not None:
        y = _pool(xl, plan, "MAX", plan.native)
    else:
        y = _pool(_pad(xl, plan.pads, -np.inf), plan, "MAX", "VALID")
    return _from_channels_last(y, plan.channels_first)


def _max_pool_2d(
    x: Any, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> Any:
    """Max-pool a channels-last ``x`` in 2-D, VALID (dilated: ``tf.nn.pool`` at stride 1)."""
    if any(d != 1 for d in dilation):
        y = tf.nn.pool(x, list(kernel), "MAX", [1, 1], "VALID", dilations=list(dilation))
        return _subsample(y, stride)
    return tf.nn.max_pool2d(x, list(kernel), list(stride), "VALID")


def _max_pool_for_gradients(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Any:
    """Compute max_pool as differentiated: 3-D windows as two 2-D max pools.

    TF's MaxPool3DGrad gives every tied maximum the window's whole gradient (Findings).
    A 3-D window is the product of its depth and its (height, width) windows, so the max
    over (h, w) per depth slice (MaxPool2D on ``(N*D, H, W, C)``), then over depth
    (MaxPool2D on ``(N, D, oh*ow, C)`` with a ``(kd, 1)`` window), is the same maximum; each
    MaxPoolGrad routes to its first maximum, so the gradient reaches the first in (d, h, w)
    order: refcnn's row-major first maximum. Pads are ``-inf`` ``tf.pad``.
    """
    op = "max_pool"
    plan = _pool_plan(op, x, ksize, strides, padding, dilations, ceil_mode, data_format)
    if plan.rank != 3:
        return max_pool(
            x,
            ksize,
            strides=strides,
            padding=padding,
            dilations=dilations,
            ceil_mode=ceil_mode,
            data_format=data_format,
        )
    xl = _pad(_to_channels_last(x, plan.channels_first), plan.pads, -np.inf)
    n, d, h, w, c = _shape(xl)
    (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = plan.kernel, plan.stride, plan.dilation
    plane = _max_pool_2d(tf.reshape(xl, (n * d, h, w, c)), (kh, kw), (sh, sw), (dh, dw))
    oh, ow = int(plane.shape[1]), int(plane.shape[2])
    depth = _max_pool_2d(tf.reshape(plane, (n, d, oh * ow, c)), (kd, 1), (sd, 1), (dd, 1))
    y = tf.reshape(depth, (n, int(depth.shape[1]), oh, ow, c))
    return _from_channels_last(y, plan.channels_first)


GRADIENT_FORWARDS["max_pool"] = (
    _max_pool_for_gradients,
    "TF 2.21's MaxPool3DGrad gives every tied maximum of a window the window's gradient "
    "(refcnn: the first maximum only): 3-D max pools are differentiated as a 2-D max pool "
    "over (h, w) then one over depth, the same maxima, each MaxPoolGrad routing to its first",
)


def _tap_counts(plan: _Pool, *, include_pad: bool) -> Array:
    """Per window, the taps inside the input (or the padded input), shape ``(*out, 1)``."""
    counts = np.ones((), dtype=np.int64)
    for a in range(plan.rank):
        before, after = plan.geometry.pads[a]
        lo, hi = (-before, plan.sizes[a] + after) if include_pad else (0, plan.sizes[a])
        starts = np.arange(plan.geometry.out[a]) * plan.stride[a] - before
        taps = starts[:, np.newaxis] + np.arange(plan.kernel[a]) * plan.dilation[a]
        counts = np.multiply.outer(counts, ((taps >= lo) & (taps < hi)).sum(axis=1))
    return np.asarray(counts[..., np.newaxis], dtype=np.int64)


def avg_pool(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> Any:
    """See refcnn.avg_pool (``tf.nn.pool`` "AVG"; emulated pads in the module docstring)."""
    plan = _pool_plan("avg_pool", x, ksize, strides, padding, dilations, ceil_mode, data_format)
    xl = _to_channels_last(x, plan.channels_first)
    if plan.native == "VALID" or (plan.native == "SAME" and not count_include_pad):
        # TF's own SAME divides by the real elements: count_include_pad=False.
        return _from_channels_last(_pool(xl, plan, "AVG", plan.native), plan.channels_first)
    y = _pool(_pad(xl, plan.pads), plan, "AVG", "VALID")  # divisor: the K taps
    counts = _tap_counts(plan, include_pad=bool(count_include_pad))
    taps = int(np.prod(plan.kernel))
    if np.any(counts != taps):
        with np.errstate(divide="ignore"):  # a window wholly in padding: refcnn refuses it
            scale = taps / counts.astype(np.float64)
        y = y * tf.constant(scale, dtype=y.dtype)
    return _from_channels_last(y, plan.channels_first)


def _refuse_3d_pool_dtype(op: str, x: Any) -> None:
    if x.dtype != tf.float32:
        raise NotExpressible(_no_3d_pool(op, x.dtype), whole=True)


def max_pool3d(x: Any, ksize: int | Sequence[int], **options: Any) -> Any:
    """See refcnn.max_pool3d: :func:`max_pool`, written here only to refuse dtypes whole.

    TF has float32 3-D pooling kernels only on the CPU, so every float64/float16 case of
    this function is refused (``whole``); :func:`max_pool` refuses its 3-D ones one by one.
    """
    _refuse_3d_pool_dtype("max_pool3d", x)
    return max_pool(x, ksize, **options)


def avg_pool3d(x: Any, ksize: int | Sequence[int], **options: Any) -> Any:
    """See refcnn.avg_pool3d: :func:`avg_pool`, written here only to refuse dtypes whole."""
    _refuse_3d_pool_dtype("avg_pool3d", x)
    return avg_pool(x, ksize, **options)


def max_pool_with_argmax(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> tuple[Any, Any]:
    """See refcnn.max_pool_with_argmax (``tf.nn.max_pool_with_argmax``, index converted)."""
    op = "max_pool_with_argmax"
    plan = _pool_plan(op, x, ksize, strides, padding, dilations, ceil_mode, data_format)
    if plan.dilated:
        msg = f"tensorflow {op}: dilations {plan.dilation}: tf.nn.max_pool_with_argmax has none"
        raise NotExpressible(msg)
    if int(x.shape[0]) == 0:
        msg = (
            f"tensorflow {op}: N = 0: TF 2.21's MaxPoolWithArgmax rejects an empty batch "
            "('tensor_in must not be empty')"
        )
        raise NotExpressible(msg)
    xl = _to_channels_last(x, plan.channels_first)
    channels = int(xl.shape[-1])
    pads = plan.pads
    tf_padding = plan.native
    if tf_padding is None:
        xl, tf_padding = _pad(xl, pads, -np.inf), "VALID"
    else:
        pads = ((0, 0),) * plan.rank  # TF's own pads are not in its index
    kernel, stride = list(plan.kernel), list(plan.stride)
    if plan.rank == 1:  # as a height-1 2-D pool
        xl, kernel, stride = xl[:, tf.newaxis], [1, *kernel], [1, *stride]
    y, index = tf.nn.max_pool_with_argmax(
        xl, kernel, stride, tf_padding, include_batch_in_index=False
    )
    if plan.rank == 1:
        y, index = y[:, 0], index[:, 0]
    # TF's index is (h*Wp + w)*C + c in the (padded) input it saw; refcnn's is h*W + w in
    # the unpadded one.
    flat = tf.cast(index, tf.int64) // channels
    padded = [n + before + after for n, (before, after) in zip(plan.sizes, pads, strict=True)]
    result = tf.zeros_like(flat)
    scale = 1
    for a in reversed(range(plan.rank)):
        result += (flat % padded[a] - pads[a][0]) * scale
        flat //= padded[a]
        scale *= plan.sizes[a]
    return (
        _from_channels_last(y, plan.channels_first),
        _from_channels_last(result, plan.channels_first),
    )


# -- global pooling -----------------------------------------------------------------------------


def _global_result(y: Any, channels_first: bool, keepdims: bool, rank: int) -> Any:
    if not keepdims:
        return tf.reshape(y, (int(y.shape[0]), int(y.shape[-1])))
    return _from_channels_last(
        tf.reshape(y, (int(y.shape[0]), *(1,) * rank, int(y.shape[-1]))), channels_first
    )


def global_max_pool(x: Any, *, data_format: str | None = None, keepdims: bool = True) -> Any:
    """See refcnn.global_max_pool (``tf.nn.max_pool1d`` over the flattened spatial volume).

    ``tf.reduce_max``'s gradient splits a tie evenly between the tied elements (Findings);
    TF's max pooling sends it to the first maximum, as refcnn. The ``(N, *S, C)`` input is
    reshaped to ``(N, prod(S), C)`` (row-major: the first maximum stays the first) and pooled
    with one window over it, which also runs where TF has no 3-D pooling kernel.
    """
    channels_first = is_channels_first(data_format)
    xl = _to_channels_last(x, channels_first)
    shape = _shape(xl)
    rank = len(shape) - 2
    if 0 in shape[1:]:
        msg = f"tensorflow global_max_pool: an empty axis in {shape}: TF's pooling mishandles it"
        raise NotExpressible(msg)
    volume = int(np.prod(shape[1:-1]))
    flat = tf.reshape(xl, (shape[0], volume, shape[-1]))
    y = tf.nn.max_pool1d(flat, volume, volume, "VALID")
    return _global_result(y, channels_first, keepdims, rank)


def global_avg_pool(x: Any, *, data_format: str | None = None, keepdims: bool = True) -> Any:
    """See refcnn.global_avg_pool (``tf.math.reduce_mean`` over the spatial axes)."""
    channels_first = is_channels_first(data_format)
    xl = _to_channels_last(x, channels_first)
    rank = len(xl.shape) - 2
    y = tf.math.reduce_mean(xl, axis=list(range(1, rank + 1)), keepdims=True)
    return _global_result(y, channels_first, keepdims, rank)


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
