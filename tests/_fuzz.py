"""The bad-input fuzzer: valid calls by construction, then one or two arguments corrupted.

- *Targets*: every public function in ``refcnn.__all__`` (found by name, so the functions
  other modules add are fuzzed as soon as they are exported) and the methods of the public
  classes (``Conv2D(...).build``, ``.forward``, ``.backward``, ``Sequential``, ``SGD.step``).
- *Worlds*: consistent sets of valid values by parameter *name* (TF names: ``x``, ``w``,
  ``dy``, ``input_shape``, ``ksize``, ...). A target's valid call is the first world whose
  values make it succeed; ``dy``/``dp`` come from running the forward function
  (``<op>_backward*`` -> ``<op>``) or method on the same values.
- *Contracts*: what each parameter accepts, keyed by name (then by annotation: ``bool``,
  ``Literal``), plus the shapes the docstrings state (:mod:`_fuzz_specs`). Every drawn
  corruption is either *invalid by construction* (the call must refuse it) or *maybe*
  (valid or not, the call must be cheap and refuse it cleanly if it refuses it). A
  corruption's validity is never guessed from what the implementation does.
- *Checks* (:func:`check_call`): only ``ValueError``/``TypeError`` (``FileNotFoundError`` for
  paths) whose message names the function or class and the argument; within
  :data:`BUDGET_SECONDS` and :data:`BUDGET_BYTES`; inputs unchanged; a refused call leaves
  the arguments it may update (a model, an optimizer, SGD's parameters) unchanged.
"""

from __future__ import annotations

import inspect
import math
import re
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NamedTuple

import numpy as np
from _budget import MIB, run_within
from _fuzz_specs import Spec, shape_specs
from _fuzz_values import (
    SPECIAL_FILLS,
    Value,
    arr,
    conv_layers,
    dense_layers,
    flat_layers,
    huge_view,
    labels,
    lit,
    mnist_dir,
    mnist_file,
    object_array,
    onehot,
    param_dicts,
    probs,
    show,
    small_model,
    twice,
)
from hypothesis import strategies as st

import refcnn
from refcnn.layers import INITIALIZERS

__all__ = [
    "BUDGET_BYTES",
    "BUDGET_SECONDS",
    "Call",
    "Target",
    "bad_calls",
    "check_call",
    "check_valid_call",
    "fuzzable",
    "targets",
]

#: Each fuzzed call must finish within this (the issue's budget for hostile input).
BUDGET_SECONDS = 1.0
BUDGET_BYTES = 200 * MIB

# --- contracts, by parameter name -------------------------------------------------------------

ARRAYS = {"x", "w", "b", "dy", "dp", "z", "p", "y", "logits", "labels", "weights"}
SHAPES = {"input_shape", "filter_shape", "output_shape"}
INT_TUPLES = {"strides", "dilations", "ksize", "kernel_size", "output_padding"}
#: Lower bounds of integer parameters (``None``: any int).
INTS = {
    "units": 1,
    "filters": 1,
    "groups": 1,
    "batch_size": 1,
    "seed": 0,
    "ignore_index": None,
}
#: Real parameters: (lowest, highest, lowest allowed?, highest allowed?).
REALS = {
    "lr": (0.0, math.inf, True, False),
    "momentum": (0.0, math.inf, True, False),
    "label_smoothing": (0.0, 1.0, True, True),
    "eps": (0.0, 1.0, False, False),
}
CHOICES = {
    "reduction": ("none", "sum", "mean"),
    "kernel_initializer": tuple(INITIALIZERS),
    "kind": ("train", "test"),
}
#: Kinds of the other named parameters.
OTHERS = {
    "padding": "padding",
    "axis": "axis",
    "name": "name",
    "path": "path",
    "model": "model",
    "optimizer": "optimizer",
    "layers": "layers",
    "rng": "rng",
    "dtype": "dtype",
    "parameters": "mapping",
    "gradients": "mapping",
    "data_format": "data_format",
}
#: Arguments a successful call may update in place (refused calls must leave them alone).
UPDATED = {
    "train_step": {"model", "optimizer"},
    "SGD.step": {"parameters"},
    "Sequential.build": {"layers"},  # a model names and builds the layers it is given
}

# --- worlds --------------------------------------------------------------------------------


def _dy(shape: tuple[int, ...]) -> Value:
    return Value(arr, shape)


_COMMON: dict[str, Value] = {
    "filters": lit(2),
    "kernel_size": lit(3),
    "units": lit(4),
    "lr": lit(0.1),
    "path": Value(mnist_dir),
    "rng": Value(np.random.default_rng, 0),
}


class World(NamedTuple):
    """Consistent valid values by parameter name; ``rank`` = number of spatial axes."""

    name: str
    rank: int
    values: dict[str, Value]


