"""Other APIs in a few lines: refcnn's API over a PyTorch-style implementation.

The conformance suite calls refcnn's API (NHWC data, HWIO filters, TensorFlow's argument
names and padding modes). An implementation written the PyTorch way (NCHW data, OIHW
filters, ``stride=``/``padding=``/``dilation=`` with symmetric integer padding) is judged
by wrapping it::

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

What the wrapper does, and what it never does
---------------------------------------------
- Layouts: NHWC <-> NCHW and HWIO <-> OIHW are transposes, exact; the implementation
  receives NumPy *views* of the caller's arrays (an in-place write still reaches them, so
  the suite's "inputs never modified" check still sees it) and its 4-D results are
  transposed back. Results are not converted: an implementation must return NumPy arrays
  of the input dtype, as the suite checks. (The transposes are ``np.transpose``, so array
  types that implement NumPy's ``__array_function__``, such as MyGrad tensors, keep their
  type through the wrapper: :mod:`conformance.peers.mygrad_nnet` differentiates through it.)
- Padding: ``"VALID"``, ``"SAME"``, ``"SAME_LOWER"`` and explicit pads are resolved by
  :mod:`refcnn.padding` into ``((top, bottom), (left, right))``. Where each axis is
  symmetric they become PyTorch's ``padding=p`` (an int, or ``(ph, pw)`` when the axes
  differ); an asymmetric case (an odd SAME total, asymmetric explicit pads) cannot be said
  with ``padding=`` and raises :class:`NotImplementedError` naming the pads, which the
  suite counts as "not expressible" for that case. The wrapper never pads the input
  itself: that would replace the implementation's own padding code, the part most often
  wrong.
- Arguments the PyTorch API spells differently: ``ksize`` -> ``kernel_size``,
  ``strides`` -> ``stride``, ``dilations`` -> ``dilation``, ``weights`` -> ``weight``;
  refcnn's ``axis`` is the softmax family's ``dim``, passed positionally after the arrays;
  dense's ``(I, O)`` weight is ``linear``'s ``(O, I)``;
  refcnn's ``softmax_cross_entropy`` is PyTorch's ``cross_entropy`` (logits, class axis
  moved to 1). ``count_include_pad`` is always passed: refcnn's default is ``False``,
  PyTorch's ``True``.
- Arrays (and ``kernel_size``, shapes) are passed positionally, options by keyword. One
  the implementation's signature lacks is left out
  where the case needs PyTorch's default for it (an implementation without ``dilation``
  still serves every undilated case); where the case needs another value the call raises
  :class:`NotImplementedError` naming the missing parameter. ``weight=None`` and
  ``ignore_index=None`` (refcnn's "none") are never passed.

PyTorch's own ``max_pool2d``/``avg_pool2d`` refuse pads above half the window, which
refcnn's explicit pads allow (up to the window size minus one); an implementation with that
rule should raise :class:`NotImplementedError` for those cases itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from conformance.frameworks._common import Array, conv_geometry, pool_geometry
from refcnn.padding import Geometry

__all__ = ["TORCH_STYLE", "TorchStyle", "TorchStyleFunction", "torch_style"]

_NCHW = (0, 3, 1, 2)  # axes of an NHWC array in NCHW order
_NHWC = (0, 2, 3, 1)  # axes of an NCHW array in NHWC order
_OIHW = (3, 2, 0, 1)  # axes of an HWIO filter in OIHW order
_HWIO = (2, 3, 1, 0)  # axes of an OIHW filter in HWIO order


class TorchStyleFunction(NamedTuple):
    """One PyTorch-style function the wrapper knows: what it serves and how it is called."""

    serves: str  # the refcnn function built from it
    signature: str  # how the wrapper calls it (documentation; arrays NCHW / OIHW)


#: The PyTorch-style functions :func:`torch_style` takes, by name, and how it calls them.
TORCH_STYLE: dict[str, TorchStyleFunction] = {
    "conv2d": TorchStyleFunction("conv2d", "conv2d(x, w[, b], stride=, padding=, dilation=)"),
    "conv2d_backward_input": TorchStyleFunction(
        "conv2d_backward_input",
        "conv2d_backward_input(dy, w, input_shape, stride=, padding=, dilation=) -> dx",
    ),
    "conv2d_backward_filter": TorchStyleFunction(
        "conv2d_backward_filter",
        "conv2d_backward_filter(dy, x, filter_shape, stride=, padding=, dilation=) -> dw",
    ),
    "conv2d_backward_bias": TorchStyleFunction(
        "conv2d_backward_bias", "conv2d_backward_bias(dy) -> db"
    ),
    "conv2d_backward": TorchStyleFunction(
        "conv2d_backward",
        "conv2d_backward(dy, x, w, stride=, padding=, dilation=) -> (dx, dw, db)",
    ),
    "max_pool2d": TorchStyleFunction("max_pool2d", "max_pool2d(x, kernel_size, stride=, padding=)"),
    "max_pool2d_backward": TorchStyleFunction(
        "max_pool2d_backward", "max_pool2d_backward(dy, x, kernel_size, stride=, padding=)"
    ),
    "avg_pool2d": TorchStyleFunction(
        "avg_pool2d", "avg_pool2d(x, kernel_size, stride=, padding=, count_include_pad=)"
    ),
    "avg_pool2d_backward": TorchStyleFunction(
        "avg_pool2d_backward",
        "avg_pool2d_backward(dy, input_shape, kernel_size, stride=, padding=, count_include_pad=)",
    ),
    "flatten": TorchStyleFunction("flatten", "flatten(x, start_dim=1)"),
    "flatten_backward": TorchStyleFunction(
        "flatten_backward", "flatten_backward(dy, input_shape, start_dim=1)"
    ),
    "linear": TorchStyleFunction("dense", "linear(x, w_out_in[, b])"),
    "linear_backward": TorchStyleFunction(
        "dense_backward", "linear_backward(dy, x, w_out_in) -> (dx, dw_out_in, db)"
    ),
    "relu": TorchStyleFunction("relu", "relu(x)"),
    "relu_backward": TorchStyleFunction("relu_backward", "relu_backward(dy, x)"),
    "sigmoid": TorchStyleFunction("sigmoid", "sigmoid(x)"),
    "sigmoid_backward": TorchStyleFunction("sigmoid_backward", "sigmoid_backward(dy, x)"),
    "tanh": TorchStyleFunction("tanh", "tanh(x)"),
    "tanh_backward": TorchStyleFunction("tanh_backward", "tanh_backward(dy, x)"),
    "softmax": TorchStyleFunction("softmax", "softmax(x, dim)"),
    "log_softmax": TorchStyleFunction("log_softmax", "log_softmax(x, dim)"),
    "softmax_backward": TorchStyleFunction("softmax_backward", "softmax_backward(dp, p, dim)"),
    "softmax_jacobian": TorchStyleFunction("softmax_jacobian", "softmax_jacobian(p, dim)"),
    "cross_entropy": TorchStyleFunction(
        "softmax_cross_entropy",
        "cross_entropy(logits, target, weight=, ignore_index=, reduction=, label_smoothing=)",
    ),
    "cross_entropy_backward": TorchStyleFunction(
        "softmax_cross_entropy_backward",
        "cross_entropy_backward(logits, target, weight=, ignore_index=, reduction=, "
        "label_smoothing=) -> dlogits",
    ),
}

# PyTorch's defaults, per family: an option the implementation's signature lacks may be left
# out only where the case needs this value.
_CONV_DEFAULTS: dict[str, Any] = {"stride": 1, "padding": 0, "dilation": 1}
_POOL_DEFAULTS: dict[str, Any] = {"stride": None, "padding": 0, "count_include_pad": True}
_FLATTEN_DEFAULTS: dict[str, Any] = {"start_dim": 1}
_LOSS_DEFAULTS: dict[str, Any] = {"reduction": "mean", "label_smoothing": 0.0}
# refcnn's None for these is PyTorch's omitted argument (ignore_index=None: no label is
# ignored, which PyTorch's default -100 also gives for labels in [0, K)): never passed.
_ABSENT_WHEN_NONE = frozenset({"weight", "ignore_index"})


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

    def __call__(self, op: str, *arrays: Any, defaults: Mapping[str, Any], **options: Any) -> Any:
        """Call with ``arrays`` positionally and ``options`` by keyword (see the module doc)."""
        passed = {}
        for key, value in options.items():
            if value is None and key in _ABSENT_WHEN_NONE:
                continue
            if self.accepts is None or key in self.accepts:
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


def _torch_padding(op: str, padding: Any, geometry: Geometry) -> int | tuple[int, int]:
    """PyTorch's ``padding=`` for resolved pads symmetric on each axis; else not expressible."""
    (top, bottom), (left, right) = geometry.pads
    if top != bottom or left != right:
        msg = (
            f"{op}: padding={padding!r} resolves to pads ((top, bottom), (left, right)) = "
            f"{geometry.pads} here; a PyTorch-style padding= pads both sides of an axis "
            "alike, so this case is not expressible (the wrapper never pads the input "
            "itself: that would bypass the implementation's own padding)"
        )
        raise NotImplementedError(msg)
    return top if top == left else (top, left)


