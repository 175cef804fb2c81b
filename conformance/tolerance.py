"""Tolerance policy of the conformance suite: one table keyed by dtype, one error model per op.

The comparison (see :mod:`conformance.harness`) generates inputs in float64, casts them to the
dtype ``D`` under test, and takes as *truth* refcnn evaluated in float64 on those D-cast inputs
upcast to float64. The inputs are therefore exact in both computations and only the op's own
rounding counts. Every output element gets its own allowed error ``bound``; a result passes
when ``|out - truth| <= bound`` everywhere (normalized error ``|out - truth| / bound <= 1``).
A zero bound means the element must match exactly (``0/0`` counts as 0): exact ops (max
pooling, relu, flatten) and every element whose error scale is zero (an output no input
reached, a zero upstream gradient) must be bit-for-bit right, so a scale never hides a
wrongly placed or dropped element.

TABLE (``eps = np.finfo(D).eps = 2u``, ``u`` the unit roundoff)

======== ========== ========== ========== ======= =======
dtype    eps        floor      eta        c_sum   c_elem
======== ========== ========== ========== ======= =======
float64  2.2e-16    8.9e-308   4.9e-324   2       6
float32  1.19e-07   4.7e-38    1.4e-45    2       6
float16  9.77e-04   2.4e-04    6.0e-08    2       6
======== ========== ========== ========== ======= =======

- ``c_sum = 2``: a sum of ``K`` products computed in any order (recursive, pairwise, blocked,
  im2col GEMM, the frameworks' kernels) has error at most ``gamma_K * s ~ K u s`` with
  ``s = sum |terms|``; the output's rounding adds ``u |y| <= u s``. In float32 the float64
  truth is exact at that scale, so ``c_sum * K * eps * s = 4 K u s`` leaves a factor ~4. In
  float64 the truth has the same ``K u s`` error as the result, so ``K eps s = 2 K u s`` is
  already the worst case and ``c_sum = 2`` gives a factor 2 of margin. Both stay far below
  one element's worth: a wrongly placed product of size ``|x w|`` is ~``1/(K eps)`` bounds off.
- ``c_elem = 6``: relative error allowed for one elementwise transcendental chain (``exp``,
  ``log``, ``tanh``, ``sigmoid``, a division) in units of ``eps``. libm and SLEEF (PyTorch)
  are within 1-2; TensorFlow 2.21's Eigen approximations are not: its float64 ``tanh`` is
  off by up to 4.5 eps near saturation (``x ~ -17.4``) and its float32 ``sigmoid`` by 4.1
  eps (``x ~ -14.4``), measured on 3.5 million points against long double. 6 covers that
  plus the float64 truth's own rounding; a wrong formula is off by orders of magnitude more.
- ``eta = smallest subnormal``: a sum's bound is ``c_sum K eps s + K eta``, since each of
  the ``K`` products and the final rounding can lose ``eta / 2`` when it lands among the
  subnormals, however small relative to ``s`` (float16 products of normal inputs do:
  ``1e-3 * 1e-3``; refcnn's float16 filter gradient 1.1325e-06 for a true 1.1388e-06 is one
  subnormal step, 2.9 times ``c_sum K eps s`` with ``K = 1``). Negligible in float32/64.
- ``floor = 4 * smallest normal``: results of the exp-based ops may underflow toward zero
  (subnormals, and flush-to-zero in oneDNN/Eigen threads, which also loses results just
  above the smallest normal: TensorFlow's float32 softmax returns 0 for a true 1.014 x
  smallest normal), so their bounds carry this absolute floor. The linear ops do not:
  their inputs are generated in the normal range.

Non-finite truth (``+-inf``, NaN; also a float64 truth too large for ``D``, which becomes
``inf`` when rounded to ``D``) must be matched exactly: NaN where truth is NaN, the same
infinity where truth is infinite.

Frameworks are held to the same bounds. Two documented rules change the inputs a framework
is compared on (never the implementation's; see :func:`conformance.harness.framework_inputs`,
each use is counted in the report):

- FTZ/DAZ: TensorFlow's CPU kernels flush subnormals to zero, reading ``p = 1e-40`` (float32)
  as 0, so ``log p = -inf``. Frameworks get subnormal inputs flushed to zero and the oracle
  is re-evaluated on those; subnormal *results* are covered by the ``floor`` terms.
- Max-pool ties: refcnn routes a tied window's gradient to the first maximum (row-major).
  For an adapter whose ``MAX_POOL_TIE_RULE`` is not ``"first"``, ``max_pool2d_backward`` is
  compared on a tie-free copy of ``x`` ordered the same way (same refcnn routing).

And one rule leaves elements out (:func:`range_limited`): a sum whose partial sums can leave
the dtype's range (``reach``: ``s (1 + c_sum K eps)`` for the sums above, the batch total for
a mean loss, the smoothing sum ``sum_{n,k} w_k |l_nk|``) is not compared for frameworks,
which accumulate float16 in float16 (TensorFlow's float16 filter gradient overflowed to
``-inf`` for a true ``+298914``; PyTorch and TensorFlow return ``inf`` for a float16 mean
cross-entropy of 9473 when the batch total or the smoothing sum passes 65504). Only float16
inputs get there; refcnn accumulates float16 in float32 and is held to every element.

Error models, ``s(...)`` being refcnn's own op on absolute values in float64; every
``c_sum K eps s`` below carries ``+ K eta`` where ``s > 0`` (underflow, see ``eta``):

================================ ================================================================
op                               bound per output element
================================ ================================================================
conv2d                           ``c_sum K eps s(|x|,|w|,|b|)``, ``K = KH KW C (+1 with b)``
conv2d_backward_input            ``c_sum K eps s(|dy|,|w|)``, ``K = t(KH,sh,dh) t(KW,sw,dw) O``
                                 terms land on one input, ``t(k,s,d) = ceil(k gcd(s,d) / s)``
conv2d_backward_filter           ``c_sum K eps s(|dy|,|x|)``, ``K = N OH OW``
conv2d_backward_bias             ``c_sum K eps s(|dy|)``, ``K = N OH OW``
conv2d_backward                  the three above, one per output
max_pool2d, relu, relu_backward, ``0`` (selection, comparison, copy: exact)
flatten, flatten_backward
max_pool2d_backward              ``c_sum K eps s(|dy|, x)``, ``K = ceil(KH/sh) ceil(KW/sw)``
                                 (overlapping windows route several ``dy`` to one input)
avg_pool2d                       ``c_sum (KH KW + 2) eps s(|x|)`` (sum, then a division or a
                                 multiplication by a rounded reciprocal)
avg_pool2d_backward              ``c_sum (ceil(KH/sh) ceil(KW/sw) + 2) eps s(|dy|)``
dense                            ``c_sum K eps s(|x|,|w|,|b|)``, ``K = I (+1 with b)``
dense_backward                   dx: ``K = O``; dw, db: ``K = N``
sigmoid                          ``c_elem eps sigma + floor``
sigmoid_backward                 ``2 c_elem eps |dy| sigma + floor (1 + |dy|)``: the forward's
                                 own allowance (``c_elem eps sigma``) carried through
                                 ``d[s (1 - s)]/ds = 1 - 2s`` plus the products' rounding;
                                 ``sigma (1 - sigma)`` from a rounded ``sigma`` cancels as
                                 ``sigma -> 1`` (absolute ``u``), as every framework computes it
tanh                             ``c_elem eps |t| + floor``
tanh_backward                    ``c_elem eps |dy| (1 + t**2) + floor``: ``1 - t**2`` from a
                                 ``t`` with the forward's allowance ``c_elem eps |t|`` is off by
                                 ``2 c_elem eps t**2`` and cancels as ``|t| -> 1`` (TF's float64
                                 ``tanh`` is 1.0 where the truth is 4.5 ulp below it)
softmax                          ``eps p_i (c_elem (1 + |z_i - m| + sum_j p_j |z_j - m|) +
                                 c_sum K) + floor``: ``z_i - m`` rounds by ``u |z_i - m|``, which
                                 ``exp`` turns into a relative error; the row sum adds ``K u``
log_softmax                      ``eps (c_elem (1 + |z_i - m| + |lse| + sum_j p_j |z_j - m|) +
                                 c_sum K)``: ``z_i - lse`` (PyTorch, TF) rounds ``lse``
softmax_jacobian                 ``c_elem eps (p_i p_j + [i == j] p_i) + floor``
softmax_backward                 ``eps p_i (c_elem |dp_i| + c_sum (K + 1) sum_j |dp_j| p_j) +
                                 floor`` (the dot product ``sum_j dp_j p_j`` of K terms)
cross_entropy                    ``c_sum eps ((M + c_elem) |L| + c_elem Y) + floor``: all terms
                                 ``-y log p >= 0``, so ``|L|`` is their absolute sum; ``M`` terms
                                 are summed (K per row, every element for sum/mean); ``Y``
                                 (``sum y`` as reduced) covers ``log`` near 1 and a clip bound
                                 rounded to ``D``; a loss of tiny ``y`` can itself be
                                 subnormal (refcnn float32 gave 6.17e-44 for 6.12e-44)
cross_entropy_backward           ``c_elem eps |dL/dp| + floor (1 + 1/p)`` (``-y/p``, scaled by
                                 ``r``; ``y r`` may underflow before the division by a tiny
                                 ``p``: torch float32 lost 9 eps at ``y = 1.6e-38, p = 7e-22``
                                 as ``y / N`` went subnormal)
softmax_cross_entropy            ``sum_n C_n eps (c_elem max_k cond_nk + c_sum K) + c_sum eps
                                 (M + 2) |L| + floor``: the loss is ``sum_{n,k} coef_nk
                                 (-l_nk)`` with ``coef >= 0`` (weights, smoothing, ignore,
                                 mean scaling), each
                                 ``l`` carrying the log_softmax error; ``C_n = sum_k coef_nk``
                                 is read off refcnn at zero logits, ``L0 = sum C_n log K``
softmax_cross_entropy_backward   ``C_n`` times the softmax bound ``+ c_sum eps (|g| + 2 C_n p) +
                                 (|g| + C_n p) r + floor`` (``g = C_n p - coef``); ``r = eps
                                 (c_elem (1 + 2 sum_j p_j |z_j - m|) + c_sum K)`` is the
                                 relative error of a sum of the row's ``p``, which the
                                 cancellation-free form ``p_i sum_{j!=i} coef_j - coef_i
                                 sum_{j!=i} p_j`` (refcnn) carries into every element
================================ ================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.calls import Call, make_call

__all__ = [
    "TABLE",
    "Bound",
    "ErrorModel",
    "Tolerance",
    "avg_pool_backward_bound",
    "avg_pool_bound",
    "conv_backward_bias_bound",
    "conv_backward_bound",
    "conv_backward_filter_bound",
    "conv_backward_input_bound",
    "conv_bound",
    "conv_transpose_bound",
    "cross_entropy_backward_bound",
    "cross_entropy_bound",
    "dense_backward_bound",
    "dense_bound",
    "exact_bound",
    "global_avg_pool_backward_bound",
    "global_avg_pool_bound",
    "log_softmax_bound",
    "max_pool_backward_bound",
    "range_limited",
    "sigmoid_backward_bound",
    "sigmoid_bound",
    "softmax_backward_bound",
    "softmax_bound",
    "softmax_cross_entropy_backward_bound",
    "softmax_cross_entropy_bound",
    "softmax_jacobian_bound",
    "tanh_backward_bound",
    "tanh_bound",
    "tolerance",
]

Array: TypeAlias = npt.NDArray[Any]


class Tolerance(NamedTuple):
    """One row of :data:`TABLE`; see the module docstring for every constant's reason."""

    eps: float
    floor: float
    c_sum: float
    c_elem: float
    eta: float  # the smallest subnormal: what one product or rounding can lose to underflow