WORLDS = [
    World(
        "nhwc",
        2,
        _COMMON
        | {
            "x": Value(arr, (2, 5, 5, 3)),
            "w": Value(arr, (3, 3, 3, 4)),
            "b": Value(arr, (4,)),
            "input_shape": lit((2, 5, 5, 3)),
            "filter_shape": lit((3, 3, 3, 4)),
            "ksize": lit(2),
            "labels": Value(labels, 2, 4),
            "model": Value(small_model, (5, 5, 3)),
            "optimizer": Value(refcnn.SGD, 0.1),
            "layers": Value(flat_layers),
        },
    ),
    World(
        "nc",
        0,
        _COMMON
        | {
            "x": Value(arr, (2, 3)),
            "w": Value(arr, (3, 4)),
            "b": Value(arr, (4,)),
            "labels": Value(labels, 2, 4),
            "model": Value(small_model, (3,)),
            "optimizer": Value(refcnn.SGD, 0.1),
            "layers": Value(dense_layers),
            "parameters": Value(param_dicts, (3, 4), (4,)),
            "gradients": Value(param_dicts, (3, 4), (4,)),
        },
    ),
    World(
        "classes",
        0,
        _COMMON
        | {
            "z": Value(arr, (2, 4)),
            "logits": Value(arr, (2, 4)),
            "p": Value(probs, (2, 4)),
            "y": Value(onehot, (2, 4)),
            "labels": Value(labels, 2, 4),
            "weights": Value(arr, (4,), fill="positive"),
        },
    ),
    # The N-d and transposed convolutions and pools (named by the API they will have).
    World(
        "nwc",
        1,
        _COMMON
        | {
            "x": Value(arr, (2, 6, 3)),
            "w": Value(arr, (3, 3, 4)),
            "b": Value(arr, (4,)),
            "input_shape": lit((2, 6, 3)),
            "filter_shape": lit((3, 3, 4)),
            "ksize": lit(2),
        },
    ),
    World(
        "ndhwc",
        3,
        _COMMON
        | {
            "x": Value(arr, (2, 4, 4, 4, 3)),
            "w": Value(arr, (2, 2, 2, 3, 4)),
            "b": Value(arr, (4,)),
            "input_shape": lit((2, 4, 4, 4, 3)),
            "filter_shape": lit((2, 2, 2, 3, 4)),
            "ksize": lit(2),
        },
    ),
    World(
        "nhwc-transposed",
        2,
        _COMMON
        | {
            "x": Value(arr, (2, 5, 5, 4)),
            "w": Value(arr, (3, 3, 3, 4)),
            "b": Value(arr, (3,)),
            "input_shape": lit((2, 5, 5, 4)),
            "filter_shape": lit((3, 3, 3, 4)),
        },
    ),
]

# --- targets -------------------------------------------------------------------------------


class Param(NamedTuple):
    """One parameter of a target: its name, default (``inspect.Parameter.empty``), hint."""

    name: str
    default: Any
    hint: Any

    @property
    def required(self) -> bool:
        """No default."""
        return self.default is inspect.Parameter.empty

    @property
    def optional(self) -> bool:
        """``None`` is a valid value (the default, or ``None`` in the annotation)."""
        if self.default is None:
            return True
        return type(None) in typing.get_args(self.hint)


