"""conv whose depthwise outputs come multiplier-major: channel ``j*C + c`` instead of ``c*m + j``.

Bug: a depthwise conv (``groups = C``, ``O = m*C``) computed one multiplier at a time,
``y_j = depthwise(x, w[..., 0, j::m])`` for ``j < m``, and joined with
``np.concatenate([y_0, ..., y_{m-1}], axis=-1)``, so output ``j*C + c`` holds what belongs in
``c*m + j`` (TensorFlow's ``depthwise_conv2d`` and PyTorch's ``groups=C`` order, the order
:func:`refcnn.conv` documents). Converting TF depthwise kernels ``(KH, KW, C, m)`` to or from
the ``(KH, KW, 1, C*m)`` / ``(C*m, 1, KH, KW)`` layouts through an ``(m, C)`` transpose is the
same mix-up, invisible in every model whose channel multiplier is 1.

Exact when the multiplier is 1 (MobileNet's depthwise layers, by far the most common case)
or when ``C == 1``; only a depthwise conv with ``m >= 2`` and ``C >= 2`` differs (with a bias
too: the bias is added to the permuted outputs by their position, as the concatenation
would leave them). Must be rejected by ``test_conv``.
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
    """Mutant conv: depthwise outputs in multiplier-major order (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.conv(x, w, b, **options)  # validation
    w_arr = np.asarray(w)
    channels, out_channels = groups, w_arr.shape[-1]
    if groups == 1 or w_arr.shape[-2] != 1 or out_channels == channels:
        return expected  # not depthwise, or multiplier 1
    multiplier = out_channels // channels
    axis = 1 if isinstance(data_format, str) and data_format.startswith("NC") else -1
    y = np.asarray(refcnn.conv(x, w, None, **options))
    # BUG: output j*C + c gets the (channel c, multiplier j) result, which is output c*m + j.
    order = np.arange(out_channels).reshape(channels, multiplier).T.reshape(-1)
    y = np.take(y, order, axis=axis)
    if b is not None:
        shape = [1] * y.ndim
        shape[axis] = out_channels
        y = y + np.asarray(b).reshape(shape)
    return np.asarray(y, dtype=expected.dtype)


install_refcnn(__name__)
