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
    "as_axis",
    "as_bool",
    "as_data_format",
    "as_floating",
    "as_index_tuple",
    "as_int",
    "as_pair",
    "as_real",
    "as_tuple",
    "cast_result",
    "check_addressable",
    "check_upstream_shape",
    "require_same_dtype",
]

#: The most bytes refcnn will allocate for one result or workspace array. NumPy's own limit
#: is the address space (2**63 bytes); past this a request is a mistake (a huge pad, stride
#: or dilation), and it gets an error naming the argument instead of NumPy's "array is too
#: big" or a MemoryError after the machine started swapping.
MAX_ARRAY_BYTES = 2**40


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


def as_int(
    op: str, name: str, value: Any, *, minimum: int | None = None, expected: str = "an int"
) -> int:
    """Return ``value`` as a Python int (bools refused), ``>= minimum`` when given.

    ``expected`` words the type error for arguments that also take something else (``"None
    or an int"``; the caller handles the other case).
    """
    if type(value) is int:  # the common case, without the ABC checks (a few microseconds)
        number = value
    elif isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        msg = f"{op}: {name} must be {expected}, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    else:
        number = operator.index(value)
    if minimum is not None and number < minimum:
        msg = f"{op}: {name} must be >= {minimum}, got {number}"
        raise ValueError(msg)
    return number


def as_bool(op: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool; only ``bool`` and ``numpy.bool_`` are accepted."""
    if not isinstance(value, bool | np.bool_):
        msg = f"{op}: {name} must be a bool, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    return bool(value)


def as_real(
    op: str,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Return ``value`` as a float (bools refused), within ``[minimum, maximum]`` when given.

    NaN is refused whenever a bound is given (it compares false with both).
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        msg = f"{op}: {name} must be a real number, got {value!r} of type {type(value).__name__}"
        raise TypeError(msg)
    number = float(value)
    low = -np.inf if minimum is None else minimum
    high = np.inf if maximum is None else maximum
    if (minimum is not None or maximum is not None) and not low <= number <= high:
        if maximum is None:
            expected = f">= {minimum}"
        elif minimum is None:
            expected = f"<= {maximum}"
        else:
            expected = f"in [{minimum}, {maximum}]"
        msg = f"{op}: {name} must be {expected}, got {value!r}"
        raise ValueError(msg)
    return number


def as_axis(
    op: str, name: str, value: Any, shape: tuple[int, ...], *, inclusive: bool = False
) -> int:
    """Return an axis index in ``[0, ndim)`` for an int in ``[-ndim, ndim)``.

    With ``inclusive`` the axis is a split point in ``[-ndim, ndim]`` (ONNX Flatten's axis),
    returned in ``[0, ndim]``.
    """
    index, ndim = as_int(op, name, value), len(shape)
    upper = ndim + 1 if inclusive else ndim
    if not -ndim <= index < upper:
        bracket = "]" if inclusive else ")"
        msg = (
            f"{op}: {name} must be in [-{ndim}, {ndim}{bracket} for an input of shape "
            f"{shape}, got {value}"
        )
        raise ValueError(msg)
    return index + ndim if index < 0 else index


def as_tuple(op: str, name: str, value: Any, *, rank: int, minimum: int = 1) -> tuple[int, ...]:
    """Normalize an int or ``rank`` ints (one per spatial axis), each ``>= minimum``."""
    if type(value) is int and value >= minimum:  # the common case, without the ABC checks
        return (value,) * rank
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        items = list(value)
        if len(items) != rank:
            kind = "a pair (h, w)" if rank == 2 else f"a sequence of {rank} ints"
            msg = f"{op}: {name} must be an int or {kind}, got {value!r}"
            raise ValueError(msg)
        numbers_ = tuple(as_int(op, name, item) for item in items)
    else:
        numbers_ = (as_int(op, name, value),) * rank
    if min(numbers_, default=minimum) < minimum:
        msg = f"{op}: {name} must be >= {minimum} on each axis, got {value!r}"
        raise ValueError(msg)
    return numbers_


#: TensorFlow's data_format strings by spatial rank: (channels-last, channels-first).
DATA_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def as_data_format(op: str, value: Any, rank: int) -> bool:
    """Return True for a channels-first ``data_format``, False for channels-last.

    ``None`` is channels-last; otherwise TensorFlow's strings for ``rank`` spatial axes
    (``"NWC"``/``"NCW"``, ``"NHWC"``/``"NCHW"``, ``"NDHWC"``/``"NCDHW"``). A string of another
    rank is a ValueError naming the input's rank.
    """
    if value is None:
        return False
    last, first = DATA_FORMATS.get(rank, ("", ""))
    if not isinstance(value, str):
        msg = (
            f"{op}: data_format must be None, {last!r} or {first!r}, got {value!r} of type "
            f"{type(value).__name__}"
        )
        raise TypeError(msg)
    if value not in {last, first}:
        known = {f for pair in DATA_FORMATS.values() for f in pair}
        why = f"a {len(value) - 2}-D format" if value in known else "unknown"
        msg = (
            f"{op}: data_format must be None, {last!r} or {first!r} for an input with {rank} "
            f"spatial axes, got {value!r} ({why})"
        )
        raise ValueError(msg)
    return value == first


def as_pair(op: str, name: str, value: Any, *, minimum: int = 1) -> tuple[int, int]:
    """Normalize an int or an ``(h, w)`` pair of ints, each ``>= minimum``."""
    first, second = as_tuple(op, name, value, rank=2, minimum=minimum)
    return (first, second)


def check_upstream_shape(
    op: str, dy: npt.NDArray[Any], expected: tuple[int, ...], what: str, *, name: str = "dy"
) -> None:
    """Require an upstream gradient of exactly the forward output's shape: never a broadcast.

    ``what`` says where ``expected`` comes from (``"the shape of x"``, ``"input_shape ..."``).
    """
    if dy.shape != tuple(expected):
        msg = f"{op}: {name} must have shape {tuple(expected)} ({what}), got {dy.shape}"
        raise ValueError(msg)


def check_addressable(op: str, name: str, shape: Sequence[int], itemsize: int) -> None:
    """Refuse to allocate an array of ``shape`` beyond :data:`MAX_ARRAY_BYTES`.

    ``name`` is the argument (or arguments) that made it that large, so the error points at
    the cause rather than at NumPy's allocator.
    """
    size = 1
    for n in shape:
        size *= int(n)
    if size * itemsize > MAX_ARRAY_BYTES:
        msg = (
            f"{op}: {name} would need an array of shape {tuple(int(n) for n in shape)} "
            f"({size * itemsize:.3g} bytes; at most {MAX_ARRAY_BYTES:.3g} are allocated)"
        )
        raise ValueError(msg)


def as_index_tuple(op: str, name: str, value: Any, *, length: int) -> tuple[int, ...]:
    """Normalize a shape argument: a sequence of ``length`` non-negative ints."""
    if (
        type(value) is tuple
        and len(value) == length
        and all(type(v) is int and v >= 0 for v in value)
    ):  # the common case (an array's .shape), without the ABC checks
        return value
    if value is None or isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        msg = f"{op}: {name} must be a sequence of {length} ints, got {value!r}"
        raise TypeError(msg)
    items = tuple(as_int(op, name, v) for v in value)
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
    array: npt.NDArray[Any] = np.asarray(result)
    if array.dtype == dtype:  # nothing to round (and no errstate to enter: 2 us per call)
        return array
    with np.errstate(over="ignore"):
        cast: npt.NDArray[Any] = array.astype(dtype, copy=False)
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
