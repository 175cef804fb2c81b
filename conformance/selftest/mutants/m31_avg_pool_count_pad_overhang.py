"""avg_pool whose ``count_include_pad`` divisor also counts a ceil-mode window's overhang.

Bug: with ``count_include_pad=True`` every window divides by its full tap count
``prod(ksize)``, including the taps of a ceil-mode window that run past the end pad, where
there is neither input nor padding. PyTorch and ONNX count only the taps inside the padded
input (:func:`refcnn.avg_pool`'s rule); "include pad means divide by the kernel size" is the
shortcut of every implementation that keeps only the kernel area (runtimes whose average
pool has no ceil mode and emulate it with extra end padding compute exactly this), and the
two rules disagree only on the last window of a ceil-mode axis.

Exact with ``count_include_pad=False``, without ``ceil_mode``, and whenever the last window
of each axis ends inside the padded input; only ``ceil_mode`` with ``count_include_pad`` and
a last window that overhangs the end pad differs. Must be rejected by ``test_avg_pool``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn
from refcnn.padding import normalize_padding, windows

TARGET = "test_avg_pool"
K_EXPR = (
    "test_avg_pool and not backward and not test_avg_pool1d and not test_avg_pool2d "
    "and not test_avg_pool3d"
)


def avg_pool(
    x: npt.ArrayLike,
    ksize: Any,
    *,
    strides: Any = None,
    padding: Any = "VALID",
    dilations: Any = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    data_format: str | None = None,
) -> npt.NDArray[Any]:
    """Mutant average pooling: overhang counted in the divisor (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.avg_pool(x, ksize, padding=padding, **options)
    if not (count_include_pad is True and ceil_mode is True):
        return expected
    rank = np.ndim(x) - 2

    def per_axis(value: Any) -> tuple[int, ...]:
        return (int(value),) * rank if np.ndim(value) == 0 else tuple(int(v) for v in value)

    kernel = per_axis(ksize)
    steps = kernel if strides is None else per_axis(strides)
    first = 2 if isinstance(data_format, str) and data_format.startswith("NC") else 1
    geometry = windows(
        np.shape(x)[first : first + rank],
        kernel,
        steps,
        per_axis(dilations),
        normalize_padding("avg_pool", padding, rank),
        ceil_mode=True,
    )
    if not any(geometry.overhang):
        return expected
    # BUG: the overhang is counted as if it were padding (the windows and sums are unchanged).
    padded = tuple(
        (before, after + over)
        for (before, after), over in zip(geometry.pads, geometry.overhang, strict=True)
    )
    return np.asarray(refcnn.avg_pool(x, ksize, padding=padded, **options))


install_refcnn(__name__)
