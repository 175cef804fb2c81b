"""Other APIs in a few lines: refcnn's API over a PyTorch-style implementation.

The conformance suite calls refcnn's API (channels-last data by default, ``(*K, C/groups,
O)`` filters, TensorFlow's argument names and padding modes, 1 to 3 spatial axes). An
implementation written the PyTorch way (channels-first data, ``(O, C/groups, *K)``
filters, ``stride=``/``padding=``/``dilation=`` with symmetric integer padding, one
function per rank: ``conv2d``, ``max_pool3d``, ...) is judged by wrapping it::

    # my_pkg/refcnn_api.py, the module named by --impl
    from conformance.adapt import torch_style
    from my_pkg import ops

    __getattr__ = torch_style(ops).__getattr__   # PEP 562: module attributes on demand

``torch_style(ops)`` takes the PyTorch-style functions it knows (:data:`TORCH_STYLE`)
from ``ops`` by name, keyword arguments add or override them
(``torch_style(conv2d=ops.conv, linear=ops.fc)``), and a function it has none for is absent,
so the suite reports it "not implemented". Functions already in refcnn's conventions need
no wrapper: define them in the ``--impl`` module itself (module attributes win over
``__getattr__``).

Which refcnn function each one serves
-------------------------------------
``conv{r}d`` (r = 1, 2, 3) serves refcnn's ``conv{r}d`` and, for its rank, the N-d
``conv``; likewise ``conv{r}d_backward_input/_filter/_bias``, ``conv{r}d_backward`` (refcnn's
N-d backwards and their ``conv2d_*`` names), ``conv_transpose{r}d`` (``conv_transpose``),
``max_pool{r}d`` (``max_pool``, ``max_pool{r}d`` and, where its signature takes
``return_indices``, ``max_pool_with_argmax``), ``max_pool{r}d_backward``, ``avg_pool{r}d``,
``avg_pool{r}d_backward``, and ``adaptive_max_pool{r}d`` / ``adaptive_avg_pool{r}d`` with
output size 1 (``global_max_pool`` / ``global_avg_pool``) with their ``_backward``
functions. An N-d refcnn function serves the ranks given; a case of another rank raises
:class:`NotImplementedError` naming the missing function.

What the wrapper does, and what it never does
---------------------------------------------
- Layouts: channels-last ``(N, *S, C)`` <-> ``(N, C, *S)`` and ``(*K, I, O)`` <-> ``(O, I,
  *K)`` are transposes, exact; channels-first data (``data_format="NCW"/"NCHW"/"NCDHW"``)
  is passed as it is. The implementation receives NumPy *views* of the caller's arrays (an
  in-place write still reaches them, so the suite's "inputs never modified" check still
  sees it) and its results are transposed back. Results are not converted: an
  implementation must return NumPy arrays of the input dtype (int64 indices from
  ``return_indices``), as the suite checks. (The transposes are ``np.transpose``, so array
  types that implement NumPy's ``__array_function__``, such as MyGrad tensors, keep their
  type through the wrapper: :mod:`conformance.peers.mygrad_nnet` differentiates through it.)
- Padding: ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` and explicit pads are resolved by
  :mod:`refcnn.padding` into ``(before, after)`` per spatial axis. Where each axis is
  symmetric they become PyTorch's ``padding=p`` (an int, or one int per axis when the axes
  differ); an asymmetric case (an odd SAME total, asymmetric explicit pads) cannot be said
  with ``padding=`` and raises :class:`NotImplementedError` naming the pads, which the
  suite counts as "not expressible" for that case. The wrapper never pads the input
  itself: that would replace the implementation's own padding code, the part most often
  wrong. ``ceil_mode`` is passed on: PyTorch's rule (a last window starting in the end pad
  is dropped; ``count_include_pad`` counts the taps inside the padded input) is refcnn's.
- ``conv_transpose``: PyTorch's output is ``full[P : L - P + output_padding]`` of the full
  transposed length ``L = (in - 1)*s + (K - 1)*d + 1``, refcnn's ``full[before : before +
  n]``; it is said with ``padding=before``, ``output_padding=2*before + n - L`` where that
  is in ``[0, max(s, d))`` on every axis (PyTorch's range), and refused otherwise (the
  wrapper never crops a result: that too would do the implementation's work).
- Arguments the PyTorch API spells differently: ``ksize`` -> ``kernel_size``,
  ``strides`` -> ``stride``, ``dilations`` -> ``dilation``, ``weights`` -> ``weight``;
  ``groups`` is PyTorch's (both put output channel ``o`` in group ``o // (O/groups)``);
  refcnn's ``axis`` is the softmax family's ``dim``, passed positionally after the arrays;
  dense's ``(I, O)`` weight is ``linear``'s ``(O, I)``; ``keepdims=False`` of the global
  pools is a reshape of PyTorch's ``(N, C, 1, ...)``;
  refcnn's ``softmax_cross_entropy`` is PyTorch's ``cross_entropy`` (logits, class axis
  moved to 1). ``count_include_pad`` is always passed: refcnn's default is ``False``,
  PyTorch's ``True``.
- Arrays (and ``kernel_size``, shapes, the adaptive pools' output size 1) are passed
  positionally, options by keyword. One the implementation's signature lacks is left out
  where the case needs PyTorch's default for it (an implementation without ``dilation``,
  ``groups`` or ``ceil_mode`` still serves every case at the default); where the case needs
  another value the call raises :class:`NotImplementedError` naming the missing parameter.
  ``dilation``, ``groups`` and ``ceil_mode`` at PyTorch's default are never passed (a
  function taking ``**kwargs`` may forward them to an older signature), nor are
  ``weight=None`` and ``ignore_index=None`` (refcnn's "none").

PyTorch's own ``max_pool2d``/``avg_pool2d`` refuse pads above half the window, which
refcnn's explicit pads allow (up to the window size minus one); an implementation with that
rule should raise :class:`NotImplementedError` for those cases itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from conformance.frameworks._common import conv_transpose_sizes
from conformance.ops import REGISTRY
from refcnn._checks import as_data_format, as_tuple
from refcnn.padding import AxisPads, normalize_padding, windows

__all__ = ["TORCH_STYLE", "TorchStyle", "TorchStyleFunction", "torch_style"]

Array = npt.NDArray[Any]
_RANKS = (1, 2, 3)


class TorchStyleFunction(NamedTuple):
    """One PyTorch-style function the wrapper knows: what it serves and how it is called."""

    serves: tuple[str, ...]  # the refcnn functions built from it
    signature: str  # how the wrapper calls it (documentation; arrays channels-first)


class _Family(NamedTuple):
    """The PyTorch-style functions of one rank each behind one N-d refcnn function."""

    nd: str  # refcnn's N-d function
    pattern: str  # the PyTorch-style name, "{r}" the rank
    signature: str
    extra: tuple[str, ...] = ()  # further N-d refcnn functions served


_FAMILIES = (
    _Family("conv", "conv{r}d", "conv{r}d(x, w[, b], stride=, padding=, dilation=, groups=)"),
    _Family(
        "conv_backward_input",
        "conv{r}d_backward_input",
        "conv{r}d_backward_input(dy, w, input_shape, stride=, padding=, dilation=, groups=) -> dx",
    ),
    _Family(
        "conv_backward_filter",
        "conv{r}d_backward_filter",
        "conv{r}d_backward_filter(dy, x, filter_shape, stride=, padding=, dilation=, groups=) "
        "-> dw",
    ),
    _Family("conv_backward_bias", "conv{r}d_backward_bias", "conv{r}d_backward_bias(dy) -> db"),
    _Family(
        "conv_backward",
        "conv{r}d_backward",
        "conv{r}d_backward(dy, x, w, stride=, padding=, dilation=, groups=) -> (dx, dw, db)",
    ),
    _Family(
        "conv_transpose",
        "conv_transpose{r}d",
        "conv_transpose{r}d(x, w[, b], stride=, padding=, output_padding=, groups=, dilation=)",
    ),
    _Family(
        "max_pool",
        "max_pool{r}d",
        "max_pool{r}d(x, kernel_size, stride=, padding=, dilation=, ceil_mode="
        "[, return_indices=True])",
        ("max_pool_with_argmax",),
    ),
    _Family(
        "max_pool_backward",
        "max_pool{r}d_backward",
        "max_pool{r}d_backward(dy, x, kernel_size, stride=, padding=, dilation=, ceil_mode=)",
    ),
    _Family(
        "avg_pool",
        "avg_pool{r}d",
        "avg_pool{r}d(x, kernel_size, stride=, padding=, dilation=, ceil_mode=, "
        "count_include_pad=)",
    ),
    _Family(
        "avg_pool_backward",
        "avg_pool{r}d_backward",
        "avg_pool{r}d_backward(dy, input_shape, kernel_size, stride=, padding=, dilation=, "
        "ceil_mode=, count_include_pad=)",
    ),
    _Family("global_max_pool", "adaptive_max_pool{r}d", "adaptive_max_pool{r}d(x, 1)"),
    _Family(
        "global_max_pool_backward",
        "adaptive_max_pool{r}d_backward",
        "adaptive_max_pool{r}d_backward(dy, x) -> dx",
    ),
    _Family("global_avg_pool", "adaptive_avg_pool{r}d", "adaptive_avg_pool{r}d(x, 1)"),
    _Family(
        "global_avg_pool_backward",
        "adaptive_avg_pool{r}d_backward",
        "adaptive_avg_pool{r}d_backward(dy, input_shape) -> dx",
    ),
)

#: PyTorch-style spatial function name -> its family and rank.
_SPATIAL: dict[str, tuple[_Family, int]] = {
    family.pattern.format(r=rank): (family, rank) for family in _FAMILIES for rank in _RANKS
}


def _spatial_entry(family: _Family, rank: int) -> TorchStyleFunction:
    name = family.pattern.format(r=rank)
    own = (name,) if name in REGISTRY else ()  # refcnn's conv2d, max_pool3d, ...
    return TorchStyleFunction((family.nd, *own, *family.extra), family.signature.format(r=rank))


#: The PyTorch-style functions :func:`torch_style` takes, by name, and how it calls them.
TORCH_STYLE: dict[str, TorchStyleFunction] = {
    **{name: _spatial_entry(family, rank) for name, (family, rank) in _SPATIAL.items()},
    "flatten": TorchStyleFunction(("flatten",), "flatten(x, start_dim=1)"),
    "flatten_backward": TorchStyleFunction(
        ("flatten_backward",), "flatten_backward(dy, input_shape, start_dim=1)"
    ),
    "linear": TorchStyleFunction(("dense",), "linear(x, w_out_in[, b])"),
    "linear_backward": TorchStyleFunction(
        ("dense_backward",), "linear_backward(dy, x, w_out_in) -> (dx, dw_out_in, db)"
    ),
    "relu": TorchStyleFunction(("relu",), "relu(x)"),
    "relu_backward": TorchStyleFunction(("relu_backward",), "relu_backward(dy, x)"),
    "sigmoid": TorchStyleFunction(("sigmoid",), "sigmoid(x)"),
    "sigmoid_backward": TorchStyleFunction(("sigmoid_backward",), "sigmoid_backward(dy, x)"),
    "tanh": TorchStyleFunction(("tanh",), "tanh(x)"),
    "tanh_backward": TorchStyleFunction(("tanh_backward",), "tanh_backward(dy, x)"),
    "softmax": TorchStyleFunction(("softmax",), "softmax(x, dim)"),
    "log_softmax": TorchStyleFunction(("log_softmax",), "log_softmax(x, dim)"),
    "softmax_backward": TorchStyleFunction(("softmax_backward",), "softmax_backward(dp, p, dim)"),
    "softmax_jacobian": TorchStyleFunction(("softmax_jacobian",), "softmax_jacobian(p, dim)"),
    "cross_entropy": TorchStyleFunction(
        ("softmax_cross_entropy",),
        "cross_entropy(logits, target, weight=, ignore_index=, reduction=, label_smoothing=)",
    ),
    "cross_entropy_backward": TorchStyleFunction(
        ("softmax_cross_entropy_backward",),
        "cross_entropy_backward(logits, target, weight=, ignore_index=, reduction=, "
        "label_smoothing=) -> dlogits",
    ),
}

# PyTorch's defaults, per family: an option the implementation's signature lacks may be left
# out only where the case needs this value.
_CONV_DEFAULTS: dict[str, Any] = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
_TRANSPOSE_DEFAULTS: dict[str, Any] = {**_CONV_DEFAULTS, "output_padding": 0}
_POOL_DEFAULTS: dict[str, Any] = {
    "stride": None,
    "padding": 0,
    "dilation": 1,
    "ceil_mode": False,
    "count_include_pad": True,
    "return_indices": False,
}
_FLATTEN_DEFAULTS: dict[str, Any] = {"start_dim": 1}
_LOSS_DEFAULTS: dict[str, Any] = {"reduction": "mean", "label_smoothing": 0.0}
# refcnn's None for these is PyTorch's omitted argument (ignore_index=None: no label is
# ignored, which PyTorch's default -100 also gives for labels in [0, K)): never passed.
_ABSENT_WHEN_NONE = frozenset({"weight", "ignore_index"})
# Options PyTorch's older signatures lack (groups, ceil_mode, dilated pooling): passed only
# where the case needs another value than the default, so that a function forwarding
# ``**kwargs`` to such a signature still serves the default cases.
_OMITTED_AT_DEFAULT = frozenset({"dilation", "groups", "ceil_mode"})


class _Target:
    """A PyTorch-style function and the keyword parameters its signature declares."""

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name
        self.function = function
        self.label = getattr(function, "__qualname__", name)
        self.accepts: frozenset[str] | None = None  # None: any keyword (or unknown)
        try:
            parameters = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: pass everything
            return
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            self.accepts = frozenset(p.name for p in parameters)

    def takes(self, key: str) -> bool:
        """Whether the signature takes keyword ``key`` (or any keyword)."""
        return self.accepts is None or key in self.accepts

    def __call__(self, op: str, *arrays: Any, defaults: Mapping[str, Any], **options: Any) -> Any:
        """Call with ``arrays`` positionally and ``options`` by keyword (see the module doc)."""
        passed = {}
        for key, value in options.items():
            if value is None and key in _ABSENT_WHEN_NONE:
                continue
            if key in _OMITTED_AT_DEFAULT and key in defaults and _same(value, defaults[key]):
                continue
            if self.takes(key):
                passed[key] = value
            elif key in defaults and _same(value, defaults[key]):
                continue  # the implementation can only mean PyTorch's default
            else:
                msg = (
                    f"{op}: {self.label} has no {key!r} parameter and this case needs "
                    f"{key}={value!r}"
                )
                raise NotImplementedError(msg)
        return self.function(*arrays, **passed)


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, tuple | list):
        return all(_same(v, default) for v in value)
    return bool(value == default) if default is not None else value is None


def _shape(a: Any) -> tuple[int, ...]:
    # An array's own shape: array types that implement __array_function__ (MyGrad tensors)
    # need not implement np.shape / np.ndim.
    shape = getattr(a, "shape", None)
    return tuple(shape) if shape is not None else tuple(np.shape(a))


def _ndim(a: Any) -> int:
    return len(_shape(a))


# -- spatial layouts and pads -------------------------------------------------------------------


class _Layout(NamedTuple):
    """A case's number of spatial axes and whether its data is channels-first."""

    rank: int
    channels_first: bool


