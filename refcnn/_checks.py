"""Input validation shared by every public entry point.

Each helper raises ``TypeError`` or ``ValueError`` whose message starts with the public
function's name and names the offending argument, what it got and what was expected, so a
user never has to decode an ``IndexError`` from deep inside NumPy.
"""

from __future__ import annotations

import numbers
import operator
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "accumulation_dtype",
    "as_array",
    "as_array_mapping",
    "as_axis",
    "as_bool",
    "as_choice",
    "as_data_format",
    "as_float_dtype",
    "as_floating",
    "as_generator",
    "as_index_tuple",
    "as_int",
    "as_pair",
    "as_path",
    "as_real",
    "as_spatial_array",
    "as_str",
    "as_tuple",
    "batch_shape",
    "cast_result",
    "check_addressable",
    "check_batch",
    "check_floating_batch",
    "check_int64_range",
    "check_upstream",
    "check_upstream_shape",
    "describe",
    "ieee_arithmetic",
    "is_channels_first",
    "layout_name",
    "require_same_dtype",
]

#: The most bytes refcnn will allocate for one result or workspace array. NumPy's own limit
#: is the address space (2**63 bytes); past this a request is a mistake (a huge pad, stride
#: or dilation), and it gets an error naming the argument instead of NumPy's "array is too
#: big" or a MemoryError after the machine started swapping.
MAX_ARRAY_BYTES = 2**40

#: NumPy 2's limit on the number of array dimensions; a longer shape argument is a mistake.
MAX_NDIM = 64

#: Coordinates and geometry integers (strides, dilations, window sizes) must stay below
#: this: index arithmetic is int64, and a product of two such values must not wrap.
MAX_INDEX = 2**62

#: How much of a bad value's ``repr`` a message quotes.
_REPR_LIMIT = 80


def describe(value: Any, limit: int = _REPR_LIMIT) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, for quoting a bad value in a message.

    Never raises: Python refuses to print an int of more than 4300 digits (``ValueError``),
    which would replace the message naming the argument by one naming nothing.
    """
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_array(
    op: str,
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    layout: str = "",
    allow_int: bool = True,
    ranked_by: str = "",
) -> npt.NDArray[Any]:
    """Return ``value`` as an ndarray (never a copy we then write to), checking dtype and rank.

    ``ranked_by`` names the argument that fixed ``ndim`` (``x`` for a filter ``w``), so a
    rank error names it too: the mistake may be there.

    Accepted dtypes: real floating, integer (when ``allow_int``) and ``object`` (arrays of
    ``fractions.Fraction`` give exact results). Booleans, complex numbers, strings and dates
    are rejected because no op here has a meaning for them. So is an array whose *logical*
    size passes :data:`MAX_ARRAY_BYTES` (a broadcast view costs no memory, but no op could
    finish on it, and its result would not fit).
    """
    if value is None:
        msg = f"{op}: {name} must be an array, got None"
        raise TypeError(msg)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists, objects refusing __array__
        msg = f"{op}: {name} cannot be read as an array ({err})"
        raise type(err)(msg) from err
    kind = array.dtype.kind
    allowed = "fiuO" if allow_int else "fO"
    if kind not in allowed:
        expected = "a real floating, integer or object (Fraction) dtype"
        if not allow_int:
            expected = "a real floating or object (Fraction) dtype"
        msg = f"{op}: {name} must have {expected}, got dtype {array.dtype}"
        raise TypeError(msg)
    check_addressable(op, name, array.shape, array.itemsize)
    if kind == "O":
        _check_numbers(op, name, array)
    if ndim is not None and array.ndim != ndim:
        shape_hint = f" {layout}" if layout else ""
        msg = f"{op}: {name} must be {ndim}-D{shape_hint}, got shape {array.shape}"
        if ranked_by:
            spatial = ndim - 2
            msg += f" ({ranked_by} has {spatial} spatial {'axis' if spatial == 1 else 'axes'})"
        raise ValueError(msg)
    return array


def _check_numbers(op: str, name: str, array: npt.NDArray[Any]) -> None:
    """Refuse an ``object`` array holding anything but real numbers (``Fraction``, int, float).

    NumPy would otherwise fail deep inside an op (``str * Fraction``) with a message naming
    neither the function nor the argument; bools are refused as for bool arrays.
    """
    for item in array.flat:
        if isinstance(item, bool | np.bool_) or not isinstance(item, numbers.Real):
            msg = (
                f"{op}: {name} is an object array, so it must hold real numbers (Fraction, "
                f"int, float), got {describe(item)} of type {type(item).__name__}"
            )
            raise TypeError(msg)


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
        msg = (
            f"{op}: {name} must be {expected}, got {describe(value)} of type {type(value).__name__}"
        )
        raise TypeError(msg)
    else:
        number = operator.index(value)
    if minimum is not None and number < minimum:
        msg = f"{op}: {name} must be >= {minimum}, got {describe(number)}"
        raise ValueError(msg)
    return number


def as_bool(op: str, name: str, value: Any) -> bool:
    """Return ``value`` as a bool; only ``bool`` and ``numpy.bool_`` are accepted."""
    if not isinstance(value, bool | np.bool_):
        msg = f"{op}: {name} must be a bool, got {describe(value)} of type {type(value).__name__}"
        raise TypeError(msg)
    return bool(value)


def as_real(
    op: str,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    finite: bool = False,
) -> float:
    """Return ``value`` as a float (bools refused), within ``[minimum, maximum]`` when given.

    NaN is refused whenever a bound is given (it compares false with both). With ``finite``
    infinities and NaN are refused too (a learning rate of ``inf`` is no step size at all).
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        kind = type(value).__name__
        msg = f"{op}: {name} must be a real number, got {describe(value)} of type {kind}"
        raise TypeError(msg)
    try:
        number = float(value)
    except OverflowError as err:  # an int beyond float's range (10**400) is no real number here
        msg = f"{op}: {name} must be a finite real number, got {describe(value)}"
        raise ValueError(msg) from err
    low = -np.inf if minimum is None else minimum
    high = np.inf if maximum is None else maximum
    if (minimum is not None or maximum is not None) and not low <= number <= high:
        if maximum is None:
            expected = f">= {minimum}"
        elif minimum is None:
            expected = f"<= {maximum}"
        else:
            expected = f"in [{minimum}, {maximum}]"
        msg = f"{op}: {name} must be {expected}, got {describe(value)}"
        raise ValueError(msg)
    if finite and not np.isfinite(number):
        msg = f"{op}: {name} must be a finite real number, got {describe(value)}"
        raise ValueError(msg)
    return number


