"""ONNX Runtime adapter: each forward op as a one-node ONNX model run by the CPU provider.

Same names, signatures and conventions as :mod:`refcnn` (channels-last data by default,
``(*K, C/groups, O)`` filters, cross-correlation, TensorFlow argument names). ONNX is
channels-first ``(N, C, *S)`` with ``(O, C/groups, *K)`` filters: the adapter transposes in
NumPy around the node (exact: a transpose does no arithmetic). Only forward functions exist:
ONNX Runtime is an inference engine without automatic differentiation (``vjp = None``), so
every backward function of the API is counted as not expressible, never skipped silently.
The 1-D/2-D/3-D functions (``conv2d``, ``max_pool3d``, ...) are the N-d forwards below.

Translation
-----------
- Models are built with ``onnx.helper`` (opset :data:`OPSET`), one node each, and run by an
  ``InferenceSession`` on the ``CPUExecutionProvider`` with one intra-op thread; sessions are
  cached by (op, attributes, dtypes), every input dimension symbolic.
- Layout: channels-last ``(N, *S, C)`` -> ``(N, C, *S)`` by ``np.moveaxis`` (a contiguous
  copy) and back; channels-first input (``data_format="NCW"/"NCHW"/"NCDHW"``) is passed as
  it is. Filters ``(*K, I, O)`` -> ``(O, I, *K)``; the same permutation turns
  ``conv_transpose``'s ``(*K, C_out/groups, C_in)`` into ONNX's ``(C_in, C_out/groups, *K)``.
  Groups (depthwise included) are ONNX's ``group``: both put output channel ``o`` in group
  ``o // (O/groups)``.
- Pads always come from :mod:`refcnn.padding` as explicit ``pads`` (every axis's begin, then
  every end), never ``auto_pad``: ONNX Runtime's Conv refuses dilation under ``SAME_UPPER``
  / ``SAME_LOWER``, and its SAME rule is ONNX's ``(out - 1)*s + e - n`` without TensorFlow's
  clamp at 0 (Findings).
- ``conv``: ``Conv`` (``kernel_shape``, ``strides``, ``dilations``, ``pads``, ``group``, the
  bias as its third input).
- ``conv_transpose``: ``ConvTranspose`` with ``pads`` and ``output_padding`` (its
  ``output_shape`` attribute is not used). ONNX's output is ``full[before : L +
  output_padding - after]`` of the full transposed length ``L = (in - 1)*s + (K - 1)*d + 1``,
  refcnn's ``full[before : before + n]`` (``n`` from ``output_shape`` or ONNX's rule,
  :func:`~refcnn.padding.transpose_geometry`; ``before`` the forward conv's leading pad).
  Where refcnn's window ends inside ``L`` the end pad is ``L - before - n``; past ``L`` by
  less than the stride, ``output_padding = before + n - L``; further out (an
  ``output_padding`` of at least the stride, which refcnn allows below the dilation and
  ONNX Runtime refuses, Findings) zero inputs are appended to ``x``, each lengthening ``L``
  by ``s`` (exact: a zero input adds nothing), and the end pad trims the rest.
- ``max_pool`` / ``avg_pool``: ``MaxPool`` / ``AveragePool`` with ``kernel_shape``,
  ``strides`` (default: the kernel), ``dilations``, ``pads``, ``ceil_mode`` and
  ``count_include_pad``. ONNX Runtime's output size (floor and ceil mode, its ceil rule
  dropping a last window that starts in the end pad) is refcnn's for every non-empty output
  (checked on every 1-D geometry with n <= 8, k <= 4, s <= 3, d <= 2, pads below the
  window). Under SAME refcnn's ceil mode changes nothing and ``ceil_mode=0`` is passed with
  SAME's pads, which gives exactly that size. Pads at or past the window size (ONNX Runtime
  rejects them, Findings; SAME pads of a dilated window reach it) are split: up to ``k - 1``
  as ``pads``, the rest applied to the input with ``np.pad``, ``-inf`` for max pooling and
  zeros for ``count_include_pad=True`` (whose divisor counts the padded taps, so those zeros
  count as the pads they replace); a last window that ONNX Runtime's ceil mode keeps because
  it cannot see the applied part of the end pad is sliced off.
- ``max_pool_with_argmax``: ``MaxPool``'s second output ``Indices`` (``storage_order=0``),
  a row-major index over the whole unpadded ``(N, C, *S)`` input, reduced modulo the spatial
  volume to refcnn's index in the ``(n, c)`` volume; after an applied pad it is mapped back
  from the padded volume. Ties go to the first maximum, as in refcnn.
- ``global_max_pool`` / ``global_avg_pool``: ``GlobalMaxPool`` / ``GlobalAveragePool``
  (``(N, C, 1, ..., 1)``); ``keepdims=False`` reshapes to ``(N, C)``.
- ``flatten``: ``Flatten(axis)``, ONNX's own definition of refcnn's flatten.
- ``dense``: ``Gemm`` (``x @ w + b``).
- ``relu`` / ``sigmoid`` / ``tanh`` / ``softmax`` / ``log_softmax``: the ONNX ops of those
  names (``Softmax``/``LogSoftmax`` with ``axis``, opset >= 13 semantics: one axis).
- ``softmax_cross_entropy``: ``SoftmaxCrossEntropyLoss`` with the class axis moved to 1
  (``(K,)`` logits become a batch of one), integer labels, ``weights``, ``ignore_index`` and
  ``reduction``.

Not expressible (each raised as :class:`~conformance.frameworks.NotExpressible`, checked)
-----------------------------------------------------------------------------------------
- float64 ``Conv``, ``ConvTranspose``, ``AveragePool``, ``GlobalMaxPool`` and
  ``GlobalAveragePool``: the CPU provider has no kernel (NOT_IMPLEMENTED, "Could not find
  an implementation for Conv(11) node"); refused as a whole for the function and dtype
  (float64 ``MaxPool`` runs).
- Empty outputs (batch ``N == 0`` works): ``Conv`` rejects them ("Invalid input shape"),
  ``ConvTranspose`` too ("Computed output dimension is <= 0"), pooling returns one window
  instead of none or raises (Findings); ``C == 0`` pooling ("invalid channel count").
- ``avg_pool`` with ``count_include_pad=False`` and pads at or past the window size: pads
  applied to the input would count in the divisor.
- Max pooling with applied ``-inf`` pads on an input holding ``-inf`` (a window whose real
  elements are all ``-inf`` would tie with a pad).
- ``softmax_cross_entropy`` with probability labels or label smoothing:
  ``SoftmaxCrossEntropyLoss`` takes class indices only and has no label smoothing.

Findings (ONNX Runtime 1.32, CPU; tests in conformance/test_framework_bugs.py)
-------------------------------------------------------------------------------
- ``Sigmoid`` is accurate in absolute terms only (:data:`ABSOLUTE_ACCURACY`; pinned).
- Pooling output size: a window larger than the (padded) input gives one output where
  ONNX's formula and refcnn give none (ONNX Runtime truncates ``(n - e) / s`` toward zero
  instead of flooring it), or raises "Calculated output dimension is negative" (pinned).
- ``auto_pad`` SAME is not clamped: with the stride above the window (H = 3, k = 1, s = 3)
  the pad total is -2; ``AveragePool`` silently crops a row from each side (a wrong window),
  ``MaxPool`` raises "padding values must be non-negative" (pinned). ``Conv`` refuses
  dilation under ``auto_pad`` SAME ("Dilation not supported for AutoPadType::SAME_UPPER").
- Pooling rejects a pad equal to or larger than ``kernel_shape`` ("Pad should be smaller
  than kernel"), whatever the dilation, although every window still holds input: k = 2,
  d = 3, W = 3 under SAME has pads (1, 2).
- ``ConvTranspose`` checks ``output_padding < max(stride, dilation)`` (ONNX's and PyTorch's
  bound) and then refuses ``output_padding >= stride`` ("Computed output shape is
  inconsistent with input spatial dimensions. output_padding (1) may be too large for
  stride (1)").
- Not ONNX Runtime's, seen through it: onnx 1.23.2's shape inference gives ceil-mode
  pooling the window that starts in the end pad (W = 4, k = s = 2, pads (0, 1): 3 outputs),
  which ONNX Runtime's kernel and ONNX's reference evaluator drop (2 outputs); with static
  input shapes ONNX Runtime then warns "Expected shape from model ... does not match actual
  shape". The adapter's inputs have symbolic dimensions.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
from onnx import helper

from conformance.frameworks import NotExpressible
from conformance.frameworks._common import (
    Array,
    conv_transpose_sizes,
    is_channels_first,
    per_axis,
    spatial_sizes,
)
from refcnn.padding import AxisPads, normalize_padding, windows

NAME = "onnxruntime"
REQUIRES = "onnxruntime"
DISTRIBUTIONS = ("onnxruntime",)
DEVICES = ("cpu",)
LIMITS = {
    "float64 kernels": (
        "the CPU provider has no float64 Conv, ConvTranspose, AveragePool, GlobalMaxPool or "
        "GlobalAveragePool"
    ),
    "empty windows": (
        "Conv and ConvTranspose reject an empty output; pooling gives a window larger than "
        "the input one output (or raises) and rejects C = 0"
    ),
    "pads at the window size": (
        "pooling rejects pads >= kernel_shape: applied to the input (-inf, or zeros with "
        "count_include_pad=True), not expressible for count_include_pad=False and for max "
        "pooling of an input holding -inf"
    ),
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
    output_types: tuple[str, ...],
) -> ort.InferenceSession:
    # Inputs of known rank and dtype, every dimension symbolic: one session serves every
    # shape, and ONNX Runtime infers the outputs'.
    inputs = [
        helper.make_tensor_value_info(
            f"in{i}",
            helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
            [f"in{i}_{axis}" for axis in range(rank)],
        )
        for i, (dtype, rank) in enumerate(input_types)
    ]
    outputs = [
        helper.make_tensor_value_info(
            f"out{i}", helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), None
        )
        for i, dtype in enumerate(output_types)
    ]
    attrs: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in attributes}
    node = helper.make_node(
        op,
        [f"in{i}" for i in range(len(input_types))],
        [f"out{i}" for i in range(len(output_types))],
        **attrs,
    )
    graph = helper.make_graph([node], op, inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _run_all(
    op: str, inputs: Sequence[Array], output_types: Sequence[str], **attributes: Any
) -> list[Array]:
    """Run one ONNX node on ``inputs``; one result per entry of ``output_types``."""
    types = tuple((str(a.dtype), a.ndim) for a in inputs)
    try:
        session = _session(op, _attribute_key(attributes), types, tuple(output_types))
    except ort.capi.onnxruntime_pybind11_state.NotImplemented as exc:
        msg = f"onnxruntime {op} ({types[0][0]}): the CPU provider has no kernel for it"
        raise NotExpressible(msg, whole=True) from exc
    feeds = {f"in{i}": np.array(a, copy=False, order="C") for i, a in enumerate(inputs)}
    return [np.asarray(out) for out in session.run(None, feeds)]


def _run(op: str, inputs: Sequence[Array], **attributes: Any) -> Array:
    """Run one ONNX node on ``inputs``; the output has the first input's dtype."""
    (out,) = _run_all(op, inputs, [str(inputs[0].dtype)], **attributes)
    return out