def _layout(
    op: str, name: str, shape: Sequence[int], data_format: Any, fixed: int | None
) -> _Layout:
    """Return the layout of ``name`` (shape ``shape``); ``fixed``: the function's rank (conv2d)."""
    named, channels_first = as_data_format(op, data_format, rank=fixed)
    rank = fixed or named or len(shape) - 2
    if rank not in _RANKS or len(shape) != rank + 2:
        expected = (
            f"{rank + 2}-D for {rank} spatial axes"
            if fixed or named
            else "3-D, 4-D or 5-D (1 to 3 spatial axes)"
        )
        msg = f"{op}: {name} must be {expected}, got shape {tuple(shape)}"
        raise ValueError(msg)
    return _Layout(rank, channels_first)


def _check_ndim(op: str, name: str, shape: Sequence[int], ndim: int) -> None:
    if len(shape) != ndim:
        msg = f"{op}: {name} must be {ndim}-D, got shape {tuple(shape)}"
        raise ValueError(msg)


def _first(a: Any, layout: _Layout) -> Any:
    """``(N, *S, C)`` -> ``(N, C, *S)`` (a view); channels-first data as it is."""
    if layout.channels_first:
        return a
    return np.transpose(a, (0, layout.rank + 1, *range(1, layout.rank + 1)))


