"""MyGrad's forwards behind :mod:`conformance.adapt`, in the shape the frameworks' Adapter takes.

Two layers, each written once:

- PyTorch-style functions on MyGrad tensors (NCHW, OIHW, symmetric padding), each a thin
  call of ``mygrad.nnet`` (``conv_nd``, ``max_pool``, ``relu``, ``sigmoid``, ``softmax``,
  ``logsoftmax``, ``softmax_crossentropy``) or of MyGrad's array functions (``mygrad.tanh``,
  ``mygrad.matmul``); a case MyGrad's API cannot say raises ``NotImplementedError``;
- :func:`conformance.adapt.torch_style` turns them into refcnn's names and layouts. Its
  transposes are ``np.transpose``, which MyGrad tensors implement, so the graph runs
  through them.

:mod:`conformance.peers.mygrad_nnet` hands this module to
:class:`conformance.frameworks.Adapter`, which derives every backward function from these
forwards with :func:`vjp` (MyGrad's ``Tensor.backward``), as it does for the frameworks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import mygrad
import mygrad.nnet
import numpy as np

from conformance.adapt import torch_style
from conformance.frameworks._common import Array

# MyGrad ships partial annotations (Tensor is not re-exported as typed); it is used here as
# an untyped library, whether or not it is installed where mypy runs.
mg: Any = mygrad

#: What MyGrad's API cannot say, by topic (for the report).
LIMITS = {
    "pooling": "mygrad.nnet.max_pool has no padding, dilation, ceil mode or indices "
    "(no max_pool_with_argmax); MyGrad has no average or global pooling",
    "groups": "mygrad.nnet.conv_nd has no groups; MyGrad has no transposed convolution",
    "tiling": "MyGrad's conv_nd and max_pool require windows that tile the (padded) input "
    "exactly ((n - e) % s == 0, n >= e); refcnn drops leftover rows and allows empty outputs",
    "losses": "mygrad.nnet.softmax_crossentropy is the mean over (N, K) scores with class "
    "indices (no weights, ignored index, smoothing or probability labels); no cross-entropy "
    "of probabilities",
    "softmax_backward": "the API gives p = softmax(z), and MyGrad differentiates softmax at z",
}


# -- PyTorch-style functions on MyGrad tensors --------------------------------------------------


def _check_tiling(
    op: str, sizes: Sequence[int], extents: Sequence[int], strides: Sequence[int]
) -> None:
    # MyGrad places windows only where they tile the (padded) input exactly, at least one,
    # and raises ("Stride and kernel dimensions are incompatible", "The dilated window must
    # fit") otherwise; refcnn and the frameworks drop leftover rows, and give an empty output
    # where no window fits.
    for n, e, s in zip(sizes, extents, strides, strict=True):
        if n < e or (n - e) % s:
            msg = (
                f"{op}: MyGrad's windows must tile the padded input exactly, at least one "
                f"window: n={n}, dilated window e={e}, stride s={s}"
            )
            raise NotImplementedError(msg)


def _per_axis(value: int | Sequence[int], rank: int) -> tuple[int, ...]:
    if isinstance(value, int | np.integer):
        return (int(value),) * rank
    return tuple(int(v) for v in value)


def _conv(rank: int) -> Callable[..., Any]:
    """PyTorch-style ``conv{rank}d`` on ``mygrad.nnet.conv_nd`` (no groups parameter)."""
    name = f"conv{rank}d"

    def conv(
        x: Any,
        w: Any,
        b: Any = None,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
    ) -> Any:
        pads, dilations = _per_axis(padding, rank), _per_axis(dilation, rank)
        strides = _per_axis(stride, rank)
        _check_tiling(
            name,
            [n + 2 * p for n, p in zip(x.shape[2:], pads, strict=True)],
            [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)],
            strides,
        )
        y = mg.nnet.conv_nd(x, w, stride=strides, padding=pads, dilation=dilations)
        return y if b is None else y + mg.reshape(b, (1, -1, *(1,) * rank))

    conv.__name__ = conv.__qualname__ = name
    return conv


def _max_pool(rank: int) -> Callable[..., Any]:
    """PyTorch-style ``max_pool{rank}d`` on ``mygrad.nnet.max_pool``.

    No padding, dilation, ceil_mode or indices: the wrapper refuses the cases that need them.
    """
    name = f"max_pool{rank}d"

    def max_pool(
        x: Any,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
    ) -> Any:
        if any(_per_axis(padding, rank)):
            msg = f"{name}: mygrad.nnet.max_pool has no padding, the case needs {padding!r}"
            raise NotImplementedError(msg)
        kernel = _per_axis(kernel_size, rank)
        steps = kernel if stride is None else _per_axis(stride, rank)
        _check_tiling(name, x.shape[2:], kernel, steps)
        return mg.nnet.max_pool(x, kernel, steps)

    max_pool.__name__ = max_pool.__qualname__ = name
    return max_pool


def _linear(x: Any, w: Any, b: Any = None) -> Any:
    y = mg.matmul(x, mg.transpose(w))
    return y if b is None else y + b


def _relu(x: Any) -> Any:
    return mg.nnet.relu(x)


def _sigmoid(x: Any) -> Any:
    return mg.nnet.sigmoid(x)


def _tanh(x: Any) -> Any:
    return mg.tanh(x)


def _softmax(x: Any, dim: int) -> Any:
    return mg.nnet.softmax(x, axis=dim)


def _log_softmax(x: Any, dim: int) -> Any:
    return mg.nnet.logsoftmax(x, axis=dim)


def _cross_entropy(logits: Any, target: Array, reduction: str = "mean") -> Any:
    # No weight, ignore_index or label_smoothing parameter: conformance.adapt refuses the
    # cases that need them.
    if logits.ndim != 2 or np.asarray(target).dtype.kind not in "iu" or reduction != "mean":
        msg = (
            "softmax_cross_entropy: mygrad.nnet.softmax_crossentropy is the mean over (N, K) "
            f"scores with class indices; the case has logits of shape {logits.shape}, "
            f"labels of dtype {np.asarray(target).dtype} and reduction {reduction!r}"
        )
        raise NotImplementedError(msg)
    return mg.nnet.softmax_crossentropy(logits, target)


_API = torch_style(
    **{f"conv{rank}d": _conv(rank) for rank in (1, 2, 3)},
    **{f"max_pool{rank}d": _max_pool(rank) for rank in (1, 2, 3)},
    linear=_linear,
    relu=_relu,
    sigmoid=_sigmoid,
    tanh=_tanh,
    softmax=_softmax,
    log_softmax=_log_softmax,
    cross_entropy=_cross_entropy,
)

# refcnn's names, on MyGrad tensors: what conformance.frameworks.Adapter calls (it derives
# the backward functions from the N-d conv and max_pool; conv2d, max_pool3d, ... are the
# same computation, SameAs rows of the registry).
conv = _API.conv
max_pool = _API.max_pool
dense = _API.dense
relu = _API.relu
sigmoid = _API.sigmoid
tanh = _API.tanh
softmax = _API.softmax
log_softmax = _API.log_softmax
softmax_cross_entropy = _API.softmax_cross_entropy


# -- the Adapter's primitives ---------------------------------------------------------------------


def tensor(a: Array) -> Any:
    """Copy ``a`` into a MyGrad tensor (the caller's array stays apart)."""
    return mg.Tensor(np.array(a, copy=True))


def array(t: Any) -> Array:
    """Copy a MyGrad result into a fresh NumPy array."""
    return np.array(t.data if isinstance(t, mg.Tensor) else t, copy=True)


def vjp(f: Callable[..., Any], primals: Sequence[Any], cotangent: Any | None) -> list[Any]:
    """``Tensor.backward`` of ``f(*primals)`` for ``cotangent`` (None: a scalar loss's 1)."""
    leaves = [mg.Tensor(np.array(p.data, copy=True)) for p in primals]
    y = f(*leaves)
    y.backward(None if cotangent is None else np.asarray(cotangent.data))
    # A leaf the output does not depend on gets no gradient from MyGrad: its gradient is 0.
    return [np.zeros_like(p.data) if p.grad is None else p.grad for p in leaves]
