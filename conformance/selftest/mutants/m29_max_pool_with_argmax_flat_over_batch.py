"""max_pool_with_argmax whose indices are flat over the whole input, batch and channels included.

Bug: ``argmax`` is the position of the winning element in ``x.ravel()`` (in the input's own
layout) instead of inside its ``(n, c)`` spatial volume: ``(n*S + k)*C + c`` channels-last,
``(n*C + c)*S + k`` channels-first, for the spatial index ``k`` and ``S`` spatial elements.
Those are TensorFlow's ``tf.nn.max_pool_with_argmax(include_batch_in_index=True)`` and ONNX
``MaxPool``'s ``Indices``; code that feeds them to a PyTorch-style unpooling (which wants
``k``, as :func:`refcnn.max_pool_with_argmax` documents), or a port that mixes up the
conventions, gets this.

Exact when ``C == 1`` and ``N == 1`` (a single grayscale image, the usual hand-worked
example) and for empty batches; any batch of two or more, or any input with two or more
channels, differs (the pooled values ``y`` are right). Must be rejected by
``test_max_pool_with_argmax``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_max_pool_with_argmax"
K_EXPR = "test_max_pool_with_argmax"


def max_pool_with_argmax(
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Mutant max pooling with argmax: whole-array flat indices (see the module docstring)."""
    y, argmax = refcnn.max_pool_with_argmax(
        x,
        ksize,
        strides=strides,
        padding=padding,
        dilations=dilations,
        ceil_mode=ceil_mode,
        data_format=data_format,
    )
    shape = np.shape(x)
    channels_first = isinstance(data_format, str) and data_format.startswith("NC")
    channel_axis = 1 if channels_first else -1
    volume = math.prod(shape[2:] if channels_first else shape[1:-1])
    n = np.arange(argmax.shape[0], dtype=np.int64).reshape((-1,) + (1,) * (argmax.ndim - 1))
    c_shape = [1] * argmax.ndim
    c_shape[channel_axis] = argmax.shape[channel_axis]
    c = np.arange(argmax.shape[channel_axis], dtype=np.int64).reshape(c_shape)
    channels = shape[channel_axis]
    # BUG: the index should stay inside the (n, c) volume: argmax itself.
    if channels_first:
        flat = (n * channels + c) * volume + argmax
    else:
        flat = (n * volume + argmax) * channels + c
    return y, np.asarray(flat, dtype=argmax.dtype)


install_refcnn(__name__)
