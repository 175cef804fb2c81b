"""PyTorch adapter: refcnn's forward ops on torch tensors; the backwards derive from them.

Same names, signatures and conventions as :mod:`refcnn` (channels-last data by default,
``(*K, C/groups, O)`` filters, cross-correlation, TensorFlow argument names); the output
dtype is the input dtype (float16, float32 and float64 all run on the CPU, except float16
``avg_pool3d``). Only the framework-specific translation is documented here; see the refcnn
function of the same name for the semantics, and :mod:`conformance.frameworks` for how every
backward function is derived (one ``torch.autograd.grad`` call on the forward below, with the
caller's upstream gradient). The 1-D/2-D/3-D functions (``conv2d``, ``max_pool3d``, ...) are
the N-d forwards below; only ``avg_pool3d`` is written out, to refuse float16 as a whole.

Translation
-----------
- Layout: channels-last ``(N, *S, C)`` -> torch's ``(N, C, *S)`` by a permute and a real copy
  (see Findings), inside the autograd graph, so gradients come back in the caller's layout;
  channels-first input (``data_format="NCW"/"NCHW"/"NCDHW"``) is passed as it is. Filters
  ``(*K, I, O)`` -> ``(O, I, *K)``; the same permutation turns ``conv_transpose``'s
  ``(*K, C_out/groups, C_in)`` into torch's ``(C_in, C_out/groups, *K)``. Groups (depthwise
  included) are torch's ``groups=``: both put output channel ``o`` in group ``o // (O/groups)``.
- Pads always come from :mod:`refcnn.padding`. ``conv``: ``padding="same"`` (torch's own,
  the odd pixel after as in TensorFlow) for SAME at stride 1; torch's symmetric
  ``padding=(p, ...)`` when every axis is symmetric; otherwise (SAME at stride > 1, which
  torch rejects, SAME_LOWER or explicit asymmetric pads: torch has no argument for them) a
  zero ``F.pad`` and a VALID conv.
- ``conv_transpose``: torch's output is ``full[P : L - P + output_padding]`` of the full
  transposed length ``L = (in - 1)*s + (K - 1)*d + 1``, refcnn's ``full[before : before + n]``
  (``n`` from ``output_shape`` or ONNX's rule, ``before`` the forward conv's leading pad). torch
  says it with ``padding=before``, ``output_padding=2*before + n - L`` where that is in
  ``[0, max(s, d))`` (symmetric pads, ``output_padding``, ``output_shape`` with a leftover, even
  SAME); otherwise (asymmetric pads, odd SAME) the adapter asks torch for the smallest window
  holding refcnn's (the symmetric part of the pads, ``output_padding`` for a tail past ``L``)
  and slices it: exact, a slice does no arithmetic.
- Pooling: torch's own ``padding=`` (with ``dilation``, ``ceil_mode``) when every axis is
  symmetric and ``pad <= ksize // 2`` (torch's limit, "padding should be at most half of
  kernel size", whatever the dilation); otherwise the pads are applied with ``F.pad`` (``-inf``
  for max, zeros for average) before an unpadded torch pool with the same ``ceil_mode``. On the
  pre-padded input torch's ceil-mode rule (drop a last window that starts in the end pad)
  cannot see the end pad, so it may keep one window more than refcnn and torch's own padded
  call: that window is sliced off. ``max_pool_with_argmax`` is ``return_indices=True``,
  already refcnn's convention (index in the ``(n, c)`` spatial volume, row-major); after a
  pre-pad the index is mapped back from the padded volume.
- Average pooling with emulated pads: ``count_include_pad=True`` is torch's average of the
  zero-padded input (its divisor, the taps inside that input, is refcnn's);
  ``count_include_pad=False`` is a sum pool (``divisor_override=1``; 1-D as a 1-row 2-D pool,
  since ``avg_pool1d`` has no ``divisor_override``) divided by each window's real elements. The
  sum is rounded once and the division once, as refcnn does.
- Global pools: ``F.adaptive_max_pool{1,2,3}d`` / ``F.adaptive_avg_pool{1,2,3}d`` with output
  size 1 (what users call; torch computes the 2-D and 3-D averages as a ``mean``, autograd
  shows ``MeanBackward1``, and the 1-D ones as the 2-D op); ``keepdims=False`` reshapes
  to ``(N, C)``.
- Gradients: derived (:mod:`conformance.frameworks`) by ``torch.autograd.grad`` of the
  forwards below. One override, a documented quirk: ``softmax_backward`` calls
  ``torch._softmax_backward_data``, the kernel autograd runs for softmax, which reads the
  softmax output p directly (going through ``z = log p`` would perturb p by ``eps |log p|``
  before torch runs at all); ``softmax_jacobian`` is built from it row by row.
- ``softmax_cross_entropy``: ``F.cross_entropy`` with the class axis moved to dim 1 (1-D logits
  are torch's unbatched form); ``ignore_index=None`` is passed as torch's default ``-100``.
- Determinism: deterministic algorithms, one intra-op thread, TF32 off (set by ``setup``;
  ``--allow-tf32`` turns TF32 on, on CUDA, to show its larger float32 errors). A backward
  torch refuses under deterministic mode (its documentation lists avg_pool3d and
  adaptive_max_pool2d on CUDA) is reported not expressible with torch's own message.
- Device: ``--device cuda`` puts every tensor on the first CUDA device (this adapter's own
  tensors are made on its input's device).

Not expressible (each raised as :class:`~conformance.frameworks.NotExpressible`, checked)
-----------------------------------------------------------------------------------------
- Dilated average pooling: ``avg_pool{1,2,3}d() got an unexpected keyword argument
  'dilation'``.
- float16 ``avg_pool3d`` on the CPU: ``"avg_pool3d_out_frame" not implemented for 'Half'``
  (``avg_pool3d`` refuses its float16 cases as a whole, ``avg_pool`` its 3-D ones).
- Empty results and axes (batch ``N == 0`` works everywhere): an empty conv output ("Kernel
  size can't be greater than actual input size"), an empty transposed-conv output or pooling
  output ("Output size is too small", "Invalid computed output size: 0"), ``O == 0`` (conv
  rejects the filter), ``C == 0`` (conv silently returns a wrong-shaped ``(N, 0, *out)``;
  max/avg/global-max pooling reject it).
- Max pooling with emulated ``-inf`` pads on an input holding ``-inf``: a window whose real
  elements are all ``-inf`` ties with a pad, and torch's first-maximum rule then picks the
  pad (index outside the input, gradient dropped; torch's own padding never reads a pad).

Findings (torch 2.13.0, CPU)
----------------------------
- float32 ``conv2d`` and ``conv3d`` (oneDNN) on an input with C = 1 and channels-last strides
  (the permuted view of an NHWC/NDHWC array counts as contiguous, so ``.contiguous()`` keeps
  it) return wrong values, which change with the thread count and between calls: x =
  arange(24).reshape(1, 6, 4, 1) as NCHW view, w = ones(1, 1, 4, 4), stride (1, 3) gives
  [120, 248, 156] (one thread) or [120, 162, 248] for [120, 184, 248]; float64, float16,
  ``conv1d`` and ``conv_transpose*`` are right, and so is the same call with oneDNN off
  (``torch.backends.mkldnn.flags(enabled=False)``) or on a real NCHW copy, which the adapter
  passes (tests in test_framework_bugs.py, pinned in test_pinned.py; pytorch#82060 was the
  same C = 1 oneDNN path with channels-last weights).
- ``avg_pool3d`` (alone: ``avg_pool1d/2d`` and ``max_pool3d`` accept it) rejects an input
  smaller than the window on some axis even when the padding makes it fit ("input image (T: 1
  H: 1 W: 1) smaller than kernel size (kT: 1 kH: 1 kW: 3)" for W = 1, ksize 3, padding 1):
  such cases take the emulated (``F.pad``) route.
- Max-pool gradient ties: exactly one element per window gets the gradient, the first maximum
  in row-major window order, as in refcnn (``MAX_POOL_TIE_RULE = "first"``; checked on
  all-ones and random small-integer inputs, float16/32/64, overlapping windows, 1-3 spatial
  axes, dilations, ceil mode, global max pooling).
- NaN in max pooling (a documented convention difference): NaN wins, as in refcnn, but
  torch's index and gradient go to the *last* NaN of the window in row-major order (refcnn:
  the first), in ``max_pool{1,2,3}d`` and ``adaptive_max_pool{1,2,3}d`` alike (test in
  test_framework_bugs.py). The suite draws no NaN inputs.
- ``xlogy`` backward w.r.t. ``p`` is ``y / p``, NaN at ``y == p == 0``: ``cross_entropy_backward``
  returns NaN there (TensorFlow returns 0) although the forward uses ``0 * log 0 = 0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn import functional as tnf

from conformance.frameworks import NotExpressible
from conformance.frameworks._common import (
    Array,
    conv_transpose_sizes,
    flatten_shape,
    is_channels_first,
    per_axis,
    spatial_sizes,
)
from conformance.network import CLASSES, LR, MOMENTUM, Trajectory
from refcnn.padding import AxisPads, Windows, normalize_padding, windows

NAME = "torch"
REQUIRES = "torch"
DISTRIBUTIONS = ("torch",)
DEVICES = ("cpu", "cuda")
LIMITS = {
    "empty windows": (
        "torch's conv, conv_transpose and pooling reject an empty output grid, O = 0 and "
        "C = 0 (conv returns a wrong-shaped result for C = 0)"
    ),
    "dilated average pooling": "avg_pool1d/2d/3d take no dilation",
    "float16 avg_pool3d": "no float16 CPU kernel ('avg_pool3d_out_frame' not implemented)",
    "-inf with emulated max-pool pads": (
        "pads torch's max pooling rejects (asymmetric, above half the window) are -inf "
        "F.pad: an input holding -inf could tie with a pad, so such cases are refused"
    ),
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
    try:
        grads = torch.autograd.grad(y, leaves, grad_outputs=upstream, allow_unused=True)
    except RuntimeError as exc:
        # Under use_deterministic_algorithms(True) torch refuses the backward kernels it has
        # no deterministic form of (on CUDA: avg_pool3d, adaptive_max_pool2d, ...): its own
        # refusal, for the case at hand, reported with its own words.
        if "does not have a deterministic implementation" in str(exc):
            msg = f"torch: {str(exc).split('. ', 1)[0]}"
            raise NotExpressible(msg) from exc
        raise
    return [torch.zeros_like(p) if g is None else g for p, g in zip(leaves, grads, strict=True)]


# -- layouts and geometry -----------------------------------------------------------------------

_CONV: dict[int, Callable[..., Any]] = {1: tnf.conv1d, 2: tnf.conv2d, 3: tnf.conv3d}
_CONV_TRANSPOSE: dict[int, Callable[..., Any]] = {
    1: tnf.conv_transpose1d,
    2: tnf.conv_transpose2d,
    3: tnf.conv_transpose3d,
}
_MAX_POOL: dict[int, Callable[..., Any]] = {1: tnf.max_pool1d, 2: tnf.max_pool2d, 3: tnf.max_pool3d}
_AVG_POOL: dict[int, Callable[..., Any]] = {1: tnf.avg_pool1d, 2: tnf.avg_pool2d, 3: tnf.avg_pool3d}
_ADAPTIVE_MAX_POOL: dict[int, Callable[..., Any]] = {
    1: tnf.adaptive_max_pool1d,
    2: tnf.adaptive_max_pool2d,
    3: tnf.adaptive_max_pool3d,
}
_ADAPTIVE_AVG_POOL: dict[int, Callable[..., Any]] = {
    1: tnf.adaptive_avg_pool1d,
    2: tnf.adaptive_avg_pool2d,
    3: tnf.adaptive_avg_pool3d,
}


def _channels(x: Any, channels_first: bool) -> int:
    return int(x.shape[1] if channels_first else x.shape[-1])


def _to_channels_first(x: Any, channels_first: bool) -> Any:
    """``(N, *S, C)`` -> ``(N, C, *S)`` inside the graph (gradients come back channels-last).

    A real copy in channels-first order, not ``.contiguous()``: with C = 1 the permuted view
    already counts as contiguous, keeps channels-last strides, and torch 2.13's float32 CPU
    conv2d and conv3d (oneDNN) then return wrong values (module docstring, Findings). The
    fresh copy is what a user building NCHW tensors would pass. Channels-first input arrives
    contiguous from :func:`tensor` and is passed as it is.
    """
    if channels_first:
        return x
    rank = x.ndim - 2
    return x.permute(0, rank + 1, *range(1, rank + 1)).clone(memory_format=torch.contiguous_format)


def _from_channels_first(y: Any, channels_first: bool) -> Any:
    if channels_first:
        return y
    rank = y.ndim - 2
    return y.permute(0, *range(2, rank + 2), 1)


def _torch_filter(w: Any) -> Any:
    """Permute a ``(*K, I, O)`` filter into torch's ``(O, I, *K)`` (a contiguous copy).

    The same permutation serves ``conv_transpose``: refcnn's ``(*K, C_out/groups, C_in)`` is
    torch's transposed-conv weight ``(C_in, C_out/groups, *K)``.
    """
    rank = w.ndim - 2
    return w.permute(rank + 1, rank, *range(rank)).clone(memory_format=torch.contiguous_format)


def _pad_arg(pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """``F.pad``'s argument: ``(before, after)`` pairs, the last spatial axis first."""
    return tuple(p for before_after in reversed(pads) for p in before_after)


