"""The comparison: one example of one function, implementation and framework against the oracle.

Per example (:meth:`Harness.check`): the case's float64 inputs are cast to the dtype ``D``
under test; the *truth* is the real :mod:`refcnn` (whatever ``--impl`` names) evaluated in
float64 on those D-cast inputs upcast to float64, so only the op's own rounding is measured.
The implementation under test runs on the D inputs and must

- return NumPy arrays (a NumPy scalar for a 0-d result) of exactly the oracle's shapes and of
  dtype ``D`` (the output dtype follows the input);
- leave every input array untouched (values, shape and dtype compared before and after);
- put NaN and infinities exactly where the truth (rounded to ``D``) has them;
- stay within the elementwise bound of :mod:`conformance.tolerance`: normalized error
  ``|out - truth| / bound <= 1`` everywhere.

Each selected framework adapter then runs the same D inputs and must meet the same bound: a
framework disagreeing with the oracle is a finding and fails until it is explained by a
documented rule. A case the framework cannot express (its adapter raises
``NotExpressible``, or the adapter has no route for the function at all) is counted with
its reason, never silently skipped. Two documented rules change what a
framework is compared on (:func:`framework_inputs`), each use counted in the report:
subnormal inputs are flushed to zero (TensorFlow runs with FTZ/DAZ), and when an adapter's
``MAX_POOL_TIE_RULE`` is not ``"first"`` (refcnn sends a max-pool gradient to the first
maximum in row-major window order), ``max_pool2d_backward`` gets a tie-free copy of ``x``
(:func:`break_ties`, which keeps refcnn's routing). A third rule leaves out elements rather
than changing inputs: where a partial sum can leave the dtype's range (float16, whose largest
value is 65504; :func:`conformance.tolerance.range_limited`), a framework that accumulates in
float16 may overflow on the way to a representable result, so those elements of its output
are not compared. The implementation is always checked on the original, tie-rich and
subnormal-carrying, inputs, and on every element.

Every failure raises ``AssertionError`` whose message names the call and holds a
copy-pasteable reproducer: the exact arrays, the call, the oracle call, the resolved pads,
the largest normalized error with its index, both values and the bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import target

import refcnn
from conformance import tolerance
from conformance.frameworks import Adapter, NotExpressible
from conformance.ops import bounds, output_names
from conformance.strategies import Call, format_array

__all__ = [
    "Case",
    "Harness",
    "Measurement",
    "Recorder",
    "break_ties",
    "flush_subnormals",
    "framework_inputs",
    "measure",
    "normalized_error",
]

Array: TypeAlias = npt.NDArray[Any]


class Case(Protocol):
    """A strategies case: it knows its call (float64 arrays) and a note on its geometry."""

    @property
    def note(self) -> str:
        """What the arrays do not show (resolved pads, output size), or ''."""

    def call(self) -> Call:
        """Return the API call with float64 inputs."""


class Recorder(Protocol):
    """What the harness reports per (function, framework, dtype) key; see conformance.report."""

    def example(self, key: tuple[str, str, str]) -> None:
        """Count one example."""

    def impl_error(self, key: tuple[str, str, str], err: float) -> None:
        """Record the implementation's normalized error on one example."""

    def framework_error(self, key: tuple[str, str, str], err: float) -> None:
        """Record the framework's normalized error on one example."""

    def not_expressible(self, key: tuple[str, str, str], reason: str) -> None:
        """Count one example the framework could not express."""

    def rule(self, key: tuple[str, str, str], reason: str) -> None:
        """Count one framework example compared under a documented rule (``reason``)."""

    def not_implemented(self, key: tuple[str, str, str], reason: str) -> None:
        """Mark the function not implemented (by the implementation or the oracle)."""


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


