"""Input validation shared by every public entry point.

Each helper raises ``TypeError`` or ``ValueError`` whose message starts with the public
function's name and names the offending argument, what it got and what was expected, so a
user never has to decode an ``IndexError`` from deep inside NumPy.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "accumulation_dtype",
    "as_array",
    "as_floating",
    "as_index_tuple",
    "as_pair",
    "require_same_dtype",
]


def as_array(
    op: str,
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    layout: str = "",
    allow_int: bool = True,
) -> npt.NDArray[Any]:
    """Return ``value`` as an ndarray (never a copy we then write to), checking dtype and rank.

    Accepted dtypes: real floating, integer (when ``allow_int``) and ``object`` (arrays of
    ``fractions.Fraction`` give exact results). Booleans, complex numbers, strings and dates
    are rejected because no op here has a meaning for them.
    """
    if value is None:
        msg = f"{op}: {name} must be an array, got None"
        raise TypeError(msg)
    array = np.asarray(value)
    kind = array.dtype.kind
    allowed = "fiuO" if allow_int else "fO"
    if kind not in allowed:
        expected = "a real floating, integer or object (Fraction) dtype"
        if not allow_int:
            expected = "a real floating or object (Fraction) dtype"
        msg = f"{op}: {name} must have {expected}, got dtype {array.dtype}"
        raise TypeError(msg)
    if ndim is not None and array.ndim != ndim:
        shape_hint = f" {layout}" if layout else ""
        msg = f"{op}: {name} must be {ndim}-D{shape_hint}, got shape {array.shape}"
        raise ValueError(msg)
    return array


def require_same_dtype(op: str, **arrays: npt.NDArray[Any] | None) -> None:
    """Refuse mixed dtypes: the result dtype must follow the inputs, never a silent promotion."""
    present = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(present.values())) > 1:
        listed = ", ".join(f"{name}={dtype}" for name, dtype in present.items())
        msg = f"{op}: arrays must share one dtype (cast explicitly), got {listed}"
        raise TypeError(msg)


def _as_int(op: str, name: str, value: Any) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        msg = f"{op}: {name} must be an int, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    return operator.index(value)


def as_pair(op: str, name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """Normalize an int or an ``(h, w)`` pair of ints, each ``>= minimum``."""
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        items = list(value)
        if len(items) != 2:
            msg = f"{op}: {name} must be an int or a pair (h, w), got {value!r}"
            raise ValueError(msg)
        pair = (_as_int(op, name, items[0]), _as_int(op, name, items[1]))
    else:
        single = _as_int(op, name, value)
        pair = (single, single)
    if min(pair) < minimum:
        msg = f"{op}: {name} must be >= {minimum} on each axis, got {value!r}"
        raise ValueError(msg)
    return pair


def as_index_tuple(op: str, name: str, value: Any, *, length: int) -> tuple[int, ...]:
    """Normalize a shape argument: a sequence of ``length`` non-negative ints."""
    if value is None or isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        msg = f"{op}: {name} must be a sequence of {length} ints, got {value!r}"
        raise TypeError(msg)
    items = tuple(_as_int(op, name, v) for v in value)
    if len(items) != length or min(items, default=0) < 0:
        msg = f"{op}: {name} must be {length} non-negative ints, got {value!r}"
        raise ValueError(msg)
    return items


def accumulation_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """Return the dtype sums are carried in: float16 accumulates in float32, like the frameworks."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype


def cast_result(result: Any, dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """Round a result carried in :func:`accumulation_dtype` back to the caller's ``dtype``.

    A value beyond the dtype's range becomes ``+-inf``, exactly what computing in that dtype
    would give; NumPy's "overflow encountered in cast" warning is silenced, as refcnn never
    warns about a result that IEEE arithmetic represents (float16 overflows easily).
    """
    with np.errstate(over="ignore"):
        cast: npt.NDArray[Any] = np.asarray(result).astype(dtype, copy=False)
    return cast


def as_floating(
    op: str,
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    layout: str = "",
    exact_ok: bool = False,
) -> npt.NDArray[Any]:
    """Like :func:`as_array`, for ops built on ``exp``/``log``: real floating dtypes only.

    With ``exact_ok`` the op needs only ``+ - * /`` and comparisons, so ``object`` arrays of
    ``fractions.Fraction`` are accepted too. Integers are refused either way: their results
    (probabilities, gradients of smooth functions) are not integers.
    """
    array = as_array(op, name, value, ndim=ndim, layout=layout)
    if array.dtype.kind == "f" or (exact_ok and array.dtype.kind == "O"):
        return array
    expected = (
        "a real floating or object (Fraction) dtype"
        if exact_ok
        else "a real floating dtype (exp and log have no integer or exact rational form)"
    )
    msg = f"{op}: {name} must have {expected}, got dtype {array.dtype}"
    raise TypeError(msg)