def _crop(y: Any, starts: Sequence[int], sizes: Sequence[int]) -> Any:
    """Slice the spatial axes of a channels-first ``y`` to ``[start, start + size)``."""
    if all(start == 0 for start in starts) and tuple(y.shape[2:]) == tuple(sizes):
        return y
    index = tuple(slice(start, start + size) for start, size in zip(starts, sizes, strict=True))
    keys = (slice(None), slice(None), *index)
    return y[keys]


def _symmetric(pads: Sequence[tuple[int, int]]) -> tuple[int, ...] | None:
    """Return the per-axis pad when every axis is padded equally on both sides, else None."""
    if all(before == after for before, after in pads):
        return tuple(before for before, _ in pads)
    return None


# -- conv ---------------------------------------------------------------------------------------


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
    """See refcnn.conv (``F.conv1d/2d/3d``; padding as in the module docstring)."""
    rank = x.ndim - 2
    channels_first = is_channels_first(data_format)
    stride, dilation = per_axis(strides, rank), per_axis(dilations, rank)
    mode = normalize_padding("conv", padding, rank)
    geometry = windows(
        spatial_sizes(x, channels_first), tuple(w.shape[:rank]), stride, dilation, mode
    )
    if 0 in geometry.out:
        msg = (
            f"torch conv{rank}d: empty output {geometry.out}: torch rejects a kernel larger "
            "than the padded input ('Kernel size can't be greater than actual input size')"
        )
        raise NotExpressible(msg)
    if w.shape[-1] == 0:
        msg = f"torch conv{rank}d: O = 0 output channels: torch rejects an empty filter"
        raise NotExpressible(msg)
    if _channels(x, channels_first) == 0:
        msg = (
            f"torch conv{rank}d: C = 0 input channels: torch returns a wrong-shaped "
            "(N, 0, *out) output instead of (N, O, *out)"
        )
        raise NotExpressible(msg)
    xs = _to_channels_first(x, channels_first)
    symmetric = _symmetric(geometry.pads)
    pad: str | tuple[int, ...]
    if mode == "SAME" and all(s == 1 for s in stride):
        pad = "same"  # torch's own SAME: the odd pixel after, as TensorFlow's
    elif symmetric is not None:
        pad = symmetric
    else:  # asymmetric: torch's conv has no argument for it
        xs, pad = tnf.pad(xs, _pad_arg(geometry.pads)), (0,) * rank
    with warnings.catch_warnings():
        # torch's note that its asymmetric "same" pads a copy of the input (a cost, not a
        # value change; the pad is what is being compared).
        warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)
        y = _CONV[rank](
            xs, _torch_filter(w), b, stride=stride, padding=pad, dilation=dilation, groups=groups
        )
    return _from_channels_first(y, channels_first)


