"""PyTorch adapter: refcnn's forward ops on torch tensors; the backwards derive from them.

Same names, signatures and conventions as :mod:`refcnn` (NHWC data, HWIO filters,
cross-correlation, TensorFlow argument names); the output dtype is the input dtype (float16,
float32 and float64 all run on the CPU). Only the framework-specific translation is
documented here; see the refcnn function of the same name for the semantics, and
:mod:`conformance.frameworks` for how every backward function is derived (one
``torch.autograd.grad`` call on the forward below, with the caller's upstream gradient).

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
- Gradients: derived (:mod:`conformance.frameworks`) by ``torch.autograd.grad`` of the
  forwards below. One override, a documented quirk: ``softmax_backward`` calls
  ``torch._softmax_backward_data``, the kernel autograd runs for softmax, which reads the
  softmax output p directly (going through ``z = log p`` would perturb p by ``eps |log p|``
  before torch runs at all); ``softmax_jacobian`` is built from it row by row.
- ``softmax_cross_entropy``: ``F.cross_entropy`` with the class axis moved to dim 1 (1-D logits
  are torch's unbatched form); ``ignore_index=None`` is passed as torch's default ``-100``.
- Determinism: deterministic algorithms, one intra-op thread, TF32 off (set by ``setup``;
  ``--allow-tf32`` turns TF32 on, on CUDA, to show its larger float32 errors).
- Device: ``--device cuda`` puts every tensor on the first CUDA device.

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

from collections.abc import Callable, Sequence
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
    window_counts,
)
from conformance.network import CLASSES, LR, MOMENTUM, Trajectory
from refcnn.padding import Geometry

NAME = "torch"
REQUIRES = "torch"
DISTRIBUTIONS = ("torch",)
DEVICES = ("cpu", "cuda")
LIMITS = {
    "empty windows": "torch's conv and pooling reject an empty output grid, O = 0 and C = 0",
}

#: Which element of a max-pool window receives the gradient when several equal the maximum.
MAX_POOL_TIE_RULE = "first"

_DEVICE = torch.device("cpu")


def setup(device: str, *, allow_tf32: bool) -> dict[str, str]:
    """Reproducible, full-precision results on ``device``; return what the report records.

    The conformance suite compares against a float64 oracle, so no nondeterministic
    kernels, no thread-count-dependent reductions and no TF32 unless asked for.
    """
    global _DEVICE  # noqa: PLW0603 - one device per test session
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
    info = {"version": str(torch.__version__)}
    if device == "cuda":
        if not torch.cuda.is_available():
            msg = "torch.cuda.is_available() is False"
            raise RuntimeError(msg)
        _DEVICE = torch.device("cuda", 0)
        cudnn: Any = torch.backends.cudnn  # untyped in torch's stubs
        info |= {
            "device": torch.cuda.get_device_name(_DEVICE),
            "cuda": str(torch.version.cuda),
            "cudnn": str(cudnn.version()),
            "tf32": "on" if allow_tf32 else "off",
        }
    else:
        _DEVICE = torch.device("cpu")
        info["device"] = "cpu"
    return info


# -- tensors in and out -------------------------------------------------------------------------


def tensor(a: Array) -> Any:
    """Copy ``a`` into a torch tensor on the session's device (the caller's array stays apart)."""
    return torch.tensor(np.asarray(a), device=_DEVICE)


def array(t: Any) -> Array:
    """Copy a torch result into a fresh NumPy array."""
    return np.array(t.detach().cpu().numpy(), copy=True)


def vjp(f: Callable[..., Any], primals: Sequence[Any], cotangent: Any | None) -> list[Any]:
    """Return ``torch.autograd.grad`` of ``f(*primals)`` for ``cotangent`` (None: ones)."""
    leaves = [p.detach().requires_grad_(True) for p in primals]
    y = f(*leaves)
    upstream = torch.ones_like(y) if cotangent is None else cotangent
    grads = torch.autograd.grad(y, leaves, grad_outputs=upstream, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads, strict=True)]


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
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: int | Sequence[int],
    padding: Any,
    dilations: int | Sequence[int],
) -> Geometry:
    _, geometry = conv_geometry("conv2d", x_shape, w_shape, strides, padding, dilations)
    if geometry.out_h == 0 or geometry.out_w == 0:
        msg = (
            f"torch conv2d: empty output (out_h, out_w) = {geometry.out_hw}: torch's conv2d "
            "rejects a kernel larger than the padded input"
        )
        raise NotExpressible(msg)
    if w_shape[3] == 0:
        msg = "torch conv2d: O = 0 output channels: torch's conv2d rejects an empty filter"
        raise NotExpressible(msg)
    if w_shape[2] == 0:
        msg = (
            "torch conv2d: C = 0 input channels: torch's conv2d returns a wrong-shaped "
            "(N, 0, H', W') output instead of (N, O, H', W')"
        )
        raise NotExpressible(msg)
    return geometry


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d (zero ``F.pad`` then a VALID ``F.conv2d``)."""
    geometry = _conv_geometry(tuple(x.shape), tuple(w.shape), strides, padding, dilations)
    xp = tnf.pad(_nchw(x), _pad_arg(geometry))
    oihw = w.permute(3, 2, 0, 1).clone(memory_format=torch.contiguous_format)
    return _nhwc(tnf.conv2d(xp, oihw, b, stride=pair(strides), dilation=pair(dilations)))


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