def _params(function: Callable[..., Any], *, skip: tuple[str, ...] = ("self",)) -> list[Param]:
    hints = typing.get_type_hints(function)
    return [
        Param(p.name, p.default, hints.get(p.name))
        for p in inspect.signature(function).parameters.values()
        if p.name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


class Prepared(NamedTuple):
    """A target made ready in one world: the call, its valid values, the receiver if any."""

    call: Callable[[dict[str, Any]], Any]
    values: dict[str, Value]
    receiver: Any


class Target(NamedTuple):
    """Something to fuzz: ``name`` (``"conv2d"``, ``"Conv2D.build"``), its parameters, and
    the names an error message may use for it (the function, the class, a layer's name)."""

    name: str
    params: tuple[Param, ...]
    owners: tuple[str, ...]
    docs: tuple[Callable[..., Any], ...]  # where the parameters are documented
    prepare: Callable[[World], Prepared | None]

    def __repr__(self) -> str:
        return self.name

    def param(self, name: str) -> Param:
        """The parameter called ``name``."""
        return next(p for p in self.params if p.name == name)

    @property
    def specs(self) -> dict[str, Spec]:
        """Shapes stated by the docstrings."""
        return _specs(self.docs)


@cache
def _specs(docs: tuple[Callable[..., Any], ...]) -> dict[str, Spec]:
    merged: dict[str, Spec] = {}
    for function in docs:
        merged |= shape_specs(function)
    return merged


def _valid_values(params: tuple[Param, ...], world: World) -> dict[str, Value] | None:
    """World values for the required parameters (and the optional ones the world has)."""
    values = {p.name: world.values[p.name] for p in params if p.name in world.values}
    if any(p.required and p.name not in values for p in params):
        return None
    return values


def _forward_of(function: Callable[..., Any]) -> Callable[..., Any] | None:
    match = re.fullmatch(r"(\w+?)_backward(_\w+)?", function.__name__)
    forward = getattr(refcnn, match.group(1), None) if match else None
    return forward if callable(forward) else None


def _function_target(function: Callable[..., Any]) -> Target:
    params = tuple(_params(function))

    def prepare(world: World) -> Prepared | None:
        wanted = [p for p in params if p.name not in ("dy", "dp")]
        values = _valid_values(tuple(wanted), world)
        if values is None:
            return None
        upstream = [p for p in params if p.name in ("dy", "dp")]
        forward = _forward_of(function)
        if upstream:
            if forward is None:
                return None
            forward_params = tuple(_params(forward))
            forward_values = _valid_values(forward_params, world)
            if forward_values is None:
                return None
            y = forward(**{k: v.build() for k, v in forward_values.items()})
            for p in upstream:
                values[p.name] = _dy(np.shape(y))

        def call(args: dict[str, Any]) -> Any:
            return function(**args)

        return Prepared(call, values, None)

    return Target(function.__name__, params, (function.__name__,), (function,), prepare)


def _layer_sample(world: World) -> tuple[tuple[int, ...], Value] | None:
    x = world.values.get("x")
    return None if x is None else (tuple(np.shape(x.build())[1:]), x)


def _class_targets(cls: type) -> list[Target]:
    """``build`` (constructor and build arguments drawn), ``forward``, ``backward``, ``step``."""
    ctor = tuple(_params(cls.__init__))
    instance_name = getattr(cls, "kind", cls.__name__)
    owners = (cls.__name__, instance_name)
    found: list[Target] = []

    def ctor_values(world: World) -> dict[str, Value] | None:
        return _valid_values(ctor, world)

    if issubclass(cls, refcnn.Layer | refcnn.Sequential):
        build_params = tuple(_params(cls.build))

        def prepare_build(world: World) -> Prepared | None:
            sample = _layer_sample(world)
            others = tuple(p for p in build_params if p.name != "input_shape")
            values = _valid_values(ctor + others, world)
            if sample is None or values is None:
                return None
            values = values | {"input_shape": lit(sample[0])}  # per sample: no batch axis

            def call(args: dict[str, Any]) -> Any:
                instance = cls(**{k: args[k] for k in args if k in {p.name for p in ctor}})
                return instance.build(**{k: args[k] for k in args if k not in _names(ctor)})

            return Prepared(call, values, None)

        found.append(
            Target(
                f"{cls.__name__}.build",
                ctor + build_params,
                (*owners, f"{cls.__name__}.build"),
                (cls, cls.__init__, cls.build),
                prepare_build,
            )
        )
        found.extend(
            _instance_target(cls, method, ctor_values, owners) for method in ("forward", "backward")
        )
    if cls is refcnn.SGD:
        step_params = tuple(_params(cls.step))

        def prepare_step(world: World) -> Prepared | None:
            values = _valid_values(ctor + step_params, world)
            if values is None:
                return None

            def call(args: dict[str, Any]) -> Any:
                optimizer = cls(**{k: args[k] for k in args if k in _names(ctor)})
                return optimizer.step(**{k: args[k] for k in args if k not in _names(ctor)})

            return Prepared(call, values, None)

        found.append(
            Target(
                "SGD.step",
                ctor + step_params,
                (*owners, "SGD.step"),
                (cls, cls.__init__, cls.step),
                prepare_step,
            )
        )
    return found


def _names(params: tuple[Param, ...]) -> set[str]:
    return {p.name for p in params}


def _instance_target(
    cls: type,
    method: str,
    ctor_values: Callable[[World], dict[str, Value] | None],
    owners: tuple[str, ...],
) -> Target:
    """A method of a built instance; ``backward`` after one ``forward`` of the world's ``x``."""
    params = tuple(_params(getattr(cls, method)))

    def prepare(world: World) -> Prepared | None:
        sample, values = _layer_sample(world), ctor_values(world)
        if sample is None or values is None:
            return None
        instance = cls(**{k: v.build() for k, v in values.items()})
        instance.build(sample[0], np.random.default_rng(0))
        if method == "forward":
            method_values = {"x": sample[1]}
        else:
            y = instance.forward(sample[1].build())
            method_values = {"dy": _dy(y.shape)}
        return Prepared(lambda args: getattr(instance, method)(**args), method_values, instance)

    return Target(
        f"{cls.__name__}.{method}",
        params,
        (*owners, f"{cls.__name__}.{method}"),
        (getattr(cls, method),),
        prepare,
    )


#: Public names that are not entry points: result containers.
NOT_ENTRY_POINTS = {
    name
    for name in refcnn.__all__
    if inspect.isclass(getattr(refcnn, name)) and issubclass(getattr(refcnn, name), tuple)
}


@cache
def targets() -> tuple[Target, ...]:
    """Every fuzz target, in ``refcnn.__all__`` order."""
    found: list[Target] = []
    for name in refcnn.__all__:
        obj = getattr(refcnn, name)
        if name in NOT_ENTRY_POINTS:
            continue
        if inspect.isclass(obj):
            if _concrete(obj):
                found.extend(_class_targets(obj))
        elif callable(obj):
            found.append(_function_target(obj))
    return tuple(found)


def _concrete(cls: type) -> bool:
    """A layer class that computes something (not the abstract :class:`refcnn.Layer`)."""
    return not issubclass(cls, refcnn.Layer) or cls._forward is not refcnn.Layer._forward


class Baseline(NamedTuple):
    """A target's valid call: the world it came from and the prepared call."""

    world: World
    prepared: Prepared


@cache
def baseline(target: Target) -> Baseline:
    """The first world in which the target's valid values make a call that succeeds."""
    tried = []
    for world in WORLDS:
        try:
            prepared = target.prepare(world)
        except (TypeError, ValueError) as err:
            tried.append(f"{world.name}: preparing raised {err!r}")
            continue
        if prepared is None:
            tried.append(f"{world.name}: no values")
            continue
        try:
            prepared.call({k: v.build() for k, v in prepared.values.items()})
        except Exception as err:  # the world does not fit: try the next one
            tried.append(f"{world.name}: {type(err).__name__}: {err}")
            continue
        return Baseline(world, prepared)
    msg = f"no world makes a valid call of {target.name} (add one to WORLDS): " + "; ".join(tried)
    raise AssertionError(msg)


# --- corruptions ---------------------------------------------------------------------------


class Corruption(NamedTuple):
    """A drawn value for one parameter: ``invalid`` if the contract refuses it outright."""

    value: Value
    invalid: bool
    what: str
    #: Invalid by its length, i.e. only at the world's rank: once another argument (x, dy,
    #: input_shape) gets another rank, an N-d function may take it (see bad_calls).
    per_rank: bool = False


def _bad(value: Value | Any, what: str) -> Corruption:
    return Corruption(value if isinstance(value, Value) else lit(value), True, what)


def _bad_at_rank(value: Value | Any, what: str) -> Corruption:
    return _bad(value, what)._replace(per_rank=True)


def _maybe(value: Value | Any, what: str) -> Corruption:
    return Corruption(value if isinstance(value, Value) else lit(value), False, what)


class _Opaque:
    """An object no parameter accepts."""

    def __repr__(self) -> str:
        return "_Opaque()"


#: Sizes no request can be granted: each makes some array pass 2**40 bytes (the library's
#: limit, _checks.MAX_ARRAY_BYTES) or has no window at all. Smaller ones (2**31: 16 GiB of
#: float64) may be legitimate requests a machine cannot hold, so they are not drawn.
HUGE_INTS = (2**40, 2**63, 2**64, 10**30, 10**5000)
NOT_INTS = (True, 1.0, 2.5, math.nan, math.inf, "2", b"2", 1j, [1], np.float64(2.0))
_NON_NUMERIC_DTYPES = ("bool", "complex128", "U3", "S3", "datetime64[D]", "timedelta64[s]")


def _generic(param: Param) -> list[Corruption]:
    """Values no parameter kind accepts, and ``None`` where ``None`` is not allowed."""
    out = [_bad(Value(_Opaque), "an opaque object"), _bad({"a": 1}, "a dict")]
    if not param.optional:
        out.append(_bad(None, "None"))
    return out


def _array_corruptions(param: Param, example: Any, spec: Spec | None) -> list[Corruption]:
    out = _generic(param)
    shape = tuple(np.shape(example))
    dtype = np.asarray(example).dtype
    out += [
        _bad("abc", "a str"),
        _bad(b"abc", "bytes"),
        _bad({1.0, 2.0}, "a set"),
        _bad([[1.0, 2.0], [3.0]], "a ragged nested list"),
        _bad(Value(object_array, shape or (1,), "a"), "an object array holding a str"),
        _bad(Value(object_array, shape or (1,), None), "an object array holding None"),
    ]
    out += [_bad(Value(arr, shape, d), f"dtype {d}") for d in _NON_NUMERIC_DTYPES]
    out.append(_bad(Value(arr, shape, [("a", "f8")]), "a structured dtype"))
    if shape:
        big = (2**40, *shape[1:])
        out.append(_bad(Value(huge_view, big, dtype.str), "a view of more than 2**40 bytes"))
    # Shape changes: invalid when the docstring's shapes say so (decided per call).
    for axis in range(len(shape)):
        grown = tuple(d + (i == axis) for i, d in enumerate(shape))
        out.append(_maybe(Value(arr, grown, dtype.str), f"axis {axis} one longer"))
    out.append(_maybe(Value(arr, (*shape, 1)), "one more axis"))
    if shape:
        out.append(_maybe(Value(arr, shape[:-1], dtype.str), "one axis fewer"))
        out.append(_maybe(Value(arr, (0, *shape[1:]), dtype.str), "an empty first axis"))
    out.append(_maybe(Value(arr, ()), "a 0-d array"))
    for other in ("float32", "float16", "int64", "object", ">f8"):
        if np.dtype(other) != dtype:
            out.append(_maybe(Value(arr, shape, other), f"dtype {other}"))
    if dtype.kind in "fiuO":
        for layout in ("F", "strided", "reversed", "broadcast", "readonly"):
            out.append(_maybe(Value(arr, shape, dtype.str, layout=layout), f"layout {layout}"))
        out.append(_maybe(Value(np.ndarray.tolist, np.asarray(example)), "a nested list"))
    if dtype.kind == "f":
        for fill in SPECIAL_FILLS:
            out.append(_maybe(Value(arr, shape, dtype.str, fill), f"all {fill}"))
    if dtype.kind in "iu":
        for fill in ("max", "min"):
            out.append(_maybe(Value(arr, shape, dtype.str, fill), f"every entry the {fill}"))
    return out


def _shape_corruptions(param: Param, example: Any) -> list[Corruption]:
    shape = tuple(example)
    out = _generic(param)
    out += [
        _bad("abc", "a str"),
        _bad(5, "an int"),
        _bad({1, 2}, "a set"),
        _bad([float(d) for d in shape] or [1.0], "floats"),
        _bad([True] * max(len(shape), 1), "bools"),
        _bad((-1, *shape[1:]), "a negative size"),
        _bad((1,) * 65, "65 sizes (NumPy holds at most 64 axes)"),
        _bad(Value(range, 10**20), "range(10**20)"),
        _bad(Value(np.array, 4), "a 0-d array"),
        _maybe((*shape, 1), "one more size"),
        _maybe(shape[:-1], "one size fewer"),
        _maybe(list(shape), "a list"),
        _maybe(Value(np.array, shape), "an array"),
    ]
    for axis in range(len(shape)):
        for size in (shape[axis] + 1, 0, 2**40, 2**63):
            changed = tuple(size if i == axis else d for i, d in enumerate(shape))
            out.append(_maybe(changed, f"size {show(size)} on axis {axis}"))
    return out


def _int_tuple_corruptions(param: Param, rank: int) -> list[Corruption]:
    n = max(rank, 1)
    out = _generic(param)
    # [1] is one int per spatial axis where there is one axis (conv1d, max_pool1d): valid.
    out += [_bad(v, f"not an int: {show(v)}") for v in NOT_INTS if not isinstance(v, list)]
    if n > 1:  # [1] is one int per spatial axis where there is one axis: valid there
        out.append(_bad_at_rank([1], "not an int: [1]"))
    zero = _maybe if param.name == "output_padding" else _bad  # the one that may be 0
    out += [
        zero(0, "0"),
        _bad(-1, "-1"),
        _bad(-(2**63), "-2**63"),
        _bad([], "an empty list"),
        _bad_at_rank([1] * (n + 1), f"{n + 1} ints"),
        _bad([1] * 7, "7 ints"),
        zero([1] * (n - 1) + [0], "a 0 entry"),
        _bad([[1] * n] * n, "nested lists"),
        _bad([1.0] * n, "floats"),
        _bad([True] * n, "bools"),
        _bad({1}, "a set"),
        _bad(Value(np.array, 2), "a 0-d array"),
        _bad(Value(range, 10**12), "range(10**12)"),
        _maybe(Value(np.int64, 2), "np.int64(2)"),
        _maybe((2,) * n, "a tuple"),
        _maybe(Value(np.array, [2] * n), "an int array"),
    ]
    out += [_maybe(v, f"huge {show(v)}") for v in HUGE_INTS]
    out += [_maybe((v,) * n, f"huge {show(v)} on every axis") for v in HUGE_INTS[:2]]
    return out


def _padding_corruptions(param: Param, rank: int) -> list[Corruption]:
    n = max(rank, 1)
    zeros = [[0, 0]] * n
    out = _generic(param)
    out += [
        _bad(v, f"mode {v!r}")
        for v in ("FULL", "", "SAME ", " VALID", "SAM", "VALID\0", "SAME-LOWER")
    ]
    out += [
        _bad(1, "an int"),
        _bad(1.5, "a float"),
        _bad(True, "a bool"),
        _bad(b"SAME", "bytes"),
        _bad({"SAME"}, "a set"),
        _bad([0] * n, "ints, not pairs"),
        _bad([[0, 0]] * 7, "7 pairs"),
        _bad_at_rank([[0, 0]] * (n + 1), f"{n + 1} pairs"),
        _bad([[0, 0, 0]] * n, "triples"),
        _bad([[-1, 0], *zeros[1:]], "a negative pad"),
        _bad([[0.5, 0], *zeros[1:]], "a float pad"),
        _bad([[True, 0], *zeros[1:]], "a bool pad"),
        _bad([["1", 0], *zeros[1:]], "a str pad"),
        _bad([[0, -(2**63)], *zeros[1:]], "pad -2**63"),
        _bad(Value(range, 10**12), "range(10**12)"),
        _maybe("same", "lowercase mode"),
        _maybe("Same_Lower", "mixed-case mode"),
        _maybe(((1, 1),) * n, "pads (1, 1)"),
        _maybe(Value(np.array, zeros), "an array of pairs"),
    ]
    for big in (2**40, 2**63, 10**30):
        out.append(_maybe(((big, 0), *([(0, 0)] * (n - 1))), f"pad {show(big)}"))
        out.append(_maybe(((0, big),) * n, f"pad {show(big)} after, every axis"))
    return out


def _axis_corruptions(param: Param) -> list[Corruption]:
    out = _generic(param)
    out += [_bad(v, f"axis {show(v)} (no array has that many axes)") for v in (65, -66)]
    out += [_bad(v, f"axis {show(v)}") for v in (2**63, -(2**63) - 1, 10**30, 10**5000)]
    out += [_bad(v, f"not an int: {show(v)}") for v in NOT_INTS]
    out += [_bad(Value(np.array, 1), "a 0-d array")]
    out += [_maybe(v, f"axis {v}") for v in (0, 1, 2, 3, -2, -3)]
    out += [_maybe(Value(np.int64, 0), "np.int64(0)")]
    return out


def _int_corruptions(param: Param, minimum: int | None) -> list[Corruption]:
    out = _generic(param)
    out += [_bad(v, f"not an int: {show(v)}") for v in NOT_INTS]
    out += [_bad(Value(np.array, 1), "a 0-d array")]
    if minimum is not None:
        out += [_bad(minimum - 1, f"{minimum - 1} (< {minimum})"), _bad(-(2**63), "-2**63")]
        out += [_maybe(minimum, f"the minimum {minimum}")]
    out += [_maybe(v, f"huge {show(v)}") for v in HUGE_INTS]
    out += [_maybe(Value(np.int64, 3), "np.int64(3)")]
    return out


def _real_corruptions(param: Param, bounds: tuple[float, float, bool, bool]) -> list[Corruption]:
    low, high, low_ok, high_ok = bounds
    out = _generic(param)
    out += [_bad(v, f"not a real: {show(v)}") for v in ("0.1", True, 1j, [0.1], b"1")]
    out += [_bad(Value(np.array, 0.1), "a 0-d array"), _bad(math.nan, "NaN")]
    out += [_bad(10**400, "10**400 (beyond float)"), _bad(-math.inf, "-inf")]
    if math.isfinite(high):
        out += [_bad(high + 0.5, f"above {high}"), _bad(math.inf, "inf")]
        out.append(_maybe(high, "the upper bound") if high_ok else _bad(high, "the open bound"))
    else:
        out.append(_bad(math.inf, "inf (no step size)"))
        out.append(_maybe(1e300, "1e300"))
    out += [_bad(low - 0.5, f"below {low}")]
    out.append(_maybe(low, "the lower bound") if low_ok else _bad(low, "the open bound"))
    out += [_maybe(Value(np.float32, 0.5), "np.float32(0.5)"), _maybe(0.5, "0.5")]
    return out


def _bool_corruptions(param: Param) -> list[Corruption]:
    out = _generic(param)
    out += [_bad(v, f"not a bool: {show(v)}") for v in (1, 0, "True", "", 1.0, [True], b"1")]
    out += [_bad(Value(np.array, True), "a 0-d array"), _maybe(Value(np.bool_, True), "np.True_")]
    return out


def _choice_corruptions(param: Param, choices: tuple[str, ...]) -> list[Corruption]:
    out = _generic(param)
    folded = {c.casefold() for c in choices}
    strings = ("bogus", "", " ", "\0", "x" * 200, *(f" {c}" for c in choices))
    out += [_bad(s, f"not a choice: {s[:20]!r}") for s in strings if s.casefold() not in folded]
    out += [_bad(5, "an int"), _bad(list(choices[:1]), "a list"), _bad(b"mean", "bytes")]
    return out


def _kind_corruptions(kind: str, param: Param) -> list[Corruption]:
    out = _generic(param)
    if kind == "name":
        out += [_bad(5, "an int"), _bad(b"x", "bytes"), _bad(["x"], "a list"), _bad(1.5, "a float")]
        out += [_maybe("", "an empty name"), _maybe("a b/c", "a name with a slash")]
    elif kind == "path":
        out += [_bad(5, "an int"), _bad(b"/tmp", "bytes"), _bad(["/tmp"], "a list")]
        out += [_maybe("/nonexistent/refcnn-fuzz", "a missing directory")]
        out += [_maybe(Value(mnist_file), "a file, not a directory"), _maybe("", "''")]
    elif kind == "model":
        out += [_bad(5, "an int"), _bad("model", "a str"), _bad(Value(refcnn.ReLU), "a Layer")]
        out += [_bad(Value(conv_layers), "a list of layers")]
    elif kind == "optimizer":
        out += [_bad(5, "an int"), _bad("sgd", "a str"), _bad({"lr": 0.1}, "a dict")]
    elif kind == "layers":
        out += [_bad(5, "an int"), _bad([5], "a list holding an int"), _bad(["relu"], "a str")]
        out += [_bad(Value(refcnn.ReLU), "a single layer (not an iterable)")]
        out += [_bad(lit([refcnn.ReLU]), "a layer class"), _bad(Value(twice), "a layer twice")]
        out += [_maybe([], "no layers")]
    elif kind == "rng":
        out += [_bad(5, "an int"), _bad("rng", "a str"), _bad([1], "a list")]
        out += [_maybe(Value(np.random.RandomState, 0), "a legacy RandomState")]
    elif kind == "dtype":
        out = [c for c in out if c.what != "None"]  # None is float64 (NumPy's DTypeLike)
        out.append(_maybe(None, "None (float64)"))
        for bad in ("int32", "bogus", 5, "complex128", "bool", "object", [1], "U3"):
            out.append(_bad(bad, f"dtype {bad!r}"))
        out += [_bad(Value(lambda: np.int64, code="np.int64"), "np.int64")]
        out += [_maybe(v, f"dtype {v!r}") for v in ("float32", "float16", ">f8")]
    elif kind == "mapping":
        out += [_bad(5, "an int"), _bad([], "a list"), _bad({"p0": 5}, "a dict of ints")]
        out += [_bad({"p0": "a"}, "a dict of strs")]
        out += [_maybe(Value(param_dicts, (3, 4)), "one entry only")]
        out += [_maybe(Value(param_dicts, (3, 5), (4,)), "another shape")]
        # Only the last entry wrong: a step that updates while it checks is caught half-done.
        out += [_maybe(Value(param_dicts, (3, 4), (5,)), "the last entry another shape")]
        out += [_maybe({}, "an empty dict")]
        out += [_maybe(Value(_readonly_params), "read-only arrays")]
        out += [_maybe(Value(_float32_params), "float32 arrays")]
    elif kind == "data_format":
        out += [_bad(5, "an int"), _bad("", "''"), _bad("bogus", "'bogus'"), _bad(b"NHWC", "bytes")]
    return out


def _readonly_params() -> dict[str, Any]:
    out = param_dicts((3, 4), (4,))
    for value in out.values():
        value.flags.writeable = False
    return out


def _float32_params() -> dict[str, Any]:
    return {k: v.astype(np.float32) for k, v in param_dicts((3, 4), (4,)).items()}


def _literal_choices(hint: Any) -> tuple[str, ...] | None:
    for candidate in (hint, *typing.get_args(hint)):
        if typing.get_origin(candidate) is typing.Literal:
            values = typing.get_args(candidate)
            if all(isinstance(v, str) for v in values):
                return tuple(values)
    return None


#: Parameter kinds by name: the one table a new parameter name is added to.
KINDS_BY_NAME: dict[str, str] = {
    **dict.fromkeys(ARRAYS, "array"),
    **dict.fromkeys(SHAPES, "shape"),
    **dict.fromkeys(INT_TUPLES, "ints"),
    **dict.fromkeys(INTS, "int"),
    **dict.fromkeys(REALS, "real"),
    **dict.fromkeys(CHOICES, "choice"),
    **OTHERS,
}
_KINDS_BY_HINT: dict[Any, str] = {bool: "bool", int: "int", float: "real"}


def contract_kind(param: Param) -> str | None:
    """The parameter's kind: by name first, then by annotation; ``None``: not fuzzed."""
    if param.name in KINDS_BY_NAME:
        return KINDS_BY_NAME[param.name]
    if _literal_choices(param.hint) is not None:
        return "choice"
    return _KINDS_BY_HINT.get(param.hint)


def corruptions(target: Target, param: Param, example: Any, rank: int) -> list[Corruption]:
    """Every corruption drawn for ``param`` of ``target`` (``example``: its valid value)."""
    kind = contract_kind(param)
    rank = rank or 2  # parameters of the 2-D layers
    name = param.name
    by_kind: dict[str, Callable[[], list[Corruption]]] = {
        "array": lambda: _array_corruptions(param, example, target.specs.get(name)),
        "shape": lambda: _shape_corruptions(param, example if example is not None else (2, 3)),
        "ints": lambda: _int_tuple_corruptions(param, rank),
        "padding": lambda: _padding_corruptions(param, rank),
        "axis": lambda: _axis_corruptions(param),
        "int": lambda: _int_corruptions(param, INTS.get(name)),
        "real": lambda: _real_corruptions(param, REALS.get(name, _ANY_REAL)),
        "bool": lambda: _bool_corruptions(param),
        "choice": lambda: _choice_corruptions(
            param, CHOICES.get(name) or _literal_choices(param.hint) or ()
        ),
    }
    if kind is None:
        return []
    return by_kind[kind]() if kind in by_kind else _kind_corruptions(kind, param)


_ANY_REAL = (-math.inf, math.inf, True, True)


# --- what the final arguments violate (shapes, dtypes, keys), from the documented rules -------


def _dims(value: Any, kind: str | None) -> tuple[int, ...] | None:
    if kind == "array" and isinstance(value, np.ndarray):
        return value.shape
    ints = isinstance(value, tuple | list) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in value
    )
    return tuple(value) if kind == "shape" and ints else None