def _transpose_plan(
    in_size: int, kernel: int, stride: int, dilation: int, before: int, size: int
) -> tuple[int, int, int]:
    """Plan one axis: torch's ``padding``, ``output_padding`` and where to crop its output.

    With ``L = (in - 1)*s + (k - 1)*d + 1`` the full (unpadded) transposed length, refcnn's
    output is ``full[before : before + size]`` (zeros past ``L``) and torch's
    ``full[P : L - P + op]``. Natively ``P = before``, ``op = 2*before + size - L`` when
    ``0 <= op < max(s, d)`` (torch's limit); otherwise (asymmetric pads) torch computes the
    smallest window that holds refcnn's, and the adapter slices it: ``(P, op, crop)``.
    """
    full = (in_size - 1) * stride + (kernel - 1) * dilation + 1
    end_crop = full - before - size  # negative: refcnn's output runs past full
    limit = max(stride, dilation)
    if 0 <= before - end_crop < limit:
        return before, before - end_crop, 0
    pad = min(before, max(end_crop, 0))
    extra = max(0, pad - end_crop)
    assert extra < limit, (in_size, kernel, stride, dilation, before, size)
    return pad, extra, before - pad


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
    """See refcnn.conv_transpose (``F.conv_transpose1d/2d/3d``; module docstring)."""
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
    if 0 in sizes:
        msg = (
            f"torch conv_transpose{rank}d: empty output {tuple(sizes)}: torch rejects it "
            "('Output size is too small')"
        )
        raise NotExpressible(msg)
    plans = [
        _transpose_plan(in_sizes[a], kernel[a], stride[a], dilation[a], befores[a], sizes[a])
        for a in range(rank)
    ]
    y = _CONV_TRANSPOSE[rank](
        _to_channels_first(x, channels_first),
        _torch_filter(w),
        b,
        stride=stride,
        padding=tuple(p[0] for p in plans),
        output_padding=tuple(p[1] for p in plans),
        groups=groups,
        dilation=dilation,
    )
    return _from_channels_first(_crop(y, [p[2] for p in plans], sizes), channels_first)


