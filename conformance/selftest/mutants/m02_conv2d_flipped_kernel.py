"""conv2d computed as a TRUE convolution: the kernel is flipped (rotated 180 degrees).

Bug: ``y = correlate(x, w[::-1, ::-1])``. Every framework's "convolution" is a
cross-correlation; textbooks define convolution with the flip, so implementations built on
``scipy.signal.convolve2d`` (instead of ``correlate2d``), or written from the textbook formula
``x[i - p]``, ship this orientation bug. The forward-only tests of such code pass whenever
the kernels are symmetric (1x1 kernels, Gaussian/box filters, all-ones test kernels), and
training still "works" because the network learns flipped kernels.

Only 1-row/1-column kernels (or symmetric ones) agree. Must be rejected by ``test_conv2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn

TARGET = "test_conv2d"
K_EXPR = "test_conv2d and not backward"


@classic_form(refcnn.conv2d, new=("data_format", "groups"))
def conv2d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> npt.NDArray[Any]:
    """Mutant conv2d: convolution with the flipped kernel (see the module docstring)."""
    w_arr = np.asarray(w)
    flipped = w_arr[::-1, ::-1] if w_arr.ndim == 4 else w_arr  # BUG: textbook convolution
    return refcnn.conv2d(x, flipped, b, strides=strides, padding=padding, dilations=dilations)


install_refcnn(__name__)