def _shape(a: Any) -> tuple[int, ...]:
    # An array's own shape: array types that implement __array_function__ (MyGrad tensors)
    # need not implement np.shape / np.ndim.
    shape = getattr(a, "shape", None)
    return tuple(shape) if shape is not None else tuple(np.shape(a))


def _ndim(a: Any) -> int:
    return len(_shape(a))


def _nhwc_result(op: str, y: Any) -> Any:
    """Transpose a 4-D NCHW result back to NHWC (a clear error for anything else)."""
    if _ndim(y) != 4:
        msg = f"{op}: the PyTorch-style function returned shape {_shape(y)}, expected 4-D NCHW"
        raise ValueError(msg)
    return np.transpose(y, _NHWC)


def _hwio_result(op: str, dw: Any) -> Any:
    if _ndim(dw) != 4:
        msg = f"{op}: the PyTorch-style function returned shape {_shape(dw)}, expected OIHW"
        raise ValueError(msg)
    return np.transpose(dw, _HWIO)


def _nchw_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(shape[i]) for i in _NCHW)


def _conv_options(
    op: str,
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    strides: Any,
    padding: Any,
    dilations: Any,
) -> dict[str, Any]:
    """PyTorch's conv keywords for refcnn's (NHWC ``x_shape``, HWIO ``w_shape``)."""
    _, geometry = conv_geometry(op, x_shape, w_shape, strides, padding, dilations)
    return {
        "stride": strides,
        "padding": _torch_padding(op, padding, geometry),
        "dilation": dilations,
    }


