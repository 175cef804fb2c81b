"""Layers: thin classes that hold parameters, gradients and caches and call the functional API.

Conventions: data is NHWC, convolution kernels are HWIO ``(KH, KW, C, O)`` and dense kernels
``(I, O)``, as in Keras; every layer's math is the function of the same name in
:mod:`refcnn` (:func:`~refcnn.conv2d`, :func:`~refcnn.max_pool2d`, ...). A layer adds no
arithmetic of its own: it stores what the forward call needs for the backward call, adds the
parameter gradients that the ``*_backward`` function returns to its accumulators, and checks
shapes so that a wrong input is reported with the layer's name instead of deep inside an op.

Shapes are inferred like Keras: :meth:`Layer.build` receives the per-sample input shape
(without the batch axis), creates the parameters and finds the output shape by running the
layer's own function on an empty batch ``(0, *input_shape)`` (so the geometry rules live in
one place, :mod:`refcnn.padding`). After that every forward input must have exactly that
per-sample shape and dtype, and every backward ``dy`` the shape of the last forward output;
anything else is a ``ValueError`` naming the layer and the expected and actual shapes.

Initialization (kernels; biases start at 0) draws from a :class:`numpy.random.Generator`:

- ``"glorot_uniform"`` (Keras' default): ``U(-L, L)``, ``L = sqrt(6 / (fan_in + fan_out))``;
- ``"he_uniform"``: ``U(-L, L)``, ``L = sqrt(6 / fan_in)``;

with ``fan_in = KH * KW * C`` and ``fan_out = KH * KW * O`` for a conv kernel, ``I`` and
``O`` for a dense kernel (Keras' fans). Values are drawn in float64 and cast once to the
model dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    as_bool,
    as_choice,
    as_float_dtype,
    as_generator,
    as_index_tuple,
    as_int,
    as_pair,
    as_str,
    batch_shape,
    check_addressable,
    check_batch,
    check_floating_batch,
    check_upstream,
)
from refcnn.activations import relu, relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward
from refcnn.convolution import conv2d, conv2d_backward
from refcnn.dense import dense, dense_backward, flatten, flatten_backward
from refcnn.padding import PaddingLike, normalize_padding
from refcnn.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from refcnn.softmax import softmax, softmax_backward

__all__ = [
    "INITIALIZERS",
    "AvgPool2D",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "glorot_uniform",
    "he_uniform",
]

Array = npt.NDArray[Any]
IntPair = int | tuple[int, int]
Initializer = Callable[[tuple[int, ...], np.random.Generator], Array]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras' ``(fan_in, fan_out)``: ``(I, O)`` for a dense kernel, ``KH*KW*(C, O)`` for HWIO."""
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) == 4:
        receptive = shape[0] * shape[1]
        return receptive * shape[2], receptive * shape[3]
    msg = f"initializer: kernel shape must be (I, O) or (KH, KW, C, O), got {shape}"
    raise ValueError(msg)


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> Array:
    """Glorot (Xavier) uniform kernel: ``U(-L, L)`` with ``L = sqrt(6 / (fan_in + fan_out))``.

    Parameters
    ----------
    shape : (I, O) or (KH, KW, C, O)
        Kernel shape (dense or HWIO conv).
    rng : numpy.random.Generator
        Source of randomness; the only one (no global state).

    Returns
    -------
    w : ndarray, shape ``shape``, float64
    """
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
    return rng.uniform(-limit, limit, size=shape)


def he_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> Array:
    """He (Kaiming) uniform kernel: ``U(-L, L)`` with ``L = sqrt(6 / fan_in)``.

    Parameters
    ----------
    shape : (I, O) or (KH, KW, C, O)
        Kernel shape (dense or HWIO conv).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    w : ndarray, shape ``shape``, float64
    """
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / max(fan_in, 1))
    return rng.uniform(-limit, limit, size=shape)


INITIALIZERS: dict[str, Initializer] = {
    "glorot_uniform": glorot_uniform,
    "he_uniform": he_uniform,
}


def _initializer(owner: str, name: Any) -> Initializer:
    return INITIALIZERS[as_choice(owner, "kernel_initializer", name, sorted(INITIALIZERS))]