# -- pooling ------------------------------------------------------------------------------------


class _Pool(NamedTuple):
    """A pooling call in torch's terms: per-axis window arguments and refcnn's geometry."""

    rank: int
    channels_first: bool
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    geometry: Windows
    native: tuple[int, ...] | None  # torch's own padding=, when it can say the pads

    @property
    def pads(self) -> AxisPads:
        """Pads ``(before, after)`` per spatial axis, as refcnn resolved them."""
        return self.geometry.pads


def _pool(
    op: str,
    x: Any,
    ksize: int | Sequence[int],
    strides: int | Sequence[int] | None,
    padding: Any,
    dilations: int | Sequence[int],
    ceil_mode: bool,
    data_format: str | None,
) -> _Pool:
    """Resolve a pooling call (pads from refcnn.padding) and refuse what torch rejects."""
    rank = x.ndim - 2
    channels_first = is_channels_first(data_format)
    kernel = per_axis(ksize, rank)
    stride = kernel if strides is None else per_axis(strides, rank)
    dilation = per_axis(dilations, rank)
    mode = normalize_padding(op, padding, rank)
    sizes = spatial_sizes(x, channels_first)
    geometry = windows(sizes, kernel, stride, dilation, mode, ceil_mode=ceil_mode)
    if 0 in geometry.out:
        msg = (
            f"torch {op}: empty output {geometry.out}: torch's pooling rejects it ('Output "
            "size is too small', 'Invalid computed output size: 0')"
        )
        raise NotExpressible(msg)
    if _channels(x, channels_first) == 0:
        raise NotExpressible(_no_channels(op))
    native = _symmetric(geometry.pads)
    # torch's limit: "padding should be at most half of kernel size" (not the dilated extent).
    if native is not None and any(2 * p > k for p, k in zip(native, kernel, strict=True)):
        native = None
    return _Pool(rank, channels_first, kernel, stride, dilation, geometry, native)


