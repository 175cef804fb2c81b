"""conv2d with two unrelated bugs: it raises on an empty batch and drops the bias.

Both must be reported, each with its own shrunk reproducer: the trivial crash must not hide
the value bug.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import refcnn
from conformance.selftest import install_refcnn


def conv2d(x: Any, w: Any, b: Any = None, **kwargs: Any) -> Any:
    """refcnn.conv2d without its bias, crashing when the batch is empty."""
    x_arr = np.asarray(x)
    if x_arr.shape[0] == 0:
        msg = "empty batch"
        raise IndexError(msg)
    return refcnn.conv2d(x_arr, w, None, **kwargs)


install_refcnn(__name__)