def _check_kernel_size(owner: str, names: str, shape: tuple[int, ...]) -> None:
    """Refuse a kernel too large to allocate before drawing it (in float64, as drawn)."""
    check_addressable(owner, names, shape, np.dtype(np.float64).itemsize)


class Layer:
    """Base class: parameters, their gradient accumulators, a forward cache, shape checks.

    Subclasses implement :meth:`_create_parameters` (if they have any), :meth:`_forward`
    (call the function, return the output and what backward needs) and :meth:`_backward`
    (call the ``*_backward`` function, return ``dx`` and the parameter gradients).

    Attributes
    ----------
    name : str
        Set by :class:`~refcnn.model.Sequential` (``conv2d``, ``conv2d_1``, ...) unless given.
    params : dict of str to ndarray
        The parameters by short name (``"kernel"``, ``"bias"``); the arrays are updated in
        place by the optimizer.
    grads : dict of str to ndarray
        Gradient accumulators, same keys and shapes as ``params``; :meth:`backward` adds to
        them, :meth:`zero_grad` resets them.
    input_shape, output_shape : tuple of int or None
        Per-sample shapes (no batch axis), known once built.
    dtype : numpy.dtype or None
        The dtype the layer was built with; inputs must have it.
    """

    kind: ClassVar[str] = "layer"

    def __init__(self, *, name: str | None = None) -> None:
        # Messages start with the name: an empty one would leave them unattributed.
        given = as_str(type(self).__name__, "name", name, optional=True, nonempty=True)
        self.name = given if given is not None else self.kind
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype[Any] | None = None
        self._cache: Any = None
        self._last_output_shape: tuple[int, ...] | None = None

    # -- description --------------------------------------------------------------------
    def config(self) -> str:
        """Short text of the layer's hyperparameters, used by ``repr`` and the summary."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"

    @property
    def built(self) -> bool:
        """Whether :meth:`build` has run (shapes and parameters exist)."""
        return self.input_shape is not None

    @property
    def has_parameters(self) -> bool:
        """Whether the layer creates trainable parameters at build."""
        return False

    def count_parameters(self) -> int:
        """Total number of scalar parameters."""
        return sum(p.size for p in self.params.values())

    # -- building -----------------------------------------------------------------------
    def build(
        self,
        input_shape: tuple[int, ...],
        rng: np.random.Generator | None = None,
        dtype: npt.DTypeLike = np.float64,
    ) -> tuple[int, ...]:
        """Create the parameters for a per-sample ``input_shape`` and infer the output shape.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one sample (no batch axis), e.g. ``(8, 8, 1)`` for NHWC 8x8 gray images.
        rng : numpy.random.Generator, optional
            Draws the initial kernels; required by layers with parameters.
        dtype : floating dtype, default float64
            Dtype of the parameters, and of every input afterwards.

        Returns
        -------
        output_shape : tuple of int
            Shape of one output sample.
        """
        shape = as_index_tuple(self.name, "input_shape", input_shape, length=None)
        rng = as_generator(self.name, "rng", rng)
        resolved = as_float_dtype(self.name, "dtype", dtype)
        # One sample past the size limit could never be fed (and NumPy could not even make
        # the empty probe batch of it once a size passes int64).
        check_addressable(self.name, "input_shape", (1, *shape), resolved.itemsize)
        if self.has_parameters and rng is None:
            msg = (
                f"{self.name}: {type(self).__name__} is not built: call "
                f"build(input_shape, rng) or use it inside a Sequential"
            )
            raise RuntimeError(msg)
        try:
            if rng is not None:
                self._create_parameters(shape, rng, resolved)
            probe, _ = self._forward(np.zeros((0, *shape), dtype=resolved))
            if 0 in probe.shape[1:]:
                # Legal for the functions (TensorFlow allows it), but a model whose layer
                # outputs nothing is a mistake: say so at build, not as a shape error later.
                msg = f"the output shape {batch_shape(probe.shape[1:])} is empty"
                raise ValueError(msg)
        except (TypeError, ValueError) as err:
            self.params, self.grads = {}, {}
            msg = f"{self.name}: cannot build on input_shape {batch_shape(shape)}: {err}"
            raise ValueError(msg) from err
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.input_shape, self.output_shape = shape, tuple(probe.shape[1:])
        self.dtype = resolved
        return self.output_shape

    def _create_parameters(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> None:
        """Fill ``self.params``; layers without parameters have nothing to do."""

    # -- running ------------------------------------------------------------------------
    def _forward(self, x: Array) -> tuple[Array, Any]:
        raise NotImplementedError

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        raise NotImplementedError

    def _check_input(self, x: Any) -> Array:
        if not self.built:
            check_floating_batch(self.name, x)
            self.build(x.shape[1:], None, x.dtype)
        return check_batch(self.name, "x", x, self.input_shape, self.dtype, "the layer")

    def forward(self, x: Array) -> Array:
        """Apply the layer to a batch and cache what :meth:`backward` needs.

        Parameters
        ----------
        x : ndarray, shape (N, *input_shape)
            A layer without parameters builds itself on its first input.

        Returns
        -------
        y : ndarray, shape (N, *output_shape)
        """
        x_arr = self._check_input(x)
        y, self._cache = self._forward(x_arr)
        self._last_output_shape = y.shape
        return y

    def backward(self, dy: Array) -> Array:
        """Back-propagate through the last :meth:`forward` call; accumulate parameter grads.

        Parameters
        ----------
        dy : ndarray, shape of the last forward output
            Gradient of the loss with respect to the layer's output.

        Returns
        -------
        dx : ndarray, shape of the last forward input
            Gradient with respect to the layer's input. Parameter gradients are *added* to
            ``self.grads`` (call :meth:`zero_grad` between steps).
        """
        if self._last_output_shape is None:
            msg = f"{self.name}: backward called before forward"
            raise RuntimeError(msg)
        dy_arr = check_upstream(self.name, dy, self._last_output_shape, self.dtype)
        dx, param_grads = self._backward(dy_arr, self._cache)
        for key, grad in param_grads.items():
            self.grads[key] += grad
        return dx

    def zero_grad(self) -> None:
        """Reset every gradient accumulator to 0 (in place: references stay valid)."""
        for grad in self.grads.values():
            grad.fill(0)


class Conv2D(Layer):
    """2-D convolution layer over NHWC data: :func:`refcnn.conv2d` with an HWIO kernel.

    Parameters
    ----------
    filters : int
        Number of output channels ``O``.
    kernel_size : int or (int, int)
        ``(KH, KW)``.
    strides, dilations : int or (int, int)
        As in :func:`refcnn.conv2d`.
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        As in :func:`refcnn.conv2d` (TensorFlow's SAME: the odd pixel after).
    use_bias : bool, default True
        Whether to add a per-filter bias (shape (O,), initialized to 0).
    kernel_initializer : {"glorot_uniform", "he_uniform"}
        How the kernel, shape (KH, KW, C, O), is drawn at build.
    name : str, optional
        Layer name; :class:`~refcnn.model.Sequential` assigns a unique one otherwise.
    """

    kind = "conv2d"

    def __init__(
        self,
        filters: int,
        kernel_size: IntPair,
        *,
        strides: IntPair = 1,
        padding: PaddingLike = "VALID",
        dilations: IntPair = 1,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        owner = "Conv2D"
        self.filters = as_int(owner, "filters", filters, minimum=1)
        self.kernel_size = as_pair(owner, "kernel_size", kernel_size)
        self.strides = as_pair(owner, "strides", strides)
        self.dilations = as_pair(owner, "dilations", dilations)
        self.padding = cast("PaddingLike", normalize_padding(owner, padding))
        self.use_bias = as_bool(owner, "use_bias", use_bias)
        self._init = _initializer(owner, kernel_initializer)
        self.kernel_initializer = kernel_initializer

    def config(self) -> str:
        """Hyperparameters as text."""
        return (
            f"{self.filters}, {self.kernel_size}, strides={self.strides}, "
            f"padding={self.padding!r}, dilations={self.dilations}, use_bias={self.use_bias}"
        )

    @property
    def has_parameters(self) -> bool:
        """Conv2D has a kernel (and a bias when ``use_bias``)."""
        return True

    def _create_parameters(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> None:
        if len(input_shape) != 3:
            msg = f"expected a per-sample shape (H, W, C), got {input_shape}"
            raise ValueError(msg)
        shape = (*self.kernel_size, input_shape[2], self.filters)
        _check_kernel_size("Conv2D", "kernel_size, filters and the input channels", shape)
        self.params = {"kernel": self._init(shape, rng).astype(dtype)}
        if self.use_bias:
            self.params["bias"] = np.zeros(self.filters, dtype=dtype)

    def _options(self) -> dict[str, Any]:
        return {"strides": self.strides, "padding": self.padding, "dilations": self.dilations}

    def _forward(self, x: Array) -> tuple[Array, Any]:
        y = conv2d(x, self.params["kernel"], self.params.get("bias"), **self._options())
        return y, x

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        dx, dw, db = conv2d_backward(dy, cache, self.params["kernel"], **self._options())
        grads = {"kernel": dw}
        if self.use_bias:
            grads["bias"] = db
        return dx, grads


class Dense(Layer):
    """Fully connected layer: :func:`refcnn.dense`, ``x @ kernel + bias`` on ``(N, I)`` inputs.

    Parameters
    ----------
    units : int
        Number of outputs ``O``.
    use_bias : bool, default True
        Whether to add a bias (shape (O,), initialized to 0).
    kernel_initializer : {"glorot_uniform", "he_uniform"}
        How the kernel, shape (I, O), is drawn at build.
    name : str, optional
        Layer name.
    """

    kind = "dense"

    def __init__(
        self,
        units: int,
        *,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.units = as_int("Dense", "units", units, minimum=1)
        self.use_bias = as_bool("Dense", "use_bias", use_bias)
        self._init = _initializer("Dense", kernel_initializer)
        self.kernel_initializer = kernel_initializer

    def config(self) -> str:
        """Hyperparameters as text."""
        return f"{self.units}, use_bias={self.use_bias}"

    @property
    def has_parameters(self) -> bool:
        """Dense has a kernel (and a bias when ``use_bias``)."""
        return True

    def _create_parameters(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: np.dtype[Any]
    ) -> None:
        if len(input_shape) != 1:
            msg = (
                f"expected a per-sample shape (I,) (put a Flatten before Dense), got {input_shape}"
            )
            raise ValueError(msg)
        shape = (input_shape[0], self.units)
        _check_kernel_size("Dense", "units and the input size", shape)
        self.params = {"kernel": self._init(shape, rng).astype(dtype)}
        if self.use_bias:
            self.params["bias"] = np.zeros(self.units, dtype=dtype)

    def _forward(self, x: Array) -> tuple[Array, Any]:
        return dense(x, self.params["kernel"], self.params.get("bias")), x

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        dx, dw, db = dense_backward(dy, cache, self.params["kernel"])
        grads = {"kernel": dw}
        if self.use_bias:
            grads["bias"] = db
        return dx, grads


class _Pool(Layer):
    def __init__(
        self,
        ksize: IntPair,
        strides: IntPair | None = None,
        padding: PaddingLike = "VALID",
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        owner = type(self).__name__
        self.ksize = as_pair(owner, "ksize", ksize)
        self.strides = self.ksize if strides is None else as_pair(owner, "strides", strides)
        self.padding = cast("PaddingLike", normalize_padding(owner, padding))

    def config(self) -> str:
        """Hyperparameters as text."""
        return f"{self.ksize}, strides={self.strides}, padding={self.padding!r}"


class MaxPool2D(_Pool):
    """Max pooling over NHWC data: :func:`refcnn.max_pool2d`.

    Parameters
    ----------
    ksize : int or (int, int)
        Window ``(KH, KW)``.
    strides : int or (int, int), optional
        Default ``ksize`` (non-overlapping windows).
    padding : {"VALID", "SAME", "SAME_LOWER"} or ((top, bottom), (left, right))
        As in :func:`refcnn.max_pool2d`.
    name : str, optional
        Layer name.
    """

    kind = "max_pool2d"

    def _forward(self, x: Array) -> tuple[Array, Any]:
        y = max_pool2d(x, self.ksize, strides=self.strides, padding=self.padding)
        return y, x

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        dx = max_pool2d_backward(dy, cache, self.ksize, strides=self.strides, padding=self.padding)
        return dx, {}


class AvgPool2D(_Pool):
    """Average pooling over NHWC data: :func:`refcnn.avg_pool2d`.

    Parameters
    ----------
    ksize, strides, padding
        As in :class:`MaxPool2D`.
    count_include_pad : bool, default False
        As in :func:`refcnn.avg_pool2d` (False: TensorFlow/Keras; True: PyTorch's default).
    name : str, optional
        Layer name.
    """

    kind = "avg_pool2d"

    def __init__(
        self,
        ksize: IntPair,
        strides: IntPair | None = None,
        padding: PaddingLike = "VALID",
        *,
        count_include_pad: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(ksize, strides, padding, name=name)
        self.count_include_pad = as_bool("AvgPool2D", "count_include_pad", count_include_pad)

    def config(self) -> str:
        """Hyperparameters as text."""
        return f"{super().config()}, count_include_pad={self.count_include_pad}"

    def _options(self) -> dict[str, Any]:
        return {
            "strides": self.strides,
            "padding": self.padding,
            "count_include_pad": self.count_include_pad,
        }

    def _forward(self, x: Array) -> tuple[Array, Any]:
        return avg_pool2d(x, self.ksize, **self._options()), x.shape

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        return avg_pool2d_backward(dy, cache, self.ksize, **self._options()), {}


class Flatten(Layer):
    """Flatten every axis but the batch: :func:`refcnn.flatten` with ``axis=1``.

    NHWC maps flatten channels-last: feature ``(h, w, c)`` goes to column
    ``(h * W + w) * C + c``, Keras' order (a PyTorch NCHW model orders them differently).
    """

    kind = "flatten"

    def _forward(self, x: Array) -> tuple[Array, Any]:
        return flatten(x, axis=1), x.shape

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        return flatten_backward(dy, cache, axis=1), {}


class _Elementwise(Layer):
    """An activation without parameters: its function of ``x``, and the gradient from ``x``."""

    _function: Callable[[Array], Array]
    _gradient: Callable[[Array, Array], Array]

    def _forward(self, x: Array) -> tuple[Array, Any]:
        return self._function(x), x

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        return self._gradient(dy, cache), {}


class ReLU(_Elementwise):
    """Rectified linear unit: :func:`refcnn.relu`."""

    kind = "relu"
    _function = staticmethod(relu)
    _gradient = staticmethod(relu_backward)


class Sigmoid(_Elementwise):
    """Logistic sigmoid: :func:`refcnn.sigmoid`."""

    kind = "sigmoid"
    _function = staticmethod(sigmoid)
    _gradient = staticmethod(sigmoid_backward)


class Tanh(_Elementwise):
    """Hyperbolic tangent: :func:`refcnn.tanh`."""

    kind = "tanh"
    _function = staticmethod(tanh)
    _gradient = staticmethod(tanh_backward)


class Softmax(Layer):
    """Softmax over ``axis``: :func:`refcnn.softmax`.

    Meant for inference at the end of a model. Train on the logits instead (drop this layer
    and use :func:`refcnn.softmax_cross_entropy`, which works in log-sum-exp form and never
    takes the log of an underflowed probability); :func:`refcnn.model.train_step` refuses a
    model that ends in Softmax.

    Parameters
    ----------
    axis : int, default -1
        The class axis.
    name : str, optional
        Layer name.
    """

    kind = "softmax"

    def __init__(self, axis: int = -1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.axis = as_int("Softmax", "axis", axis)

    def config(self) -> str:
        """Hyperparameters as text."""
        return f"axis={self.axis}"

    def _forward(self, x: Array) -> tuple[Array, Any]:
        p = softmax(x, axis=self.axis)
        return p, p

    def _backward(self, dy: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        return softmax_backward(dy, cache, axis=self.axis), {}