# -- layouts and geometry -----------------------------------------------------------------------


def _to_channels_first(x: Array, channels_first: bool) -> Array:
    """``(N, *S, C)`` -> ONNX's ``(N, C, *S)`` (a transpose: no arithmetic)."""
    if channels_first:
        return x
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def _from_channels_first(y: Array, channels_first: bool) -> Array:
    if channels_first:
        return y
    return np.ascontiguousarray(np.moveaxis(y, 1, -1))


def _onnx_filter(w: Array) -> Array:
    """Transpose a ``(*K, I, O)`` filter into ONNX's ``(O, I, *K)``.

    The same permutation serves ``conv_transpose``: refcnn's ``(*K, C_out/groups, C_in)`` is
    ONNX's ``ConvTranspose`` weight ``(C_in, C_out/groups, *K)``.
    """
    rank = w.ndim - 2
    return np.ascontiguousarray(np.transpose(w, (rank + 1, rank, *range(rank))))


def _onnx_pads(pads: Sequence[tuple[int, int]]) -> list[int]:
    """ONNX's ``pads``: every axis's begin, then every axis's end."""
    return [before for before, _ in pads] + [after for _, after in pads]


# -- conv ---------------------------------------------------------------------------------------


def conv(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> Array:
    """See refcnn.conv (ONNX ``Conv`` with explicit ``pads``; module docstring)."""
    rank = x.ndim - 2
    channels_first = is_channels_first(data_format)
    stride, dilation = per_axis(strides, rank), per_axis(dilations, rank)
    kernel = tuple(int(k) for k in w.shape[:rank])
    mode = normalize_padding("conv", padding, rank)
    geometry = windows(spatial_sizes(x, channels_first), kernel, stride, dilation, mode)
    if 0 in geometry.out:
        msg = (
            f"onnxruntime conv{rank}d: empty output {geometry.out}: ONNX Runtime's Conv "
            "rejects it ('Invalid input shape')"
        )
        raise NotExpressible(msg)
    inputs = [_to_channels_first(x, channels_first), _onnx_filter(w)]
    if b is not None:
        inputs.append(b)
    y = _run(
        "Conv",
        inputs,
        kernel_shape=list(kernel),
        strides=list(stride),
        dilations=list(dilation),
        pads=_onnx_pads(geometry.pads),
        group=int(groups),
    )
    return _from_channels_first(y, channels_first)


def _transpose_plan(
    in_size: int, kernel: int, stride: int, dilation: int, before: int, size: int
) -> tuple[int, int, int]:
    """Plan one axis: ``(after pad, output_padding, zero inputs appended)`` for ONNX Runtime.

    With ``L = (in - 1)*s + (k - 1)*d + 1`` the full (unpadded) transposed length, refcnn's
    output is ``full[before : before + size]`` (zeros past ``L``), ONNX's
    ``full[before : L + output_padding - after]``. Where refcnn's window ends inside ``L``
    the end pad says it; past ``L`` by less than the stride, ``output_padding`` (ONNX
    Runtime refuses one of ``s`` or more: "Computed output shape is inconsistent"); further
    out, zero inputs appended to ``x`` lengthen ``L`` by ``s`` each (exact: they add
    nothing) and the end pad trims the rest.
    """
    full = (in_size - 1) * stride + (kernel - 1) * dilation + 1
    tail = before + size - full
    if tail <= 0:
        return -tail, 0, 0
    if tail < stride:
        return 0, tail, 0
    zeros = -(-tail // stride)
    return zeros * stride - tail, 0, zeros


def conv_transpose(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    output_shape: Sequence[int] | None = None,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    output_padding: int | Sequence[int] = 0,
    dilations: int | Sequence[int] = 1,
    groups: int = 1,
    data_format: str | None = None,
    method: str = "auto",  # refcnn's route choice: nothing to translate
) -> Array:
    """See refcnn.conv_transpose (ONNX ``ConvTranspose``, explicit pads; module docstring)."""
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
    if 0 in sizes or 0 in in_sizes:
        msg = (
            f"onnxruntime conv_transpose{rank}d: empty input or output {tuple(sizes)}: ONNX "
            "Runtime's ConvTranspose rejects it ('Computed output dimension is <= 0')"
        )
        raise NotExpressible(msg)
    plans = [
        _transpose_plan(in_sizes[a], kernel[a], stride[a], dilation[a], befores[a], sizes[a])
        for a in range(rank)
    ]
    xs = _to_channels_first(x, channels_first)
    if any(zeros for _, _, zeros in plans):
        xs = np.pad(xs, [(0, 0), (0, 0), *((0, zeros) for _, _, zeros in plans)])
    inputs = [xs, _onnx_filter(w)]
    if b is not None:
        inputs.append(b)
    y = _run(
        "ConvTranspose",
        inputs,
        kernel_shape=list(kernel),
        strides=list(stride),
        dilations=list(dilation),
        pads=_onnx_pads([(before, plan[0]) for before, plan in zip(befores, plans, strict=True)]),
        output_padding=[plan[1] for plan in plans],
        group=int(groups),
    )
    return _from_channels_first(y, channels_first)


# -- pooling ------------------------------------------------------------------------------------


class _Pool(NamedTuple):
    """A pooling call in ONNX's terms: its attributes and the pads ONNX Runtime cannot take."""

    channels_first: bool
    attributes: dict[str, Any]
    prepad: AxisPads  # the part of each pad at or past the window, applied to the input
    out: tuple[int, ...]  # refcnn's output size


def _pool(
    op: str,
    x: Array,
    ksize: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
    dilations: int | Sequence[int],
    ceil_mode: bool,
    data_format: str | None,
) -> _Pool:
    """Resolve a pooling call (pads from refcnn.padding) and refuse what ONNX Runtime rejects."""
    rank = x.ndim - 2
    channels_first = is_channels_first(data_format)
    kernel = per_axis(ksize, rank)
    stride = kernel if strides is None else per_axis(strides, rank)
    dilation = per_axis(dilations, rank)
    mode = normalize_padding(op, padding, rank)
    sizes = spatial_sizes(x, channels_first)
    geometry = windows(sizes, kernel, stride, dilation, mode, ceil_mode=bool(ceil_mode))
    channels = int(x.shape[1] if channels_first else x.shape[-1])
    if 0 in geometry.out:
        msg = (
            f"onnxruntime {op}: empty output {geometry.out}: ONNX Runtime 1.32's pooling "
            "gives a window larger than the input one output instead of none (its size "
            "formula truncates (n - e) / s toward zero where ONNX's floors it; see "
            "conformance/test_framework_bugs.py) or raises 'Calculated output dimension is "
            "negative'"
        )
        raise NotExpressible(msg)
    if channels == 0:
        msg = (
            f"onnxruntime {op}: C = 0: ONNX Runtime's pooling rejects it ('invalid channel count')"
        )
        raise NotExpressible(msg)
    # ONNX Runtime takes pads below the window size only ("Pad should be smaller than
    # kernel", whatever the dilation; SAME pads of a dilated window can reach it): the rest
    # of each pad is applied to the input by the caller.
    native = tuple(
        (min(b, k - 1), min(a, k - 1)) for (b, a), k in zip(geometry.pads, kernel, strict=True)
    )
    prepad = tuple((b - nb, a - na) for (b, a), (nb, na) in zip(geometry.pads, native, strict=True))
    # Under SAME refcnn's ceil mode changes nothing (out = ceil(n / s) already); with SAME's
    # pads written out, floor mode gives exactly that size.
    ceil = bool(ceil_mode) and not (isinstance(mode, str) and mode != "VALID")
    attributes = {
        "kernel_shape": list(kernel),
        "strides": list(stride),
        "dilations": list(dilation),
        "pads": _onnx_pads(native),
        "ceil_mode": int(ceil),
    }
    return _Pool(channels_first, attributes, prepad, geometry.out)


def _prepadded(x: Array, pool: _Pool, value: float) -> Array:
    """Apply the pads ONNX Runtime cannot take to a channels-first ``x`` (``value`` pads)."""
    if not any(b or a for b, a in pool.prepad):
        return x
    return np.pad(x, [(0, 0), (0, 0), *pool.prepad], constant_values=value)


def _cropped(y: Array, out: Sequence[int]) -> Array:
    """Keep refcnn's windows of a channels-first result.

    On a pre-padded input ONNX Runtime's ceil mode (drop a last window that starts in the
    end pad) cannot see the pre-padded part of that pad, so it may keep one window more.
    """
    if tuple(y.shape[2:]) == tuple(out):
        return y
    keys = (slice(None), slice(None), *(slice(0, n) for n in out))
    return y[keys]


def _unpadded_index(index: Array, pool: _Pool, sizes: Sequence[int]) -> Array:
    """Turn a flat index in the pre-padded spatial volume into one in the input's own."""
    padded = [n + b + a for n, (b, a) in zip(sizes, pool.prepad, strict=True)]
    result = np.zeros_like(index)
    rest = index
    scale = 1
    for axis in reversed(range(len(sizes))):
        coordinate = rest % padded[axis] - pool.prepad[axis][0]
        rest = rest // padded[axis]
        result += coordinate * scale
        scale *= sizes[axis]
    return result


def _max_pool(
    op: str,
    x: Array,
    ksize: int | Sequence[int],
    options: dict[str, Any],
    *,
    with_indices: bool,
) -> list[Array]:
    pool = _pool(op, x, ksize, **options)
    xs = _to_channels_first(x, pool.channels_first)
    sizes = spatial_sizes(xs, channels_first=True)
    padded = _prepadded(xs, pool, -np.inf)
    if padded is not xs and bool(np.isneginf(xs).any()):
        msg = (
            f"onnxruntime {op}: pads at or past the window size (which ONNX Runtime rejects) "
            "are applied as -inf, and x holds -inf: a window whose real elements are all "
            "-inf would tie with a pad"
        )
        raise NotExpressible(msg)
    types = [str(x.dtype), "int64"] if with_indices else [str(x.dtype)]
    outputs = _run_all("MaxPool", [padded], types, storage_order=0, **pool.attributes)
    outputs = [_cropped(y, pool.out) for y in outputs]
    if with_indices:
        # ONNX's Indices flatten the whole (N, C, *S) input, row-major (storage_order 0);
        # refcnn's argmax indexes the (n, c) spatial volume: the remainder by its size.
        index = outputs[1] % math.prod(spatial_sizes(padded, channels_first=True))
        outputs[1] = _unpadded_index(index, pool, sizes)
    return [_from_channels_first(y, pool.channels_first) for y in outputs]


def max_pool(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> Array:
    """See refcnn.max_pool (ONNX ``MaxPool``: padding never wins)."""
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    (y,) = _max_pool("max_pool", x, ksize, options, with_indices=False)
    return y


def max_pool_with_argmax(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> tuple[Array, Array]:
    """See refcnn.max_pool_with_argmax (``MaxPool``'s ``Indices`` mapped to the (n, c) volume)."""
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    y, index = _max_pool("max_pool_with_argmax", x, ksize, options, with_indices=True)
    return y, index


def _options(
    strides: Any, padding: Any, dilations: Any, ceil_mode: Any, data_format: Any
) -> dict[str, Any]:
    return {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "ceil_mode": bool(ceil_mode),
        "data_format": data_format,
    }


def avg_pool(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> Array:
    """See refcnn.avg_pool (ONNX ``AveragePool`` with ``count_include_pad``)."""
    op = "avg_pool"
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    pool = _pool(op, x, ksize, **options)
    if count_include_pad is False and any(b or a for b, a in pool.prepad):
        msg = (
            f"onnxruntime {op}: pads {pool.prepad} past what ONNX Runtime takes (below the "
            "window size: 'Pad should be smaller than kernel'); applied to the input they "
            "would count in the divisor of count_include_pad=False"
        )
        raise NotExpressible(msg)
    # count_include_pad=True: the divisor counts the taps inside the padded input, so zeros
    # applied to the input count as the pads they replace.
    xs = _prepadded(_to_channels_first(x, pool.channels_first), pool, 0.0)
    y = _run(
        "AveragePool",
        [xs],
        count_include_pad=int(bool(count_include_pad)),
        **pool.attributes,
    )
    return _from_channels_first(_cropped(y, pool.out), pool.channels_first)


# -- global pooling -----------------------------------------------------------------------------


def _global_pool(op: str, x: Array, data_format: str | None, keepdims: bool) -> Array:
    channels_first = is_channels_first(data_format)
    y = _run(op, [_to_channels_first(x, channels_first)])
    if not keepdims:
        return y.reshape(y.shape[0], y.shape[1])
    return _from_channels_first(y, channels_first)


def global_max_pool(x: Array, *, data_format: str | None = None, keepdims: bool = True) -> Array:
    """See refcnn.global_max_pool (ONNX ``GlobalMaxPool``; ``keepdims=False`` reshapes)."""
    return _global_pool("GlobalMaxPool", x, data_format, keepdims)


def global_avg_pool(x: Array, *, data_format: str | None = None, keepdims: bool = True) -> Array:
    """See refcnn.global_avg_pool (ONNX ``GlobalAveragePool``; ``keepdims=False`` reshapes)."""
    return _global_pool("GlobalAveragePool", x, data_format, keepdims)


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