def _first_shape(shape: Sequence[int], layout: _Layout) -> tuple[int, ...]:
    sizes = tuple(int(n) for n in shape)
    return sizes if layout.channels_first else (sizes[0], sizes[-1], *sizes[1:-1])


def _back(op: str, y: Any, layout: _Layout) -> Any:
    """Transpose a channels-first result back to the caller's layout (a clear error if not)."""
    if _ndim(y) != layout.rank + 2:
        msg = (
            f"{op}: the PyTorch-style function returned shape {_shape(y)}, expected "
            f"{layout.rank + 2}-D (N, C, *spatial)"
        )
        raise ValueError(msg)
    if layout.channels_first:
        return y
    return np.transpose(y, (0, *range(2, layout.rank + 2), 1))


def _torch_filter(w: Any, rank: int) -> Any:
    """``(*K, I, O)`` -> PyTorch's ``(O, I, *K)`` (a view; also conv_transpose's weight)."""
    return np.transpose(w, (rank + 1, rank, *range(rank)))


def _torch_filter_shape(shape: Sequence[int], rank: int) -> tuple[int, ...]:
    sizes = tuple(int(n) for n in shape)
    return (sizes[rank + 1], sizes[rank], *sizes[:rank])


def _refcnn_filter(op: str, dw: Any, rank: int) -> Any:
    if _ndim(dw) != rank + 2:
        msg = (
            f"{op}: the PyTorch-style function returned shape {_shape(dw)}, expected "
            f"{rank + 2}-D (O, C/groups, *K)"
        )
        raise ValueError(msg)
    return np.transpose(dw, (*range(2, rank + 2), 1, 0))


