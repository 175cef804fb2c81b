"""JAX adapter: refcnn's forward ops with ``jax.lax`` / ``jax.nn``; backwards by ``jax.vjp``.

Same names, signatures and conventions as :mod:`refcnn` (NHWC data, HWIO filters,
cross-correlation, TensorFlow argument names); float16, float32 and float64 (x64 enabled at
import) run on the CPU. Only the framework-specific translation is documented here; see the
refcnn function of the same name for the semantics, and :mod:`conformance.frameworks` for how
every backward function is derived (one ``jax.vjp`` of the forward below, with the caller's
upstream gradient).

Translation
-----------
- ``conv2d``: ``jax.lax.conv_general_dilated`` with dimension numbers ``("NHWC", "HWIO",
  "NHWC")``, ``rhs_dilation`` for the dilations and ``Precision.HIGHEST``. ``"VALID"``,
  ``"SAME"`` and ``"SAME_LOWER"`` are passed as JAX's own padding strings (so JAX's padding
  rules are what is compared); explicit pads as ``(before, after)`` pairs.
- ``max_pool2d``: ``jax.lax.reduce_window`` with ``lax.max`` from ``-inf``, JAX's own padding
  strings or the explicit pads; its gradient is XLA's ``select_and_scatter_add``.
- ``avg_pool2d``: JAX has no average-pool primitive; as ``flax.linen.avg_pool`` does, it is a
  ``reduce_window`` sum (zeros padded) divided by the window size (``count_include_pad``) or by
  the number of real elements per window (counted from the pads :mod:`refcnn.padding`
  resolved).
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
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Sequence
from typing import Any

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

from conformance.frameworks._common import (
    Array,
    flatten_shape,
    pair,
    pool_geometry,
    sample_count,
    window_counts,
)
from conformance.network import LR, MOMENTUM, Trajectory
from refcnn.padding import normalize_padding

NAME = "jax"
REQUIRES = "jax"
DISTRIBUTIONS = ("jax",)
DEVICES = ("cpu", "cuda")
LIMITS: dict[str, str] = {}

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

    return list(evaluate(pulled, primals))


def _padding(op: str, padding: Any) -> str | list[tuple[int, int]]:
    """JAX's own padding string for the modes it knows, else the explicit pairs."""
    mode = normalize_padding(op, padding)
    if isinstance(mode, str):
        return mode
    return [tuple(pads) for pads in mode]  # type: ignore[misc]


# -- conv -------------------------------------------------------------------------------------


def conv2d(
    x: Any,
    w: Any,
    b: Any = None,
    *,
    strides: int | Sequence[int] = 1,
    padding: Any = "VALID",
    dilations: int | Sequence[int] = 1,
) -> Any:
    """See refcnn.conv2d (``lax.conv_general_dilated``, JAX's padding strings)."""
    y = lax.conv_general_dilated(
        x,
        w,
        window_strides=pair(strides),
        padding=_padding("conv2d", padding),
        rhs_dilation=pair(dilations),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=_HIGHEST,
    )
    return y if b is None else y + b


# -- pooling ----------------------------------------------------------------------------------


def _window(ksize: int | Sequence[int], strides: int | Sequence[int] | None) -> tuple[Any, Any]:
    kernel = pair(ksize)
    stride = pair(ksize if strides is None else strides)
    return (1, *kernel, 1), (1, *stride, 1)


def _pool_padding(op: str, padding: Any) -> str | list[tuple[int, int]]:
    mode = _padding(op, padding)
    return mode if isinstance(mode, str) else [(0, 0), *mode, (0, 0)]


def max_pool2d(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
) -> Any:
    """See refcnn.max_pool2d (``lax.reduce_window`` with ``lax.max`` from ``-inf``)."""
    window, stride = _window(ksize, strides)
    # A concrete NumPy init value: JAX recognizes (max, -inf) as a monoid and uses its
    # differentiable max-pool rule; a traced init would be the generic, non-differentiable one.
    init = np.array(-np.inf, dtype=x.dtype)
    return lax.reduce_window(x, init, lax.max, window, stride, _pool_padding("max_pool2d", padding))


def avg_pool2d(
    x: Any,
    ksize: int | Sequence[int],
    *,
    strides: int | Sequence[int] | None = None,
    padding: Any = "VALID",
    count_include_pad: bool = False,
) -> Any:
    """See refcnn.avg_pool2d (a ``reduce_window`` sum over divisors, as flax's avg_pool)."""
    window, stride = _window(ksize, strides)
    zero = np.array(0, dtype=x.dtype)  # concrete, as for max_pool2d
    sums = lax.reduce_window(x, zero, lax.add, window, stride, _pool_padding("avg_pool2d", padding))
    kernel = pair(ksize)
    if count_include_pad:
        return sums / (kernel[0] * kernel[1])
    _, geometry = pool_geometry("avg_pool2d", tuple(x.shape), ksize, strides, padding)
    counts = window_counts((x.shape[1], x.shape[2]), geometry, kernel, stride[1:3])
    return sums / jnp.asarray(counts[:, :, None], dtype=x.dtype)


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
        h = relu(conv2d(x, params["conv2d/kernel"], params["conv2d/bias"], padding="SAME"))
        h = max_pool2d(h, 2)
        h = tanh(conv2d(h, params["conv2d_1/kernel"], params["conv2d_1/bias"]))
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
