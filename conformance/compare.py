"""The comparison of one result with the truth, element by element, against the bounds.

NumPy only: shared by the harness and :mod:`refcnn.testing`. An element's normalized error is
``|got - truth| / bound`` (``0 / 0 = 0``, so a zero bound demands an exact match); a NaN or
infinity must sit exactly where the truth rounded to the dtype has it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from conformance import tolerance

__all__ = ["Measurement", "measure", "normalized_error"]

Array: TypeAlias = npt.NDArray[Any]


class Measurement(NamedTuple):
    """The worst element of one comparison."""

    max_err: float
    output: str
    position: tuple[int, ...]
    got: float
    want: float
    bound: float
    formula: str

    def describe(self) -> str:
        """Say in one line where, both values and the bound."""
        where = f"{self.output}[{', '.join(map(str, self.position))}]"
        return (
            f"max normalized error {self.max_err:.4g} (tolerance: <= 1) at {where}: "
            f"got {self.got!r}, truth {self.want!r}, allowed |got - truth| <= {self.bound:.4g} "
            f"({self.formula})"
        )


def normalized_error(got: Array, truth: Array, bound: Array, dtype: np.dtype[Any]) -> Array:
    """``|got - truth| / bound`` elementwise (``0/0 = 0``); ``inf`` for a wrong NaN/inf.

    Where the truth rounded to ``dtype`` is not finite, ``got`` must equal it exactly (NaN
    for NaN, the same infinity); where it is finite, ``got`` must be finite.
    """
    got64 = np.asarray(got, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = truth.astype(dtype).astype(np.float64)
    special = ~np.isfinite(rounded)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        diff = np.abs(got64 - truth)
        ratio = np.where(diff == 0, 0.0, diff / bound)
    ratio = np.where(np.isfinite(got64), ratio, np.inf)
    matched = np.where(np.isnan(rounded), np.isnan(got64), got64 == rounded)
    err = np.where(special, np.where(matched, 0.0, np.inf), ratio)
    return np.asarray(np.where(np.isnan(err), np.inf, err))


def measure(
    outputs: Sequence[Array],
    truth: Sequence[Array],
    bounds: Sequence[tolerance.Bound],
    dtype: np.dtype[Any],
    names: Sequence[str],
    excluded: Sequence[Array] | None = None,
) -> Measurement:
    """Find the worst normalized error over every output (``excluded`` elements count 0)."""
    worst = Measurement(0.0, names[0], (), math.nan, math.nan, 0.0, bounds[0].formula)
    found = False
    skip = excluded if excluded is not None else [None] * len(names)
    for out, want, bound, name, mask in zip(outputs, truth, bounds, names, skip, strict=True):
        err = normalized_error(out, want, bound.bound, dtype)
        if mask is not None:
            err = np.where(mask, 0.0, err)
        if err.size == 0:
            continue
        flat = int(np.argmax(err))
        if err.flat[flat] > worst.max_err or not found:
            found = True
            position = tuple(int(i) for i in np.unravel_index(flat, err.shape))
            worst = Measurement(
                float(err.flat[flat]),
                name,
                position,
                float(np.asarray(out, dtype=np.float64)[position]),
                float(want[position]),
                float(bound.bound[position]),
                bound.formula,
            )
    return worst
