"""JAX adapter: refcnn's forward ops with ``jax.lax`` / ``jax.nn``; backwards by ``jax.vjp``.

Same names, signatures and conventions as :mod:`refcnn` (channels-last data by default,
``(*K, C/groups, O)`` filters, cross-correlation, TensorFlow argument names); float16, float32
and float64 (x64 enabled at import) run on the CPU. Only the framework-specific translation is
documented here; see the refcnn function of the same name for the semantics, and
:mod:`conformance.frameworks` for how every backward function is derived (one ``jax.vjp`` of
the forward below, with the caller's upstream gradient). The 1-D/2-D/3-D functions
(``conv2d``, ``max_pool3d``, ...) are the N-d forwards below.

Translation
-----------
- Layout: none to translate. ``lax.conv_general_dilated`` takes refcnn's layouts as dimension
  numbers (``("NWC", "WIO", "NWC")``, ``("NHWC", "HWIO", "NHWC")``, ``("NDHWC", "DHWIO",
  "NDHWC")``, or ``NCW``/``NCHW``/``NCDHW`` data with the same ``*IO`` filter), and
  ``lax.reduce_window`` takes a window per array axis (1 on N and C).
- Pads always come from :mod:`refcnn.padding`, passed as explicit ``(before, after)`` pairs
  (never JAX's ``"SAME"`` string: the geometry compared is refcnn's, JAX computes on it).
- ``conv``: ``lax.conv_general_dilated`` with ``rhs_dilation``, ``feature_group_count=groups``
  (both put output channel ``o`` in group ``o // (O/groups)``) and ``Precision.HIGHEST``.
- ``conv_transpose``: the gradient-of-conv form (what ``lax.conv_transpose`` with
  ``transpose_kernel=True`` computes; written out so that refcnn's ``output_shape``/
  ``output_padding`` geometry is the one used): one ``conv_general_dilated`` with
  ``lhs_dilation=strides`` (``s - 1`` zeros between inputs), the filter flipped on its
  spatial axes and its two channel axes swapped within each group, and pads
  ``((K - 1)*d - before, n + (K - 1)*d - ((in - 1)*s + 1) - lead)`` per axis
  (:func:`refcnn.padding.adjoint_geometry`, ``n`` and ``before`` from
  :func:`refcnn.padding.transpose_geometry` or from ``output_shape``'s forward conv). Either
  pad may be negative: XLA's negative pad drops those positions, an exact crop.
- ``max_pool``: ``lax.reduce_window`` with ``lax.max`` from a concrete ``-inf`` (JAX's
  differentiable max-pool rule, gradient by ``select_and_scatter_add``), ``window_dilation``
  for the dilations; ``ceil_mode`` lengthens the end pad by the last window's overhang
  (:attr:`refcnn.padding.Windows.overhang`), ``-inf`` there, so the partial window is reduced
  over what it holds.
- ``max_pool_with_argmax``: JAX has no argmax pool; a variadic ``lax.reduce_window`` over
  (value, index) pairs, the index an iota of each element's row-major position in its
  ``(n, c)`` spatial volume, reduced by "NaN first, then the larger value, then the smaller
  index" (a total order, so XLA's combination order cannot change the result: the first
  maximum, the first NaN). Pads are ``(-inf, int64 max)``: a real element wins any tie.
- ``avg_pool``: JAX has no average-pool primitive; as ``flax.linen.avg_pool`` does, a
  ``reduce_window`` sum (zeros padded, the ceil-mode overhang too) divided by each window's
  divisor, refcnn.pool's definition counted from the resolved geometry: its real elements
  (``count_include_pad=False``) or its taps inside the padded input (True; a ceil-mode
  overhang is not counted). The sum is carried in the input dtype (float16 too) and divided
  once.
- ``global_max_pool``: one ``reduce_window`` max whose window is the whole spatial volume (not
  ``jnp.max``, whose gradient splits ties, see Findings); ``global_avg_pool``: ``jnp.mean``
  over the spatial axes. ``keepdims=False`` reshapes to ``(N, C)``.
- ``dense``: ``jnp.matmul`` at ``Precision.HIGHEST`` plus the bias.
- Activations, ``softmax``, ``log_softmax``: ``jax.nn.relu`` / ``sigmoid``, ``jnp.tanh``,
  ``jax.nn.softmax`` / ``log_softmax``.
- ``softmax_backward`` (documented quirk, override): ``jax.nn.softmax``'s own JVP rule,
  ``p * (g - sum(p * g))`` (symmetric, so it is its own transpose), evaluated at the given
  ``p``: recovering ``z = log p`` would perturb ``p`` by ``eps |log p|``.
- ``cross_entropy``: ``-sum(jax.scipy.special.xlogy(y, p))``, with ``p`` replaced by 1 where
  ``y == 0`` (``xlogy``'s gradient is NaN at ``y == p == 0``, as torch's); ``eps`` clamps
  with ``jnp.where`` (``jnp.clip`` splits the gradient at the bound, see the function).
- ``softmax_cross_entropy``: PyTorch's ``cross_entropy`` term by term from ``jax.nn.log_softmax``,
  ``jnp.take_along_axis`` and reductions (the same composition as the TensorFlow adapter's).
- Determinism and precision: one XLA CPU thread, matmul precision ``"highest"`` (TF32 off
  on CUDA unless ``--allow-tf32``), set at import and by ``setup``.

Not expressible (raised as :class:`~conformance.frameworks.NotExpressible`, checked)
-----------------------------------------------------------------------------------
- The max-pool gradient with dilations: ``jax.vjp`` of a ``reduce_window`` max with window
  dilation raises ``NotImplementedError: VJP not implemented for select_and_gather (MaxPool)
  with window dilation`` (jax 0.10.2); ``vjp`` reports it with JAX's own words, for the
  case at hand (``max_pool_backward`` and its 1-D/2-D/3-D names; the dilated forwards run).

Every other conv, transposed conv and pooling geometry refcnn accepts runs, empty outputs,
``N == 0``, ``C == 0`` and ``O == 0`` included (XLA computes empty shapes and sums over no
channels).

Findings (jax 0.10.2, CPU)
--------------------------
- Max-pool gradient ties: exactly one element per window gets the gradient, the first maximum
  in row-major window order, as in refcnn (``MAX_POOL_TIE_RULE = "first"``; pinned case
  ``max_pool_ties_first_maximum``). A ``-inf`` pad never takes it, even from a window whose
  real elements are all ``-inf`` (checked by hand: ``x = [-inf, -inf, 1]``, window 2,
  stride 1, pads ``(1, 0)`` gives the gradient ``[1, 0, 1]``), so no case is refused for
  ``-inf`` input (the suite draws none).
- ``jnp.max``'s gradient splits a tie evenly between the maxima (``jax.grad(jnp.max)`` of
  ``[1., 1.]`` is ``[0.5, 0.5]``; refcnn, torch and TensorFlow's pools send it to the first),
  so ``global_max_pool`` is a ``reduce_window`` (test in test_framework_bugs.py).
- ``jnp.clip``'s gradient is 0.5 at a bound (``lax.min(lax.max(p, lo), hi)``, ties split):
  ``cross_entropy`` clamps with ``jnp.where`` (test in test_framework_bugs.py, pinned).
- ``xlogy``'s gradient in ``p`` is ``y / p``, NaN at ``y == p == 0``: ``cross_entropy`` uses
  the where idiom (pinned).
"""

