"""conv that adds the bias to a channels-first output as if the channel were the fastest axis.

Bug: the bias is added with ``y.reshape(-1, O) += b``, the idiom of a channels-last
implementation (there the channel is the last, fastest-varying axis, so row ``r`` of the
``(-1, O)`` view is one output position and the idiom is right), kept when a channels-first
``data_format`` is added: on an ``(N, O, *OS)`` output element ``((n*O + o)*P + p)`` (``P`` the
number of output positions) gets ``b[(o*P + p) % O]`` instead of ``b[o]``. The shape is
always right and nothing crashes (``O`` divides the size). NumPy CNNs written NHWC-first and
framework shims that broadcast a bias over the last axis ship this kind of bug.

Exact without a bias, in the default channels-last layout, when ``O == 1`` and when the
output has a single position; only a channels-first conv with a bias, ``O > 1`` and more
than one output position differs. Must be rejected by ``test_conv``.
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
    """Mutant conv: channels-first bias added along the flat buffer (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.conv(x, w, b, **options)  # validation
    if b is None or not (isinstance(data_format, str) and data_format.startswith("NC")):
        return expected
    b_arr = np.asarray(b)
    y = np.array(refcnn.conv(x, w, None, **options))  # C-contiguous (N, O, *OS)
    rows = y.reshape(-1, b_arr.shape[0])
    rows += b_arr  # BUG: right for (N, *OS, O); here the fastest axis is a spatial one
    return y


install_refcnn(__name__)
