"""API calls as data: build one from refcnn's own signature, render it, reproduce it.

NumPy only (no Hypothesis): the harness, the tolerance policy, :mod:`refcnn.testing` and the
strategies all speak :class:`Call`. A call of function ``op`` is built from named values by
:func:`make_call`, which follows ``inspect.signature(refcnn.<op>)``, the API contract every
implementation and adapter is called with, so no signature is written a second time.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

import refcnn

__all__ = [
    "SHAPE_SOURCES",
    "Call",
    "format_array",
    "make_call",
    "parameters",
    "render_reproducer",
    "signature",
]

Array: TypeAlias = npt.NDArray[Any]


def _format_scalar(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "np.nan"
    if math.isinf(number):
        return "np.inf" if number > 0 else "-np.inf"
    return repr(number)  # shortest repr that round-trips the float64 (float32 values exactly)


def format_array(array: Array) -> str:
    """Return a Python expression rebuilding ``array`` exactly (values, dtype and shape)."""
    if array.dtype.kind in "iub":
        values = ", ".join(str(int(v)) for v in array.ravel())
    else:
        values = ", ".join(_format_scalar(v) for v in array.ravel())
    return f"np.array([{values}], dtype=np.{array.dtype.name}).reshape({array.shape!r})"


class Call(NamedTuple):
    """One API call: function name, arguments in signature order, number passed positionally."""

    op: str
    params: dict[str, Any]
    n_positional: int

    @property
    def args(self) -> tuple[Any, ...]:
        """The positional arguments."""
        return tuple(list(self.params.values())[: self.n_positional])

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments."""
        return dict(list(self.params.items())[self.n_positional :])

    def arrays(self) -> dict[str, Array]:
        """Return the ndarray arguments by parameter name."""
        return {k: v for k, v in self.params.items() if isinstance(v, np.ndarray)}

    def cast(self, dtype: npt.DTypeLike) -> Call:
        """Return the call with every floating array argument cast to ``dtype`` (labels stay)."""
        params = {
            k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in self.params.items()
        }
        return self._replace(params=params)

    def replace(self, **params: Any) -> Call:
        """Return the call with some arguments replaced."""
        return self._replace(params={**self.params, **params})

    def render(self, callee: str) -> str:
        """``callee.op(x, w, b, strides=2, ...)`` with arrays named by their parameter."""
        parts = []
        for i, (name, value) in enumerate(self.params.items()):
            shown = name if isinstance(value, np.ndarray) else repr(value)
            parts.append(shown if i < self.n_positional else f"{name}={shown}")
        return f"{callee}.{self.op}({', '.join(parts)})"


def render_reproducer(call: Call, *, note: str = "") -> str:
    """Python source that rebuilds ``call``'s arrays and calls refcnn (``note`` as a comment)."""
    lines = ["import numpy as np, refcnn"]
    lines += [f"{name} = {format_array(value)}" for name, value in call.arrays().items()]
    lines.append(call.render("refcnn") + (f"  # {note}" if note else ""))
    return "\n".join(lines)


#: Shape parameters a case derives from one of its arrays (``input_shape`` is ``x.shape``).
SHAPE_SOURCES: dict[str, str] = {"input_shape": "x", "filter_shape": "w"}


def signature(op: str) -> inspect.Signature:
    """Return refcnn's signature of ``op``: the API contract every implementation follows."""
    return inspect.signature(getattr(refcnn, op))


def parameters(op: str) -> frozenset[str]:
    """Names a case of ``op`` must hold: its parameters and the arrays its shapes come from."""
    names = set(signature(op).parameters)
    names |= {SHAPE_SOURCES[n] for n in names if n in SHAPE_SOURCES}
    return frozenset(names)


def make_call(op: str, values: dict[str, Any]) -> Call:
    """Build the call of ``op`` from named values, following refcnn's signature of ``op``.

    Every parameter the signature names is taken from ``values`` (a shape parameter from
    its array, see :data:`SHAPE_SOURCES`), or left to its default when absent; names the
    signature does not have are ignored, so one family's values serve all its functions.
    Leading positional parameters are passed positionally up to the first one left out.
    """
    params: dict[str, Any] = {}
    n_positional = 0
    positional = True
    for name, parameter in signature(op).parameters.items():
        if name in values:
            value = values[name]
        elif name in SHAPE_SOURCES and SHAPE_SOURCES[name] in values:
            value = tuple(int(n) for n in values[SHAPE_SOURCES[name]].shape)
        elif parameter.default is inspect.Parameter.empty:
            msg = f"make_call: {op} needs {name!r}, the case has {sorted(values)}"
            raise KeyError(msg)
        else:
            positional = False
            continue
        params[name] = value
        if positional and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            n_positional += 1
        else:
            positional = False
    return Call(op, params, n_positional)