from __future__ import annotations

import importlib.metadata
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

# Before jax is imported: XLA reads its flags once. One CPU thread keeps reductions
# independent of how work is split.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax
import numpy as np
from jax import lax
from jax import numpy as jnp
from jax.scipy.special import xlogy

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
from conformance.network import LR, MOMENTUM, Trajectory
from refcnn.padding import Windows, normalize_padding, windows

NAME = "jax"
REQUIRES = "jax"
DISTRIBUTIONS = ("jax",)
DEVICES = ("cpu", "cuda")
LIMITS = {
    "dilated max-pool gradient": (
        "jax.vjp of a reduce_window max with window dilation raises NotImplementedError "
        "('VJP not implemented for select_and_gather (MaxPool) with window dilation')"
    ),
}

#: Which element of a max-pool window receives the gradient when several equal the maximum.
MAX_POOL_TIE_RULE = "first"

_CONFIG: Any = jax.config  # untyped in jax's stubs
_CONFIG.update("jax_enable_x64", True)  # float64 must stay float64
_HIGHEST = lax.Precision.HIGHEST
_DEVICE: Any = None


def setup(device: str, *, allow_tf32: bool) -> dict[str, str]:
    """Place arrays on ``device``, full-precision matmuls unless ``allow_tf32``; report info."""
    global _DEVICE  # noqa: PLW0603 - one device per test session
    _CONFIG.update("jax_default_matmul_precision", "tensorfloat32" if allow_tf32 else "highest")
    platform = "gpu" if device == "cuda" else "cpu"
    try:
        devices = jax.devices(platform)
    except RuntimeError as exc:
        msg = f"jax.devices({platform!r}) failed: {exc}"
        raise RuntimeError(msg) from exc
    _DEVICE = devices[0]
    info = {"version": importlib.metadata.version("jax"), "device": str(_DEVICE)}
    if device == "cuda":
        info["tf32"] = "on" if allow_tf32 else "off"
        info["cuda"] = str(getattr(_DEVICE, "device_kind", "?"))
    return info