def max_pool2d(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Any:
    """See refcnn.max_pool2d (``-inf`` ``F.pad`` then a VALID ``F.max_pool2d``)."""
    geometry = _pool_geometry("max_pool2d", tuple(x.shape), ksize, strides, padding)
    xp = tnf.pad(_nchw(x), _pad_arg(geometry), value=-np.inf)
    stride = pair(ksize if strides is None else strides)
    return _nhwc(tnf.max_pool2d(xp, pair(ksize), stride))


def avg_pool2d(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Any:
    """See refcnn.avg_pool2d (torch's own padding when it can, else emulated; module doc)."""
    geometry = _pool_geometry("avg_pool2d", tuple(x.shape), ksize, strides, padding)
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
    return _nhwc(sums / torch.tensor(counts, dtype=x.dtype, device=x.device))


# -- flatten and dense ------------------------------------------------------------------------


def flatten(x: Any, axis: int = 1) -> Any:
    """See refcnn.flatten (``reshape`` to ONNX Flatten's 2-D shape)."""
    return x.reshape(flatten_shape(tuple(x.shape), axis))


def dense(x: Any, w: Any, b: Any = None) -> Any:
    """See refcnn.dense (``F.linear`` with the (out, in) weight ``w.T``)."""
    return tnf.linear(x, w.t(), b)


# -- activations ------------------------------------------------------------------------------


def relu(x: Any) -> Any:
    """See refcnn.relu (``torch.relu``; its gradient is 0 at ``x == 0``)."""
    return torch.relu(x)


def sigmoid(x: Any) -> Any:
    """See refcnn.sigmoid (``torch.sigmoid``)."""
    return torch.sigmoid(x)


def tanh(x: Any) -> Any:
    """See refcnn.tanh (``torch.tanh``)."""
    return torch.tanh(x)


# -- softmax ----------------------------------------------------------------------------------


def softmax(z: Any, axis: int = -1) -> Any:
    """See refcnn.softmax (``torch.softmax``)."""
    return torch.softmax(z, dim=axis)


def log_softmax(z: Any, axis: int = -1) -> Any:
    """See refcnn.log_softmax (``torch.log_softmax``)."""
    return torch.log_softmax(z, dim=axis)


def _softmax_backward(dp: Array, p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_backward (``torch._softmax_backward_data``, autograd's kernel)."""
    pt = tensor(p)
    return array(torch._softmax_backward_data(tensor(dp), pt, axis, pt.dtype))


OVERRIDES = {
    "softmax_backward": (
        _softmax_backward,
        "torch._softmax_backward_data is the kernel autograd runs for softmax; it reads the "
        "softmax output p, which the API gives (recovering z = log p would perturb p by "
        "eps*|log p|)",
    ),
}


# -- losses -----------------------------------------------------------------------------------


def _reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "none":
        return per_sample
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def cross_entropy(
    p: Any,
    y: Any,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Any:
    """See refcnn.cross_entropy (``torch.xlogy``: 0 * log 0 = 0; ``torch.clamp`` for eps).

    ``torch.xlogy(0, 0)`` is 0 but its gradient in p is ``y / p = 0 / 0 = NaN`` (torch 2.13),
    so p is replaced by 1 where ``y == 0``, the usual idiom: the loss there is 0 either way
    and its derivative, which refcnn defines as 0, no longer goes through 0 / 0.
    """
    clamped = p if eps is None else torch.clamp(p, min=eps, max=1.0)
    safe = torch.where(y == 0, torch.ones_like(clamped), clamped)
    return _reduce(-torch.xlogy(y, safe).sum(dim=axis), reduction)


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
    """See refcnn.softmax_cross_entropy (``F.cross_entropy``, class axis moved to dim 1).

    1-D logits (K,) are torch's unbatched form (class dim 0); integer labels (class
    indices, NumPy) have the logits' shape without the class axis, as torch expects;
    ``ignore_index=None`` is passed as torch's default ``-100``.
    """
    batched = logits.ndim >= 2
    scores = torch.movedim(logits, axis, 1) if batched else logits
    if isinstance(labels, np.ndarray):  # class indices
        target = torch.tensor(labels.astype(np.int64), device=logits.device)
    else:  # class probabilities (a floating tensor), same shape as the logits
        target = torch.movedim(labels, axis, 1) if batched else labels
    return tnf.cross_entropy(
        scores,
        target,
        weight=weights,
        ignore_index=-100 if ignore_index is None else ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )


# -- network ----------------------------------------------------------------------------------


def train_network(initial: dict[str, Array], batches: list[tuple[Array, Array]]) -> Trajectory:
    """Train the network of :mod:`conformance.network` as torch modules with torch.optim.SGD."""
    dtype = getattr(torch, str(initial["dense/kernel"].dtype))
    nn: Any = torch.nn
    module: Any = nn.Module  # torch is untyped here (mypy override): subclass an Any

    class Net(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv2d = nn.Conv2d(1, 4, 3, padding=1, dtype=dtype)
            self.pool = nn.MaxPool2d(2)
            self.conv2d_1 = nn.Conv2d(4, 6, 2, dtype=dtype)
            self.dense = nn.Linear(3 * 3 * 6, CLASSES, dtype=dtype)

        def forward(self, x: Any) -> Any:
            h = torch.tanh(self.conv2d_1(self.pool(torch.relu(self.conv2d(x)))))
            # NCHW -> NHWC before flattening: refcnn's (and Keras') feature order.
            return self.dense(torch.flatten(h.permute(0, 2, 3, 1), 1))

    def to_torch(name: str, value: Array) -> Any:
        if name.endswith("/kernel") and value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        elif name.endswith("/kernel"):
            value = value.T  # (I, O) -> (O, I)
        return torch.from_numpy(np.ascontiguousarray(value)).to(_DEVICE)

    def from_torch(name: str, tensor: Any) -> Array:
        value: Array = tensor.detach().cpu().numpy().copy()
        if name.endswith("/kernel") and value.ndim == 4:
            return np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        if name.endswith("/kernel"):
            return np.ascontiguousarray(value.T)
        return value

    net = Net().to(_DEVICE)
    torch_params = {
        f"{layer}/{'kernel' if kind == 'weight' else 'bias'}": p
        for layer, module in (
            ("conv2d", net.conv2d),
            ("conv2d_1", net.conv2d_1),
            ("dense", net.dense),
        )
        for kind, p in (("weight", module.weight), ("bias", module.bias))
    }
    with torch.no_grad():
        for name, p in torch_params.items():
            p.copy_(to_torch(name, initial[name]))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    losses, params = [], []
    for x, labels in batches:
        optimizer.zero_grad()
        logits = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(_DEVICE))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels).to(_DEVICE))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        params.append({name: from_torch(name, p) for name, p in torch_params.items()})
    return Trajectory(losses, params)