def _pool_options(
    op: str, x_shape: Sequence[int], ksize: Any, strides: Any, padding: Any
) -> dict[str, Any]:
    """PyTorch's pooling keywords (``stride=None`` is passed on: PyTorch's "the window")."""
    _, geometry = pool_geometry(op, x_shape, ksize, strides, padding)
    return {"stride": strides, "padding": _torch_padding(op, padding, geometry)}


# -- one builder per refcnn function: refcnn's signature outside, PyTorch's inside ------------


def _conv2d(f: _Target) -> Callable[..., Any]:
    def conv2d(
        x: Array,
        w: Array,
        b: Array | None = None,
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
    ) -> Any:
        """See refcnn.conv2d (PyTorch-style conv2d on NCHW / OIHW views)."""
        options = _conv_options(
            "conv2d", x.shape, w.shape, strides=strides, padding=padding, dilations=dilations
        )
        arrays = [np.transpose(x, _NCHW), np.transpose(w, _OIHW)]
        if b is not None:
            arrays.append(b)
        return _nhwc_result("conv2d", f("conv2d", *arrays, defaults=_CONV_DEFAULTS, **options))

    return conv2d


def _conv2d_backward_input(f: _Target) -> Callable[..., Any]:
    def conv2d_backward_input(
        dy: Array,
        w: Array,
        input_shape: Sequence[int],
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
    ) -> Any:
        """See refcnn.conv2d_backward_input (NCHW dy and input_shape, OIHW w)."""
        op = "conv2d_backward_input"
        options = _conv_options(
            op, input_shape, w.shape, strides=strides, padding=padding, dilations=dilations
        )
        dx = f(
            op,
            np.transpose(dy, _NCHW),
            np.transpose(w, _OIHW),
            _nchw_shape(input_shape),
            defaults=_CONV_DEFAULTS,
            **options,
        )
        return _nhwc_result(op, dx)

    return conv2d_backward_input


