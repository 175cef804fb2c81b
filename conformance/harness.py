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

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
from hypothesis import reject, target
from hypothesis.control import currently_in_test_context

import refcnn
from conformance import tolerance
from conformance.calls import Call, format_array
from conformance.compare import Measurement, measure
from conformance.deviations import Deviations
from conformance.frameworks import Adapter, NotExpressible
from conformance.layouts import relayout
from conformance.ops import REGISTRY, bounds, output_dtype, output_names

__all__ = [
    "Case",
    "Harness",
    "Recorder",
    "break_ties",
    "flush_subnormals",
    "framework_inputs",
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
        """Count one example the implementation was compared on."""

    def impl_error(self, key: tuple[str, str, str], err: float) -> None:
        """Record the implementation's normalized error on one example."""

    def framework_error(self, key: tuple[str, str, str], err: float) -> None:
        """Record the framework's normalized error on one example."""

    def not_expressible(self, key: tuple[str, str, str], reason: str) -> None:
        """Count one example the framework could not express."""

    def rule(self, key: tuple[str, str, str], reason: str) -> None:
        """Count one framework example compared under a documented rule (``reason``)."""

    def not_implemented(self, key: tuple[str, str, str], reason: str) -> None:
        """Mark the function missing from the implementation (or the oracle)."""

    def refused(self, key: tuple[str, str, str], arguments: str) -> None:
        """Count one example the implementation refused (NotImplementedError), with its call."""

    def deviation(self, key: tuple[str, str, str], reason: str) -> None:
        """Count one implementation example compared under a declared deviation."""

    def warned(self, key: tuple[str, str, str], message: str) -> None:
        """Count one warning the implementation emitted."""

    def excluded(self, key: tuple[str, str, str], reason: str) -> None:
        """Mark a row left out of the run on purpose, and why."""


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


class ConformanceFailure(AssertionError):  # noqa: N818 - a failed check, not an error
    """Base of the failures the harness raises; one subclass per kind of problem.

    Hypothesis keeps a separate shrinking target for each distinct exception type and
    origin, so a function that crashes on an empty batch *and* computes wrong values on a
    full one reports both, each shrunk on its own, instead of the first hiding the second.
    """


_FAILURE_KINDS: dict[str, type[ConformanceFailure]] = {}


def _failure(*, kind: str, message: str) -> ConformanceFailure:
    """Return a ConformanceFailure of the subclass named for ``kind`` (created on first use)."""
    name = "".join(part.capitalize() for part in kind.replace(":", "_").split("_")) + "Failure"
    if kind not in _FAILURE_KINDS:
        _FAILURE_KINDS[kind] = type(name, (ConformanceFailure,), {"kind": kind})
    return _FAILURE_KINDS[kind](message)


class Options(NamedTuple):
    """Session-wide choices that change what the implementation is held to."""

    deviations: Deviations = Deviations()
    strict_warnings: bool = False
    layouts: bool = True
    functions: frozenset[str] = frozenset(REGISTRY)


class Harness:
    """Runs examples for one session: implementation, adapters, recorder."""

    def __init__(
        self,
        *,
        impl_name: str,
        impl: Any,
        adapters: dict[str, Adapter],
        recorder: Recorder,
        options: Options | None = None,
    ) -> None:
        self.impl_name = impl_name
        self.impl = impl
        self.adapters = adapters
        self.recorder = recorder
        self.options = options or Options()

    def require(self, op: str, key: tuple[str, str, str]) -> Callable[..., Any]:
        """Return the implementation's ``op``; its absence fails the gate (and the test)."""
        __tracebackhide__ = True
        function = getattr(self.impl, op, None)
        if callable(function):
            return function  # type: ignore[no-any-return]
        reason = f"{self.impl_name} has no function {op!r}"
        if key[0] == op:
            # A row that composes several functions (the network) fails naming the missing
            # one; only the function's own row lists it as missing from the implementation.
            self.recorder.not_implemented(key, reason)
        message = (
            f"{reason}: the gate requires every function of the API; narrow the run with "
            "--functions or a deviations file (skip = ...) to leave it out on purpose"
        )
        raise _failure(kind="missing_function", message=message)

    # -- oracle ------------------------------------------------------------------------------

    def _truth(self, call: Call) -> tuple[Array, ...]:
        result = getattr(refcnn, call.op)(*call.args, **call.kwargs)
        return tuple(np.asarray(r, dtype=np.float64) for r in _as_outputs(call.op, result))

    # -- one example -------------------------------------------------------------------------

    def check(self, case: Case, *, framework: str, dtype: str, layout: str = "C") -> None:
        """Run one example: implementation (always) and ``framework`` (unless "none").

        The implementation runs on C-contiguous inputs and, unless ``layout`` is ``"C"``, on
        the same values laid out as ``layout`` (:mod:`conformance.layouts`); both results are
        held to the bounds. An example the implementation refuses with NotImplementedError,
        or the framework cannot express, is counted and rejected (Hypothesis then draws
        another), so neither spends the function's examples.
        """
        __tracebackhide__ = True  # failures show the test and the reproducer, not this code
        call64 = case.call()
        op = call64.op
        key = (op, framework, dtype)
        dt = np.dtype(dtype)
        impl_function = self.require(op, key)
        call = call64.cast(dt)
        impl_call, truth_call, deviations, excluded_by_deviation = self._impl_inputs(call, dt)
        truth = self._truth(truth_call)
        bounds_ = bounds(truth_call, truth, dt)
        note = "; ".join(filter(None, [case.note, *deviations]))
        factor = self.options.deviations.get(op, "tolerance_factor")
        if factor is not None:
            bounds_ = tuple(
                b._replace(bound=b.bound * factor, formula=f"{b.formula}, times {factor:g}")
                for b in bounds_
            )
            deviations.append(self.options.deviations.describe(op, "tolerance_factor"))
        excluded = None
        if excluded_by_deviation:
            mask = tolerance.range_limited(bounds_, truth, dt)
            if any(m.any() for m in mask):
                excluded = mask
                deviations.append(self.options.deviations.describe(op, "float16_accumulation"))
        for reason in deviations:
            self.recorder.deviation(key, reason)
        impl = _Side("impl", f"{op} of --impl {self.impl_name}", self.impl_name, impl_function)
        layouts = ["C"] if layout == "C" or not self.options.layouts else ["C", layout]
        for current in layouts:
            self._compare(
                impl,
                impl_call,
                truth_call,
                truth,
                bounds_,
                dt,
                key,
                note,
                layout=current,
                excluded=excluded,
            )
        if framework == "none":
            return
        self._check_framework(framework, call, case.note, dt, key)

    def _impl_inputs(self, call: Call, dtype: np.dtype[Any]) -> tuple[Call, Call, list[str], bool]:
        """Apply the implementation's declared deviations: its call, the truth's, the reasons.

        Returns the call the implementation gets, the float64 call the truth comes from, the
        deviations that changed them, and whether float16 range exclusion was declared.
        """
        declared = self.options.deviations
        op = call.op
        reasons: list[str] = []
        impl_call = call
        if declared.get(op, "tie_rule") and "x" in call.params and "pool" in op:
            x = call.params["x"]
            if np.unique(x).size < x.size:
                impl_call = impl_call.replace(x=break_ties(x))
                reasons.append(declared.describe(op, "tie_rule"))
        truth_call = impl_call.cast(np.float64)
        if declared.get(op, "same_split") and call.params.get("padding") == "SAME":
            truth_call = truth_call.replace(padding="SAME_LOWER")
            reasons.append(declared.describe(op, "same_split"))
        float16_sums = bool(declared.get(op, "float16_accumulation")) and dtype == np.float16
        return impl_call, truth_call, reasons, float16_sums

    def _check_framework(
        self, framework: str, call: Call, note: str, dt: np.dtype[Any], key: tuple[str, str, str]
    ) -> None:
        __tracebackhide__ = True
        op = call.op
        adapter = self.adapters[framework]
        function = adapter.function(op)
        if function is None:
            self.recorder.not_expressible(key, adapter.why_not(op))
            return
        call, rules = framework_inputs(call, adapter)
        if rules:
            self.recorder.rule(key, "; ".join(rules))
            note = "; ".join([note, *rules]) if note else "; ".join(rules)
        truth_call = call.cast(np.float64)
        truth = self._truth(truth_call)
        bounds_ = bounds(truth_call, truth, dt)
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
            self._compare(side, call, truth_call, truth, bounds_, dt, key, note, excluded=excluded)
        except _NotExpressible as exc:
            self.recorder.not_expressible(key, str(exc.reason))
            # The implementation was checked on this case; Hypothesis draws another one for
            # the framework instead of spending one of its examples on it (unless no case of
            # the function and dtype can be expressed: then there is nothing to draw for).
            if not getattr(exc.reason, "whole", False):
                _discard()

    def _compare(
        self,
        side: _Side,
        call: Call,
        truth_call: Call,
        truth: tuple[Array, ...],
        bounds: tuple[tolerance.Bound, ...],
        dtype: np.dtype[Any],
        key: tuple[str, str, str],
        note: str,
        *,
        layout: str = "C",
        excluded: Sequence[Array] | None = None,
    ) -> float:
        """Call ``side`` on ``call``, check type/shape/dtype/inputs and return the max error."""
        __tracebackhide__ = True
        failing = _Failing(side, call, truth_call, dtype, note, layout)
        arguments = call if layout == "C" else _relaid(call, layout)
        before = {name: a.copy() for name, a in arguments.arrays().items()}
        outcome = self._run(side, arguments, truth, key, failing)
        if outcome is None:
            return 0.0  # a declared deviation excused the call
        result, caught = outcome
        modified = _modified_inputs(before, arguments)
        if modified:
            raise failing.make(modified, kind="modified_input")
        outputs = _checked_outputs(call.op, result, truth, dtype, failing)
        measurement = measure(outputs, truth, bounds, dtype, output_names(call.op), excluded)
        if layout == "C" and currently_in_test_context():
            target(min(measurement.max_err, 1e300), label=f"{side.who} normalized error")
            impl_side = side.who == "impl"
            record = self.recorder.impl_error if impl_side else self.recorder.framework_error
            record(key, measurement.max_err)
        if measurement.max_err > 1:
            problem = f"differs from the float64 oracle (refcnn): {measurement.describe()}"
            if caught:
                problem += f"; it also warned {caught[0]}"
            if layout != "C":
                problem = f"layout-dependent result ({layout} inputs): {problem}"
            raise failing.make(problem, kind=f"value_{measurement.output}", measurement=measurement)
        if caught and self.options.strict_warnings:
            problem = (
                f"values within the bounds (max normalized error {measurement.max_err:.3g}) "
                f"but it warned {caught[0]} (--strict-warnings)"
            )
            raise failing.make(problem, kind="warning", measurement=measurement)
        return measurement.max_err

    def _run(
        self,
        side: _Side,
        arguments: Call,
        truth: tuple[Array, ...],
        key: tuple[str, str, str],
        failing: _Failing,
    ) -> tuple[Any, list[str]] | None:
        """Call ``side``; return its result and the warnings it emitted (implementation only).

        None when a declared ``empty_results`` deviation excuses a refusal. Values come first:
        the implementation's warnings are recorded, not raised, so they never hide a value
        comparison.
        """
        __tracebackhide__ = True
        op = arguments.op
        impl_side = side.who == "impl"
        first_layout = failing.layout == "C"
        with warnings.catch_warnings(record=True) as caught:
            if impl_side:
                warnings.simplefilter("always")
            try:
                result = side.function(*arguments.args, **arguments.kwargs)
            except NotImplementedError as exc:
                if impl_side and first_layout:
                    self.recorder.refused(key, _describe_call(arguments, exc))
                    _discard()  # counted with its arguments; the function keeps being tested
                    return None
                problem = f"raised NotImplementedError: {exc}"
                raise failing.make(problem, kind="raised") from exc
            except Exception as exc:
                if not impl_side and isinstance(exc, NotExpressible):
                    raise _NotExpressible(exc) from exc
                empty_truth = any(t.size == 0 for t in truth)
                declared = self.options.deviations.get(op, "empty_results")
                if impl_side and declared and empty_truth and isinstance(exc, ValueError):
                    self.recorder.deviation(
                        key, self.options.deviations.describe(op, "empty_results")
                    )
                    return None
                empty = empty_truth or any(a.size == 0 for a in arguments.arrays().values())
                problem = f"raised {type(exc).__name__}: {exc}"
                raise failing.make(problem, kind="raised_on_empty" if empty else "raised") from exc
        if impl_side and first_layout:
            self.recorder.example(key)  # counted once the implementation ran
        messages = [f"{w.category.__name__}: {w.message}" for w in caught] if impl_side else []
        if first_layout:
            for message in messages:
                self.recorder.warned(key, message)
        return result, messages


class _Failing(NamedTuple):
    """Builds the failure of one comparison: its kind, message and reproducer."""

    side: _Side
    call: Call
    truth_call: Call
    dtype: np.dtype[Any]
    note: str
    layout: str

    def make(
        self, problem: str, *, kind: str, measurement: Measurement | None = None
    ) -> ConformanceFailure:
        """Return the failure for ``problem`` (its class named for ``kind`` and the side)."""
        where = f" on {self.layout} inputs" if self.layout != "C" else ""
        text = f"{self.side.label} ({self.dtype}{where}): {problem}\n" + reproducer(
            self.call,
            self.side,
            self.truth_call,
            measurement=measurement,
            note=self.note,
            layout=self.layout,
        )
        suffix = "_layout" if self.layout != "C" else ""
        return _failure(kind=f"{self.side.who}_{kind}{suffix}", message=text)


def _checked_outputs(
    op: str, result: Any, truth: tuple[Array, ...], dtype: np.dtype[Any], failing: _Failing
) -> tuple[Any, ...]:
    """Return the outputs of ``result``, each checked: NumPy, the truth's shape, ``dtype``."""
    __tracebackhide__ = True
    try:
        outputs = _as_outputs(op, result)
    except TypeError as exc:
        raise failing.make(str(exc), kind="type") from exc
    for name, out, want in zip(output_names(op), outputs, truth, strict=True):
        problem = _type_problem(out, want.shape, output_dtype(op, name, dtype))
        if problem:
            message = f"output {name}: {problem}"
            raise failing.make(message, kind="shape" if "shape" in problem else "type")
    return outputs


def _discard() -> None:
    """Have Hypothesis draw another example instead of this one (a no-op for pinned cases)."""
    if currently_in_test_context():
        reject()


class _NotExpressible(Exception):  # noqa: N818 - mirrors the adapters' NotExpressible
    """Wraps an adapter's NotExpressible so the harness can count it."""

    def __init__(self, reason: BaseException) -> None:
        super().__init__(str(reason))
        self.reason = reason


def _relaid(call: Call, layout: str) -> Call:
    """``call`` with every array argument re-laid out as ``layout`` (same values)."""
    return call.replace(**{name: relayout(a, layout) for name, a in call.arrays().items()})


def _describe_call(call: Call, exc: BaseException) -> str:
    """Describe a refused call in one line: its non-array arguments and array shapes."""
    parts = [
        f"{name}={value.dtype}{list(value.shape)}"
        if isinstance(value, np.ndarray)
        else f"{name}={value!r}"
        for name, value in call.params.items()
    ]
    return f"{call.op}({', '.join(parts)}): {exc}"


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
        return f"expected dtype {dtype}, got {out.dtype}"
    return ""


def reproducer(
    call: Call,
    side: _Side,
    truth_call: Call | None = None,
    *,
    measurement: Measurement | None = None,
    note: str = "",
    layout: str = "C",
) -> str:
    """Python source rebuilding the exact inputs, calling ``side`` and the float64 oracle.

    ``truth_call`` (float64) is what the oracle is evaluated on, when a declared deviation
    or a documented rule made it differ from ``call``; by default ``call`` upcast.
    """
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
    if layout != "C":
        lines.append("from conformance.layouts import relayout  # same values, other strides")
        relaid = [f"relayout({name}, {layout!r})" for name in arrays]
        lines.append(f"got = {_render_with(call, 'impl', dict(zip(arrays, relaid, strict=True)))}")
    else:
        lines.append(f"got = {call.render('impl')}")
    truth_call = call.cast(np.float64) if truth_call is None else truth_call
    upcast = {
        name: f"{name}.astype(np.float64)"
        for name, value in arrays.items()
        if value.dtype.kind == "f" and value.dtype != np.float64
    }
    renamed = {name: upcast.get(name, name) for name in truth_call.arrays()}
    changed = {
        name: format_array(value)
        for name, value in truth_call.arrays().items()
        if name not in arrays
        or not np.array_equal(value, arrays[name].astype(np.float64), equal_nan=True)
    }
    renamed |= changed
    lines.append(f"truth = {_render_with(truth_call, 'refcnn', renamed)}  # the float64 oracle")
    if note:
        lines.append(f"# {note}")
    if measurement is not None:
        lines.append(f"# {measurement.describe()}")
    return "\n".join(lines)


def _render_with(call: Call, callee: str, expressions: dict[str, str]) -> str:
    """``callee.op(...)`` with array arguments written as the given expressions."""
    parts = []
    for i, (name, value) in enumerate(call.params.items()):
        shown = expressions.get(name, name) if isinstance(value, np.ndarray) else repr(value)
        parts.append(shown if i < call.n_positional else f"{name}={shown}")
    return f"{callee}.{call.op}({', '.join(parts)})"
