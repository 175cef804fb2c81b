"""max_pool whose ceil mode keeps a last window that starts in the end padding.

Bug: with ``ceil_mode=True`` the window count is ``ceil((n + before + after - e) / s) + 1``
without the correction that drops the last window when it would start at or past
``n + before``, i.e. in the end padding (or beyond it), where it holds padding only. The
implementation pads with ``-inf``, so that window pools to ``-inf`` and the output is one
longer on that axis. Caffe and PyTorch both carry the correction ("ensure that the last
pooling starts strictly inside the image"); ONNX's operator spec gives the ceil-mode size
formula without it (its reference implementation adopted it later), so implementations
written from the spec's formula lack it.

Exact without ``ceil_mode``, under SAME, and whenever the last ceil-mode window starts on a
real element, which it does unless the stride exceeds what the padded input has left
(e.g. 4 elements, window 2, stride 2, pads (0, 1): three windows, the third one pure pad).
Must be rejected by ``test_max_pool``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn
from refcnn.padding import normalize_padding, windows

TARGET = "test_max_pool"
K_EXPR = (
    "test_max_pool and not backward and not argmax and not test_max_pool1d "
    "and not test_max_pool2d and not test_max_pool3d"
)


def max_pool(
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
    data_format: str | None = None,
) -> npt.NDArray[Any]:
    """Mutant max pooling: a ceil-mode window of padding only (see the module docstring)."""
    expected: npt.NDArray[Any] = refcnn.max_pool(
        x,
        ksize,
        strides=strides,
        padding=padding,
        dilations=dilations,
        ceil_mode=ceil_mode,
        data_format=data_format,
    )  # validation
    x_arr = np.asarray(x)
    rank = x_arr.ndim - 2
    resolved = normalize_padding("max_pool", padding, rank)
    if not ceil_mode or (isinstance(resolved, str) and resolved != "VALID"):
        return expected

    def per_axis(value: Any) -> tuple[int, ...]:
        return (int(value),) * rank if np.ndim(value) == 0 else tuple(int(v) for v in value)

    kernel, spacing = per_axis(ksize), per_axis(dilations)
    steps = kernel if strides is None else per_axis(strides)
    first = 2 if isinstance(data_format, str) and data_format.startswith("NC") else 1
    sizes = x_arr.shape[first : first + rank]
    geometry = windows(sizes, kernel, steps, spacing, resolved, ceil_mode=True)
    y = expected
    for a in range(rank):
        (before, after), out = geometry.pads[a], geometry.out[a]
        padded, extent = sizes[a] + before + after, (kernel[a] - 1) * spacing[a] + 1
        if padded < extent:
            continue
        # BUG: no "minus one when the last window starts in the end padding".
        if -(-(padded - extent) // steps[a]) + 1 > out:
            widths = [(0, 0)] * y.ndim
            widths[first + a] = (0, 1)
            y = np.pad(y, widths, constant_values=-np.inf)
    return np.asarray(y, dtype=expected.dtype)


install_refcnn(__name__)