def _conv2d_backward_filter(f: _Target) -> Callable[..., Any]:
    def conv2d_backward_filter(
        dy: Array,
        x: Array,
        filter_shape: Sequence[int],
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
    ) -> Any:
        """See refcnn.conv2d_backward_filter (NCHW dy and x, OIHW filter_shape and result)."""
        op = "conv2d_backward_filter"
        options = _conv_options(
            op, x.shape, filter_shape, strides=strides, padding=padding, dilations=dilations
        )
        oihw = tuple(int(filter_shape[i]) for i in _OIHW)
        dw = f(
            op,
            np.transpose(dy, _NCHW),
            np.transpose(x, _NCHW),
            oihw,
            defaults=_CONV_DEFAULTS,
            **options,
        )
        return _hwio_result(op, dw)

    return conv2d_backward_filter


def _conv2d_backward_bias(f: _Target) -> Callable[..., Any]:
    def conv2d_backward_bias(dy: Array) -> Any:
        """See refcnn.conv2d_backward_bias (NCHW dy)."""
        return f("conv2d_backward_bias", np.transpose(dy, _NCHW), defaults={})

    return conv2d_backward_bias


def _conv2d_backward(f: _Target) -> Callable[..., Any]:
    def conv2d_backward(
        dy: Array,
        x: Array,
        w: Array,
        *,
        strides: Any = 1,
        padding: Any = "VALID",
        dilations: Any = 1,
    ) -> Any:
        """See refcnn.conv2d_backward (NCHW / OIHW inside, (dx, dw, db) back in NHWC / HWIO)."""
        op = "conv2d_backward"
        options = _conv_options(
            op, x.shape, w.shape, strides=strides, padding=padding, dilations=dilations
        )
        arrays = (np.transpose(dy, _NCHW), np.transpose(x, _NCHW), np.transpose(w, _OIHW))
        dx, dw, db = f(op, *arrays, defaults=_CONV_DEFAULTS, **options)
        return (_nhwc_result(op, dx), _hwio_result(op, dw), db)

    return conv2d_backward


def _max_pool2d(f: _Target) -> Callable[..., Any]:
    def max_pool2d(x: Array, ksize: Any, *, strides: Any = None, padding: Any = "VALID") -> Any:
        """See refcnn.max_pool2d (PyTorch-style max_pool2d on an NCHW view)."""
        options = _pool_options(
            "max_pool2d", x.shape, ksize=ksize, strides=strides, padding=padding
        )
        return _nhwc_result(
            "max_pool2d",
            f("max_pool2d", np.transpose(x, _NCHW), ksize, defaults=_POOL_DEFAULTS, **options),
        )

    return max_pool2d