class Violation(NamedTuple):
    """A documented rule the arguments of a call break, and the arguments it is about."""

    rule: str
    names: tuple[str, ...]


def relational_violations(
    target: Target, args: Mapping[str, Any], receiver: Any = None
) -> list[Violation]:
    """The documented rules the arguments break together."""
    kinds = {p.name: contract_kind(p) for p in target.params}
    dims = {name: _dims(value, kinds.get(name)) for name, value in args.items()}
    out: list[Violation] = []
    specs = target.specs
    seen: dict[str, tuple[str, int]] = {}
    for name, spec in specs.items():
        shape = dims.get(name)
        if shape is None:
            continue
        if spec.rank is not None and len(shape) != spec.rank:
            out.append(Violation(f"{name} must have {spec.rank} axes", (name,)))
            continue
        if len(shape) < spec.min_ndim:
            out.append(Violation(f"{name} must have at least {spec.min_ndim} axis", (name,)))
        partner = spec.same_as
        if partner and dims.get(partner) is not None and shape != dims[partner]:
            out.append(Violation(f"{name} must have the shape of {partner}", (name, partner)))
        for axis, symbol in spec.symbols(len(shape)).items():
            if symbol in seen and seen[symbol][1] != shape[axis]:
                other = seen[symbol][0]
                out.append(Violation(f"{other} and {name} disagree on {symbol}", (other, name)))
            seen.setdefault(symbol, (name, shape[axis]))
    out += _dtype_violations(args, kinds)
    out += _mapping_violations(args)
    out += _receiver_violations(args, receiver)
    return out


