"""conv that reads its per-axis strides in (width, height) order: the last two swapped.

Bug: with two or three spatial axes the stride of the height axis is applied to the width
and vice versa (``(sd, sh, sw)`` used as ``(sd, sw, sh)``). TensorFlow Lite's flatbuffer
schema stores ``Conv2DOptions`` as ``stride_w, stride_h`` (and ``Conv3DOptions`` as
``stride_d, stride_w, stride_h``), OpenCV and PIL sizes are ``(width, height)``, Caffe has
``stride_h``/``stride_w`` fields next to a repeated ``stride``: converters and loaders
between these and TF/ONNX's ``(…, H, W)`` order have swapped the two again and again. The
output sizes follow the swapped strides, so nothing crashes inside the implementation.

Exact whenever the height and width strides agree (a single int, the usual case) and in
1-D; only a conv with ``strides[-2] != strides[-1]`` differs (its output shape then
differs too, unless the two axes happen to give the same sizes). Must be rejected by
``test_conv``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_conv"
K_EXPR = (
    "test_conv and not backward and not transpose and not test_conv1d and not test_conv2d "
    "and not test_conv3d"
)


def conv(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> npt.NDArray[Any]:
    """Mutant conv: height and width strides swapped (see the module docstring)."""
    options: dict[str, Any] = {
        "padding": padding,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.conv(x, w, b, strides=strides, **options)  # validation
    rank = np.ndim(x) - 2
    if rank < 2 or isinstance(strides, int | np.integer):
        return expected
    swapped = [int(s) for s in strides]
    swapped[-2], swapped[-1] = swapped[-1], swapped[-2]  # BUG: read as (..., W, H)
    return np.asarray(refcnn.conv(x, w, b, strides=tuple(swapped), **options))


install_refcnn(__name__)