def break_ties(x: Array) -> Array:
    """Return a tie-free array ordered like ``x``, each tie won by the earlier (row-major) entry.

    Values are replaced by their rank (exact small integers in any float dtype); among equal
    values the earlier flat index ranks higher. Within a pooling window of an NHWC array the
    row-major window order is the flat order, so refcnn's "first maximum" routing is the same
    on ``x`` and on ``break_ties(x)``, while every framework tie rule agrees on the latter.
    """
    flat = x.ravel()
    order = np.lexsort((-np.arange(flat.size), flat))
    ranks = np.empty(flat.size, dtype=x.dtype)
    ranks[order] = np.arange(flat.size)
    return ranks.reshape(x.shape)


def _subnormal(x: Array) -> Array:
    return np.asarray((x != 0) & (np.abs(x) < np.finfo(x.dtype).smallest_normal))


def flush_subnormals(x: Array) -> Array:
    """Replace the subnormal entries of ``x`` by zeros of the same sign (DAZ)."""
    return np.where(_subnormal(x), np.copysign(0.0, x), x).astype(x.dtype)


def framework_inputs(call: Call, adapter: Adapter) -> tuple[Call, list[str]]:
    """Return the inputs a framework is compared on and the documented rules that changed them.

    - Subnormal floats are flushed to zero: TensorFlow's CPU kernels run with FTZ/DAZ, so it
      reads a subnormal input as 0 (``log`` gives ``-inf``, ``1/p`` gives ``inf``); every
      framework gets the flushed copy and the oracle is re-evaluated on it.
    - ``max_pool2d_backward`` with ties, for an adapter whose ``MAX_POOL_TIE_RULE`` is not
      ``"first"``: ``x`` is replaced by :func:`break_ties` (same refcnn routing, no ties).
    """
    rules: list[str] = []
    flushed = {
        name: flush_subnormals(a)
        for name, a in call.arrays().items()
        if a.dtype.kind == "f" and np.any(_subnormal(a))
    }
    if flushed:
        call = call.replace(**flushed)
        rules.append(f"subnormal {', '.join(flushed)} flushed to zero (FTZ/DAZ rule)")
    tie_rule = adapter.tie_rule
    if call.op == "max_pool2d_backward" and tie_rule != "first":
        x = call.params["x"]
        if np.unique(x).size < x.size:
            call = call.replace(x=break_ties(x))
            rules.append(f"x tie-broken (framework tie rule {tie_rule!r}, refcnn's 'first')")
    return call, rules


def _absolute_accuracy(
    bounds_: tuple[tolerance.Bound, ...], adapter: Adapter, op: str, dtype: np.dtype[Any]
) -> tuple[tuple[tolerance.Bound, ...], str]:
    """Widen a framework's bounds to its documented absolute accuracy for ``op``.

    For a kernel that is accurate to ``k`` eps in absolute terms only (its relative error
    grows without bound as the result goes to 0), every element is allowed ``k * eps``;
    the rule is reported only when it widened some element. The implementation is always
    held to the relative bound.
    """
    multiple, reason = adapter.absolute_accuracy[op]
    allowance = multiple * tolerance.tolerance(dtype).eps
    widened = tuple(
        b._replace(bound=np.maximum(b.bound, allowance), formula=f"{b.formula}, or {reason}")
        for b in bounds_
    )
    used = any(bool(np.any(b.bound < allowance)) for b in bounds_)
    rule = f"{adapter.name} {op} held to {multiple:g} eps absolute ({reason})" if used else ""
    return (widened if used else bounds_), rule


class _Side(NamedTuple):
    """One thing compared against the oracle: the implementation or a framework adapter."""

    who: str  # "impl" or the framework name
    label: str  # shown in messages
    module: str  # importable module holding the function
    function: Callable[..., Any]