def _no_channels(op: str) -> str:
    return (
        f"torch {op}: C = 0 channels: torch's pooling rejects an empty channel axis "
        "('Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size', 'Expected "
        "input's non-batch dimensions to have positive length')"
    )


def _padded_volume_index(index: Any, pool: _Pool, sizes: tuple[int, ...]) -> Any:
    """Turn a flat index in the padded spatial volume into one in the input's own volume."""
    padded = [n + before + after for n, (before, after) in zip(sizes, pool.pads, strict=True)]
    result = torch.zeros_like(index)
    rest = index
    scale = 1
    for axis in reversed(range(pool.rank)):
        coordinate = rest % padded[axis] - pool.pads[axis][0]
        rest = rest // padded[axis]
        result = result + coordinate * scale
        scale *= sizes[axis]
    return result


def _max_pool(
    op: str,
    x: Any,
    ksize: int | Sequence[int],
    options: dict[str, Any],
    *,
    return_indices: bool,
) -> Any:
    pool = _pool(op, x, ksize, **options)
    xs = _to_channels_first(x, pool.channels_first)
    f = _MAX_POOL[pool.rank]
    arguments = {
        "kernel_size": pool.kernel,
        "stride": pool.stride,
        "dilation": pool.dilation,
        "ceil_mode": options["ceil_mode"],
        "return_indices": return_indices,
    }
    if pool.native is not None:
        result = f(xs, padding=pool.native, **arguments)
        return result if return_indices else (result,)
    if bool(torch.isneginf(x).any()):
        msg = (
            f"torch {op}: pads torch's pooling rejects (asymmetric or above half the window) "
            "are applied as -inf F.pad, and x holds -inf: a window whose real elements are "
            "all -inf would tie with a pad, and torch would route it to the pad"
        )
        raise NotExpressible(msg)
    padded = tnf.pad(xs, _pad_arg(pool.pads), value=-np.inf)
    result = f(padded, padding=0, **arguments)
    outputs = result if return_indices else (result,)
    # On the pre-padded input torch's ceil mode may keep a last window that starts in the end
    # pad (refcnn's and torch's own rule drop it): slice it off.
    zeros = (0,) * pool.rank
    cropped = tuple(_crop(t, zeros, pool.geometry.out) for t in outputs)
    if return_indices:
        sizes = spatial_sizes(xs, channels_first=True)
        return (cropped[0], _padded_volume_index(cropped[1], pool, sizes))
    return cropped


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
    """See refcnn.max_pool (``F.max_pool1d/2d/3d``; module docstring for the pads)."""
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    (y,) = _max_pool("max_pool", x, ksize, options, return_indices=False)
    return _from_channels_first(y, is_channels_first(data_format))


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
    """See refcnn.max_pool_with_argmax (``return_indices=True``: refcnn's own convention)."""
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    y, index = _max_pool("max_pool_with_argmax", x, ksize, options, return_indices=True)
    channels_first = is_channels_first(data_format)
    return (_from_channels_first(y, channels_first), _from_channels_first(index, channels_first))


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


