"""Compare your own results with refcnn's, to the conformance suite's own per-element bounds.

``assert_close("conv2d", got, x, w, strides=2)`` computes the truth the suite uses (refcnn in
float64 on your inputs upcast), the bound of every output element from the op's error model
(:mod:`conformance.tolerance`: e.g. ``c_sum * K * eps * s`` for a sum of ``K`` products whose
absolute sum is ``s``, in the dtype of your inputs), and fails with the suite's message —
worst element, got, truth, bound — when any element is out of bounds. No rtol to guess:
exact ops (max pooling, relu, flatten) are held to exact equality, and every bound is tight
where values are large and zero where the result must be exact.

The bounds live in the ``conformance`` package, installed with refcnn; NumPy is all it
needs (no Hypothesis, no pytest).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn

__all__ = ["assert_close", "bound"]

Array = npt.NDArray[Any]


def _prepared(op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, np.dtype[Any]]:
    """Return the float64 call of ``op`` and the dtype the results are judged in."""
    from conformance.calls import make_call  # noqa: PLC0415 - conformance imports refcnn
    from conformance.ops import REGISTRY  # noqa: PLC0415

    if op not in REGISTRY:
        msg = f"assert_close: op must be one of refcnn's checked functions, got {op!r}"
        raise ValueError(msg)
    function = getattr(refcnn, op)
    try:
        bound_args = inspect.signature(function).bind(*args, **kwargs)
    except TypeError as exc:
        msg = f"assert_close: the arguments do not fit refcnn.{op}: {exc}"
        raise TypeError(msg) from exc
    bound_args.apply_defaults()  # the error models read every parameter (b=None, ...)
    values = {
        k: np.asarray(v) if isinstance(v, np.ndarray) else v
        for k, v in bound_args.arguments.items()
    }
    call = make_call(op, values)
    floating = {a.dtype for a in call.arrays().values() if a.dtype.kind == "f"}
    if len(floating) != 1:
        msg = (
            f"assert_close: the floating inputs of {op} must share one dtype, got "
            f"{sorted(map(str, floating)) or 'none'}"
        )
        raise TypeError(msg)
    return call.cast(np.float64), floating.pop()


def bound(op: str, *args: Any, **kwargs: Any) -> tuple[Array, ...]:
    """Return the suite's allowed absolute error of every output element of ``op``.

    Parameters
    ----------
    op : str
        A refcnn function name (``"conv2d"``, ``"softmax_backward"``, ...).
    *args, **kwargs
        Its arguments, as you would pass them to ``refcnn.<op>``; floating arrays share one
        dtype, the dtype the bound is for.

    Returns
    -------
    tuple of ndarray
        One float64 array per output of ``op``, shaped like it: ``|got - truth| <= bound``
        element by element is what the conformance suite accepts.
    """
    from conformance.ops import bounds, output_names  # noqa: PLC0415 - see _prepared

    truth_call, dtype = _prepared(op, args, kwargs)
    result = getattr(refcnn, op)(*truth_call.args, **truth_call.kwargs)
    outputs = (result,) if len(output_names(op)) == 1 else tuple(result)
    truth = tuple(np.asarray(t, dtype=np.float64) for t in outputs)
    return tuple(b.bound for b in bounds(truth_call, truth, dtype))


def assert_close(op: str, got: Any, *args: Any, **kwargs: Any) -> None:
    """Assert that ``got`` is ``refcnn.<op>(*args, **kwargs)`` within the suite's bounds.

    Parameters
    ----------
    op : str
        The refcnn function ``got`` should equal.
    got : ndarray or tuple of ndarray
        Your result (a tuple for the functions returning several, e.g. ``conv2d_backward``),
        of the inputs' dtype and refcnn's shapes.
    *args, **kwargs
        The inputs, as passed to ``refcnn.<op>``.

    Raises
    ------
    AssertionError
        Naming the call, with the worst element: where it is, got, truth and the bound
        (the formula it came from), or the shape/dtype that does not match.
    """
    __tracebackhide__ = True
    from conformance.compare import measure  # noqa: PLC0415 - see _prepared
    from conformance.ops import bounds, output_names  # noqa: PLC0415

    truth_call, dtype = _prepared(op, args, kwargs)
    names = output_names(op)
    result = getattr(refcnn, op)(*truth_call.args, **truth_call.kwargs)
    truth = tuple(
        np.asarray(t, dtype=np.float64) for t in ((result,) if len(names) == 1 else result)
    )
    outputs = (got,) if len(names) == 1 else tuple(got)
    if len(outputs) != len(names):
        msg = f"assert_close({op!r}): expected {len(names)} outputs {names}, got {len(outputs)}"
        raise AssertionError(msg)
    for name, out, want in zip(names, outputs, truth, strict=True):
        out_arr = np.asarray(out)
        if out_arr.shape != want.shape or out_arr.dtype != dtype:
            msg = (
                f"assert_close({op!r}): output {name} must have shape {want.shape} and dtype "
                f"{dtype} (the inputs'), got shape {out_arr.shape} and dtype {out_arr.dtype}"
            )
            raise AssertionError(msg)
    arrays = tuple(np.asarray(o) for o in outputs)
    measurement = measure(arrays, truth, bounds(truth_call, truth, dtype), dtype, names)
    if measurement.max_err > 1:
        msg = f"assert_close({op!r}, {dtype}): {measurement.describe()}"
        raise AssertionError(msg)