def _row(dtype: type[np.floating[Any]]) -> Tolerance:
    """Build the TABLE row of a dtype: its eps, floor and eta, and the shared constants."""
    info = np.finfo(dtype)
    return Tolerance(
        eps=float(info.eps),
        floor=4 * float(info.smallest_normal),
        c_sum=2.0,
        c_elem=6.0,
        eta=float(info.smallest_subnormal),
    )


TABLE: dict[np.dtype[Any], Tolerance] = {
    np.dtype(dtype): _row(dtype) for dtype in (np.float64, np.float32, np.float16)
}


def tolerance(dtype: npt.DTypeLike) -> Tolerance:
    """Return the :data:`TABLE` row for ``dtype``."""
    key = np.dtype(dtype)
    if key not in TABLE:
        msg = f"tolerance: no tolerance row for dtype {key}; TABLE has {sorted(map(str, TABLE))}"
        raise KeyError(msg)
    return TABLE[key]


class Bound(NamedTuple):
    """Elementwise allowed absolute error of one output, and the formula that gave it.

    ``reach`` (sums only) bounds the magnitude any partial sum of the element can take, in
    any order: where it exceeds the dtype's range, a framework summing in that dtype may
    overflow on the way to a representable result (see :func:`range_limited`).
    """

    bound: Array
    formula: str
    reach: Array | None = None