def _real_counts(pool: _Pool, sizes: tuple[int, ...], like: Any) -> Any:
    """How many real (non-pad) elements each (undilated) window holds, ``(1, 1, *out)``."""
    counts = np.ones((1, 1), dtype=np.int64)
    for axis in range(pool.rank):
        starts = np.arange(pool.geometry.out[axis]) * pool.stride[axis] - pool.pads[axis][0]
        ends = starts + pool.kernel[axis]
        per_axis = np.clip(ends, 0, sizes[axis]) - np.clip(starts, 0, sizes[axis])
        counts = np.multiply.outer(counts, per_axis)
    return torch.tensor(counts, dtype=like.dtype, device=like.device)


def _window_sums(padded: Any, pool: _Pool, ceil_mode: bool) -> Any:
    """Sum pool of a zero-padded input: ``divisor_override=1`` (avg_pool1d has none: 2-D)."""
    if pool.rank == 1:
        sums = tnf.avg_pool2d(
            padded.unsqueeze(2),
            (1, pool.kernel[0]),
            (1, pool.stride[0]),
            ceil_mode=ceil_mode,
            divisor_override=1,
        )
        return sums.squeeze(2)
    return _AVG_POOL[pool.rank](
        padded, pool.kernel, pool.stride, ceil_mode=ceil_mode, divisor_override=1
    )


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
    """See refcnn.avg_pool (``F.avg_pool1d/2d/3d``; emulated pads in the module docstring)."""
    op = "avg_pool"
    options = _options(strides, padding, dilations, ceil_mode, data_format)
    pool = _pool(op, x, ksize, **options)
    if any(d != 1 for d in pool.dilation):
        msg = (
            f"torch avg_pool: dilations {pool.dilation}: torch's average pooling has no "
            f"dilation (avg_pool{pool.rank}d() got an unexpected keyword argument 'dilation')"
        )
        raise NotExpressible(msg)
    if pool.rank == 3 and _no_float16_avg_pool3d(x):
        raise NotExpressible(_NO_FLOAT16_AVG_POOL3D)
    xs = _to_channels_first(x, pool.channels_first)
    ceil = bool(ceil_mode)
    sizes = spatial_sizes(xs, channels_first=True)
    # torch's avg_pool3d (alone: avg_pool1d/2d and max_pool3d accept it) rejects an input
    # smaller than the window on some axis even when the padding makes it fit ("input image
    # (T: 1 H: 1 W: 1) smaller than kernel size"): those pads go the emulated route.
    small = pool.rank == 3 and any(n < k for n, k in zip(sizes, pool.kernel, strict=True))
    if pool.native is not None and not small:
        y = _AVG_POOL[pool.rank](
            xs,
            pool.kernel,
            pool.stride,
            padding=pool.native,
            ceil_mode=ceil,
            count_include_pad=bool(count_include_pad),
        )
        return _from_channels_first(y, pool.channels_first)
    padded = tnf.pad(xs, _pad_arg(pool.pads))
    zeros = (0,) * pool.rank
    if count_include_pad:
        # torch's divisor over the zero-padded input: the taps inside it, refcnn's rule.
        y = _AVG_POOL[pool.rank](padded, pool.kernel, pool.stride, ceil_mode=ceil)
        return _from_channels_first(_crop(y, zeros, pool.geometry.out), pool.channels_first)
    sums = _crop(_window_sums(padded, pool, ceil), zeros, pool.geometry.out)
    y = sums / _real_counts(pool, sizes, sums)
    return _from_channels_first(y, pool.channels_first)


