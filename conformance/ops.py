"""The op registry: every public refcnn function the suite checks, each written once.

One :class:`Op` per function: the family strategy that draws its cases (calls are built
from refcnn's own signature, :func:`conformance.strategies.make_call`), the names of its
outputs, its error model (:mod:`conformance.tolerance`), and for a backward function how it
derives from its forward (:class:`Gradient`: which forward, which inputs it differentiates,
which argument is the upstream gradient, and which inputs a linear op is evaluated at zero
for). ``conformance/test_ops.py`` runs one test over :data:`REGISTRY`, and
:mod:`conformance.frameworks` derives every adapter's backward functions from this table, so
adding a function is one row here (plus its family strategy and error model when they are
new), and adding a framework is one adapter module of forwards.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from conformance import tolerance as tol
from conformance.calls import Call

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from conformance.strategies import Case

__all__ = [
    "DTYPES",
    "OPS",
    "REGISTRY",
    "Gradient",
    "JacobianRows",
    "Op",
    "SameAs",
    "bounds",
    "output_names",
]

#: The dtypes every function is checked in (refcnn's float64 is always the truth).
DTYPES = ("float64", "float32", "float16")

Array: TypeAlias = npt.NDArray[Any]
ShapeRule: TypeAlias = Callable[[Mapping[str, Any]], tuple[int, ...]]


@dataclasses.dataclass(frozen=True)
class Gradient:
    """How a backward function derives from its forward: a vector-Jacobian product.

    ``forward(**primals)`` is differentiated with respect to ``wrt`` (in the backward's
    output order), with the upstream gradient ``params[cotangent]`` (ones when None: a
    loss's gradient). The primals are the backward's arguments of the same names, except
    those in ``zeros``: inputs the forward is linear in (their value does not change the
    gradient) or that the backward does not receive, evaluated at zeros of the given shape.
    ``unless`` names why the generic derivation is wrong for this function (an adapter
    must then override it with the framework's own documented route).
    """

    forward: str
    wrt: tuple[str, ...]
    cotangent: str | None = None
    zeros: Mapping[str, ShapeRule] = dataclasses.field(default_factory=dict)
    unless: str = ""


@dataclasses.dataclass(frozen=True)
class JacobianRows:
    """A Jacobian built row by row from a backward function: row i is its VJP of ``e_i``."""

    backward: str
    cotangent: str
    at: str


@dataclasses.dataclass(frozen=True)
class SameAs:
    """The function computes what ``of`` computes, for a subset of its arguments.

    ``conv2d`` is ``conv`` restricted to two spatial axes, ``max_pool3d`` is ``max_pool`` on
    three: an adapter that expresses ``of`` expresses this function too, and writes it once.
    """

    of: str


@dataclasses.dataclass(frozen=True)
class Op:
    """One public function: cases, outputs, error model, derivation (backwards only).

    ``output_dtypes`` names the outputs whose dtype is fixed rather than the inputs'
    (``max_pool_with_argmax``'s int64 indices).
    """

    name: str
    cases: str  # the family strategy of conformance.strategies drawing this function's cases
    error_model: tol.ErrorModel
    outputs: tuple[str, ...] = ("y",)
    derivation: Gradient | JacobianRows | SameAs | None = None
    output_dtypes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def strategy(self) -> SearchStrategy[Case]:
        """Return the strategy drawing this function's cases (imports Hypothesis)."""
        from conformance import strategies  # noqa: PLC0415 - the registry itself is NumPy-only

        family: Callable[..., SearchStrategy[Case]] = getattr(strategies, self.cases)
        return family(op=self.name)


def _shape_of(name: str) -> ShapeRule:
    """Zeros shaped by a shape argument of the backward (``input_shape``, ...)."""
    return lambda params: tuple(int(n) for n in params[name])


def _last_axis_of(name: str) -> ShapeRule:
    """Shape a bias: one entry per output channel, the last axis of ``params[name]``."""
    return lambda params: (int(np.shape(params[name])[-1]),)


# conv_backward_bias receives dy only: its forward is a 1x1 conv of a zero input with one
# channel, shaped like dy otherwise, and a zero (1, ..., 1, 1, O) filter; the bias gradient
# of that conv is sum(dy) over every axis but the channels.
def _channel_axis(params: Mapping[str, Any]) -> int:
    return 1 if str(params.get("data_format") or "").startswith("NC") else -1


def _bias_input_shape(params: Mapping[str, Any]) -> tuple[int, ...]:
    shape = list(np.shape(params["dy"]))
    shape[_channel_axis(params)] = 1
    return tuple(shape)


def _bias_filter_shape(params: Mapping[str, Any]) -> tuple[int, ...]:
    dy_shape = np.shape(params["dy"])
    return (*(1,) * (len(dy_shape) - 2), 1, int(dy_shape[_channel_axis(params)]))


_BIAS_PRIMALS: dict[str, ShapeRule] = {
    "x": _bias_input_shape,
    "w": _bias_filter_shape,
    "b": lambda params: (int(np.shape(params["dy"])[_channel_axis(params)]),),
}

_SOFTMAX_AT_P = (
    "the API gives p = softmax(z), not z: differentiating softmax(log p) perturbs p by "
    "eps*|log p| before the framework runs at all, so each adapter evaluates its "
    "framework's own softmax VJP at p"
)

_OPS = (
    # convolution: the N-d functions, and the 1-D, 2-D and 3-D ones as the same computation
    Op("conv", "conv_cases", tol.conv_bound),
    Op(
        "conv_backward_input",
        "conv_cases",
        tol.conv_backward_input_bound,
        ("dx",),
        Gradient("conv", ("x",), "dy", {"x": _shape_of("input_shape")}),
    ),
    Op(
        "conv_backward_filter",
        "conv_cases",
        tol.conv_backward_filter_bound,
        ("dw",),
        Gradient("conv", ("w",), "dy", {"w": _shape_of("filter_shape")}),
    ),
    Op(
        "conv_backward_bias",
        "conv_cases",
        tol.conv_backward_bias_bound,
        ("db",),
        Gradient("conv", ("b",), "dy", _BIAS_PRIMALS),
    ),
    Op(
        "conv_backward",
        "conv_cases",
        tol.conv_backward_bound,
        ("dx", "dw", "db"),
        Gradient("conv", ("x", "w", "b"), "dy", {"b": _last_axis_of("w")}),
    ),
    Op("conv_transpose", "conv_transpose_cases", tol.conv_transpose_bound),
    Op("conv1d", "conv_cases", tol.conv_bound, derivation=SameAs("conv")),
    Op("conv2d", "conv_cases", tol.conv_bound, derivation=SameAs("conv")),
    Op("conv3d", "conv_cases", tol.conv_bound, derivation=SameAs("conv")),
    Op(
        "conv2d_backward_input",
        "conv_cases",
        tol.conv_backward_input_bound,
        ("dx",),
        SameAs("conv_backward_input"),
    ),
    Op(
        "conv2d_backward_filter",
        "conv_cases",
        tol.conv_backward_filter_bound,
        ("dw",),
        SameAs("conv_backward_filter"),
    ),
    Op(
        "conv2d_backward_bias",
        "conv_cases",
        tol.conv_backward_bias_bound,
        ("db",),
        SameAs("conv_backward_bias"),
    ),
    Op(
        "conv2d_backward",
        "conv_cases",
        tol.conv_backward_bound,
        ("dx", "dw", "db"),
        SameAs("conv_backward"),
    ),
    # pooling: the N-d functions, and the 2-D, 1-D and 3-D ones as the same computation
    Op("max_pool", "pool_cases", tol.exact_bound),
    Op(
        "max_pool_backward",
        "pool_cases",
        tol.max_pool_backward_bound,
        ("dx",),
        Gradient("max_pool", ("x",), "dy"),
    ),
    Op(
        "max_pool_with_argmax",
        "pool_cases",
        tol.exact_bound,
        ("y", "argmax"),
        output_dtypes={"argmax": "int64"},
    ),
    Op("avg_pool", "pool_cases", tol.avg_pool_bound),
    Op(
        "avg_pool_backward",
        "pool_cases",
        tol.avg_pool_backward_bound,
        ("dx",),
        Gradient("avg_pool", ("x",), "dy", {"x": _shape_of("input_shape")}),
    ),
    Op("max_pool2d", "pool_cases", tol.exact_bound, derivation=SameAs("max_pool")),
    Op(
        "max_pool2d_backward",
        "pool_cases",
        tol.max_pool_backward_bound,
        ("dx",),
        SameAs("max_pool_backward"),
    ),
    Op("avg_pool2d", "pool_cases", tol.avg_pool_bound, derivation=SameAs("avg_pool")),
    Op(
        "avg_pool2d_backward",
        "pool_cases",
        tol.avg_pool_backward_bound,
        ("dx",),
        SameAs("avg_pool_backward"),
    ),
    Op("max_pool1d", "pool_cases", tol.exact_bound, derivation=SameAs("max_pool")),
    Op("max_pool3d", "pool_cases", tol.exact_bound, derivation=SameAs("max_pool")),
    Op("avg_pool1d", "pool_cases", tol.avg_pool_bound, derivation=SameAs("avg_pool")),
    Op("avg_pool3d", "pool_cases", tol.avg_pool_bound, derivation=SameAs("avg_pool")),
    Op("global_max_pool", "global_pool_cases", tol.exact_bound),
    Op(
        "global_max_pool_backward",
        "global_pool_cases",
        tol.exact_bound,
        ("dx",),
        Gradient("global_max_pool", ("x",), "dy"),
    ),
    Op("global_avg_pool", "global_pool_cases", tol.global_avg_pool_bound),
    Op(
        "global_avg_pool_backward",
        "global_pool_cases",
        tol.global_avg_pool_backward_bound,
        ("dx",),
        Gradient("global_avg_pool", ("x",), "dy", {"x": _shape_of("input_shape")}),
    ),
    # flatten and dense
    Op("flatten", "flatten_cases", tol.exact_bound),
    Op(
        "flatten_backward",
        "flatten_cases",
        tol.exact_bound,
        ("dx",),
        Gradient("flatten", ("x",), "dy", {"x": _shape_of("input_shape")}),
    ),
    Op("dense", "dense_cases", tol.dense_bound),
    Op(
        "dense_backward",
        "dense_cases",
        tol.dense_backward_bound,
        ("dx", "dw", "db"),
        Gradient("dense", ("x", "w", "b"), "dy", {"b": _last_axis_of("w")}),
    ),
    # activations
    Op("relu", "activation_cases", tol.exact_bound),
    Op(
        "relu_backward",
        "activation_cases",
        tol.exact_bound,
        ("dx",),
        Gradient("relu", ("x",), "dy"),
    ),
    Op("sigmoid", "activation_cases", tol.sigmoid_bound),
    Op(
        "sigmoid_backward",
        "activation_cases",
        tol.sigmoid_backward_bound,
        ("dx",),
        Gradient("sigmoid", ("x",), "dy"),
    ),
    Op("tanh", "activation_cases", tol.tanh_bound),
    Op(
        "tanh_backward",
        "activation_cases",
        tol.tanh_backward_bound,
        ("dx",),
        Gradient("tanh", ("x",), "dy"),
    ),
    # softmax
    Op("softmax", "softmax_cases", tol.softmax_bound),
    Op("log_softmax", "softmax_cases", tol.log_softmax_bound),
    Op(
        "softmax_jacobian",
        "softmax_cases",
        tol.softmax_jacobian_bound,
        ("jacobian",),
        JacobianRows("softmax_backward", "dp", "p"),
    ),
    Op(
        "softmax_backward",
        "softmax_cases",
        tol.softmax_backward_bound,
        ("dz",),
        Gradient("softmax", ("z",), "dp", unless=_SOFTMAX_AT_P),
    ),
    # losses
    Op("cross_entropy", "cross_entropy_cases", tol.cross_entropy_bound, ("loss",)),
    Op(
        "cross_entropy_backward",
        "cross_entropy_cases",
        tol.cross_entropy_backward_bound,
        ("dp",),
        Gradient("cross_entropy", ("p",)),
    ),
    Op(
        "softmax_cross_entropy",
        "softmax_cross_entropy_cases",
        tol.softmax_cross_entropy_bound,
        ("loss",),
    ),
    Op(
        "softmax_cross_entropy_backward",
        "softmax_cross_entropy_cases",
        tol.softmax_cross_entropy_backward_bound,
        ("dlogits",),
        Gradient("softmax_cross_entropy", ("logits",)),
    ),
)

#: Every checked function by name, in the order the report lists families.
REGISTRY: dict[str, Op] = {op.name: op for op in _OPS}
OPS: tuple[Op, ...] = tuple(REGISTRY.values())


def output_names(op: str) -> tuple[str, ...]:
    """Return the names of ``op``'s outputs (one name: a single array is returned)."""
    return REGISTRY[op].outputs


def output_dtype(op: str, output: str, input_dtype: np.dtype[Any]) -> np.dtype[Any]:
    """Return the dtype output ``output`` of ``op`` must have: the inputs', unless fixed."""
    fixed = REGISTRY[op].output_dtypes.get(output)
    return input_dtype if fixed is None else np.dtype(fixed)


def bounds(call: Call, truth: tuple[Array, ...], dtype: npt.DTypeLike) -> tuple[tol.Bound, ...]:
    """Elementwise error bounds for each output of ``call`` (float64 arguments) in ``dtype``."""
    result = REGISTRY[call.op].error_model(call, truth, tol.tolerance(dtype))
    for b, t in zip(result, truth, strict=True):
        if b.bound.shape != t.shape:
            msg = f"{call.op}: error model gave shape {b.bound.shape} for output {t.shape}"
            raise AssertionError(msg)
    return result