ErrorModel: TypeAlias = Callable[[Call, tuple[Array, ...], Tolerance], tuple[Bound, ...]]


def _abs(call: Call, *names: str) -> Call:
    """``call`` with the named array arguments replaced by their absolute values."""
    return call.replace(**{n: np.abs(call.params[n]) for n in names if call.params[n] is not None})


def _run(call: Call) -> Array:
    return np.asarray(getattr(refcnn, call.op)(*call.args, **call.kwargs), dtype=np.float64)


def _sum_bound(tol: Tolerance, k: int, scale: Array, what: str) -> Bound:
    k = max(k, 1)
    # Underflow: each of the K products (and the final rounding) can lose up to eta/2 when
    # it lands among the subnormals, whatever its relative size; an element with s = 0 is
    # exactly 0 and keeps a zero bound.
    underflow = np.where(scale != 0, k * tol.eta, 0.0)
    return Bound(
        tol.c_sum * k * tol.eps * np.abs(scale) + underflow,
        f"c_sum*K*eps*s + K*eta with c_sum={tol.c_sum:g}, K={k}, eps={tol.eps:.3g}, "
        f"eta={tol.eta:.3g}, s={what}",
        # Every partial sum of the K terms is at most s (1 + its rounding growth).
        np.abs(scale) * (1 + tol.c_sum * k * tol.eps),
    )


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _taps(kernel: int, stride: int, dilation: int) -> int:
    """Most taps ``p < kernel`` with ``p * dilation`` in one residue class mod ``stride``."""
    return -(-kernel * math.gcd(stride, dilation) // stride)


# --- linear ops ----------------------------------------------------------------------------


def _groups(call: Call) -> int:
    return int(call.params.get("groups", 1))


def _output_positions(call: Call) -> int:
    """``N * prod(out)``: the sum length of a filter or bias gradient, from ``dy``."""
    dy = call.params["dy"]
    channels = int(dy.shape[1] if _channels_first(call) else dy.shape[-1])
    return dy.size // channels if channels else 0


def _channels_first(call: Call) -> bool:
    return str(call.params.get("data_format") or "").startswith("NC")


def conv_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of the convolutions of every rank (the module docstring's table)."""
    w = call.params["w"]
    k = math.prod(w.shape[:-2]) * w.shape[-2] + (call.params.get("b") is not None)
    return (_sum_bound(tol, k, _run(_abs(call, "x", "w", "b")), f"{call.op}(|x|, |w|, |b|)"),)


def _input_gradient_terms(w_shape: tuple[int, ...], call: Call, channels: int) -> int:
    """Terms landing on one input element: the taps that reach it times the channels."""
    rank = len(w_shape) - 2
    strides = _per_axis(call.params.get("strides", 1), rank)
    dilations = _per_axis(call.params.get("dilations", 1), rank)
    taps = math.prod(
        _taps(k, s, d) for k, s, d in zip(w_shape[:-2], strides, dilations, strict=True)
    )
    return taps * channels


def conv_backward_input_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``conv_backward_input`` / ``conv2d_backward_input`` (the module table)."""
    w = call.params["w"]
    k = _input_gradient_terms(w.shape, call, w.shape[-1] // _groups(call))
    return (_sum_bound(tol, k, _run(_abs(call, "dy", "w")), f"{call.op}(|dy|, |w|)"),)


def conv_transpose_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``conv_transpose``: the input gradient's sums, plus the bias."""
    w = call.params["w"]
    k = _input_gradient_terms(w.shape, call, w.shape[-1] // _groups(call))
    k += call.params.get("b") is not None
    scale = _run(_abs(call, "x", "w", "b"))
    return (_sum_bound(tol, k, scale, "conv_transpose(|x|, |w|, |b|)"),)


def conv_backward_filter_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``conv_backward_filter`` / ``conv2d_backward_filter`` (the table)."""
    scale = _run(_abs(call, "dy", "x"))
    return (_sum_bound(tol, _output_positions(call), scale, f"{call.op}(|dy|, |x|)"),)


def conv_backward_bias_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``conv_backward_bias`` / ``conv2d_backward_bias`` (the table)."""
    scale = _run(_abs(call, "dy"))
    return (_sum_bound(tol, _output_positions(call), scale, f"{call.op}(|dy|)"),)


def conv_backward_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``conv_backward`` / ``conv2d_backward``: the three above, one each."""
    values = call.params | {"input_shape": call.params["x"].shape}
    values["filter_shape"] = call.params["w"].shape
    return (
        *conv_backward_input_bound(make_call("conv_backward_input", values), truth[:1], tol),
        *conv_backward_filter_bound(make_call("conv_backward_filter", values), truth[1:2], tol),
        *conv_backward_bias_bound(make_call("conv_backward_bias", values), truth[2:], tol),
    )


def _spatial_rank(call: Call) -> int:
    """Return the number of spatial axes of a windowed call (from x or input_shape)."""
    shape = call.params["x"].shape if "x" in call.params else call.params["input_shape"]
    return len(shape) - 2


def _per_axis(value: Any, rank: int) -> tuple[int, ...]:
    return (int(value),) * rank if isinstance(value, int) else tuple(int(v) for v in value)


def _pool_geometry(call: Call) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Return kernel, strides (default: the kernel) and dilations, one per spatial axis."""
    rank = _spatial_rank(call)
    kernel = _per_axis(call.params["ksize"], rank)
    strides = call.params.get("strides")
    steps = kernel if strides is None else _per_axis(strides, rank)
    return kernel, steps, _per_axis(call.params.get("dilations", 1), rank)


def _windows_per_input(call: Call) -> int:
    """Return the most windows one input belongs to (overlapping windows add gradients)."""
    kernel, strides, dilations = _pool_geometry(call)
    return math.prod(_taps(k, s, d) for k, s, d in zip(kernel, strides, dilations, strict=True))


def exact_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Bound 0 on every output: the op selects, compares or copies, so it is exact."""
    return tuple(Bound(np.zeros_like(t), "exact (bound 0)") for t in truth)


def max_pool_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``max_pool_backward`` and ``max_pool2d_backward`` (the module table)."""
    scale = _run(_abs(call, "dy"))
    return (_sum_bound(tol, _windows_per_input(call), scale, f"{call.op}(|dy|, x)"),)


def avg_pool_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of the average pools of every rank (the module docstring's table)."""
    kernel, _, _ = _pool_geometry(call)
    return (_sum_bound(tol, math.prod(kernel) + 2, _run(_abs(call, "x")), f"{call.op}(|x|)"),)


def avg_pool_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``avg_pool_backward`` and ``avg_pool2d_backward`` (the module table)."""
    scale = _run(_abs(call, "dy"))
    k = _windows_per_input(call) + 2
    return (_sum_bound(tol, k, scale, f"{call.op}(|dy|)"),)


def global_avg_pool_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``global_avg_pool``: a sum over the spatial volume, then a division."""
    x = call.params["x"]
    volume = math.prod(x.shape[1:]) // max(_channels(call), 1)
    return (_sum_bound(tol, volume + 2, _run(_abs(call, "x")), "global_avg_pool(|x|)"),)


def global_avg_pool_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``global_avg_pool_backward``: one division (or a reciprocal product)."""
    return (_sum_bound(tol, 2, _run(_abs(call, "dy")), "global_avg_pool_backward(|dy|)"),)


def _channels(call: Call) -> int:
    x = call.params["x"]
    channels_first = str(call.params.get("data_format") or "").startswith("NC")
    return int(x.shape[1] if channels_first else x.shape[-1])


def dense_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``dense`` (the module docstring's table)."""
    k = call.params["w"].shape[0] + (call.params["b"] is not None)
    return (_sum_bound(tol, k, _run(_abs(call, "x", "w", "b")), "dense(|x|, |w|, |b|)"),)


def dense_backward_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``dense_backward`` (the module docstring's table)."""
    absolute = _abs(call, "dy", "x", "w")
    dx, dw, db = (
        np.asarray(a, dtype=np.float64)
        for a in refcnn.dense_backward(*absolute.args, **absolute.kwargs)
    )
    n, o = call.params["dy"].shape
    return (
        _sum_bound(tol, o, dx, "dense_backward(|dy|, |x|, |w|).dx"),
        _sum_bound(tol, n, dw, "dense_backward(|dy|, |x|, |w|).dw"),
        _sum_bound(tol, n, db, "dense_backward(|dy|, |x|, |w|).db"),
    )


# --- activations ---------------------------------------------------------------------------


def _sigmoid64(x: Array) -> Array:
    e = np.exp(-np.abs(x))
    return np.asarray(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)))


def sigmoid_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``sigmoid`` (the module docstring's table)."""
    sigma = _sigmoid64(call.params["x"])
    return (Bound(tol.c_elem * tol.eps * sigma + tol.floor, "c_elem*eps*sigma + floor"),)


def sigmoid_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``sigmoid_backward`` (the module docstring's table)."""
    sigma, dy = _sigmoid64(call.params["x"]), np.abs(call.params["dy"])
    bound = 2 * tol.c_elem * tol.eps * dy * sigma + tol.floor * (1.0 + dy)
    return (Bound(bound, "2*c_elem*eps*|dy|*sigma + floor*(1 + |dy|)"),)


def tanh_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``tanh`` (the module docstring's table)."""
    t = np.tanh(call.params["x"])
    return (Bound(tol.c_elem * tol.eps * np.abs(t) + tol.floor, "c_elem*eps*|tanh(x)| + floor"),)


def tanh_backward_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``tanh_backward`` (the module docstring's table)."""
    t = np.tanh(call.params["x"])
    bound = tol.c_elem * tol.eps * np.abs(call.params["dy"]) * (1.0 + t * t) + tol.floor
    return (Bound(bound, "c_elem*eps*|dy|*(1 + tanh(x)**2) + floor"),)


# --- softmax family ------------------------------------------------------------------------


class _RowStats(NamedTuple):
    """Per-element softmax quantities of logits ``z``, all with ``axis`` moved last."""

    p: Array  # softmax
    shift: Array  # |z_i - m|
    lse: Array  # |logsumexp| per row, keepdims
    mix: Array  # sum_j p_j |z_j - m| per row, keepdims


def _row_stats(z: Array, axis: int) -> _RowStats:
    z = np.moveaxis(z, axis, -1)
    with np.errstate(invalid="ignore", over="ignore"):
        m = z.max(axis=-1, keepdims=True) if z.shape[-1] else np.zeros((*z.shape[:-1], 1))
        shift = np.abs(z - m)
        e = np.exp(-shift)
        total = e.sum(axis=-1, keepdims=True)
        p = e / total
        lse = np.abs(m + np.log(total))
        mix = np.nan_to_num(p * shift).sum(axis=-1, keepdims=True)
    return _RowStats(p, shift, lse, mix)


def _softmax_bound(stats: _RowStats, tol: Tolerance) -> Array:
    k = stats.p.shape[-1]
    cond = tol.c_elem * (1.0 + stats.shift + stats.mix) + tol.c_sum * k
    return np.asarray(tol.eps * stats.p * cond)


def softmax_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``softmax`` (the module docstring's table)."""
    axis = call.params["axis"]
    bound = np.moveaxis(_softmax_bound(_row_stats(call.params["z"], axis), tol), -1, axis)
    formula = "eps*p_i*(c_elem*(1 + |z_i - m| + sum_j p_j|z_j - m|) + c_sum*K) + floor"
    return (Bound(bound + tol.floor, formula),)


def _log_softmax_error(stats: _RowStats, tol: Tolerance) -> Array:
    k = stats.p.shape[-1]
    cond = 1.0 + stats.shift + stats.lse + stats.mix
    return np.asarray(tol.eps * (tol.c_elem * cond + tol.c_sum * k))


def log_softmax_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``log_softmax`` (the module docstring's table)."""
    axis = call.params["axis"]
    bound = np.moveaxis(_log_softmax_error(_row_stats(call.params["z"], axis), tol), -1, axis)
    formula = "eps*(c_elem*(1 + |z_i - m| + |lse| + sum_j p_j|z_j - m|) + c_sum*K)"
    return (Bound(bound, formula),)


def softmax_jacobian_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``softmax_jacobian`` (the module docstring's table)."""
    p = np.abs(np.moveaxis(call.params["p"], call.params["axis"], -1))
    outer = p[..., :, None] * p[..., None, :]
    diagonal = np.eye(p.shape[-1]) * p[..., :, None]
    bound = tol.c_elem * tol.eps * (outer + diagonal) + tol.floor
    return (Bound(bound, "c_elem*eps*(p_i*p_j + [i==j]*p_i) + floor"),)


def softmax_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``softmax_backward`` (the module docstring's table)."""
    axis = call.params["axis"]
    p = np.abs(np.moveaxis(call.params["p"], axis, -1))
    dp = np.abs(np.moveaxis(call.params["dp"], axis, -1))
    k = p.shape[-1]
    dot = (dp * p).sum(axis=-1, keepdims=True)
    bound = tol.eps * p * (tol.c_elem * dp + tol.c_sum * (k + 1) * dot) + tol.floor
    formula = "eps*p_i*(c_elem*|dp_i| + c_sum*(K+1)*sum_j|dp_j|p_j) + floor"
    return (Bound(np.moveaxis(bound, -1, axis), formula),)


# --- losses --------------------------------------------------------------------------------


def _rows(shape: tuple[int, ...], axis: int) -> int:
    k = shape[axis] if shape else 1
    return math.prod(shape) // k if k else 0


def _loss_reach(call: Call, loss: Array) -> Array:
    """Return the loss's largest partial sum: its terms are >= 0, so the unnormalized total.

    A ``"mean"`` is that total divided by the count (or summed weights); frameworks add the
    samples up first, in the loss's dtype.
    """
    if call.params["reduction"] != "mean":
        return np.abs(loss)
    with np.errstate(invalid="ignore"):
        return np.abs(_run(call.replace(reduction="sum"))) * np.ones_like(loss)


def cross_entropy_bound(call: Call, truth: tuple[Array, ...], tol: Tolerance) -> tuple[Bound, ...]:
    """Error model of ``cross_entropy`` (the module docstring's table)."""
    p, y, axis = call.params["p"], np.abs(call.params["y"]), call.params["axis"]
    reduction = call.params["reduction"]
    if reduction == "none":
        terms, y_mass = p.shape[axis], y.sum(axis=axis)
    else:
        terms, y_mass = p.size + 2, y.sum()
        if reduction == "mean":
            y_mass = y_mass / max(_rows(p.shape, axis), 1)
    loss = np.abs(truth[0])
    with np.errstate(invalid="ignore"):
        bound = (
            tol.c_sum * tol.eps * ((terms + tol.c_elem) * loss + tol.c_elem * y_mass) + tol.floor
        )
    formula = "c_sum*eps*((M + c_elem)*|L| + c_elem*sum(y)) + floor"
    return (Bound(np.asarray(bound), formula, _loss_reach(call, loss)),)


def cross_entropy_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``cross_entropy_backward`` (the module docstring's table)."""
    p = np.abs(call.params["p"])
    with np.errstate(invalid="ignore", divide="ignore"):
        # y * r (r the mean's 1/N) can underflow before the division by a tiny p scales it
        # back up: an absolute floor on the product becomes floor / p on the result.
        underflow = np.where(p > 0, tol.floor / p, 0.0)
        bound = tol.c_elem * tol.eps * np.abs(truth[0]) + tol.floor + underflow
    return (Bound(bound, "c_elem*eps*|dL/dp| + floor*(1 + 1/p)"),)


def _coefficient_mass(call: Call) -> tuple[Array, float]:
    """Per-row ``C_n = sum_k coef_nk`` and the reduction's scale, read off refcnn.

    At zero logits every ``l_nk = -log K``, so ``loss_n = C_n log K``: the "none" reduction
    gives ``C_n`` (weights, smoothing and ignored rows included) and the requested
    reduction's total over ``sum_n loss_n`` gives its scale (1 for sum, ``1/N`` or
    ``1/sum w`` for mean).
    """
    logits, axis = call.params["logits"], call.params["axis"]
    k = logits.shape[axis]
    rows_shape = logits.shape[: axis % logits.ndim] + logits.shape[axis % logits.ndim + 1 :]
    if k < 2:
        return np.zeros(rows_shape), 0.0  # one class: log_softmax is exactly 0
    zeros = make_call(
        "softmax_cross_entropy",
        call.params | {"logits": np.zeros_like(logits), "reduction": "none"},
    )
    per_row = _run(zeros) / math.log(k)
    if call.params["reduction"] == "none":
        return per_row, 1.0
    total, mass = float(_run(zeros.replace(reduction=call.params["reduction"]))), per_row.sum()
    # No counted sample (every label ignored): nothing to propagate; mean is then NaN.
    scale = total / (float(mass) * math.log(k)) if mass else 0.0
    return per_row, scale if math.isfinite(scale) else 0.0


def softmax_cross_entropy_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``softmax_cross_entropy`` (the module docstring's table)."""
    logits, axis = call.params["logits"], call.params["axis"]
    mass, scale = _coefficient_mass(call)
    stats = _row_stats(logits, axis)
    per_row = mass * _log_softmax_error(stats, tol).max(axis=-1, initial=0.0)
    loss = np.abs(truth[0])
    if call.params["reduction"] == "none":
        terms = logits.shape[axis] + 2
        propagated = per_row
    else:
        terms = logits.size + 2
        propagated = scale * per_row.sum()
    with np.errstate(invalid="ignore"):
        bound = propagated + tol.c_sum * tol.eps * terms * loss + tol.floor
    formula = "sum_n C_n*eps*(c_elem*max_k cond_nk + c_sum*K) + c_sum*eps*(M + 2)*|L| + floor"
    reach = _loss_reach(call, loss)
    if call.params["label_smoothing"]:
        # Smoothing adds (e/K) sum_k w_k (-l_nk): that sum over every class and sample is an
        # intermediate too (PyTorch and TensorFlow form it before scaling by e/K).
        weights = call.params["weights"]
        log_p = np.abs(refcnn.log_softmax(logits, axis))
        w = np.ones(logits.shape[axis]) if weights is None else np.abs(weights)
        reach = np.maximum(reach, float(np.sum(np.moveaxis(log_p, axis, -1) * w)))
    return (Bound(np.asarray(bound), formula, reach),)


def softmax_cross_entropy_backward_bound(
    call: Call, truth: tuple[Array, ...], tol: Tolerance
) -> tuple[Bound, ...]:
    """Error model of ``softmax_cross_entropy_backward`` (the module docstring's table)."""
    logits, axis = call.params["logits"], call.params["axis"]
    mass, scale = _coefficient_mass(call)
    stats = _row_stats(logits, axis)
    weight = scale * np.expand_dims(mass, -1)
    grad = np.abs(np.moveaxis(truth[0], axis, -1))
    k = stats.p.shape[-1]
    # Relative error of a sum of probabilities: the form p_i sum_{j!=i} coef_j - coef_i
    # sum_{j!=i} p_j (no cancellation as p_i -> 1) carries every p_j's error into element i.
    row_sum = tol.eps * (tol.c_elem * (1.0 + 2.0 * stats.mix) + tol.c_sum * k)
    with np.errstate(invalid="ignore"):
        bound = (
            weight * (_softmax_bound(stats, tol) + tol.c_sum * tol.eps * 2 * stats.p)
            + (grad + weight * stats.p) * row_sum
            + tol.c_sum * tol.eps * grad
            + tol.floor
        )
    formula = (
        "C_n*(softmax bound + 2*c_sum*eps*p) + (|g| + C_n*p)*eps*(c_elem*(1 + 2*sum_j p_j|z_j - m|)"
        " + c_sum*K) + c_sum*eps*|g| + floor"
    )
    return (Bound(np.moveaxis(bound, -1, axis), formula),)


def range_limited(
    bounds: tuple[Bound, ...], truth: tuple[Array, ...], dtype: npt.DTypeLike
) -> tuple[Array, ...]:
    """Per output, the finite-truth elements whose partial sums can leave ``dtype``'s range.

    Only float16 gets there with the suite's inputs (65504 is its largest value): a sum of
    representable terms, or a loss summed over the batch before the mean divides it, may
    overflow in a kernel that accumulates in float16 even when the result would fit, and
    the overflowed sign depends on the order (TensorFlow's float16 filter gradient gave
    -inf for a true +298914). Frameworks are not compared on those elements; the
    implementation is (refcnn accumulates float16 in float32).
    """
    largest = float(np.finfo(np.dtype(dtype)).max)
    masks = []
    for b, t in zip(bounds, truth, strict=True):
        if b.reach is None:
            masks.append(np.zeros(np.shape(t), dtype=bool))
        else:
            # A true infinity or NaN is still compared exactly.
            masks.append(np.asarray(np.isfinite(t) & (b.reach > largest)))
    return tuple(masks)