def _dtype_violations(args: Mapping[str, Any], kinds: dict[str, str | None]) -> list[Violation]:
    """House rule: the numeric arrays of a call share one dtype (integer labels excepted)."""
    dtypes = {}
    for name, value in args.items():
        if kinds.get(name) != "array" or not isinstance(value, np.ndarray):
            continue
        if name == "labels" and value.dtype.kind in "iu":
            continue
        if value.dtype.kind in "fiuO":
            dtypes[name] = value.dtype
    model = args.get("model")
    if isinstance(model, refcnn.Sequential) and model.built and "x" in dtypes:
        dtypes["model"] = model.layers[0].dtype
    if len(set(dtypes.values())) > 1:
        return [Violation(f"{', '.join(dtypes)} must share one dtype", tuple(dtypes))]
    return []


def _mapping_violations(args: Mapping[str, Any]) -> list[Violation]:
    parameters, gradients = args.get("parameters"), args.get("gradients")
    if not (isinstance(parameters, dict) and isinstance(gradients, dict)):
        return []
    both = ("parameters", "gradients")
    if parameters.keys() != gradients.keys():
        return [Violation("parameters and gradients must have the same keys", both)]
    for key, value in parameters.items():
        grad = gradients[key]
        if not (isinstance(value, np.ndarray) and isinstance(grad, np.ndarray)):
            continue
        if value.shape != grad.shape or value.dtype != grad.dtype:
            return [Violation(f"parameters and gradients differ at {key!r}", both)]
    return []


