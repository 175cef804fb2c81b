"""max_pool whose 3-D windows step along the depth axis by the HEIGHT stride.

Bug: the three-spatial-axis path uses ``strides[1]`` (height) for the depth axis as well:
``(sd, sh, sw)`` acts as ``(sh, sh, sw)``, and the output's depth follows that stride (1-D
and 2-D pooling are right). 3-D pooling and convolution kernels are commonly made by
extending a 2-D one with a depth loop copied from the height loop, and the one index left
unrenamed survives every test whose strides are a single int or whose windows are cubes
with the default stride, which is most hand-written tests of a 3-D pool.

Exact in 1-D and 2-D and whenever the depth and height strides agree (an int stride, a
``(k, k, *)`` window with the default stride ``ksize``); only a 3-D pool with
``strides[0] != strides[1]`` differs (the output's depth too, unless both strides give the
same number of windows). Must be rejected by ``test_max_pool``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

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
    """Mutant max pooling: 3-D depth stride taken from the height (see the module docstring)."""
    options: dict[str, Any] = {
        "padding": padding,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
        "data_format": data_format,
    }
    expected: npt.NDArray[Any] = refcnn.max_pool(x, ksize, strides=strides, **options)
    steps = ksize if strides is None else strides
    if np.ndim(x) != 5 or np.ndim(steps) == 0:
        return expected
    _, sh, sw = (int(s) for s in steps)
    # BUG: the depth loop was copied from the height loop: it steps by sh, not sd.
    return np.asarray(refcnn.max_pool(x, ksize, strides=(sh, sh, sw), **options))


install_refcnn(__name__)
