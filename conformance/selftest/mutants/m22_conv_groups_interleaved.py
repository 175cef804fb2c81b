"""conv whose groups take their input channels round-robin instead of in contiguous blocks.

Bug: group ``g`` reads the input channels ``c`` with ``c % groups == g`` (channel ``c`` goes to
group ``c % groups``, as slot ``c // groups``) instead of the block ``[g*Cg, (g+1)*Cg)``,
``c // Cg == g``. It is what reshaping the channel axis as ``(Cg, groups)`` instead of
``(groups, Cg)`` gives (``x.reshape(N, H, W, Cg, G)``; it is ShuffleNet's channel shuffle
applied where none belongs), and so does a grouped-conv emulation that splits ``x`` with
the strided slice ``x[..., g::groups]`` instead of ``x[..., g*Cg:(g+1)*Cg]``.

Exact when ``groups == 1`` or when each group has one input channel (``Cg == 1``, which
includes every depthwise conv): both rules then send channel ``c`` to group ``c``. Only a
grouped conv with ``C/groups >= 2`` (and ``groups >= 2``) differs. Must be rejected by
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
    """Mutant conv: round-robin channel groups (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.conv(x, w, b, **options)  # validation
    x_arr = np.asarray(x)
    if groups == 1:
        return expected
    axis = 1 if isinstance(data_format, str) and data_format.startswith("NC") else -1
    channels = x_arr.shape[axis]
    per_group = channels // groups
    # BUG: group g should read channels g*Cg .. g*Cg + Cg - 1; this hands it g, g + G, ...
    order = np.arange(channels).reshape(per_group, groups).T.reshape(-1)
    return np.asarray(refcnn.conv(np.take(x_arr, order, axis=axis), w, b, **options))


install_refcnn(__name__)
