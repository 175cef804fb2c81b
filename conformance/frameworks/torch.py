"""PyTorch adapter: refcnn's API computed with torch on the CPU, NumPy arrays in and out.

Same names, signatures and conventions as :mod:`refcnn` (NHWC data, HWIO filters,
cross-correlation, TensorFlow argument names); the output dtype is the input dtype (float16,
float32 and float64 all run on the CPU). Only the framework-specific translation is
documented here; see the refcnn function of the same name for the semantics.

Translation
-----------
- Layout: NHWC -> NCHW (``permute(0, 3, 1, 2)``) and HWIO -> OIHW (``permute(3, 2, 0, 1)``)
  happen inside the autograd graph, so gradients come back in NHWC / HWIO directly.
- Padding: torch has no asymmetric SAME and rejects ``padding="same"`` with stride > 1, so
  the pads resolved by :mod:`refcnn.padding` are always applied with ``F.pad`` (zeros for conv
  and average pooling, ``-inf`` for max pooling) before a VALID op.
- ``avg_pool2d``: torch's own ``padding=``/``count_include_pad=`` when the pads are symmetric
  and ``pad <= kernel // 2`` (torch's limit); otherwise emulated: ``count_include_pad=True``
  is a VALID average over the zero-padded input (same divisor ``kh * kw``), ``False`` is a sum
  pool (``divisor_override=1``) over the zero-padded input divided by the number of real
  elements per window (``0 / 0 = NaN`` for a window lying wholly in explicit padding).
- Gradients: ``torch.autograd.grad`` of torch's forward op with the caller's upstream
  gradient; inputs whose values do not matter (linear ops) are zeros. The bias gradients come
  from the op's own backward (``conv2d_backward_bias`` differentiates a 1x1 ``conv2d`` with
  that bias); ``softmax_backward``/``softmax_jacobian`` call ``torch._softmax_backward_data``,
  the kernel autograd runs for softmax, which reads the softmax output p directly (going
  through ``z = log p`` would perturb p by ``eps |log p|`` before torch runs at all).
- ``softmax_cross_entropy``: ``F.cross_entropy`` with the class axis moved to dim 1 (1-D logits
  are torch's unbatched form); ``ignore_index=None`` is passed as torch's default ``-100``.
- Determinism: deterministic algorithms, one intra-op thread, TF32 off (set at import).

Findings (torch 2.13.0, CPU)
----------------------------
- Max-pool gradient ties: exactly one element per window gets the gradient, the first maximum
  in row-major window order, as in refcnn (``MAX_POOL_TIE_RULE = "first"``; checked on
  all-ones and random small-integer inputs, float16/32/64, overlapping windows).
- NaN in max pool: NaN wins: the window's output is NaN and its gradient goes to the *last*
  NaN of the window in row-major order. An all ``-inf`` window gives ``-inf``; its gradient
  goes to the first element, which may be a ``-inf`` pad (the gradient is then dropped).
- ``xlogy`` backward w.r.t. ``p`` is ``y / p``, NaN at ``y == p == 0``: ``cross_entropy_backward``
  returns NaN there (TensorFlow returns 0) although the forward uses ``0 * log 0 = 0``.
- Empty cases (no crash found; batch ``N == 0`` works everywhere). Raised as
  :class:`~conformance.frameworks.NotExpressible`: an empty conv/pool output window grid
  (kernel larger than the padded input: torch raises), ``O == 0`` (conv2d raises), ``C == 0``
  (conv2d silently returns a wrong-shaped ``(N, 0, H', W')`` output; pooling raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as tnf

from conformance.frameworks import NotExpressible
from conformance.frameworks._common import (
    Array,
    conv_geometry,
    flatten_shape,
    pair,
    pool_geometry,
    to_numpy,
    window_counts,
)
from refcnn.padding import Geometry

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

# Reproducible, full-precision results: the conformance suite compares against a float64
# oracle, so no nondeterministic kernels, no thread-count-dependent reductions and no TF32.
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


# -- tensors in and out -------------------------------------------------------------------------


def _const(a: Array) -> Any:
    # torch.tensor copies: the caller's array is never shared, hence never modified.
    return torch.tensor(np.asarray(a))


def _leaf(a: Array) -> Any:
    return _const(a).requires_grad_(True)


def _zeros(shape: Sequence[int], dtype: np.dtype[Any]) -> Any:
    return torch.zeros(
        tuple(int(n) for n in shape), dtype=getattr(torch, dtype.name)
    ).requires_grad_(True)


def _out(t: Any, dtype: np.dtype[Any]) -> Array:
    return to_numpy(t.detach().numpy(), dtype)


def _grads(y: Any, sources: Sequence[Any], dy: Any) -> tuple[Any, ...]:
    return tuple(torch.autograd.grad(y, list(sources), grad_outputs=dy))


def _nchw(x: Any) -> Any:
    # A real copy in NCHW order, not .contiguous(): with C = 1 the permuted view already
    # counts as contiguous, keeps channels-last strides, and torch 2.13's float32 CPU conv2d
    # then returns wrong values (x = arange(24).reshape(1, 6, 4, 1), w = ones(4, 4, 1, 1),
    # stride (1, 3): [120, 162, 248] instead of [120, 184, 248]). Found by the thorough
    # profile; the fresh copy is what a user building NCHW tensors would pass.
    return x.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


def _nhwc(y: Any) -> Any:
    return y.permute(0, 2, 3, 1)


def _pad_arg(geometry: Geometry) -> tuple[int, int, int, int]:
    (top, bottom), (left, right) = geometry.pads
    return (left, right, top, bottom)  # F.pad lists the last axis first


# -- conv -------------------------------------------------------------------------------------


def _conv_geometry(
    op: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: Any,
    dilations: int | Sequence[int],
) -> Geometry:
    _, geometry = conv_geometry(op, x_shape, w_shape, strides, padding, dilations)
    if geometry.out_h == 0 or geometry.out_w == 0:
        msg = (
            f"torch {op}: empty output (out_h, out_w) = {geometry.out_hw}: torch's conv2d "
            "rejects a kernel larger than the padded input"
        )
        raise NotExpressible(msg)
    if w_shape[3] == 0:
        msg = f"torch {op}: O = 0 output channels: torch's conv2d rejects an empty filter"
        raise NotExpressible(msg)
    if w_shape[2] == 0:
        msg = (
            f"torch {op}: C = 0 input channels: torch's conv2d returns a wrong-shaped "
            "(N, 0, H', W') output instead of (N, O, H', W')"
        )
        raise NotExpressible(msg)
    return geometry


def _conv(
    x: Any,
    w: Any,
    b: Any,
    geometry: Geometry,
    strides: int | Sequence[int],
    dilations: int | Sequence[int],
) -> Any:
    xp = tnf.pad(_nchw(x), _pad_arg(geometry))
    oihw = w.permute(3, 2, 0, 1).clone(memory_format=torch.contiguous_format)
    return _nhwc(tnf.conv2d(xp, oihw, b, stride=pair(strides), dilation=pair(dilations)))


def conv2d(
    x: Array,
    w: Array,
    b: Array | None = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Array:
    """See refcnn.conv2d (zero ``F.pad`` then a VALID ``F.conv2d``)."""
    geometry = _conv_geometry("conv2d", x.shape, w.shape, strides, padding, dilations)
    bias = None if b is None else _const(b)
    return _out(_conv(_const(x), _const(w), bias, geometry, strides, dilations), x.dtype)


def conv2d_backward_input(
    dy: Array,
    w: Array,
    input_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Array:
    """See refcnn.conv2d_backward_input (autograd of conv2d at a zero input)."""
    op = "conv2d_backward_input"
    geometry = _conv_geometry(op, input_shape, w.shape, strides, padding, dilations)
    x = _zeros(input_shape, dy.dtype)
    y = _conv(x, _const(w), None, geometry, strides, dilations)
    (dx,) = _grads(y, [x], _const(dy))
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
    """See refcnn.conv2d_backward_filter (autograd of conv2d at a zero filter)."""
    op = "conv2d_backward_filter"
    geometry = _conv_geometry(op, x.shape, filter_shape, strides, padding, dilations)
    w = _zeros(filter_shape, dy.dtype)
    y = _conv(_const(x), w, None, geometry, strides, dilations)
    (dw,) = _grads(y, [w], _const(dy))
    return _out(dw, dy.dtype)


def conv2d_backward_bias(dy: Array) -> Array:
    """See refcnn.conv2d_backward_bias (autograd of a 1x1 conv2d's bias, zero input/filter)."""
    n, out_h, out_w, o = dy.shape
    if out_h == 0 or out_w == 0 or o == 0:
        msg = (
            f"torch conv2d_backward_bias: dy shape {dy.shape}: torch's conv2d cannot produce "
            "an output with an empty spatial or channel dim"
        )
        raise NotExpressible(msg)
    x = torch.zeros((n, 1, out_h, out_w), dtype=getattr(torch, dy.dtype.name))
    w = torch.zeros((o, 1, 1, 1), dtype=x.dtype)
    b = _zeros((o,), dy.dtype)
    y = _nhwc(tnf.conv2d(x, w, b))
    (db,) = _grads(y, [b], _const(dy))
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
    """See refcnn.conv2d_backward (one autograd pass through conv2d with a zero bias)."""
    geometry = _conv_geometry("conv2d_backward", x.shape, w.shape, strides, padding, dilations)
    xt, wt, b = _leaf(x), _leaf(w), _zeros((w.shape[3],), dy.dtype)
    y = _conv(xt, wt, b, geometry, strides, dilations)
    dx, dw, db = _grads(y, [xt, wt, b], _const(dy))
    return _out(dx, dy.dtype), _out(dw, dy.dtype), _out(db, dy.dtype)


# -- pooling ----------------------------------------------------------------------------------


def _pool_geometry(
    op: str,
    x_shape: Sequence[int],
    ksize: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
) -> Geometry:
    _, geometry = pool_geometry(op, x_shape, ksize, strides, padding)
    if geometry.out_h == 0 or geometry.out_w == 0 or x_shape[3] == 0:
        msg = (
            f"torch {op}: empty output (out_h, out_w, C) = "
            f"{(*geometry.out_hw, int(x_shape[3]))}: torch's pooling rejects an empty "
            "non-batch dim ('Output size is too small')"
        )
        raise NotExpressible(msg)
    return geometry


def _max_pool(
    x: Any, geometry: Geometry, ksize: int | Sequence[int], strides: int | Sequence[int] | None
) -> Any:
    xp = tnf.pad(_nchw(x), _pad_arg(geometry), value=-np.inf)
    stride = pair(ksize if strides is None else strides)
    return _nhwc(tnf.max_pool2d(xp, pair(ksize), stride))


def _avg_pool(
    x: Any,
    geometry: Geometry,
    ksize: int | Sequence[int],
    strides: int | Sequence[int] | None,
    *,
    count_include_pad: bool,
) -> Any:
    kernel, stride = pair(ksize), pair(ksize if strides is None else strides)
    (top, bottom), (left, right) = geometry.pads
    native = top == bottom <= kernel[0] // 2 and left == right <= kernel[1] // 2
    if native:
        y = tnf.avg_pool2d(
            _nchw(x), kernel, stride, padding=(top, left), count_include_pad=count_include_pad
        )
        return _nhwc(y)
    xp = tnf.pad(_nchw(x), _pad_arg(geometry))
    if count_include_pad:
        return _nhwc(tnf.avg_pool2d(xp, kernel, stride))
    sums = tnf.avg_pool2d(xp, kernel, stride, divisor_override=1)
    counts = window_counts((x.shape[1], x.shape[2]), geometry, kernel, stride)
    return _nhwc(sums / torch.tensor(counts, dtype=x.dtype))


def max_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Array:
    """See refcnn.max_pool2d (``-inf`` ``F.pad`` then a VALID ``F.max_pool2d``)."""
    geometry = _pool_geometry("max_pool2d", x.shape, ksize, strides, padding)
    return _out(_max_pool(_const(x), geometry, ksize, strides), x.dtype)


def max_pool2d_backward(
    dy: Array,
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Array:
    """See refcnn.max_pool2d_backward (autograd at ``x``; ties: ``MAX_POOL_TIE_RULE``)."""
    geometry = _pool_geometry("max_pool2d_backward", x.shape, ksize, strides, padding)
    xt = _leaf(x)
    (dx,) = _grads(_max_pool(xt, geometry, ksize, strides), [xt], _const(dy))
    return _out(dx, dy.dtype)


def avg_pool2d(
    x: Array,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """See refcnn.avg_pool2d (torch's own padding when it can, else emulated; module doc)."""
    geometry = _pool_geometry("avg_pool2d", x.shape, ksize, strides, padding)
    y = _avg_pool(_const(x), geometry, ksize, strides, count_include_pad=count_include_pad)
    return _out(y, x.dtype)


def avg_pool2d_backward(
    dy: Array,
    input_shape: Sequence[int],
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Array:
    """See refcnn.avg_pool2d_backward (autograd of avg_pool2d at a zero input)."""
    geometry = _pool_geometry("avg_pool2d_backward", input_shape, ksize, strides, padding)
    x = _zeros(input_shape, dy.dtype)
    y = _avg_pool(x, geometry, ksize, strides, count_include_pad=count_include_pad)
    (dx,) = _grads(y, [x], _const(dy))
    return _out(dx, dy.dtype)


# -- flatten and dense ------------------------------------------------------------------------


def flatten(x: Array, axis: int = 1) -> Array:
    """See refcnn.flatten (``reshape`` to ONNX Flatten's 2-D shape)."""
    return _out(_const(x).reshape(flatten_shape(x.shape, axis)), x.dtype)


def flatten_backward(dy: Array, input_shape: Sequence[int], axis: int = 1) -> Array:
    """See refcnn.flatten_backward (autograd of the reshape)."""
    x = _zeros(input_shape, dy.dtype)
    (dx,) = _grads(x.reshape(flatten_shape(tuple(input_shape), axis)), [x], _const(dy))
    return _out(dx, dy.dtype)


def dense(x: Array, w: Array, b: Array | None = None) -> Array:
    """See refcnn.dense (``F.linear`` with the (out, in) weight ``w.T``)."""
    bias = None if b is None else _const(b)
    return _out(tnf.linear(_const(x), _const(w).t(), bias), x.dtype)


def dense_backward(dy: Array, x: Array, w: Array) -> tuple[Array, Array, Array]:
    """See refcnn.dense_backward (autograd of ``F.linear`` with a zero bias)."""
    xt, wt, b = _leaf(x), _leaf(w), _zeros((w.shape[1],), dy.dtype)
    dx, dw, db = _grads(tnf.linear(xt, wt.t(), b), [xt, wt, b], _const(dy))
    return _out(dx, dy.dtype), _out(dw, dy.dtype), _out(db, dy.dtype)


# -- activations ------------------------------------------------------------------------------


def _activation_backward(function: Any, dy: Array, x: Array) -> Array:
    xt = _leaf(x)
    (dx,) = _grads(function(xt), [xt], _const(dy))
    return _out(dx, dy.dtype)


def relu(x: Array) -> Array:
    """See refcnn.relu (``torch.relu``)."""
    return _out(torch.relu(_const(x)), x.dtype)


def relu_backward(dy: Array, x: Array) -> Array:
    """See refcnn.relu_backward (autograd of ``torch.relu`` at ``x``; 0 at ``x == 0``)."""
    return _activation_backward(torch.relu, dy, x)


def sigmoid(x: Array) -> Array:
    """See refcnn.sigmoid (``torch.sigmoid``)."""
    return _out(torch.sigmoid(_const(x)), x.dtype)


def sigmoid_backward(dy: Array, x: Array) -> Array:
    """See refcnn.sigmoid_backward (autograd of ``torch.sigmoid`` at ``x``)."""
    return _activation_backward(torch.sigmoid, dy, x)


def tanh(x: Array) -> Array:
    """See refcnn.tanh (``torch.tanh``)."""
    return _out(torch.tanh(_const(x)), x.dtype)


def tanh_backward(dy: Array, x: Array) -> Array:
    """See refcnn.tanh_backward (autograd of ``torch.tanh`` at ``x``)."""
    return _activation_backward(torch.tanh, dy, x)


# -- softmax ----------------------------------------------------------------------------------


def softmax(z: Array, axis: int = -1) -> Array:
    """See refcnn.softmax (``torch.softmax``)."""
    return _out(torch.softmax(_const(z), dim=axis), z.dtype)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """See refcnn.log_softmax (``torch.log_softmax``)."""
    return _out(torch.log_softmax(_const(z), dim=axis), z.dtype)


def _softmax_vjp(dp: Any, p: Any, dim: int) -> Any:
    # The kernel torch's autograd runs for softmax: it reads the softmax *output*, so it can
    # take p as given. Recovering logits as log p instead and differentiating softmax(log p)
    # perturbs p by ~eps*|log p| before the kernel ever runs, an error of the adapter's
    # making that the tolerance policy rightly does not allow.
    return torch._softmax_backward_data(dp, p, dim, p.dtype)


def softmax_jacobian(p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_jacobian (row i is torch's softmax VJP of ``e_i`` at ``p``)."""
    pt = _const(np.moveaxis(p, axis, -1))
    k = pt.shape[-1]
    if k == 0:
        return np.zeros((*pt.shape, 0), dtype=p.dtype)
    rows = []
    for i in range(k):
        basis = torch.zeros_like(pt)
        basis[..., i] = 1
        rows.append(_softmax_vjp(basis, pt, -1))
    return _out(torch.stack(rows, dim=-2), p.dtype)


def softmax_backward(dp: Array, p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_backward (``torch._softmax_backward_data``, autograd's kernel)."""
    return _out(_softmax_vjp(_const(dp), _const(p), axis), dp.dtype)


# -- losses -----------------------------------------------------------------------------------


def _reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def _cross_entropy(p: Any, y: Array, axis: int, reduction: str, eps: float | None) -> Any:
    clamped = p if eps is None else torch.clamp(p, min=eps, max=1.0)
    labels = _const(y)
    # torch.xlogy(0, 0) is 0 but its gradient in p is y / p = 0 / 0 = NaN (torch 2.13), so
    # p is replaced by 1 where y == 0, the usual idiom: the loss there is 0 either way and
    # its derivative, which refcnn defines as 0, no longer goes through 0 / 0.
    safe = torch.where(labels == 0, torch.ones_like(clamped), clamped)
    return _reduce(-torch.xlogy(labels, safe).sum(dim=axis), reduction)


def cross_entropy(
    p: Array,
    y: Array,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Array:
    """See refcnn.cross_entropy (``torch.xlogy``: 0 * log 0 = 0; ``torch.clamp`` for eps)."""
    return _out(_cross_entropy(_const(p), y, axis, reduction, eps), p.dtype)


def cross_entropy_backward(
    p: Array,
    y: Array,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Array:
    """See refcnn.cross_entropy_backward (autograd; NaN at ``y == p == 0``, module doc)."""
    pt = _leaf(p)
    loss = _cross_entropy(pt, y, axis, reduction, eps)
    (dp,) = _grads(loss, [pt], torch.ones_like(loss))
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
    batched = logits.ndim >= 2  # 1-D logits (K,) are torch's unbatched form, class dim 0
    scores = torch.movedim(logits, axis, 1) if batched else logits
    if labels.dtype.kind == "f":  # class probabilities, same shape as the logits
        target = torch.movedim(_const(labels), axis, 1) if batched else _const(labels)
    else:  # class indices: the logits' shape without the class axis, as torch expects
        target = _const(labels.astype(np.int64))
    return tnf.cross_entropy(
        scores,
        target,
        weight=None if weights is None else _const(weights),
        ignore_index=-100 if ignore_index is None else ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


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
    """See refcnn.softmax_cross_entropy (``F.cross_entropy``, class axis moved to dim 1)."""
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
    """See refcnn.softmax_cross_entropy_backward (autograd of ``F.cross_entropy``)."""
    z = _leaf(logits)
    loss = _softmax_cross_entropy(
        z, labels, axis, reduction, weights, ignore_index, label_smoothing
    )
    (dz,) = _grads(loss, [z], torch.ones_like(loss))
    return _out(dz, logits.dtype)