def _spatial(shape: Sequence[int], layout: _Layout) -> tuple[int, ...]:
    sizes = tuple(int(n) for n in shape)
    return sizes[2:] if layout.channels_first else sizes[1:-1]


def _int_or_tuple(values: tuple[int, ...]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else values


def _torch_padding(op: str, padding: Any, pads: AxisPads) -> int | tuple[int, ...]:
    """PyTorch's ``padding=`` for resolved pads symmetric on each axis; else not expressible."""
    if any(before != after for before, after in pads):
        msg = (
            f"{op}: padding={padding!r} resolves to pads (before, after) per spatial axis = "
            f"{pads} here; a PyTorch-style padding= pads both sides of an axis alike, so "
            "this case is not expressible (the wrapper never pads the input itself: that "
            "would bypass the implementation's own padding)"
        )
        raise NotImplementedError(msg)
    return _int_or_tuple(tuple(before for before, _ in pads))


def _conv_options(
    op: str,
    layout: _Layout,
    sizes: Sequence[int],
    filter_shape: Sequence[int],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """PyTorch's conv keywords for refcnn's ``strides``, ``padding``, ``dilations``, ``groups``."""
    rank = layout.rank
    _check_ndim(op, "the filter", filter_shape, rank + 2)
    strides, dilations = options["strides"], options["dilations"]
    geometry = windows(
        sizes,
        tuple(int(k) for k in filter_shape[:rank]),
        as_tuple(op, "strides", strides, rank=rank),
        as_tuple(op, "dilations", dilations, rank=rank),
        normalize_padding(op, options["padding"], rank),
    )
    return {
        "stride": strides,
        "padding": _torch_padding(op, options["padding"], geometry.pads),
        "dilation": dilations,
        "groups": options["groups"],
    }


def _pool_options(
    op: str, layout: _Layout, sizes: Sequence[int], ksize: Any, options: Mapping[str, Any]
) -> dict[str, Any]:
    """PyTorch's pooling keywords (``stride=None`` is passed on: PyTorch's "the window")."""
    rank = layout.rank
    kernel = as_tuple(op, "ksize", ksize, rank=rank)
    strides, dilations = options["strides"], options["dilations"]
    geometry = windows(
        sizes,
        kernel,
        kernel if strides is None else as_tuple(op, "strides", strides, rank=rank),
        as_tuple(op, "dilations", dilations, rank=rank),
        normalize_padding(op, options["padding"], rank),
        ceil_mode=bool(options["ceil_mode"]),
    )
    return {
        "stride": strides,
        "padding": _torch_padding(op, options["padding"], geometry.pads),
        "dilation": dilations,
        "ceil_mode": options["ceil_mode"],
    }


# -- one builder per spatial family: refcnn's signature outside, PyTorch's inside --------------
#
# Each takes refcnn's function name, the PyTorch-style functions it may call by rank, and
# the rank the name fixes (conv2d: 2; None for the N-d functions, which pick by the case).

_Targets = Mapping[int, _Target]
_SpatialBuilder = Callable[[str, _Targets, "int | None"], Callable[..., Any]]


def _pick(op: str, targets: _Targets, layout: _Layout, pattern: str) -> _Target:
    target = targets.get(layout.rank)
    if target is None:
        have = ", ".join(t.name for _, t in sorted(targets.items()))
        msg = (
            f"{op}: this case has {layout.rank} spatial axes and the PyTorch-style "
            f"implementation has no {pattern.format(r=layout.rank)} (it has {have})"
        )
        raise NotImplementedError(msg)
    return target


def _named(function: Callable[..., Any], op: str, how: str) -> Callable[..., Any]:
    function.__name__ = function.__qualname__ = op
    function.__doc__ = f"See refcnn.{op} ({how})."
    return function


def _conv(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def conv(
        x: Array,
        w: Array,
        b: Array | None = None,
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
        groups: int = 1,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "conv{r}d")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _conv_options(
            op, layout, _spatial(_shape(x), layout), _shape(w), {**settings, "groups": groups}
        )
        arrays = [_first(x, layout), _torch_filter(w, layout.rank)]
        if b is not None:
            arrays.append(b)
        return _back(op, target(op, *arrays, defaults=_CONV_DEFAULTS, **options), layout)

    return _named(conv, op, "PyTorch-style conv{r}d on channels-first views")


def _conv_backward_input(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def conv_backward_input(
        dy: Array,
        w: Array,
        input_shape: Sequence[int],
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
        groups: int = 1,
        data_format: str | None = None,
        method: str = "auto",  # refcnn's route choice: nothing to translate
    ) -> Any:
        layout = _layout(op, "input_shape", input_shape, data_format, fixed)
        target = _pick(op, targets, layout, "conv{r}d_backward_input")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _conv_options(
            op, layout, _spatial(input_shape, layout), _shape(w), {**settings, "groups": groups}
        )
        dx = target(
            op,
            _first(dy, layout),
            _torch_filter(w, layout.rank),
            _first_shape(input_shape, layout),
            defaults=_CONV_DEFAULTS,
            **options,
        )
        return _back(op, dx, layout)

    return _named(conv_backward_input, op, "channels-first dy and input_shape, (O, I, *K) w")


def _conv_backward_filter(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def conv_backward_filter(
        dy: Array,
        x: Array,
        filter_shape: Sequence[int],
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
        groups: int = 1,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "conv{r}d_backward_filter")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _conv_options(
            op, layout, _spatial(_shape(x), layout), filter_shape, {**settings, "groups": groups}
        )
        dw = target(
            op,
            _first(dy, layout),
            _first(x, layout),
            _torch_filter_shape(filter_shape, layout.rank),
            defaults=_CONV_DEFAULTS,
            **options,
        )
        return _refcnn_filter(op, dw, layout.rank)

    return _named(conv_backward_filter, op, "channels-first dy and x, (O, I, *K) dw")


def _conv_backward_bias(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def conv_backward_bias(dy: Array, *, data_format: str | None = None) -> Any:
        layout = _layout(op, "dy", _shape(dy), data_format, fixed)
        target = _pick(op, targets, layout, "conv{r}d_backward_bias")
        return target(op, _first(dy, layout), defaults={})

    return _named(conv_backward_bias, op, "channels-first dy")


def _conv_backward(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def conv_backward(
        dy: Array,
        x: Array,
        w: Array,
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
        groups: int = 1,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "conv{r}d_backward")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _conv_options(
            op, layout, _spatial(_shape(x), layout), _shape(w), {**settings, "groups": groups}
        )
        arrays = (_first(dy, layout), _first(x, layout), _torch_filter(w, layout.rank))
        dx, dw, db = target(op, *arrays, defaults=_CONV_DEFAULTS, **options)
        return (_back(op, dx, layout), _refcnn_filter(op, dw, layout.rank), db)

    return _named(conv_backward, op, "channels-first inside, (dx, dw, db) back in refcnn's")


def _transpose_pads(
    op: str,
    layout: _Layout,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    options: Mapping[str, Any],
) -> tuple[int | tuple[int, ...], int | tuple[int, ...]]:
    """PyTorch's ``(padding, output_padding)`` for refcnn's transposed conv, else refused."""
    rank = layout.rank
    _check_ndim(op, "w", w_shape, rank + 2)
    stride = as_tuple(op, "strides", options["strides"], rank=rank)
    dilation = as_tuple(op, "dilations", options["dilations"], rank=rank)
    extra = as_tuple(op, "output_padding", options["output_padding"], rank=rank, minimum=0)
    normalize_padding(op, options["padding"], rank)  # refused here naming the wrapper
    sized = conv_transpose_sizes(
        x_shape,
        w_shape,
        channels_first=layout.channels_first,
        output_shape=options["output_shape"],
        strides=stride,
        padding=options["padding"],
        output_padding=extra,
        dilations=dilation,
    )
    kernel, in_sizes, sizes, befores = sized.kernel, sized.in_sizes, sized.sizes, sized.befores
    paddings, output_paddings = [], []
    for a in range(rank):
        full = (in_sizes[a] - 1) * stride[a] + (kernel[a] - 1) * dilation[a] + 1
        output_padding = 2 * befores[a] + sizes[a] - full
        if not 0 <= output_padding < max(stride[a], dilation[a]):
            msg = (
                f"{op}: on spatial axis {a} refcnn's output is full[{befores[a]} : "
                f"{befores[a] + sizes[a]}] of the full transposed length {full}; a "
                f"PyTorch-style conv_transpose gives full[P : {full} - P + output_padding] "
                f"with 0 <= output_padding < max(stride, dilation) = "
                f"{max(stride[a], dilation[a])}, so this case is not expressible (it would "
                f"need output_padding={output_padding}; the wrapper never crops a result)"
            )
            raise NotImplementedError(msg)
        paddings.append(befores[a])
        output_paddings.append(output_padding)
    return _int_or_tuple(tuple(paddings)), _int_or_tuple(tuple(output_paddings))


def _conv_transpose(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def conv_transpose(
        x: Array,
        w: Array,
        b: Array | None = None,
        *,
        output_shape: Sequence[int] | None = None,
        strides: Any = 1,
        padding: Any = "VALID",
        output_padding: Any = 0,
        dilations: Any = 1,
        groups: int = 1,
        data_format: str | None = None,
        method: str = "auto",  # refcnn's route choice: nothing to translate
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "conv_transpose{r}d")
        settings = {
            "output_shape": output_shape,
            "strides": strides,
            "padding": padding,
            "output_padding": output_padding,
            "dilations": dilations,
        }
        pads, extra = _transpose_pads(op, layout, _shape(x), _shape(w), settings)
        arrays = [_first(x, layout), _torch_filter(w, layout.rank)]
        if b is not None:
            arrays.append(b)
        y = target(
            op,
            *arrays,
            defaults=_TRANSPOSE_DEFAULTS,
            stride=strides,
            padding=pads,
            output_padding=extra,
            groups=groups,
            dilation=dilations,
        )
        return _back(op, y, layout)

    return _named(conv_transpose, op, "PyTorch-style conv_transpose{r}d, channels-first")


def _max_pool(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def max_pool(
        x: Array,
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        dilations: Any = 1,
        ceil_mode: bool = False,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "max_pool{r}d")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _pool_options(
            op, layout, _spatial(_shape(x), layout), ksize, {**settings, "ceil_mode": ceil_mode}
        )
        y = target(op, _first(x, layout), ksize, defaults=_POOL_DEFAULTS, **options)
        return _back(op, y, layout)

    return _named(max_pool, op, "PyTorch-style max_pool{r}d on a channels-first view")


def _max_pool_with_argmax(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def max_pool_with_argmax(
        x: Array,
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        dilations: Any = 1,
        ceil_mode: bool = False,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "max_pool{r}d")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _pool_options(
            op, layout, _spatial(_shape(x), layout), ksize, {**settings, "ceil_mode": ceil_mode}
        )
        result = target(
            op, _first(x, layout), ksize, defaults=_POOL_DEFAULTS, **options, return_indices=True
        )
        if not isinstance(result, tuple | list) or len(result) != 2:
            msg = f"{op}: return_indices=True must return (y, indices), got {type(result)}"
            raise ValueError(msg)
        y, indices = result
        # PyTorch's index (in the (n, c) spatial volume, row-major) is refcnn's argmax.
        return (_back(op, y, layout), _back(op, indices, layout))

    return _named(max_pool_with_argmax, op, "max_pool{r}d(..., return_indices=True)")


def _max_pool_backward(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def max_pool_backward(
        dy: Array,
        x: Array,
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        dilations: Any = 1,
        ceil_mode: bool = False,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "max_pool{r}d_backward")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _pool_options(
            op, layout, _spatial(_shape(x), layout), ksize, {**settings, "ceil_mode": ceil_mode}
        )
        dx = target(
            op,
            _first(dy, layout),
            _first(x, layout),
            ksize,
            defaults=_POOL_DEFAULTS,
            **options,
        )
        return _back(op, dx, layout)

    return _named(max_pool_backward, op, "channels-first views inside")


def _avg_pool(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def avg_pool(
        x: Array,
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        dilations: Any = 1,
        ceil_mode: bool = False,
        count_include_pad: bool = False,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "avg_pool{r}d")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _pool_options(
            op, layout, _spatial(_shape(x), layout), ksize, {**settings, "ceil_mode": ceil_mode}
        )
        y = target(
            op,
            _first(x, layout),
            ksize,
            defaults=_POOL_DEFAULTS,
            **options,
            count_include_pad=count_include_pad,
        )
        return _back(op, y, layout)

    return _named(avg_pool, op, "count_include_pad always passed: PyTorch's default differs")


def _avg_pool_backward(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def avg_pool_backward(
        dy: Array,
        input_shape: Sequence[int],
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        dilations: Any = 1,
        ceil_mode: bool = False,
        count_include_pad: bool = False,
        data_format: str | None = None,
    ) -> Any:
        layout = _layout(op, "input_shape", input_shape, data_format, fixed)
        target = _pick(op, targets, layout, "avg_pool{r}d_backward")
        settings = {"strides": strides, "padding": padding, "dilations": dilations}
        options = _pool_options(
            op, layout, _spatial(input_shape, layout), ksize, {**settings, "ceil_mode": ceil_mode}
        )
        dx = target(
            op,
            _first(dy, layout),
            _first_shape(input_shape, layout),
            ksize,
            defaults=_POOL_DEFAULTS,
            **options,
            count_include_pad=count_include_pad,
        )
        return _back(op, dx, layout)

    return _named(avg_pool_backward, op, "channels-first dy and input_shape")


def _global_result(op: str, y: Any, layout: _Layout, keepdims: bool) -> Any:
    kept = _back(op, y, layout)
    return kept if keepdims else np.reshape(y, _shape(y)[:2])  # (N, C, 1, ...) -> (N, C)


def _global_upstream(dy: Any, layout: _Layout, keepdims: bool) -> Any:
    if keepdims:
        return _first(dy, layout)
    return np.reshape(dy, (*_shape(dy), *(1,) * layout.rank))  # (N, C) -> (N, C, 1, ...)


def _global_pool(pattern: str) -> _SpatialBuilder:
    def build(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
        def global_pool(x: Array, *, data_format: str | None = None, keepdims: bool = True) -> Any:
            layout = _layout(op, "x", _shape(x), data_format, fixed)
            target = _pick(op, targets, layout, pattern)
            y = target(op, _first(x, layout), 1, defaults={})
            return _global_result(op, y, layout, keepdims)

        return _named(global_pool, op, f"PyTorch-style {pattern}(x, 1), channels-first")

    return build


def _global_max_pool_backward(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def global_max_pool_backward(
        dy: Array, x: Array, *, data_format: str | None = None, keepdims: bool = True
    ) -> Any:
        layout = _layout(op, "x", _shape(x), data_format, fixed)
        target = _pick(op, targets, layout, "adaptive_max_pool{r}d_backward")
        dx = target(op, _global_upstream(dy, layout, keepdims), _first(x, layout), defaults={})
        return _back(op, dx, layout)

    return _named(global_max_pool_backward, op, "channels-first dy (N, C, 1, ...) and x")


def _global_avg_pool_backward(op: str, targets: _Targets, fixed: int | None) -> Callable[..., Any]:
    def global_avg_pool_backward(
        dy: Array,
        input_shape: Sequence[int],
        *,
        data_format: str | None = None,
        keepdims: bool = True,
    ) -> Any:
        layout = _layout(op, "input_shape", input_shape, data_format, fixed)
        target = _pick(op, targets, layout, "adaptive_avg_pool{r}d_backward")
        dx = target(
            op,
            _global_upstream(dy, layout, keepdims),
            _first_shape(input_shape, layout),
            defaults={},
        )
        return _back(op, dx, layout)

    return _named(global_avg_pool_backward, op, "channels-first dy (N, C, 1, ...)")


#: refcnn's spatial function -> its builder (the fixed-rank names use their family's).
_SPATIAL_BUILDERS: dict[str, _SpatialBuilder] = {
    "conv": _conv,
    "conv_backward_input": _conv_backward_input,
    "conv_backward_filter": _conv_backward_filter,
    "conv_backward_bias": _conv_backward_bias,
    "conv_backward": _conv_backward,
    "conv_transpose": _conv_transpose,
    "max_pool": _max_pool,
    "max_pool_with_argmax": _max_pool_with_argmax,
    "max_pool_backward": _max_pool_backward,
    "avg_pool": _avg_pool,
    "avg_pool_backward": _avg_pool_backward,
    "global_max_pool": _global_pool("adaptive_max_pool{r}d"),
    "global_max_pool_backward": _global_max_pool_backward,
    "global_avg_pool": _global_pool("adaptive_avg_pool{r}d"),
    "global_avg_pool_backward": _global_avg_pool_backward,
}
assert {n for f in _FAMILIES for n in (f.nd, *f.extra)} == set(_SPATIAL_BUILDERS)


# -- the layout-free functions -------------------------------------------------------------------


def _flatten_start_dim(op: str, ndim: int, axis: int) -> int:
    # PyTorch's flatten(x, start_dim) keeps the axes before start_dim; ONNX's Flatten(axis),
    # refcnn's, always returns 2-D: the two agree for axis 1 only.
    if ndim < 2 or axis not in (1, 1 - ndim):
        msg = (
            f"{op}: axis={axis} on a {ndim}-D input; PyTorch-style flatten(x, start_dim) keeps "
            "the axes before start_dim, so only axis 1 (the batch kept) is expressible"
        )
        raise NotImplementedError(msg)
    return 1


def _flatten(f: _Target) -> Callable[..., Any]:
    def flatten(x: Array, axis: int = 1) -> Any:
        """See refcnn.flatten (layout-free: the array is passed as it is)."""
        start_dim = _flatten_start_dim("flatten", _ndim(x), axis)
        return f("flatten", x, defaults=_FLATTEN_DEFAULTS, start_dim=start_dim)

    return flatten


def _flatten_backward(f: _Target) -> Callable[..., Any]:
    def flatten_backward(dy: Array, input_shape: Sequence[int], axis: int = 1) -> Any:
        """See refcnn.flatten_backward (layout-free)."""
        start_dim = _flatten_start_dim("flatten_backward", len(input_shape), axis)
        return f(
            "flatten_backward",
            dy,
            tuple(input_shape),
            defaults=_FLATTEN_DEFAULTS,
            start_dim=start_dim,
        )

    return flatten_backward


def _dense(f: _Target) -> Callable[..., Any]:
    def dense(x: Array, w: Array, b: Array | None = None) -> Any:
        """See refcnn.dense (PyTorch's linear takes the (O, I) weight)."""
        arrays = [x, np.transpose(w)] if b is None else [x, np.transpose(w), b]
        return f("dense", *arrays, defaults={})

    return dense


def _dense_backward(f: _Target) -> Callable[..., Any]:
    def dense_backward(dy: Array, x: Array, w: Array) -> Any:
        """See refcnn.dense_backward (dw back from (O, I) to (I, O))."""
        dx, dw, db = f("dense_backward", dy, x, np.transpose(w), defaults={})
        return (dx, np.transpose(dw), db)

    return dense_backward


def _elementwise(f: _Target) -> Callable[..., Any]:
    name = TORCH_STYLE[f.name].serves[0]

    def elementwise(x: Array) -> Any:
        return f(name, x, defaults={})

    elementwise.__name__ = elementwise.__qualname__ = name
    elementwise.__doc__ = f"See refcnn.{name} (layout-free: the same call)."
    return elementwise


def _elementwise_backward(f: _Target) -> Callable[..., Any]:
    name = TORCH_STYLE[f.name].serves[0]

    def elementwise_backward(dy: Array, x: Array) -> Any:
        return f(name, dy, x, defaults={})

    elementwise_backward.__name__ = elementwise_backward.__qualname__ = name
    elementwise_backward.__doc__ = f"See refcnn.{name} (layout-free: the same call)."
    return elementwise_backward


def _softmax_like(f: _Target) -> Callable[..., Any]:
    # softmax(z, axis), log_softmax(z, axis): PyTorch's dim is the same number, positional.
    name = TORCH_STYLE[f.name].serves[0]

    def softmax_like(z: Array, axis: int = -1) -> Any:
        return f(name, z, axis, defaults={})

    softmax_like.__name__ = softmax_like.__qualname__ = name
    softmax_like.__doc__ = f"See refcnn.{name} (layout-free; axis is PyTorch's dim)."
    return softmax_like


def _softmax_jacobian(f: _Target) -> Callable[..., Any]:
    def softmax_jacobian(p: Array, axis: int = -1) -> Any:
        """See refcnn.softmax_jacobian (layout-free; axis is PyTorch's dim)."""
        return f("softmax_jacobian", p, axis, defaults={})

    return softmax_jacobian


def _softmax_backward(f: _Target) -> Callable[..., Any]:
    def softmax_backward(dp: Array, p: Array, axis: int = -1) -> Any:
        """See refcnn.softmax_backward (layout-free; axis is PyTorch's dim)."""
        return f("softmax_backward", dp, p, axis, defaults={})

    return softmax_backward


def _moved(a: Array, axis: int) -> Array:
    """Move the class axis to 1, PyTorch's (a 1-D row is PyTorch's unbatched input)."""
    return a if _ndim(a) < 2 else np.moveaxis(a, axis, 1)


def _target(logits: Array, labels: Array, axis: int) -> Array:
    # Floating labels are probability rows shaped like the logits; integer labels are class
    # indices without the class axis, whose remaining order already is PyTorch's.
    return _moved(labels, axis) if np.asarray(labels).dtype.kind == "f" else labels


def _softmax_cross_entropy(f: _Target) -> Callable[..., Any]:
    def softmax_cross_entropy(
        logits: Array,
        labels: Array,
        *,
        axis: int = -1,
        reduction: str = "mean",
        weights: Array | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
    ) -> Any:
        """See refcnn.softmax_cross_entropy (PyTorch's cross_entropy, class axis 1)."""
        return f(
            "softmax_cross_entropy",
            _moved(logits, axis),
            _target(logits, labels, axis),
            defaults=_LOSS_DEFAULTS,
            weight=weights,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
        )

    return softmax_cross_entropy


def _softmax_cross_entropy_backward(f: _Target) -> Callable[..., Any]:
    def softmax_cross_entropy_backward(
        logits: Array,
        labels: Array,
        *,
        axis: int = -1,
        reduction: str = "mean",
        weights: Array | None = None,
        ignore_index: int | None = None,
        label_smoothing: float = 0.0,
    ) -> Any:
        """See refcnn.softmax_cross_entropy_backward (the gradient's class axis moved back)."""
        dz = f(
            "softmax_cross_entropy_backward",
            _moved(logits, axis),
            _target(logits, labels, axis),
            defaults=_LOSS_DEFAULTS,
            weight=weights,
            ignore_index=ignore_index,
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
        return dz if _ndim(logits) < 2 else np.moveaxis(dz, 1, axis)

    return softmax_cross_entropy_backward


_BUILDERS: dict[str, Callable[[_Target], Callable[..., Any]]] = {
    "flatten": _flatten,
    "flatten_backward": _flatten_backward,
    "linear": _dense,
    "linear_backward": _dense_backward,
    "relu": _elementwise,
    "relu_backward": _elementwise_backward,
    "sigmoid": _elementwise,
    "sigmoid_backward": _elementwise_backward,
    "tanh": _elementwise,
    "tanh_backward": _elementwise_backward,
    "softmax": _softmax_like,
    "log_softmax": _softmax_like,
    "softmax_backward": _softmax_backward,
    "softmax_jacobian": _softmax_jacobian,
    "cross_entropy": _softmax_cross_entropy,
    "cross_entropy_backward": _softmax_cross_entropy_backward,
}
assert set(_BUILDERS) | set(_SPATIAL) == set(TORCH_STYLE)  # one builder per documented function


class TorchStyle:
    """refcnn's API over PyTorch-style functions; build it with :func:`torch_style`.

    Attributes are refcnn's function names (``api.conv2d``, ``api.dense``, ...), present for
    the functions given; :attr:`functions` maps each to its wrapper.
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        built: dict[str, Callable[..., Any]] = {}
        by_rank: dict[str, dict[int, _Target]] = {}  # refcnn's spatial function -> targets
        for name, function in sorted(functions.items()):
            target = _Target(name, function)
            if name not in _SPATIAL:
                built[TORCH_STYLE[name].serves[0]] = _BUILDERS[name](target)
                continue
            _, rank = _SPATIAL[name]
            for op in TORCH_STYLE[name].serves:
                if op == "max_pool_with_argmax" and not target.takes("return_indices"):
                    continue  # no route to the indices: absent, not refused case by case
                by_rank.setdefault(op, {})[rank] = target
        for op, targets in by_rank.items():
            if op in _SPATIAL_BUILDERS:  # an N-d function: the case's rank picks the target
                built[op] = _SPATIAL_BUILDERS[op](op, targets, None)
            else:  # refcnn's conv2d, max_pool3d, ...: the PyTorch-style name itself
                family, rank = _SPATIAL[op]
                built[op] = _SPATIAL_BUILDERS[family.nd](op, targets, rank)
        self.functions: dict[str, Callable[..., Any]] = dict(sorted(built.items()))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Also serves as an --impl module's PEP 562 __getattr__: a missing name raises
        # AttributeError, which the suite reports as "not implemented".
        functions = self.__dict__.get("functions", {})
        if name not in functions:
            msg = f"the PyTorch-style implementation has no function for {name!r}"
            raise AttributeError(msg)
        function: Callable[..., Any] = functions[name]
        return function

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.functions})

    def __repr__(self) -> str:
        return f"TorchStyle({', '.join(self.functions)})"


def torch_style(source: object = None, /, **functions: Callable[..., Any]) -> TorchStyle:
    """Wrap PyTorch-style functions (NCHW, OIHW, symmetric int padding) into refcnn's API.

    Parameters
    ----------
    source : module or object, optional
        Where to look up the names of :data:`TORCH_STYLE` (``conv2d``, ``max_pool2d``,
        ``linear``, ``cross_entropy``, ...); names it lacks are simply absent.
    **functions : callable
        PyTorch-style functions by the names of :data:`TORCH_STYLE`; they add to, or
        override, what ``source`` has.

    Returns
    -------
    TorchStyle
        An object whose attributes are refcnn's functions (``conv2d``, ``dense``,
        ``softmax_cross_entropy``, ...) for the functions found. Its ``__getattr__`` can be
        an ``--impl`` module's ``__getattr__``.

    Raises
    ------
    TypeError
        A keyword that is not a name of :data:`TORCH_STYLE`, or a value that is not callable.
    ValueError
        Neither ``source`` nor the keywords provide any function.

    Notes
    -----
    Layout transposes are exact and happen here; padding becomes PyTorch's symmetric
    ``padding=`` or, when the resolved pads are asymmetric, :class:`NotImplementedError`
    (never a pre-padded input). See the module docstring for every translation.
    """
    unknown = sorted(set(functions) - set(TORCH_STYLE))
    if unknown:
        msg = (
            f"torch_style: unknown function names {unknown}; expected some of {sorted(TORCH_STYLE)}"
        )
        raise TypeError(msg)
    found: dict[str, Callable[..., Any]] = {}
    if source is not None:
        found = {
            name: getattr(source, name)
            for name in TORCH_STYLE
            if callable(getattr(source, name, None))
        }
    for name, function in functions.items():
        value: object = function  # typed callable, but checked: this is user input
        if not callable(value):
            msg = f"torch_style: {name} must be callable, got {type(value).__name__}"
            raise TypeError(msg)
        found[name] = function
    if not found:
        msg = (
            f"torch_style: no PyTorch-style function found (looked for {sorted(TORCH_STYLE)} "
            f"in {source!r} and the keywords)"
        )
        raise ValueError(msg)
    return TorchStyle(found)