# -- arrays in and out --------------------------------------------------------------------------


def tensor(a: Array) -> Any:
    """Copy ``a`` onto the session's device, keeping its dtype."""
    return jax.device_put(np.asarray(a), _DEVICE)


def array(t: Any) -> Array:
    """Copy a JAX result into a fresh NumPy array."""
    return np.array(t, copy=True)


def evaluate(f: Callable[..., Any], tensors: Sequence[Any]) -> Any:
    """Run ``f(*tensors)`` under ``jax.jit``, as JAX code normally runs.

    One XLA compilation of the whole function per call is 3x faster than dispatching its
    primitives one by one, each compiled for the new shapes (softmax_cross_entropy_backward:
    0.07 vs 0.22 s per example).
    """
    return jax.jit(f)(*tensors)


def vjp(f: Callable[..., Any], primals: Sequence[Any], cotangent: Any | None) -> list[Any]:
    """Return ``jax.vjp`` of ``f`` at ``primals`` applied to ``cotangent`` (None: ones), jitted."""

    def pulled(*tensors: Any) -> Any:
        y, pullback = jax.vjp(f, *tensors)
        return pullback(jnp.ones_like(y) if cotangent is None else cotangent)

    try:
        return list(evaluate(pulled, primals))
    except NotImplementedError as exc:
        # A transpose rule JAX does not have (the max-pool gradient with window dilation):
        # its own refusal, for the case at hand, with its own words.
        msg = f"jax: {str(exc).splitlines()[0]}"
        raise NotExpressible(msg) from exc


# -- layouts and geometry -----------------------------------------------------------------------

_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _spatial_axes(rank: int, channels_first: bool) -> tuple[int, ...]:
    first = 2 if channels_first else 1
    return tuple(range(first, first + rank))


def _dimension_numbers(rank: int, channels_first: bool) -> tuple[str, str, str]:
    """``conv_general_dilated``'s layouts: refcnn's data layout, its ``(*K, I, O)`` filter."""
    spatial = _SPATIAL[rank]
    data = f"NC{spatial}" if channels_first else f"N{spatial}C"
    return data, f"{spatial}IO", data


def _add_bias(y: Any, b: Any, channels_first: bool) -> Any:
    if b is None:
        return y
    if channels_first:
        return y + jnp.reshape(b, (-1,) + (1,) * (y.ndim - 2))
    return y + b


def _full_window(values: Sequence[int], channels_first: bool) -> tuple[int, ...]:
    """Per spatial axis ``values`` as a per-array-axis tuple, 1 on N and C."""
    inner = tuple(int(v) for v in values)
    return (1, 1, *inner) if channels_first else (1, *inner, 1)


# -- conv -------------------------------------------------------------------------------------


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
    """See refcnn.conv (``lax.conv_general_dilated``, explicit pads from refcnn.padding)."""
    rank = x.ndim - 2
    channels_first = is_channels_first(data_format)
    stride, dilation = per_axis(strides, rank), per_axis(dilations, rank)
    mode = normalize_padding("conv", padding, rank)
    geometry = windows(
        spatial_sizes(x, channels_first), tuple(w.shape[:rank]), stride, dilation, mode
    )
    y = lax.conv_general_dilated(
        x,
        w,
        window_strides=stride,
        padding=list(geometry.pads),
        rhs_dilation=dilation,
        dimension_numbers=_dimension_numbers(rank, channels_first),
        feature_group_count=groups,
        precision=_HIGHEST,
    )
    return _add_bias(y, b, channels_first)