def _receiver_violations(args: Mapping[str, Any], receiver: Any) -> list[Violation]:
    """A built layer or model takes only its input shape and dtype, and dy of its output."""
    model = args.get("model")
    for owner in (receiver, model):
        if not isinstance(owner, refcnn.Layer | refcnn.Sequential) or not owner.built:
            continue
        x = args.get("x")
        dtype = owner.dtype if isinstance(owner, refcnn.Layer) else owner.layers[0].dtype
        if isinstance(x, np.ndarray) and (x.shape[1:] != owner.input_shape or x.dtype != dtype):
            return [Violation("x must have the built input shape and dtype", ("x",))]
        dy = args.get("dy")
        last = getattr(owner, "_last_output_shape", None)
        if isinstance(owner, refcnn.Sequential) and owner.layers:
            last = owner.layers[-1]._last_output_shape
        if isinstance(dy, np.ndarray) and last is not None and dy.shape != last:
            return [Violation("dy must have the last output's shape", ("dy",))]
    labels_ = args.get("labels")
    x = args.get("x")
    if isinstance(model, refcnn.Sequential) and isinstance(labels_, np.ndarray):
        if labels_.dtype.kind not in "iu":
            return [Violation("labels must be class indices", ("labels",))]
        if isinstance(x, np.ndarray) and x.ndim and labels_.shape != x.shape[:1]:
            return [Violation("labels must have one entry per sample of x", ("labels", "x"))]
    return []