class Harness:
    """Runs examples for one session: implementation, adapters, recorder."""

    def __init__(
        self,
        *,
        impl_name: str,
        impl: Any,
        adapters: dict[str, Adapter],
        recorder: Recorder,
    ) -> None:
        self.impl_name = impl_name
        self.impl = impl
        self.adapters = adapters
        self.recorder = recorder

    # -- oracle ------------------------------------------------------------------------------

    def _skip_not_implemented(self, key: tuple[str, str, str], reason: str) -> NoReturn:
        self.recorder.not_implemented(key, reason)
        pytest.skip(f"not implemented: {reason}")

    def _truth(self, call: Call, key: tuple[str, str, str]) -> tuple[Array, ...]:
        try:
            result = getattr(refcnn, call.op)(*call.args, **call.kwargs)
        except NotImplementedError:
            self._skip_not_implemented(key, f"the oracle refcnn.{call.op} is not implemented")
        return tuple(np.asarray(r, dtype=np.float64) for r in _as_outputs(call.op, result))

    # -- one example -------------------------------------------------------------------------

    def check(self, case: Case, *, framework: str, dtype: str) -> None:
        """Run one example: implementation (always) and ``framework`` (unless "none")."""
        __tracebackhide__ = True  # failures show the test and the reproducer, not this code
        call64 = case.call()
        note = case.note
        op = call64.op
        key = (op, framework, dtype)
        dt = np.dtype(dtype)
        impl_function = getattr(self.impl, op, None)
        if impl_function is None:
            self._skip_not_implemented(key, f"{self.impl_name} has no function {op!r}")
        call = call64.cast(dt)
        truth_call = call.cast(np.float64)
        truth = self._truth(truth_call, key)
        bounds_ = bounds(truth_call, truth, dt)
        impl = _Side("impl", f"{op} of --impl {self.impl_name}", self.impl_name, impl_function)
        self._compare(impl, call, truth, bounds_, dt, key, note, check_inputs=True)
        if framework == "none":
            return
        adapter = self.adapters[framework]
        function = adapter.function(op)
        if function is None:
            self.recorder.not_expressible(key, adapter.why_not(op))
            return
        call, rules = framework_inputs(call, adapter)
        if rules:
            self.recorder.rule(key, "; ".join(rules))
            truth_call = call.cast(np.float64)
            truth = self._truth(truth_call, key)
            bounds_ = bounds(truth_call, truth, dt)
            note = "; ".join([note, *rules]) if note else "; ".join(rules)
        if op in adapter.absolute_accuracy:
            bounds_, rule = _absolute_accuracy(bounds_, adapter, op, dt)
            if rule:
                self.recorder.rule(key, rule)
                note = "; ".join([note, rule]) if note else rule
        excluded = tolerance.range_limited(bounds_, truth, dt)
        if any(mask.any() for mask in excluded):
            rule = f"{dt} partial sums can overflow: those elements not compared (range rule)"
            self.recorder.rule(key, rule)
            note = "; ".join([note, rule]) if note else rule
        side = _Side(framework, f"{op} of the {framework} adapter", framework, function)
        try:
            self._compare(
                side, call, truth, bounds_, dt, key, note, check_inputs=False, excluded=excluded
            )
        except _NotExpressible as exc:
            self.recorder.not_expressible(key, str(exc.reason))

    def _compare(
        self,
        side: _Side,
        call: Call,
        truth: tuple[Array, ...],
        bounds: tuple[tolerance.Bound, ...],
        dtype: np.dtype[Any],
        key: tuple[str, str, str],
        note: str,
        *,
        check_inputs: bool,
        excluded: Sequence[Array] | None = None,
    ) -> float:
        """Call ``side`` on ``call``, check type/shape/dtype/inputs and return the max error."""
        __tracebackhide__ = True
        op = call.op
        names = output_names(op)

        def fail(problem: str, measurement: Measurement | None = None) -> AssertionError:
            return AssertionError(
                f"{side.label} ({dtype}): {problem}\n"
                + reproducer(call, side, measurement=measurement, note=note)
            )

        before = {name: a.copy() for name, a in call.arrays().items()}
        problem = ""
        try:
            result = side.function(*call.args, **call.kwargs)
        except NotImplementedError:
            if side.who == "impl":
                self._skip_not_implemented(key, f"{side.module}.{op} raised NotImplementedError")
            raise
        except Exception as exc:
            if side.who != "impl" and isinstance(exc, NotExpressible):
                raise _NotExpressible(exc) from exc
            if side.who == "impl":
                self.recorder.example(key)
            problem = f"raised {type(exc).__name__}: {exc}"
            raise fail(problem) from exc
        if side.who == "impl":
            self.recorder.example(key)  # counted once the implementation ran
        if check_inputs:
            problem = _modified_inputs(before, call)
        if not problem:
            try:
                outputs = _as_outputs(op, result)
            except TypeError as exc:
                problem = str(exc)
                raise fail(problem) from exc
            problems = (
                _type_problem(out, want.shape, dtype)
                for out, want in zip(outputs, truth, strict=True)
            )
            problem = next(
                (f"output {n}: {p}" for n, p in zip(names, problems, strict=True) if p), ""
            )
        if problem:
            raise fail(problem)
        measurement = measure(outputs, truth, bounds, dtype, names, excluded)
        target(min(measurement.max_err, 1e300), label=f"{side.who} normalized error")
        record = self.recorder.impl_error if side.who == "impl" else self.recorder.framework_error
        record(key, measurement.max_err)
        if measurement.max_err > 1:
            problem = f"differs from the float64 oracle (refcnn): {measurement.describe()}"
            raise fail(problem, measurement)
        return measurement.max_err