def _transposed_filter(w: Any, rank: int, groups: int) -> Any:
    """Turn refcnn's ``(*K, C_out/groups, C_in)`` into the adjoint's ``(*K, C_in/groups, C_out)``.

    Spatially flipped, and in each group the forward's input and output channels swapped:
    ``w'[K-1-p, i, g*Cg + c] = w[p, c, g*Og + i]`` (``Cg = C_out/groups``, ``Og = C_in/groups``).
    """
    kernel = tuple(w.shape[:rank])
    cg, c_in = int(w.shape[rank]), int(w.shape[rank + 1])
    og = c_in // groups
    flipped = lax.rev(w, tuple(range(rank)))
    split = jnp.reshape(flipped, (*kernel, cg, groups, og))
    swapped = jnp.transpose(split, (*range(rank), rank + 2, rank + 1, rank))
    return jnp.reshape(swapped, (*kernel, og, groups * cg))


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
    """See refcnn.conv_transpose (the gradient-of-conv form; module docstring)."""
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
    # Output r is sum_q xz[r + q*d - lead] * w'[q] with xz the input with s - 1 zeros
    # inserted (lhs_dilation), of length (in - 1)*s + 1, and lead = (K - 1)*d - before
    # (refcnn.padding.adjoint_geometry); the trail makes the output n long. Either may be
    # negative: XLA's negative pad drops those positions, an exact crop.
    pads = []
    for a in range(rank):
        lead = (kernel[a] - 1) * dilation[a] - befores[a]
        dilated = (in_sizes[a] - 1) * stride[a] + 1 if in_sizes[a] else 0
        trail = sizes[a] + (kernel[a] - 1) * dilation[a] - dilated - lead
        pads.append((lead, trail))
    y = lax.conv_general_dilated(
        x,
        _transposed_filter(w, rank, groups),
        window_strides=(1,) * rank,
        padding=pads,
        lhs_dilation=stride,
        rhs_dilation=dilation,
        dimension_numbers=_dimension_numbers(rank, channels_first),
        feature_group_count=groups,
        precision=_HIGHEST,
    )
    return _add_bias(y, b, channels_first)


# -- pooling ----------------------------------------------------------------------------------


class _Pool(NamedTuple):
    """A pooling call in ``reduce_window``'s terms (per array axis) and refcnn's geometry."""

    rank: int
    channels_first: bool
    sizes: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    geometry: Windows

    def window(self) -> tuple[int, ...]:
        return _full_window(self.kernel, self.channels_first)

    def strides(self) -> tuple[int, ...]:
        return _full_window(self.stride, self.channels_first)

    def dilations(self) -> tuple[int, ...]:
        return _full_window(self.dilation, self.channels_first)

    def padding(self) -> list[tuple[int, int]]:
        """Return refcnn's pads per array axis, each end pad plus a ceil-mode overhang."""
        spatial = [
            (before, after + over)
            for (before, after), over in zip(
                self.geometry.pads, self.geometry.overhang, strict=True
            )
        ]
        none = [(0, 0)]
        return none * 2 + spatial if self.channels_first else none + spatial + none


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
    rank = x.ndim - 2
    channels_first = is_channels_first(data_format)
    kernel = per_axis(ksize, rank)
    stride = kernel if strides is None else per_axis(strides, rank)
    dilation = per_axis(dilations, rank)
    mode = normalize_padding(op, padding, rank)
    sizes = spatial_sizes(x, channels_first)
    geometry = windows(sizes, kernel, stride, dilation, mode, ceil_mode=bool(ceil_mode))
    return _Pool(rank, channels_first, sizes, kernel, stride, dilation, geometry)