# --- calls ---------------------------------------------------------------------------------


class Call(NamedTuple):
    """One fuzzed call; its repr is a reproducer."""

    target: Target
    values: dict[str, Value]
    corrupted: dict[str, Corruption]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        notes = "; ".join(
            f"{k}: {c.what} ({'invalid' if c.invalid else 'maybe'})"
            for k, c in self.corrupted.items()
        )
        return f"{self.target.name}({args})  # {notes or 'valid'}"


def fuzzable(target: Target) -> bool:
    """Whether the target has a parameter to corrupt (``load_digits`` has none)."""
    return any(contract_kind(p) is not None for p in target.params)


@st.composite
def bad_calls(draw: st.DrawFn, target: Target) -> Call:
    """A target's valid call with one or two of its arguments corrupted."""
    base = baseline(target)
    examples = {k: v.build() for k, v in base.prepared.values.items()}
    choices = {
        p.name: corruptions(target, p, examples.get(p.name), base.world.rank) for p in target.params
    }
    names = sorted(name for name, found in choices.items() if found)
    picked = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    values = dict(base.prepared.values)
    corrupted = {}
    for name in picked:
        corrupted[name] = draw(st.sampled_from(choices[name]))
        values[name] = corrupted[name].value
    if any(contract_kind(target.param(name)) in {"array", "shape"} for name in picked):
        # The rank may have changed with that argument: a length is no longer invalid.
        corrupted = {
            k: c._replace(invalid=False) if c.per_rank else c for k, c in corrupted.items()
        }
    return Call(target, values, corrupted)


