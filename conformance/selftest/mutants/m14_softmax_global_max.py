"""softmax that subtracts the GLOBAL max of the array instead of the max along ``axis``.

Bug: ``e = exp(z - z.max()); e / e.sum(axis, keepdims=True)``. The max-shift is meant to be
per row (``z.max(axis, keepdims=True)``); shifting by one global max is still right in exact
arithmetic, so it passes every test with rows of similar magnitude. Seen in NumPy snippets
and tutorials that wrote the 1-D stable softmax (where the global max IS the row max) and
then fed it a batch.

A row whose max is far below the global max underflows: with a gap above ~87 (float32),
~745 (float64) or ~17 (float16, computed here in float32 like refcnn: ~87) every ``exp`` in
the row is 0 and the row becomes 0/0 = NaN (with a warning); smaller gaps push it into
subnormals and lose precision first. Needs a batch whose rows differ widely in scale. Must
be rejected by ``test_softmax``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn

TARGET = "test_softmax"
K_EXPR = "test_softmax and not backward and not jacobian and not cross_entropy"


def softmax(z: npt.ArrayLike, axis: int = -1) -> npt.NDArray[Any]:
    """Mutant softmax: one global shift (see the module docstring)."""
    expected = refcnn.softmax(z, axis=axis)  # validation, dtype
    z_arr = np.asarray(z)
    if z_arr.dtype.kind != "f" or z_arr.size == 0:
        return expected
    acc = np.float32 if z_arr.dtype == np.float16 else z_arr.dtype
    za = z_arr.astype(acc)
    e = np.exp(za - za.max())  # BUG: should be za.max(axis=axis, keepdims=True)
    result: npt.NDArray[Any] = (e / e.sum(axis=axis, keepdims=True)).astype(z_arr.dtype)
    return result


install_refcnn(__name__)