def _reduce_window(x: Any, pool: _Pool, init: Any, computation: Callable[..., Any]) -> Any:
    return lax.reduce_window(
        x,
        init,
        computation,
        pool.window(),
        pool.strides(),
        pool.padding(),
        window_dilation=pool.dilations(),
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
    """See refcnn.max_pool (``lax.reduce_window`` with ``lax.max`` from ``-inf``)."""
    pool = _pool("max_pool", x, ksize, strides, padding, dilations, ceil_mode, data_format)
    # A concrete NumPy init value: JAX recognizes (max, -inf) as a monoid and uses its
    # differentiable max-pool rule; a traced init would be the generic, non-differentiable one.
    return _reduce_window(x, pool, np.array(-np.inf, dtype=x.dtype), lax.max)


def _first_max(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """Of two (value, index) pairs, the one refcnn's argmax keeps: NaN, then larger, then first.

    Commutative and associative (a total order on the pairs), so XLA may combine a window's
    elements in any order and still returns its first maximum (first NaN).
    """
    (av, ai), (bv, bi) = a, b
    a_nan, b_nan = av != av, bv != bv  # noqa: PLR0124 - NaN test that traces as one compare
    earlier = ai < bi
    take_a = jnp.where(
        a_nan | b_nan,
        a_nan & (~b_nan | earlier),
        (av > bv) | ((av == bv) & earlier),
    )
    return jnp.where(take_a, av, bv), jnp.where(take_a, ai, bi)


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
    """See refcnn.max_pool_with_argmax (a variadic ``reduce_window`` over (value, index)).

    Each element carries its row-major index in its own ``(n, c)`` spatial volume (an iota);
    pads are ``(-inf, int64 max)``, so a real element wins every tie with a pad.
    """
    pool = _pool(
        "max_pool_with_argmax", x, ksize, strides, padding, dilations, ceil_mode, data_format
    )
    volume = jnp.reshape(jnp.arange(math.prod(pool.sizes), dtype=jnp.int64), pool.sizes)
    shape = _full_window(pool.sizes, pool.channels_first)
    index = jnp.broadcast_to(jnp.reshape(volume, shape), x.shape)
    inits = (np.array(-np.inf, dtype=x.dtype), np.array(np.iinfo(np.int64).max, dtype=np.int64))
    y, argmax = lax.reduce_window(
        (x, index),
        inits,
        _first_max,
        pool.window(),
        pool.strides(),
        pool.padding(),
        window_dilation=pool.dilations(),
    )
    return y, argmax


def _taps_inside(pool: _Pool, a: int, lo: int, hi: int) -> Array:
    """Per window of spatial axis ``a``: its taps ``t`` with ``lo <= i*s + t*d - before < hi``.

    Integer bookkeeping of refcnn's geometry for the divisor (refcnn.pool's definition).
    """
    kernel, stride, dilation = pool.kernel[a], pool.stride[a], pool.dilation[a]
    start = np.arange(pool.geometry.out[a], dtype=np.int64) * stride - pool.geometry.pads[a][0]
    first = np.maximum(0, -((start - lo) // dilation))
    last = np.minimum(kernel - 1, (hi - 1 - start) // dilation)
    counts: Array = np.maximum(last - first + 1, 0)
    return counts


def _divisors(pool: _Pool, count_include_pad: bool) -> Array:
    """Each window's divisor, shaped to broadcast against the output (refcnn's definition)."""
    divisor: Array = np.ones((1,) * (pool.rank + 2), dtype=np.int64)
    for a, axis in enumerate(_spatial_axes(pool.rank, pool.channels_first)):
        before, after = pool.geometry.pads[a]
        lo, hi = (-before, pool.sizes[a] + after) if count_include_pad else (0, pool.sizes[a])
        counts = _taps_inside(pool, a, lo, hi)
        shape = [1] * (pool.rank + 2)
        shape[axis] = counts.size
        divisor = divisor * counts.reshape(shape)
    return divisor


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
    """See refcnn.avg_pool (a ``reduce_window`` sum over each window's divisor)."""
    pool = _pool("avg_pool", x, ksize, strides, padding, dilations, ceil_mode, data_format)
    zero = np.array(0, dtype=x.dtype)  # concrete, as for max_pool
    sums = _reduce_window(x, pool, zero, lax.add)
    return sums / jnp.asarray(_divisors(pool, bool(count_include_pad)), dtype=x.dtype)


# -- global pooling ---------------------------------------------------------------------------


def _global_result(y: Any, channels_first: bool, keepdims: bool) -> Any:
    if keepdims:
        return y
    # The channel count spelled out: reshape's -1 divides by the size, 0 for N == 0.
    return jnp.reshape(y, (y.shape[0], y.shape[1 if channels_first else -1]))


def global_max_pool(x: Any, *, data_format: str | None = None, keepdims: bool = True) -> Any:
    """See refcnn.global_max_pool (one ``reduce_window`` max window over the spatial axes).

    Not ``jnp.max``: its gradient splits a tie evenly between the maxima (module docstring,
    Findings); refcnn's, and the max-pool rule's, goes to the first one.
    """
    channels_first = is_channels_first(data_format)
    sizes = spatial_sizes(x, channels_first)
    window = _full_window(sizes, channels_first)
    init = np.array(-np.inf, dtype=x.dtype)
    y = lax.reduce_window(x, init, lax.max, window, (1,) * x.ndim, "VALID")
    return _global_result(y, channels_first, keepdims)


def global_avg_pool(x: Any, *, data_format: str | None = None, keepdims: bool = True) -> Any:
    """See refcnn.global_avg_pool (``jnp.mean`` over the spatial axes)."""
    channels_first = is_channels_first(data_format)
    axes = _spatial_axes(x.ndim - 2, channels_first)
    return _global_result(jnp.mean(x, axis=axes, keepdims=True), channels_first, keepdims)


# -- flatten and dense ------------------------------------------------------------------------


def flatten(x: Any, axis: int = 1) -> Any:
    """See refcnn.flatten (``jnp.reshape`` to ONNX Flatten's 2-D shape)."""
    return jnp.reshape(x, flatten_shape(tuple(x.shape), axis))


def dense(x: Any, w: Any, b: Any = None) -> Any:
    """See refcnn.dense (``jnp.matmul`` at the highest precision, plus the bias)."""
    y = jnp.matmul(x, w, precision=_HIGHEST)
    return y if b is None else y + b


# -- activations ------------------------------------------------------------------------------


def relu(x: Any) -> Any:
    """See refcnn.relu (``jax.nn.relu``, whose gradient is 0 at ``x == 0``)."""
    return jax.nn.relu(x)


def sigmoid(x: Any) -> Any:
    """See refcnn.sigmoid (``jax.nn.sigmoid``)."""
    return jax.nn.sigmoid(x)


def tanh(x: Any) -> Any:
    """See refcnn.tanh (``jnp.tanh``)."""
    return jnp.tanh(x)


# -- softmax ----------------------------------------------------------------------------------


def softmax(z: Any, axis: int = -1) -> Any:
    """See refcnn.softmax (``jax.nn.softmax``)."""
    return jax.nn.softmax(z, axis=axis)


def log_softmax(z: Any, axis: int = -1) -> Any:
    """See refcnn.log_softmax (``jax.nn.log_softmax``)."""
    return jax.nn.log_softmax(z, axis=axis)


def _softmax_backward(dp: Array, p: Array, axis: int = -1) -> Array:
    """See refcnn.softmax_backward (``jax.nn.softmax``'s JVP rule, evaluated at ``p``)."""
    g, pt = tensor(dp), tensor(p)
    return array(pt * (g - jnp.sum(pt * g, axis=axis, keepdims=True)))


OVERRIDES = {
    "softmax_backward": (
        _softmax_backward,
        "jax.nn.softmax's custom JVP is p * (t - sum(p * t)), a symmetric map of the softmax "
        "output p, which the API gives (recovering z = log p would perturb p by eps*|log p|)",
    ),
}


# -- losses -----------------------------------------------------------------------------------


def _reduce(per_sample: Any, reduction: str) -> Any:
    if reduction == "none":
        return per_sample
    return jnp.sum(per_sample) if reduction == "sum" else jnp.mean(per_sample)


def cross_entropy(
    p: Any,
    y: Any,
    *,
    axis: int = -1,
    reduction: str = "sum",
    eps: float | None = None,
) -> Any:
    """See refcnn.cross_entropy (``xlogy``: 0 * log 0 = 0; ``eps`` clamps with ``jnp.where``).

    Not ``jnp.clip``: it is ``lax.min(lax.max(p, eps), 1)``, and JAX splits a max/min
    gradient evenly between tied arguments, so at ``p == 1`` exactly its derivative is 0.5
    (found by the suite: ``cross_entropy_backward(p=[1.0], y=[1.0], eps=1e-7)`` gave -0.5
    for the true -1). refcnn, ``torch.clamp`` and ``tf.clip_by_value`` pass the gradient on
    the bounds and stop it only strictly outside.
    """
    clipped = p if eps is None else jnp.where(p < eps, eps, jnp.where(p > 1, 1.0, p))
    # xlogy(0, 0) is 0 but its gradient in p is y / p = 0 / 0 = NaN (jax 0.10, as torch):
    # p is replaced by 1 where y == 0, the usual idiom; the loss there is 0 either way.
    safe = jnp.where(y == 0, jnp.ones_like(clipped), clipped)
    return _reduce(-jnp.sum(xlogy(y, safe), axis=axis), reduction)


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
    """torch.nn.functional.cross_entropy's loss, term by term, from JAX ops."""
    logp = jnp.moveaxis(jax.nn.log_softmax(logits, axis=axis), axis, -1)
    k = logp.shape[-1]
    smoothing = label_smoothing > 0  # torch skips the smoothing terms entirely at 0
    if not isinstance(labels, np.ndarray):  # class probabilities (a floating array)
        target = jnp.moveaxis(labels, axis, -1)
        if smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / k
        product = logp * target if weights is None else logp * target * weights
        if reduction == "none":
            return -jnp.sum(product, axis=-1)
        total = -jnp.sum(product)
        return total if reduction == "sum" else total / sample_count(tuple(labels.shape), axis)
    index = jnp.asarray(labels.astype(np.int64))
    keep = jnp.ones(index.shape, dtype=bool) if ignore_index is None else index != ignore_index
    safe = jnp.where(keep, index, 0)  # any valid class; masked out below
    picked = jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    class_weight = jnp.ones_like(picked) if weights is None else weights[safe]
    zeros = jnp.zeros_like(picked)
    nll = jnp.where(keep, -class_weight * picked, zeros)
    smooth = None
    if smoothing:
        summed = jnp.sum(logp if weights is None else logp * weights, axis=-1)
        smooth = jnp.where(keep, -summed, zeros)
    if reduction == "none":
        if smooth is None:
            return nll
        return (1 - label_smoothing) * nll + smooth * (label_smoothing / k)
    nll_total = jnp.sum(nll)
    smooth_total = None if smooth is None else jnp.sum(smooth)
    if reduction == "mean":
        denominator = jnp.sum(jnp.where(keep, class_weight, zeros))
        nll_total = nll_total / denominator
        smooth_total = None if smooth_total is None else smooth_total / denominator
    if smooth_total is None:
        return nll_total
    return (1 - label_smoothing) * nll_total + smooth_total * (label_smoothing / k)


# -- network ----------------------------------------------------------------------------------


def train_network(initial: dict[str, Array], batches: list[tuple[Array, Array]]) -> Trajectory:
    """Train the network of :mod:`conformance.network` with JAX.

    JAX's core has layers only as ``lax`` ops and no optimizer: the network is composed from
    this adapter's forwards, differentiated by ``jax.value_and_grad``, and updated with
    PyTorch's heavy-ball rule ``v = m v + g; p -= lr v`` written in ``jnp``.
    """

    def loss_fn(params: dict[str, Any], x: Any, labels: Array) -> Any:
        h = relu(conv(x, params["conv2d/kernel"], params["conv2d/bias"], padding="SAME"))
        h = max_pool(h, 2)
        h = tanh(conv(h, params["conv2d_1/kernel"], params["conv2d_1/bias"]))
        logits = dense(flatten(h), params["dense/kernel"], params["dense/bias"])
        return softmax_cross_entropy(logits, labels)

    grad_fn = jax.value_and_grad(loss_fn)
    params = {name: tensor(value) for name, value in initial.items()}
    velocity: dict[str, Any] = {}
    losses, trajectory = [], []
    for x, labels in batches:
        loss, grads = grad_fn(params, tensor(x), labels)
        losses.append(float(loss))
        for name, g in grads.items():
            velocity[name] = g if name not in velocity else MOMENTUM * velocity[name] + g
            params[name] = params[name] - jnp.asarray(LR, dtype=g.dtype) * velocity[name]
        trajectory.append({name: array(value) for name, value in params.items()})
    return Trajectory(losses, trajectory)
