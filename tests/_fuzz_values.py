"""Deterministic argument values for the bad-input fuzzer, each with a reproducer repr.

A :class:`Value` is a recipe: ``build()`` makes a fresh object (a call may not share a
mutable argument with the next one), and ``repr`` is the Python that rebuilds it from this
module's names (``arr((2, 5, 5, 3), 'complex128')``), so a failing case prints a call that
can be pasted into a shell after ``from _fuzz_values import *``.
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn

Array = npt.NDArray[Any]

__all__ = [
    "SPECIAL_FILLS",
    "Value",
    "arr",
    "conv_layers",
    "dense_layers",
    "flat_layers",
    "huge_view",
    "labels",
    "lit",
    "mnist_dir",
    "mnist_file",
    "object_array",
    "onehot",
    "param_dicts",
    "probs",
    "show",
    "small_model",
    "twice",
]

#: Fills for valid floating arrays that put IEEE special values everywhere: every op must
#: take them without an error or a NumPy warning (the suite turns warnings into errors).
SPECIAL_FILLS = ("nan", "inf", "-inf", "max", "tiny", "negzero", "mixed")


def _show_int(number: int) -> str:
    magnitude, sign = abs(number), "-" if number < 0 else ""
    if magnitude < 2**31:
        return repr(number)
    if magnitude & (magnitude - 1) == 0:
        return f"{sign}2**{magnitude.bit_length() - 1}"
    guess = int(magnitude.bit_length() * 0.30103)  # log10(2)
    for exponent in (guess - 1, guess, guess + 1):
        if 10**exponent == magnitude:
            return f"{sign}10**{exponent}"
    if magnitude.bit_length() < 14000:  # Python prints ints of up to 4300 digits
        return repr(number)
    return f"{sign}<int of {magnitude.bit_length()} bits>"


def show(value: Any) -> str:
    """Python source for a literal; large ints as ``2**k`` or ``10**k`` when they are."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return _show_int(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{show(k)}: {show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list):
        inner = ", ".join(show(item) for item in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


class Value:
    """A recipe for one argument: ``make(*args, **kwargs)``, shown as that call."""

    __slots__ = ("args", "code", "kwargs", "make")

    def __init__(
        self, make: Callable[..., Any], *args: Any, code: str | None = None, **kwargs: Any
    ) -> None:
        self.make, self.args, self.kwargs, self.code = make, args, kwargs, code

    def build(self) -> Any:
        """Make a fresh object."""
        return self.make(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        if self.code is not None:
            return self.code
        parts = [show(a) for a in self.args]
        parts += [f"{key}={show(v)}" for key, v in self.kwargs.items()]
        return f"{getattr(self.make, '__name__', 'make')}({', '.join(parts)})"


def lit(value: Any) -> Value:
    """A literal (deep-copied at each build, so a list is never shared between calls)."""
    return Value(copy.deepcopy, value, code=show(value))


def _ramp(size: int) -> Array:
    """Small exact values -3/4 .. 3/4: every sum of a few of them is exact in float16."""
    return (np.arange(size) % 7 - 3) / 4


def _floats(size: int, dtype: np.dtype[Any], fill: str, ramp: Array) -> Array:
    info = np.finfo(dtype)
    cycle = [np.nan, np.inf, -np.inf, info.max, -info.max, info.smallest_subnormal, -0.0, 1.0]
    table = {
        "nan": np.nan,
        "inf": np.inf,
        "-inf": -np.inf,
        "max": info.max,
        "tiny": info.smallest_subnormal,
        "negzero": -0.0,
        "mixed": np.resize(np.array(cycle), size),
    }
    return np.broadcast_to(np.asarray(table.get(fill, ramp)), (size,)).astype(dtype)


def _ints(size: int, dtype: np.dtype[Any], fill: str, ramp: Array) -> Array:
    if fill in ("max", "min"):
        return np.full(size, getattr(np.iinfo(dtype), fill), dtype=dtype)
    return (np.arange(size) % 7 - (0 if dtype.kind == "u" else 3)).astype(dtype)


def _fractions(size: int, dtype: np.dtype[Any], fill: str, ramp: Array) -> Array:
    out = np.empty(size, dtype=object)
    out[:] = [Fraction(int(v * 4), 4) for v in ramp]
    return out


#: Builders by dtype kind (any other kind: zeros, e.g. a structured dtype).
_BY_KIND: dict[str, Callable[[int, np.dtype[Any], str, Array], Array]] = {
    "f": _floats,
    "i": _ints,
    "u": _ints,
    "O": _fractions,
    "b": lambda size, dtype, fill, ramp: (np.arange(size) % 2).astype(dtype),
    "c": lambda size, dtype, fill, ramp: (ramp + 1j).astype(dtype),
    "U": lambda size, dtype, fill, ramp: np.arange(size).astype(str).astype(dtype),
    "S": lambda size, dtype, fill, ramp: np.arange(size).astype(str).astype(dtype),
    "m": lambda size, dtype, fill, ramp: np.arange(size).astype(dtype),
    "M": lambda size, dtype, fill, ramp: np.arange(size).astype(dtype),
}


def _fill(size: int, dtype: np.dtype[Any], fill: str) -> Array:
    ramp = _ramp(size) + (1 if fill == "positive" else 0)
    build = _BY_KIND.get(dtype.kind)
    return np.zeros(size, dtype=dtype) if build is None else build(size, dtype, fill, ramp)


def arr(
    shape: tuple[int, ...], dtype: Any = "float64", fill: str = "ramp", layout: str = "C"
) -> Array:
    """A deterministic array of ``shape`` and ``dtype``.

    ``fill``: ``"ramp"`` (small exact values), ``"positive"`` or one of
    :data:`SPECIAL_FILLS`. ``layout``: ``"C"``, ``"F"``, ``"strided"`` (every other element
    of a larger array), ``"reversed"`` (negative strides), ``"broadcast"`` (zero strides,
    read-only) or ``"readonly"``: the same values (but broadcast) in other memory layouts.
    """
    resolved = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    if layout == "broadcast" and shape:
        row = _fill(int(shape[-1]), resolved, fill)
        return np.broadcast_to(row, shape)
    flat = _fill(size, resolved, fill)
    if layout == "strided":
        wide = np.empty(2 * size, dtype=resolved)
        wide[::2] = flat
        return wide[::2].reshape(shape)
    if layout == "reversed":
        return flat[::-1].copy()[::-1].reshape(shape) if size else flat.reshape(shape)
    out = flat.reshape(shape)
    if layout == "F":
        return np.asfortranarray(out)
    if layout == "readonly":
        out.flags.writeable = False
    return out


def object_array(shape: tuple[int, ...], item: Any) -> Array:
    """An object array of Fractions whose first entry is ``item`` (a str, None, a list)."""
    out = arr(shape, "object")
    out.reshape(-1)[:1] = [item] if out.size else []
    return out


def huge_view(shape: tuple[int, ...], dtype: Any = "float64") -> Array:
    """A read-only zero-stride view whose *logical* size may be terabytes (no memory)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def labels(n: int, classes: int, dtype: Any = "int64") -> Array:
    """Class indices ``1, 3, 5, ...`` modulo ``classes``."""
    return ((2 * np.arange(n) + 1) % classes).astype(dtype)


def probs(shape: tuple[int, ...]) -> Array:
    """Positive rows summing to 1 along the last axis."""
    p = arr(shape, fill="positive")
    return p / p.sum(axis=-1, keepdims=True)


def onehot(shape: tuple[int, ...]) -> Array:
    """One-hot rows (class ``1, 3, ...`` as in :func:`labels`) along the last axis."""
    out = np.zeros(shape)
    flat = out.reshape(-1, shape[-1])
    flat[np.arange(len(flat)), labels(len(flat), shape[-1])] = 1.0
    return out


def conv_layers() -> list[refcnn.Layer]:
    """A small NHWC stack ending in 4 logits: Conv2D(2, 3), ReLU, Flatten, Dense(4)."""
    return [refcnn.Conv2D(2, 3), refcnn.ReLU(), refcnn.Flatten(), refcnn.Dense(4)]


def flat_layers() -> list[refcnn.Layer]:
    """Flatten then Dense(4): the stack for NHWC inputs in the model worlds.

    No Conv2D: a model's own checks are fuzzed here; the convolution is fuzzed directly.
    """
    return [refcnn.Flatten(), refcnn.Dense(4)]


def dense_layers() -> list[refcnn.Layer]:
    """A single Dense(4): the stack for ``(N, I)`` inputs."""
    return [refcnn.Dense(4)]


def twice() -> list[refcnn.Layer]:
    """One layer instance listed twice (its forward cache would be shared)."""
    layer = refcnn.ReLU()
    return [layer, layer]


def small_model(sample_shape: tuple[int, ...]) -> refcnn.Sequential:
    """A built model for samples of ``sample_shape`` (3-D: Flatten + Dense; 1-D: Dense)."""
    stack = flat_layers() if len(sample_shape) == 3 else dense_layers()
    model = refcnn.Sequential(stack, seed=0)
    model.build(sample_shape)
    return model


def param_dicts(*shapes: tuple[int, ...]) -> dict[str, Array]:
    """``{"p0": arr(shape0), "p1": arr(shape1), ...}``: parameters or gradients for SGD."""
    return {f"p{i}": arr(shape) for i, shape in enumerate(shapes)}


_MNIST: list[Path] = []


def mnist_dir() -> str:
    """A directory with tiny valid MNIST IDX files (6 train, 4 test images of 4 x 3)."""
    if not _MNIST:
        root = Path(tempfile.mkdtemp(prefix="refcnn-fuzz-mnist-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        for prefix, n in (("train", 6), ("t10k", 4)):
            images = (np.arange(n * 12) % 256).astype(np.uint8).reshape(n, 4, 3)
            classes = (np.arange(n) % 10).astype(np.uint8)
            for stem, data in (("images-idx3", images), ("labels-idx1", classes)):
                header = (0x800 | data.ndim).to_bytes(4, "big")
                header += b"".join(d.to_bytes(4, "big") for d in data.shape)
                (root / f"{prefix}-{stem}-ubyte").write_bytes(header + data.tobytes())
        _MNIST.append(root)
    return str(_MNIST[0])


def mnist_file() -> str:
    """One file of :func:`mnist_dir` (a path that exists but is no directory)."""
    return str(Path(mnist_dir()) / "train-images-idx3-ubyte")