def as_choice(op: str, name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` when it is one of the strings ``choices`` (compared exactly).

    Anything else, a string that is not listed or a non-string (``None``, a list), is a
    ``ValueError`` listing the choices: the value is simply not among them, and the check
    never hashes ``value`` (a list would otherwise escape as NumPy-free ``TypeError:
    unhashable type``).
    """
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        msg = f"{op}: {name} must be one of {listed}, got {describe(value)}"
        raise ValueError(msg)
    return value


def as_path(op: str, name: str, value: Any) -> Path:
    """Return ``value`` (a ``str`` or a ``str``-based ``os.PathLike``) as a :class:`~pathlib.Path`.

    ``bytes`` paths are refused: every path refcnn prints in a message is text.
    """
    if isinstance(value, str) or (
        isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)
    ):
        return Path(value)
    msg = f"{op}: {name} must be a str or os.PathLike path, got {describe(value)} of type "
    msg += type(value).__name__
    raise TypeError(msg)


def as_str(
    op: str, name: str, value: Any, *, optional: bool = False, nonempty: bool = False
) -> str | None:
    """Return ``value`` when it is a ``str`` (``None`` too when ``optional``).

    With ``nonempty`` the empty string is refused (``ValueError``).
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        expected = "None or a str" if optional else "a str"
        msg = f"{op}: {name} must be {expected}, got {describe(value)} of type "
        msg += type(value).__name__
        raise TypeError(msg)
    if nonempty and not value:
        msg = f"{op}: {name} must not be empty"
        raise ValueError(msg)
    return value


def as_float_dtype(op: str, name: str, value: Any) -> np.dtype[Any]:
    """Return ``value`` as a real floating :class:`numpy.dtype` (``None``: float64, as in NumPy)."""
    try:
        dtype: np.dtype[Any] = np.dtype(value)
    except (TypeError, ValueError) as err:  # "data type 'bogus' not understood"
        msg = f"{op}: {name} must be a floating dtype, got {describe(value)} ({err})"
        raise TypeError(msg) from err
    if dtype.kind != "f":
        msg = f"{op}: {name} must be a floating dtype, got {dtype}"
        raise TypeError(msg)
    return dtype


def as_generator(op: str, name: str, value: Any) -> np.random.Generator | None:
    """Return ``value`` when it is ``None`` or a :class:`numpy.random.Generator`."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    msg = f"{op}: {name} must be None or a numpy.random.Generator, got {describe(value)}"
    raise TypeError(msg)


def as_array_mapping(op: str, name: str, value: Any) -> Mapping[str, npt.NDArray[Any]]:
    """Return ``value`` when it maps names to ndarrays (no conversion: they may be updated)."""
    if not isinstance(value, Mapping):
        msg = f"{op}: {name} must be a mapping of str to ndarray, got {type(value).__name__}"
        raise TypeError(msg)
    for key, item in value.items():
        if not isinstance(item, np.ndarray):
            kind = type(item).__name__
            msg = f"{op}: {name}[{describe(key)}] must be an ndarray, got {describe(item)} ({kind})"
            raise TypeError(msg)
    return value


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
            f"{shape}, got {describe(value)}"
        )
        raise ValueError(msg)
    return index + ndim if index < 0 else index


def _items(op: str, name: str, value: Any, *, longest: int, expected: str) -> list[Any] | None:
    """Return the entries of a sequence argument, ``None`` for a scalar (a str, a 0-d array).

    The length is checked before anything is copied: ``range(10**12)`` is a ``Sequence``
    whose ``list`` would fill the memory, and ``len(range(10**20))`` overflows.
    """
    is_array = isinstance(value, np.ndarray)
    # bytes are a Sequence of ints (b"2" is (50,)), never a list of sizes someone meant.
    if isinstance(value, str | bytes | bytearray) or (is_array and value.ndim == 0):
        return None
    if not (is_array or isinstance(value, Sequence)):
        return None
    try:
        length: int | None = len(value)
    except OverflowError:
        length = None
    if length is None or length > longest:
        size = "too many" if length is None else str(length)
        msg = f"{op}: {name} must be {expected}, got {describe(value)} ({size} entries)"
        raise ValueError(msg)
    return list(value)


def as_tuple(op: str, name: str, value: Any, *, rank: int, minimum: int = 1) -> tuple[int, ...]:
    """Normalize an int or ``rank`` ints (one per spatial axis), each ``>= minimum``.

    Each entry is a geometry integer (a stride, a dilation, a window size), so it must also
    stay below :data:`MAX_INDEX`, as coordinates do (:func:`check_int64_range`).
    """
    if type(value) is int and minimum <= value < MAX_INDEX:  # the common case, no ABC checks
        return (value,) * rank
    kind = "a pair (h, w)" if rank == 2 else f"a sequence of {rank} ints"
    items = _items(op, name, value, longest=rank, expected=f"an int or {kind}")
    if items is not None:
        if len(items) != rank:
            msg = f"{op}: {name} must be an int or {kind}, got {describe(value)}"
            raise ValueError(msg)
        numbers_ = tuple(as_int(op, name, item) for item in items)
    else:
        numbers_ = (as_int(op, name, value),) * rank
    if min(numbers_, default=minimum) < minimum:
        msg = f"{op}: {name} must be >= {minimum} on each axis, got {describe(value)}"
        raise ValueError(msg)
    if max(numbers_, default=0) >= MAX_INDEX:
        msg = (
            f"{op}: {name} must be below 2**{MAX_INDEX.bit_length() - 1} on each axis (refcnn "
            f"indexes in int64), got {describe(value)}"
        )
        raise ValueError(msg)
    return numbers_


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
    size = nonzero = 1
    for n in shape:
        size *= int(n)
        nonzero *= int(n) or 1
    if size == 0 and nonzero * max(itemsize, 1) >= 2**63:
        # NumPy refuses even an empty array whose other sizes multiply past its index range.
        dims = ", ".join(describe(int(n), limit=24) for n in shape)
        msg = (
            f"{op}: {name} would give an empty array of shape ({dims}), whose nonzero sizes "
            "multiply past the 2**63 bytes NumPy can index"
        )
        raise ValueError(msg)
    if size * itemsize > MAX_ARRAY_BYTES:
        dims = ", ".join(describe(int(n), limit=24) for n in shape)
        needed = f"{float(size * itemsize):.3g}" if size.bit_length() < 1000 else "too many"
        msg = (
            f"{op}: {name} would need an array of shape ({dims}) "
            f"({needed} bytes; at most {MAX_ARRAY_BYTES:.3g} are allocated)"
        )
        raise ValueError(msg)


def check_int64_range(op: str, name: str, value: int) -> None:
    """Refuse an index or coordinate that int64 index arithmetic could not hold.

    ``name`` is the argument (or arguments) that made it that large.
    """
    if abs(value) >= MAX_INDEX:
        msg = (
            f"{op}: {name} give coordinates up to {describe(value)}, beyond the int64 range "
            f"refcnn indexes (below 2**{MAX_INDEX.bit_length() - 1})"
        )
        raise ValueError(msg)


def as_index_tuple(
    op: str, name: str, value: Any, *, length: int | tuple[int, ...] | None
) -> tuple[int, ...]:
    """Normalize a shape argument: a sequence of ``length`` non-negative ints.

    ``length`` may list several accepted lengths (``(3, 4, 5)`` for a 1-D to 3-D input
    shape); ``length=None`` takes any length up to :data:`MAX_NDIM` (a shape NumPy could hold).
    """
    lengths = None if length is None else ((length,) if isinstance(length, int) else length)
    if (
        type(value) is tuple
        and (lengths is None or len(value) in lengths)
        and all(type(v) is int and v >= 0 for v in value)
    ):  # the common case (an array's .shape), without the ABC checks
        return value
    count = "" if lengths is None else " or ".join(str(n) for n in lengths) + " "
    longest = MAX_NDIM if lengths is None else max(lengths)
    items = _items(op, name, value, longest=longest, expected=f"{count}non-negative ints")
    if items is None:
        msg = f"{op}: {name} must be a sequence of {count}ints, got {describe(value)}"
        raise TypeError(msg)
    shape = tuple(as_int(op, name, v) for v in items)
    if (lengths is not None and len(shape) not in lengths) or min(shape, default=0) < 0:
        wanted = f"{len(shape)} " if lengths is None else count
        msg = f"{op}: {name} must be {wanted}non-negative ints, got {describe(value)}"
        raise ValueError(msg)
    return shape


def batch_shape(shape: Sequence[int] | None) -> str:
    """Render a per-sample shape with its batch axis: ``(N, 8, 8, 1)``."""
    return "(" + ", ".join(["N", *(str(d) for d in shape or ())]) + ")"


def check_floating_batch(owner: str, x: Any) -> None:
    """Require what a layer or model builds itself on: a floating array with a batch axis."""
    if not isinstance(x, np.ndarray):
        msg = f"{owner}: x must be a numpy array, got {type(x).__name__}"
        raise TypeError(msg)
    if x.ndim == 0:
        msg = f"{owner}: x must have a batch axis (N, ...), got shape ()"
        raise ValueError(msg)
    if x.dtype.kind != "f":
        msg = f"{owner}: x must have a floating dtype to build on, got {x.dtype}"
        raise TypeError(msg)


def check_batch(
    owner: str,
    name: str,
    x: Any,
    sample_shape: tuple[int, ...] | None,
    dtype: np.dtype[Any] | None,
    built: str,
) -> npt.NDArray[Any]:
    """Require a batch of the per-sample shape and dtype fixed when ``built`` was built."""
    if not isinstance(x, np.ndarray):
        msg = f"{owner}: {name} must be a numpy array, got {type(x).__name__}"
        raise TypeError(msg)
    check_addressable(owner, name, x.shape, x.itemsize)
    if x.ndim != len(sample_shape or ()) + 1 or x.shape[1:] != sample_shape:
        msg = (
            f"{owner}: {name} must have shape {batch_shape(sample_shape)} (fixed when "
            f"{built} was built), got {x.shape}"
        )
        raise ValueError(msg)
    if x.dtype != dtype:
        msg = f"{owner}: {name} must have dtype {dtype} ({built} was built with it), got {x.dtype}"
        raise TypeError(msg)
    return x


def check_upstream(
    owner: str, dy: Any, shape: tuple[int, ...], dtype: np.dtype[Any] | None
) -> npt.NDArray[Any]:
    """Require a numpy ``dy`` of exactly the last forward output's shape, in the built dtype."""
    if not isinstance(dy, np.ndarray):
        msg = f"{owner}: dy must be a numpy array, got {type(dy).__name__}"
        raise TypeError(msg)
    if dy.shape != shape:
        msg = f"{owner}: dy must have shape {shape} (the last forward output), got {dy.shape}"
        raise ValueError(msg)
    if dy.dtype != dtype:
        msg = f"{owner}: dy must have dtype {dtype} (the last forward output's), got {dy.dtype}"
        raise TypeError(msg)
    return dy


#: TensorFlow's ``data_format`` strings by number of spatial axes: (channels-last,
#: channels-first). ``None`` means channels-last, refcnn's default layout.
DATA_FORMATS: dict[int, tuple[str, str]] = {
    1: ("NWC", "NCW"),
    2: ("NHWC", "NCHW"),
    3: ("NDHWC", "NCDHW"),
}

_SPATIAL_NAMES = {1: ("W",), 2: ("H", "W"), 3: ("D", "H", "W")}


def layout_name(rank: int, channels_first: bool, *, prefix: str = "") -> str:
    """Spell an array layout for messages and docs: ``"(N, C, H, W)"``, ``"(N, OH, OW, C)"``.

    ``prefix`` goes before each spatial letter (``"O"`` for an output).
    """
    spatial = [prefix + letter for letter in _SPATIAL_NAMES[rank]]
    axes = ["N", "C", *spatial] if channels_first else ["N", *spatial, "C"]
    return "(" + ", ".join(axes) + ")"


def as_data_format(op: str, value: Any, *, rank: int | None = None) -> tuple[int | None, bool]:
    """Validate a ``data_format``: ``None`` or one of TensorFlow's strings in :data:`DATA_FORMATS`.

    Returns ``(rank, channels_first)``: the number of spatial axes the string names (``None``
    for ``None``, which fits every rank) and whether channels come before the spatial axes.
    With ``rank`` given, a string for another number of spatial axes is a ``ValueError``.
    """
    if value is None:
        return None, False
    if not isinstance(value, str):
        msg = (
            f"{op}: data_format must be None or a string, got {value!r} of type "
            f"{type(value).__name__}"
        )
        raise TypeError(msg)
    for named_rank, names in DATA_FORMATS.items():
        if value in names:
            if rank is not None and named_rank != rank:
                msg = (
                    f"{op}: data_format must be None, {_names_for(rank)} for {rank} spatial "
                    f"axes, got {value!r} (a {named_rank}-D layout)"
                )
                raise ValueError(msg)
            return named_rank, value == names[1]
    expected = (
        _names_for(rank)
        if rank is not None
        else "one of " + ", ".join(repr(name) for names in DATA_FORMATS.values() for name in names)
    )
    msg = f"{op}: data_format must be None or {expected}, got {value!r}"
    raise ValueError(msg)


def is_channels_first(op: str, value: Any, rank: int) -> bool:
    """Validate ``data_format`` for ``rank`` spatial axes; True when channels come first."""
    return as_data_format(op, value, rank=rank)[1]


def _names_for(rank: int) -> str:
    """``"'NHWC' or 'NCHW'"``: the data_format strings of ``rank`` spatial axes."""
    last, first = DATA_FORMATS[rank]
    return f"{last!r} or {first!r}"


def as_spatial_array(
    op: str,
    name: str,
    value: Any,
    *,
    data_format: Any,
    rank: int | None = None,
    allow_int: bool = True,
    prefix: str = "",
) -> tuple[npt.NDArray[Any], int, bool]:
    """Return ``(array, rank, channels_first)`` for a batch with 1 to 3 spatial axes.

    ``rank`` fixes the number of spatial axes (``max_pool2d``: 2); without it the rank is
    the one ``data_format`` names, else ``ndim - 2``, which must be 1, 2 or 3. ``prefix`` is
    passed to :func:`layout_name` (``"O"`` for an upstream gradient).
    """
    named_rank, channels_first = as_data_format(op, data_format, rank=rank)
    fixed = rank if rank is not None else named_rank
    if fixed is not None:
        layout = layout_name(fixed, channels_first, prefix=prefix)
        array = as_array(op, name, value, ndim=fixed + 2, layout=layout, allow_int=allow_int)
        return array, fixed, channels_first
    array = as_array(op, name, value, allow_int=allow_int)
    if array.ndim - 2 not in DATA_FORMATS:
        layouts = ", ".join(layout_name(r, False, prefix=prefix) for r in DATA_FORMATS)
        msg = (
            f"{op}: {name} must be 3-D, 4-D or 5-D ({layouts} for data_format None), "
            f"got shape {array.shape}"
        )
        raise ValueError(msg)
    return array, array.ndim - 2, channels_first


def accumulation_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """Return the dtype sums are carried in: float16 accumulates in float32, like the frameworks.

    A non-native byte order (``'>f8'`` on a little-endian machine) is carried in the native
    one: ufuncs refuse it as a ``dtype=`` argument, and :func:`cast_result` restores it.
    """
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")
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


def ieee_arithmetic() -> np.errstate:
    """Silence NumPy's floating-point warnings around arithmetic whose IEEE result is the answer.

    Overflow to ``inf``, ``inf - inf`` or ``inf * 0`` giving NaN, a sum past the dtype's
    range: each is what computing in that dtype gives, so (as in :func:`cast_result`) refcnn
    returns it without a warning. Use it around matrix products and sums of inputs that may
    hold infinities, not to hide anything an input check should refuse.
    """
    return np.errstate(over="ignore", invalid="ignore", under="ignore")


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