# --- checks --------------------------------------------------------------------------------


def _array_snapshot(value: np.ndarray[Any, Any]) -> Any:
    head = (value.dtype.str, value.shape, value.strides, value.flags.writeable)
    if not value.flags.writeable:
        return (*head, "read-only")  # cannot change (and may be a terabyte view)
    return (*head, value.tolist() if value.dtype.kind == "O" else value.tobytes())


#: What can change in the objects refcnn owns (their parameters, not their caches).
_STATE: list[tuple[type, Callable[[Any], Any]]] = [
    (np.ndarray, _array_snapshot),
    (refcnn.Sequential, lambda m: ("model", snapshot(m.parameters()), m.built)),
    (refcnn.SGD, lambda o: ("sgd", o.lr, o.momentum, snapshot(o.velocity))),
    (refcnn.Layer, lambda layer: ("layer", layer.name, snapshot(layer.params))),
    (dict, lambda d: ("dict", tuple((show(k), snapshot(v)) for k, v in d.items()))),
    (list, lambda items: ("list", tuple(snapshot(v) for v in items))),
    (tuple, lambda items: ("tuple", tuple(snapshot(v) for v in items))),
]


def snapshot(value: Any) -> Any:
    """A comparable copy of everything a call could change in ``value``."""
    for kind, state in _STATE:
        if isinstance(value, kind):
            return state(value)
    return ("value", type(value).__name__, show(value))


def _same(a: Any, b: Any) -> bool:
    """Bitwise equality of results (NaN payloads included; floats by their bits)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and snapshot(a) == snapshot(b)
        )
    if isinstance(a, float) and isinstance(b, float):
        return a.hex() == b.hex() if a == a else b != b  # noqa: PLR0124 (NaN test)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, refcnn.Layer | refcnn.Sequential | refcnn.SGD):
        return type(a) is type(b) and repr(a) == repr(b) and snapshot(a) == snapshot(b)
    return type(a) is type(b) and a == b


def _named(word: str, message: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w])", message) is not None


def check_call(call: Call) -> None:
    """Run one call and hold it to the checks listed in the module docstring."""
    target = call.target
    base = baseline(target)
    prepared = target.prepare(base.world) if base.prepared.receiver is not None else base.prepared
    assert prepared is not None
    args = {k: v.build() for k, v in call.values.items()}
    before = {k: snapshot(v) for k, v in args.items()}
    strict = [k for k, c in call.corrupted.items() if c.invalid]
    violations = relational_violations(target, args, prepared.receiver)
    invalid = [f"{k}: {call.corrupted[k].what}" for k in strict] + [v.rule for v in violations]
    cost = run_within(lambda: prepared.call(args))
    where = f"{call!r}\n  -> {cost.error!r}"
    assert cost.seconds < BUDGET_SECONDS, f"took {cost.seconds:.2f} s: {where}"
    assert cost.peak_bytes < BUDGET_BYTES, f"peak {cost.peak_bytes / MIB:.0f} MiB: {where}"
    error = cost.error
    if error is None:
        assert not invalid, f"accepted invalid input ({'; '.join(invalid)}): {where}"
    else:
        paths = [k for k in call.corrupted if contract_kind(target.param(k)) == "path"]
        allowed: tuple[type[BaseException], ...] = (ValueError, TypeError)
        if paths:
            allowed = (*allowed, FileNotFoundError)
        assert isinstance(error, allowed), f"raised {type(error).__name__}: {where}"
        message = str(error)
        owners = target.owners
        if isinstance(args.get("name"), str) and args["name"]:
            owners = (*owners, args["name"])  # a layer is named by its name
        assert any(_named(owner, message) for owner in owners), (
            f"the message names none of {owners}: {where}"
        )
        if strict and len(call.corrupted) == 1 and not violations:
            names = strict  # the one bad argument must be the one named
        elif invalid:  # the first problem found may be in any argument involved
            names = [*call.corrupted, *(n for v in violations for n in v.names)]
        else:  # maybe-valid values refused: the message still names some argument
            names = [p.name for p in target.params]
        named = any(_named(n, message) for n in names) or any(
            str(args[k]) in message for k in paths
        )
        assert named, f"the message names none of {names}: {where}"
    for name, value in args.items():
        if name in UPDATED.get(target.name, ()) and error is None:
            continue
        assert snapshot(value) == before[name], f"argument {name} was modified: {where}"


def check_valid_call(target: Target) -> None:
    """The valid call, twice: bitwise-identical results, inputs unchanged, within budget."""
    base = baseline(target)
    results = []
    for _ in range(2):
        prepared = target.prepare(base.world)
        assert prepared is not None
        args = {k: v.build() for k, v in prepared.values.items()}
        assert not relational_violations(target, args, prepared.receiver), (
            f"the valid call of {target.name} breaks its own docstring's shapes"
        )
        before = {k: snapshot(v) for k, v in args.items()}
        cost = run_within(lambda prepared=prepared, args=args: prepared.call(args))
        assert cost.error is None, f"{target.name}: valid call raised {cost.error!r}"
        assert cost.seconds < BUDGET_SECONDS, f"{target.name}: took {cost.seconds:.2f} s"
        assert cost.peak_bytes < BUDGET_BYTES, f"{target.name}: peak {cost.peak_bytes} bytes"
        for name, value in args.items():
            if name not in UPDATED.get(target.name, ()):
                assert snapshot(value) == before[name], f"{target.name} modified {name}"
        results.append(cost.result)
    assert _same(results[0], results[1]), f"{target.name}: two valid calls differ"