_NO_FLOAT16_AVG_POOL3D = (
    'torch avg_pool3d: no float16 CPU kernel (\'"avg_pool3d_out_frame" not implemented for '
    "'Half'')"
)


def _no_float16_avg_pool3d(x: Any) -> bool:
    return bool(x.dtype == torch.float16 and x.device.type == "cpu")


def avg_pool3d(x: Any, ksize: int | Sequence[int], **options: Any) -> Any:
    """See refcnn.avg_pool3d: :func:`avg_pool`, written here only to refuse float16 whole.

    Every float16 case of this function fails on the CPU (no kernel), so the refusal is for
    the function and dtype (``whole``); :func:`avg_pool` refuses its 3-D float16 cases one
    by one, its 1-D and 2-D ones run.
    """
    if _no_float16_avg_pool3d(x):
        raise NotExpressible(_NO_FLOAT16_AVG_POOL3D, whole=True)
    return avg_pool(x, ksize, **options)


# -- global pooling -----------------------------------------------------------------------------


def _global_result(y: Any, channels_first: bool, keepdims: bool) -> Any:
    if not keepdims:
        return y.reshape(y.shape[0], y.shape[1])
    return _from_channels_first(y, channels_first)


def global_max_pool(x: Any, *, data_format: str | None = None, keepdims: bool = True) -> Any:
    """See refcnn.global_max_pool (``F.adaptive_max_pool1d/2d/3d`` with output size 1)."""
    channels_first = is_channels_first(data_format)
    if _channels(x, channels_first) == 0:
        raise NotExpressible(_no_channels("global_max_pool"))
    y = _ADAPTIVE_MAX_POOL[x.ndim - 2](_to_channels_first(x, channels_first), 1)
    return _global_result(y, channels_first, keepdims)


def global_avg_pool(x: Any, *, data_format: str | None = None, keepdims: bool = True) -> Any:
    """See refcnn.global_avg_pool (``F.adaptive_avg_pool1d/2d/3d`` with output size 1)."""
    channels_first = is_channels_first(data_format)
    y = _ADAPTIVE_AVG_POOL[x.ndim - 2](_to_channels_first(x, channels_first), 1)
    return _global_result(y, channels_first, keepdims)


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