class _NotExpressible(Exception):  # noqa: N818 - mirrors the adapters' NotExpressible
    """Wraps an adapter's NotExpressible so the harness can count it."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(str(reason))
        self.reason = reason


def _modified_inputs(before: dict[str, Array], call: Call) -> str:
    """Name the first input array whose shape, dtype or values changed ('' when none did)."""
    for name, old in before.items():
        new = call.params[name]
        if new.shape != old.shape or new.dtype != old.dtype:
            return f"modified its input {name!r} (shape/dtype)"
        if not np.array_equal(new, old, equal_nan=True):
            return f"modified its input {name!r} in place"
    return ""


def _as_outputs(op: str, result: Any) -> tuple[Any, ...]:
    count = len(output_names(op))
    if count == 1:
        return (result,)
    if not isinstance(result, tuple | list) or len(result) != count:
        msg = f"must return a tuple of {count} arrays {output_names(op)}, got {type(result)}"
        raise TypeError(msg)
    return tuple(result)


def _type_problem(out: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> str:
    """Why ``out`` is not a NumPy array of ``shape`` and ``dtype`` ('' when it is)."""
    scalar_ok = shape == () and isinstance(out, np.generic)
    if not isinstance(out, np.ndarray) and not scalar_ok:
        return f"expected a NumPy array, got {type(out).__module__}.{type(out).__name__}"
    if out.shape != shape:
        return f"expected shape {shape}, got {out.shape}"
    if out.dtype != dtype:
        return f"expected dtype {dtype} (the input dtype), got {out.dtype}"
    return ""


def reproducer(
    call: Call, side: _Side, *, measurement: Measurement | None = None, note: str = ""
) -> str:
    """Python source rebuilding the exact inputs, calling ``side`` and the float64 oracle."""
    if side.module == "refcnn":
        lines = ["import numpy as np, refcnn", "impl = refcnn"]
    elif side.who == "impl":
        lines = [
            "import importlib",
            "import numpy as np, refcnn",
            f"impl = importlib.import_module({side.module!r})",
        ]
    else:  # a framework adapter: its backwards are derived, so build the whole adapter
        lines = [
            "import numpy as np, refcnn",
            "from conformance.frameworks import adapter",
            f"impl = adapter({side.module!r})  # CPU, deterministic, TF32 off",
        ]
    arrays = call.arrays()
    lines += [f"{name} = {format_array(value)}" for name, value in arrays.items()]
    lines.append(f"got = {call.render('impl')}")
    floats = [name for name, value in arrays.items() if value.dtype.kind == "f"]
    if floats and any(arrays[name].dtype != np.float64 for name in floats):
        upcast = ", ".join(f"{name}.astype(np.float64)" for name in floats)
        lines.append(f"{', '.join(floats)}{',' if len(floats) == 1 else ''} = {upcast}")
    lines.append(f"truth = {call.render('refcnn')}  # the float64 oracle")
    if note:
        lines.append(f"# {note}")
    if measurement is not None:
        lines.append(f"# {measurement.describe()}")
    return "\n".join(lines)