def _max_pool2d_backward(f: _Target) -> Callable[..., Any]:
    def max_pool2d_backward(
        dy: Array, x: Array, ksize: Any, *, strides: Any = None, padding: Any = "VALID"
    ) -> Any:
        """See refcnn.max_pool2d_backward (NCHW views inside)."""
        op = "max_pool2d_backward"
        options = _pool_options(op, x.shape, ksize=ksize, strides=strides, padding=padding)
        dx = f(
            op,
            np.transpose(dy, _NCHW),
            np.transpose(x, _NCHW),
            ksize,
            defaults=_POOL_DEFAULTS,
            **options,
        )
        return _nhwc_result(op, dx)

    return max_pool2d_backward


def _avg_pool2d(f: _Target) -> Callable[..., Any]:
    def avg_pool2d(
        x: Array,
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        count_include_pad: bool = False,
    ) -> Any:
        """See refcnn.avg_pool2d (count_include_pad always passed: PyTorch's default differs)."""
        options = _pool_options(
            "avg_pool2d", x.shape, ksize=ksize, strides=strides, padding=padding
        )
        y = f(
            "avg_pool2d",
            np.transpose(x, _NCHW),
            ksize,
            defaults=_POOL_DEFAULTS,
            **options,
            count_include_pad=count_include_pad,
        )
        return _nhwc_result("avg_pool2d", y)

    return avg_pool2d


def _avg_pool2d_backward(f: _Target) -> Callable[..., Any]:
    def avg_pool2d_backward(
        dy: Array,
        input_shape: Sequence[int],
        ksize: Any,
        *,
        strides: Any = None,
        padding: Any = "VALID",
        count_include_pad: bool = False,
    ) -> Any:
        """See refcnn.avg_pool2d_backward (NCHW dy and input_shape)."""
        op = "avg_pool2d_backward"
        options = _pool_options(op, input_shape, ksize=ksize, strides=strides, padding=padding)
        dx = f(
            op,
            np.transpose(dy, _NCHW),
            _nchw_shape(input_shape),
            ksize,
            defaults=_POOL_DEFAULTS,
            **options,
            count_include_pad=count_include_pad,
        )
        return _nhwc_result(op, dx)

    return avg_pool2d_backward


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
    name = TORCH_STYLE[f.name].serves

    def elementwise(x: Array) -> Any:
        return f(name, x, defaults={})

    elementwise.__name__ = elementwise.__qualname__ = name
    elementwise.__doc__ = f"See refcnn.{name} (layout-free: the same call)."
    return elementwise


def _elementwise_backward(f: _Target) -> Callable[..., Any]:
    name = TORCH_STYLE[f.name].serves

    def elementwise_backward(dy: Array, x: Array) -> Any:
        return f(name, dy, x, defaults={})

    elementwise_backward.__name__ = elementwise_backward.__qualname__ = name
    elementwise_backward.__doc__ = f"See refcnn.{name} (layout-free: the same call)."
    return elementwise_backward


def _softmax_like(f: _Target) -> Callable[..., Any]:
    # softmax(z, axis), log_softmax(z, axis): PyTorch's dim is the same number, positional.
    name = TORCH_STYLE[f.name].serves

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
    "conv2d": _conv2d,
    "conv2d_backward_input": _conv2d_backward_input,
    "conv2d_backward_filter": _conv2d_backward_filter,
    "conv2d_backward_bias": _conv2d_backward_bias,
    "conv2d_backward": _conv2d_backward,
    "max_pool2d": _max_pool2d,
    "max_pool2d_backward": _max_pool2d_backward,
    "avg_pool2d": _avg_pool2d,
    "avg_pool2d_backward": _avg_pool2d_backward,
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
assert set(_BUILDERS) == set(TORCH_STYLE)  # one builder per documented function


class TorchStyle:
    """refcnn's API over PyTorch-style functions; build it with :func:`torch_style`.

    Attributes are refcnn's function names (``api.conv2d``, ``api.dense``, ...), present for
    the functions given; :attr:`functions` maps each to its wrapper.
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions: dict[str, Callable[..., Any]] = {}
        for name, function in sorted(functions.items()):
            wrapper = _BUILDERS[name](_Target(name, function))
            self.functions[TORCH_STYLE[name].serves] = wrapper

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
