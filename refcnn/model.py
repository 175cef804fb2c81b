"""A sequential model over :mod:`refcnn.layers`, and the training step built on it.

Training uses *logits*: the model ends in its last linear layer and the loss is
:func:`refcnn.softmax_cross_entropy` (PyTorch's ``F.cross_entropy``, mean over the batch),
whose log-sum-exp form stays finite for any finite logits and whose gradient
``(softmax(z) - onehot(y)) / N`` never divides by a probability. A :class:`~refcnn.layers.Softmax`
layer may end a model used for inference only; :func:`train_step` refuses it.

Parameters and gradients are exposed as two dicts with the same keys in the same order,
``"<layer name>/<parameter>"`` (``"conv2d/kernel"``, ``"conv2d/bias"``, ``"dense/kernel"``,
...), whose values are the live arrays: an optimizer updates ``parameters()`` in place and
reads ``gradients()``, which :meth:`Sequential.backward` accumulates into.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn._checks import (
    as_array,
    as_float_dtype,
    as_generator,
    as_index_tuple,
    as_int,
    check_batch,
    check_floating_batch,
    check_upstream,
    describe,
)
from refcnn.layers import Layer, Softmax
from refcnn.losses import softmax_cross_entropy, softmax_cross_entropy_backward
from refcnn.optim import SGD

__all__ = ["Evaluation", "Sequential", "evaluate", "train_step"]

Array = npt.NDArray[Any]


def _format_shape(shape: tuple[int, ...] | None) -> str:
    return "(" + ", ".join(["None", *(str(d) for d in shape or ())]) + ")"


class Sequential:
    """A stack of layers applied in order.

    Parameters
    ----------
    layers : iterable of Layer
        Each layer instance may appear once. Unnamed layers get unique Keras-style names in
        order (``conv2d``, ``relu``, ``conv2d_1``, ...).
    seed : int or None, default 0
        Seeds the :class:`numpy.random.Generator` used when the model builds itself at its
        first :meth:`forward` (``None``: fresh OS entropy, not reproducible).

    Notes
    -----
    Shapes are inferred at :meth:`build` (explicit, or implicit at the first forward from
    that batch's per-sample shape and dtype) and checked on every later call; a mismatch is
    a ``ValueError`` naming the layer with the expected and actual shapes.
    """

    def __init__(self, layers: Iterable[Layer], *, seed: int | None = 0) -> None:
        if isinstance(layers, Layer) or not isinstance(layers, Iterable):
            msg = f"Sequential: layers must be an iterable of Layer, got {describe(layers)}"
            raise TypeError(msg)
        candidates: list[Any] = list(layers)
        if not candidates:
            msg = "Sequential: layers must hold at least one Layer, got none"
            raise ValueError(msg)
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, Layer):
                name = type(candidate).__name__
                msg = f"Sequential: layers[{position}] must be a Layer, got {name}"
                raise TypeError(msg)
        if seed is not None:
            as_int("Sequential", "seed", seed, minimum=0, expected="None or an int")
        seen: set[int] = set()
        counts: dict[str, int] = {}
        names: list[str] = []
        for layer in candidates:
            if id(layer) in seen:
                msg = (
                    f"Sequential: layer {layer.name!r} appears twice in layers (its cache "
                    "would be shared)"
                )
                raise ValueError(msg)
            seen.add(id(layer))
            name = layer.name
            if name == layer.kind:
                # Default name: number repeats like Keras (conv2d, conv2d_1, ...).
                index = counts.get(layer.kind, 0)
                counts[layer.kind] = index + 1
                name = layer.kind if index == 0 else f"{layer.kind}_{index}"
            names.append(name)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            msg = f"Sequential: the layers' names must be unique, got duplicates {duplicates}"
            raise ValueError(msg)
        # Only now, with everything checked, are the layers renamed: a refused model leaves
        # the layers it was given as they were.
        for layer, name in zip(candidates, names, strict=True):
            layer.name = name
        self.layers: list[Layer] = candidates
        self.seed = seed

    @property
    def built(self) -> bool:
        """Whether every layer has been built."""
        return all(layer.built for layer in self.layers)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Per-sample input shape (no batch axis), once built."""
        return self.layers[0].input_shape if self.layers else None

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """Per-sample output shape (no batch axis), once built."""
        return self.layers[-1].output_shape if self.layers else None

    def build(
        self,
        input_shape: tuple[int, ...],
        rng: np.random.Generator | None = None,
        *,
        dtype: npt.DTypeLike = np.float64,
    ) -> tuple[int, ...]:
        """Build every layer in order: create parameters, infer and fix all shapes.

        Parameters
        ----------
        input_shape : tuple of int
            Shape of one sample without the batch axis, e.g. ``(8, 8, 1)``.
        rng : numpy.random.Generator, optional
            Draws the initial kernels, layer by layer in order; default
            ``numpy.random.default_rng(self.seed)``.
        dtype : floating dtype, default float64
            Dtype of every parameter and of the inputs the model accepts.

        Returns
        -------
        output_shape : tuple of int
            Per-sample output shape.
        """
        op = "Sequential.build"
        shape = as_index_tuple(op, "input_shape", input_shape, length=None)
        generator = as_generator(op, "rng", rng)
        resolved = as_float_dtype(op, "dtype", dtype)
        if self.built:
            msg = f"Sequential: already built for input shape {_format_shape(self.input_shape)}"
            raise RuntimeError(msg)
        if generator is None:
            generator = np.random.default_rng(self.seed)
        try:
            for layer in self.layers:
                shape = layer.build(shape, generator, resolved)
        except (TypeError, ValueError) as err:
            # The layer's message names it and the shape it got; this names the call. Layers
            # built before the one that refused stay built (their shapes were fine).
            msg = f"{op}: {err}"
            raise type(err)(msg) from err
        return shape

    def forward(self, x: Array) -> Array:
        """Run the layers in order on a batch; builds the model on its first call.

        Parameters
        ----------
        x : ndarray, shape (N, *input_shape)

        Returns
        -------
        y : ndarray, shape (N, *output_shape)
        """
        x = self._check_input("Sequential.forward", x)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def _check_input(self, op: str, x: Any) -> Array:
        """Build on a first batch, or require the input shape and dtype it was built with."""
        if not self.built:
            check_floating_batch(op, x)
            self.build(x.shape[1:], dtype=x.dtype)
        first = self.layers[0]
        return check_batch(op, "x", x, first.input_shape, first.dtype, "the model")

    def backward(self, dy: Array) -> Array:
        """Back-propagate through the last forward call, accumulating parameter gradients.

        Parameters
        ----------
        dy : ndarray, shape of the last forward output
            Gradient of the loss with respect to the model output.

        Returns
        -------
        dx : ndarray, shape of the last forward input
            Gradient with respect to the model input. Parameter gradients are *added* to
            :meth:`gradients` (call :meth:`zero_grad` before each step).
        """
        last = self.layers[-1]
        if last._last_output_shape is not None:
            dy = check_upstream("Sequential.backward", dy, last._last_output_shape, last.dtype)
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def zero_grad(self) -> None:
        """Reset every gradient accumulator to 0, in place."""
        for layer in self.layers:
            layer.zero_grad()

    def parameters(self) -> dict[str, Array]:
        """Return the parameters by ``"<layer>/<name>"``, in layer order (live arrays).

        Returns
        -------
        dict of str to ndarray
            Conv kernels are HWIO ``(KH, KW, C, O)``, dense kernels ``(I, O)``, biases
            ``(O,)``. Writing into an array changes the model.
        """
        return {
            f"{layer.name}/{key}": value
            for layer in self.layers
            for key, value in layer.params.items()
        }

    def gradients(self) -> dict[str, Array]:
        """Return the gradient accumulators, same keys, order and shapes as :meth:`parameters`."""
        return {
            f"{layer.name}/{key}": value
            for layer in self.layers
            for key, value in layer.grads.items()
        }

    def count_parameters(self) -> int:
        """Total number of scalar parameters."""
        return sum(layer.count_parameters() for layer in self.layers)

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """Describe the model: one row per layer with its output shape and parameter count.

        Parameters
        ----------
        print_fn : callable or None, default print
            Receives the whole text; ``None`` prints nothing.

        Returns
        -------
        str
            The table (``None`` stands for the batch axis), ending with the total.
        """
        if not self.built:
            msg = "Sequential: summary needs a built model (call build(input_shape) or forward)"
            raise RuntimeError(msg)
        rows = [("Layer (type)", "Output Shape", "Param #")]
        rows += [
            (
                f"{layer.name} ({type(layer).__name__})",
                _format_shape(layer.output_shape),
                str(layer.count_parameters()),
            )
            for layer in self.layers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        rule = "-" * (sum(widths) + 4)
        out = io.StringIO()
        out.write(f"Input shape: {_format_shape(self.input_shape)}\n{rule}\n")
        for position, row in enumerate(rows):
            out.write(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}\n")
            if position == 0:
                out.write(rule + "\n")
        out.write(f"{rule}\nTotal params: {self.count_parameters()}")
        text = out.getvalue()
        if print_fn is not None:
            print_fn(text)
        return text


class Evaluation(NamedTuple):
    """Mean softmax cross-entropy and accuracy of a model on a data set."""

    loss: float
    accuracy: float


def _check_training_model(op: str, model: Any) -> Sequential:
    if not isinstance(model, Sequential):
        msg = f"{op}: model must be a Sequential, got {describe(model)}"
        raise TypeError(msg)
    if isinstance(model.layers[-1], Softmax):
        msg = (
            f"{op}: the model ends in Softmax; train on logits (drop the final Softmax, "
            "softmax_cross_entropy applies it in a numerically stable form)"
        )
        raise ValueError(msg)
    return model


def _check_optimizer(op: str, optimizer: Any) -> None:
    if not isinstance(optimizer, SGD):
        msg = f"{op}: optimizer must be an SGD, got {describe(optimizer)}"
        raise TypeError(msg)


def _check_data(op: str, model: Sequential, x: Any, labels: Any) -> tuple[Array, Array]:
    """Check that ``x`` fits the model (building it on a first batch), one label per sample."""
    x_arr = model._check_input(op, x)
    y = as_array(op, "labels", labels)
    if y.dtype.kind not in "iu":
        msg = f"{op}: labels must be integer class indices, got dtype {y.dtype}"
        raise TypeError(msg)
    if y.shape != x_arr.shape[:1]:
        msg = f"{op}: labels must have shape {x_arr.shape[:1]} (one per sample of x), got {y.shape}"
        raise ValueError(msg)
    return x_arr, y


def _loss(
    op: str, function: Callable[..., Array], logits: Array, labels: Array, **options: Any
) -> Array:
    """Apply a loss (or its gradient) to the model's logits, its errors reported as ``op``'s."""
    try:
        return function(logits, labels, **options)
    except (TypeError, ValueError) as err:  # labels outside [0, K), logits of a wrong rank
        msg = f"{op}: {err}"
        raise type(err)(msg) from err


def train_step(model: Sequential, optimizer: SGD, x: Array, labels: Array) -> float:
    """One optimization step on a batch: forward, loss, zero grads, backward, update.

    Parameters
    ----------
    model : Sequential
        Ends in logits ``(N, K)`` (no Softmax layer).
    optimizer : SGD
        Updates ``model.parameters()`` in place from ``model.gradients()``.
    x : ndarray, shape (N, *input_shape)
    labels : ndarray of int, shape (N,)
        Class indices in ``[0, K)``.

    Returns
    -------
    float
        The batch loss *before* the update: ``softmax_cross_entropy(logits, labels)``, the
        mean over the batch.
    """
    op = "train_step"
    _check_training_model(op, model)
    _check_optimizer(op, optimizer)
    x_arr, y = _check_data(op, model, x, labels)
    logits = model.forward(x_arr)
    loss = _loss(op, softmax_cross_entropy, logits, y)
    dlogits = _loss(op, softmax_cross_entropy_backward, logits, y)
    # Gradients are zeroed only once nothing can be refused: a refused step changes nothing.
    model.zero_grad()
    model.backward(dlogits)
    optimizer.step(model.parameters(), model.gradients())
    return float(loss)


def evaluate(model: Sequential, x: Array, labels: Array, *, batch_size: int = 256) -> Evaluation:
    """Mean loss and accuracy of a logits model on ``(x, labels)``, in batches.

    Parameters
    ----------
    model : Sequential
        Ends in logits ``(N, K)``.
    x : ndarray, shape (N, *input_shape)
    labels : ndarray of int, shape (N,)
    batch_size : int
        Only bounds memory; the result does not depend on it beyond rounding.

    Returns
    -------
    Evaluation
        ``loss``: mean ``softmax_cross_entropy`` over all N samples; ``accuracy``: fraction of
        samples whose largest logit is the label (ties go to the lowest class index).
    """
    op = "evaluate"
    _check_training_model(op, model)
    step = as_int(op, "batch_size", batch_size, minimum=1)
    x_arr, y = _check_data(op, model, x, labels)
    if len(x_arr) == 0:
        msg = f"{op}: x holds no samples (shape {x_arr.shape}): the mean loss is undefined"
        raise ValueError(msg)
    total_loss = 0.0
    correct = 0
    for start in range(0, len(x_arr), step):
        logits = model.forward(x_arr[start : start + step])
        batch_labels = y[start : start + step]
        loss = _loss(op, softmax_cross_entropy, logits, batch_labels, reduction="sum")
        total_loss += float(loss)
        correct += int(np.count_nonzero(np.argmax(logits, axis=-1) == batch_labels))
    return Evaluation(total_loss / len(x_arr), correct / len(x_arr))
