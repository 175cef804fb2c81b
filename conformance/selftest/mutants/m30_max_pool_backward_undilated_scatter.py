"""max_pool_backward that finds each window's maximum right but scatters it without the dilation.

Bug: the window's first maximum is found over the dilated taps, at tap ``t`` (per axis), and
its gradient is added at input index ``i*s + t - before`` instead of ``i*s + t*d - before``
(an index outside the input is dropped). Max-pool gradients are often written as "argmax
inside the window, then offset": the offset code is shared with the undilated pool, or
ported from a framework whose pooling had no dilation (TensorFlow's ``max_pool`` has none,
Keras' pooling layers neither), and the forward pass and the output shape are right, so
nothing looks wrong.

Exact when every dilation is 1, and when the maximum of each window is its first tap along
every dilated axis; only a dilated pool whose maximum sits further into some window
differs. Must be rejected by ``test_max_pool_backward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn
from refcnn.padding import normalize_padding, windows

TARGET = "test_max_pool_backward"
K_EXPR = "test_max_pool_backward"


def max_pool_backward(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> npt.NDArray[Any]:
    """Mutant max-pool gradient: dilation dropped from the scatter (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.max_pool_backward(dy, x, ksize, **options)  # validation
    x_arr, dy_arr = np.asarray(x), np.asarray(dy)
    rank = x_arr.ndim - 2

    def per_axis(value: Any) -> tuple[int, ...]:
        return (int(value),) * rank if np.ndim(value) == 0 else tuple(int(v) for v in value)

    spacing = per_axis(dilations)
    if spacing == (1,) * rank or dy_arr.size == 0:
        return expected
    kernel = per_axis(ksize)
    steps = kernel if strides is None else per_axis(strides)
    channels_first = isinstance(data_format, str) and data_format.startswith("NC")
    # Channels-last views (N, *spatial, C) of x, dy and the argmax.
    x_cl = np.moveaxis(x_arr, 1, -1) if channels_first else x_arr
    dy_cl = np.moveaxis(dy_arr, 1, -1) if channels_first else dy_arr
    _, argmax = refcnn.max_pool_with_argmax(x_cl, ksize, **{**options, "data_format": None})
    sizes = x_cl.shape[1:-1]
    geometry = windows(
        sizes,
        kernel,
        steps,
        spacing,
        normalize_padding("max_pool_backward", padding, rank),
        ceil_mode=bool(ceil_mode),
    )
    winner = np.unravel_index(argmax, sizes)  # per axis: the input index of each window's max
    target = np.zeros(argmax.shape, dtype=np.int64)
    inside = np.ones(argmax.shape, dtype=bool)
    for a in range(rank):
        shape = [1] * argmax.ndim
        shape[1 + a] = argmax.shape[1 + a]
        start = np.arange(argmax.shape[1 + a]).reshape(shape) * steps[a] - geometry.pads[a][0]
        tap = (winner[a] - start) // spacing[a]
        index = start + tap  # BUG: the tap is spacing[a] input elements from the last one
        inside &= (index >= 0) & (index < sizes[a])
        target = target * sizes[a] + np.clip(index, 0, sizes[a] - 1)
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    n, channels = x_cl.shape[0], x_cl.shape[-1]
    dx = np.zeros((n, int(np.prod(sizes)), channels), dtype=acc)
    rows = np.broadcast_to(np.arange(n).reshape((-1,) + (1,) * (argmax.ndim - 1)), argmax.shape)
    cols = np.broadcast_to(np.arange(channels), argmax.shape)
    np.add.at(dx, (rows[inside], target[inside], cols[inside]), dy_cl[inside].astype(acc))
    dx_cl = dx.reshape(x_cl.shape)
    result = np.moveaxis(dx_cl, -1, 1) if channels_first else dx_cl
    return np.ascontiguousarray(result, dtype=expected.dtype)


install_refcnn(__name__)
