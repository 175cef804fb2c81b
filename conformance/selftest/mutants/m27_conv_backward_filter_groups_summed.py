"""conv_backward_filter that sums a group's filter gradient over the input channels of ALL groups.

Bug: ``dw`` is computed as for an ungrouped conv, every output channel against every input
channel (shape ``(*K, C, O)``), and then folded to ``(*K, C/groups, O)`` with
``reshape(*K, groups, C/groups, O).sum(axis=-3)`` instead of keeping, for output channel
``o`` of group ``g``, only the block of input channels ``[g*Cg, (g+1)*Cg)`` that its filter
reads. Grouped (and depthwise) convolutions emulated with a dense conv and a block-diagonal
filter need the same mask on the gradient; a hand-written backward that forgets it, or folds
the dense gradient by summing, is a bug that training survives (the model still learns,
worse), so it ships.

Exact when ``groups == 1``; any grouped or depthwise conv whose other groups' inputs are not
all zero differs. The forward and the input gradient are right. Must be rejected by
``test_conv_backward_filter``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_conv_backward_filter"
K_EXPR = "test_conv_backward_filter"


def conv_backward_filter(
    dy: npt.ArrayLike,
    x: npt.ArrayLike,
    filter_shape: Any,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
    groups: int = 1,
    data_format: str | None = None,
) -> npt.NDArray[Any]:
    """Mutant filter gradient: groups' blocks summed (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "padding": padding,
        "dilations": dilations,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.conv_backward_filter(
        dy, x, filter_shape, groups=groups, **options
    )  # validation
    if groups == 1:
        return expected
    *kernel, per_group, out_channels = (int(n) for n in filter_shape)
    dense = refcnn.conv_backward_filter(
        dy, x, (*kernel, per_group * groups, out_channels), **options
    )
    # BUG: only block o // (O/groups) of the input channels belongs to output channel o.
    folded = np.asarray(dense).reshape(*kernel, groups, per_group, out_channels).sum(axis=-3)
    return np.asarray(folded, dtype=expected.dtype)


install_refcnn(__name__)
