"""Framework adapters: each framework's forward ops, and refcnn's whole API derived from them.

An adapter module ``conformance/frameworks/<name>.py`` (discovered by file name; modules
starting with ``_`` are helpers) supplies

- its identity as module constants, read without importing it (:func:`discover`):
  ``NAME``, ``REQUIRES`` (the import name whose presence makes it available),
  ``DISTRIBUTIONS`` (where its version comes from), ``DEVICES`` (``"cpu"``, ``"cuda"``),
  ``LIMITS`` (what it cannot express in general, by topic, for the report);
- the forward ops, under refcnn's names and signatures, on the framework's own tensors
  (floating arrays arrive converted by ``tensor``; integer arrays such as class labels
  stay NumPy); all layout and padding translation lives there, pads from
  :mod:`refcnn.padding`; a case the framework cannot run faithfully raises
  :class:`NotExpressible` with the exact reason;
- ``tensor(array)`` and ``array(t)`` (a fresh NumPy copy, never a view of framework memory);
- ``vjp(f, primals, cotangent)``: its one vector-Jacobian primitive (``torch.autograd.grad``,
  ``tf.GradientTape``, ``jax.vjp``), ``cotangent=None`` meaning ones; ``None`` for a
  framework without autodiff, whose backward functions are then not expressible;
- ``setup(device, allow_tf32)``: determinism and placement, returning what the report
  records (device, library versions, reduced-precision math);
- optionally ``evaluate(f, tensors)``, how it runs ``f(*tensors)`` (JAX compiles it), and
  ``OVERRIDES`` (backward name -> ``(function, reason)``) and
  ``GRADIENT_FORWARDS`` (forward name -> ``(function, reason)``), only for documented quirks,
  ``ABSOLUTE_ACCURACY`` (function -> ``(k, reason)``: a kernel measured to be accurate to
  ``k`` eps in absolute terms only, compared under that documented rule, counted in the
  report), ``MAX_POOL_TIE_RULE``, and ``train_network`` for the network-level test.

Every backward function of the API is derived here, once, from the op registry
(:mod:`conformance.ops`): the VJP of the adapter's forward with the caller's upstream
gradient, evaluated where the registry says (zeros for the inputs a linear op does not
depend on). Importing this package imports no framework.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from conformance.ops import REGISTRY, Gradient, JacobianRows, SameAs

__all__ = ["Adapter", "AdapterInfo", "NotExpressible", "adapter", "discover", "load"]

_PACKAGE_DIR = Path(__file__).resolve().parent


class NotExpressible(Exception):  # noqa: N818 - the name the harness and reports use
    """The framework cannot faithfully compute this case; the message says exactly what.

    ``whole=True`` says no case of this function and dtype can be expressed (ONNX Runtime
    has no float64 Conv kernel): the harness then counts it without drawing replacements.
    """

    def __init__(self, message: str, *, whole: bool = False) -> None:
        super().__init__(message)
        self.whole = whole


class AdapterInfo(NamedTuple):
    """An adapter's identity, read from its module constants without importing it."""

    name: str
    module: str
    requires: str
    distributions: tuple[str, ...]
    devices: tuple[str, ...]

    def unavailable(self) -> str:
        """Why the framework cannot be compared here ('' when it can)."""
        if importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} is not installed"
        return ""


def _constants(path: Path) -> dict[str, Any]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.isupper() and node.value:
                    try:
                        found[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        continue
    return found


def discover() -> dict[str, AdapterInfo]:
    """Every adapter module of this package, by framework name (sorted)."""
    infos = {}
    for module in sorted(pkgutil.iter_modules([str(_PACKAGE_DIR)]), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        constants = _constants(_PACKAGE_DIR / f"{module.name}.py")
        name = str(constants.get("NAME", module.name))
        infos[name] = AdapterInfo(
            name=name,
            module=f"{__name__}.{module.name}",
            requires=str(constants.get("REQUIRES", module.name)),
            distributions=tuple(constants.get("DISTRIBUTIONS", (module.name,))),
            devices=tuple(constants.get("DEVICES", ("cpu",))),
        )
    return infos


def _is_floating(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _signature(op: str) -> inspect.Signature:
    # refcnn's signature is the contract: adapters are called exactly as refcnn is.
    refcnn = importlib.import_module("refcnn")
    return inspect.signature(getattr(refcnn, op))


def _bind(op: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    bound = _signature(op).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _dtype_of(values: Mapping[str, Any]) -> np.dtype[Any]:
    floating = [v.dtype for v in values.values() if _is_floating(v)]
    return floating[0] if floating else np.dtype(np.float64)


class Adapter:
    """One framework's complete refcnn API: its forwards wrapped, its backwards derived.

    :meth:`function` returns the NumPy-in, NumPy-out callable for a function name, or None
    when the framework cannot express it at all (:meth:`why_not` says why).
    """

    def __init__(self, module: ModuleType, info: AdapterInfo) -> None:
        self.module = module
        self.info = info
        self.name = info.name
        self.tie_rule: str = getattr(module, "MAX_POOL_TIE_RULE", "first")
        self.limits: dict[str, str] = dict(getattr(module, "LIMITS", {}))
        self.overrides: dict[str, tuple[Callable[..., Any], str]] = dict(
            getattr(module, "OVERRIDES", {})
        )
        self.gradient_forwards: dict[str, tuple[Callable[..., Any], str]] = dict(
            getattr(module, "GRADIENT_FORWARDS", {})
        )
        self.absolute_accuracy: dict[str, tuple[float, str]] = dict(
            getattr(module, "ABSOLUTE_ACCURACY", {})
        )
        self._registry = REGISTRY
        self._functions: dict[str, Callable[..., Any] | None] = {}
        self._reasons: dict[str, str] = {}
        for op in REGISTRY:
            self._functions[op] = self._build(op)

    # -- public ------------------------------------------------------------------------------

    def function(self, op: str) -> Callable[..., Any] | None:
        """Return the adapter's ``op`` (NumPy in and out), or None when it cannot express it."""
        return self._functions.get(op)

    def why_not(self, op: str) -> str:
        """Why :meth:`function` is None for ``op``."""
        return self._reasons.get(op, f"the {self.name} adapter has no {op}")

    def __getattr__(self, op: str) -> Callable[..., Any]:
        # adapter("torch").conv2d_backward_input(...): what the harness's reproducers call.
        functions = self.__dict__.get("_functions", {})
        if functions.get(op) is None:
            msg = f"{op}: {self.why_not(op)}" if op in functions else op
            raise AttributeError(msg)
        function: Callable[..., Any] = functions[op]
        return function

    # -- construction ----------------------------------------------------------------------

    def _forward(self, op: str) -> Callable[..., Any] | None:
        function = getattr(self.module, op, None)
        return function if callable(function) else None

    def _build(self, op: str) -> Callable[..., Any] | None:  # noqa: PLR0911 - one per route
        if op in self.overrides:
            return self.overrides[op][0]
        spec = self._registry[op]
        derivation = spec.derivation
        if isinstance(derivation, SameAs):
            own = self._forward(op)  # an adapter may still write the restricted form itself
            if own is not None:
                return self._wrap_forward(op, own)
            function = self._functions.get(derivation.of) or self._build(derivation.of)
            if function is None:
                self._reasons[op] = f"{op} is {derivation.of}: {self.why_not(derivation.of)}"
            return function
        if derivation is None:
            forward = self._forward(op)
            if forward is None:
                self._reasons[op] = f"the {self.name} adapter has no forward {op}"
                return None
            return self._wrap_forward(op, forward)
        if isinstance(derivation, JacobianRows):
            return self._jacobian(op, derivation)
        if getattr(self.module, "vjp", None) is None:
            self._reasons[op] = (
                f"{self.name} has no automatic differentiation: backward functions are not "
                "expressible"
            )
            return None
        if derivation.unless:
            self._reasons[op] = (
                f"{op} cannot be derived generically ({derivation.unless}) and the "
                f"{self.name} adapter has no override for it"
            )
            return None
        forward = self._forward(derivation.forward)
        if derivation.forward in self.gradient_forwards:
            forward = self.gradient_forwards[derivation.forward][0]
        if forward is None:
            self._reasons[op] = f"the {self.name} adapter has no forward {derivation.forward}"
            return None
        return self._vjp(op, derivation, forward)

    def _convert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.module.tensor(v) if _is_floating(v) else v for k, v in values.items()}

    def _evaluate(self, f: Callable[..., Any], tensors: list[Any]) -> Any:
        # An adapter may compile what it runs (JAX's jit); by default f runs eagerly.
        evaluate = getattr(self.module, "evaluate", None)
        return f(*tensors) if evaluate is None else evaluate(f, tensors)

    def _wrap_forward(self, op: str, forward: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            params = _bind(op, args, kwargs)
            names = [name for name, value in params.items() if _is_floating(value)]
            constants = {k: v for k, v in params.items() if k not in names}

            def f(*tensors: Any) -> Any:
                return forward(**constants, **dict(zip(names, tensors, strict=True)))

            tensors = [self.module.tensor(params[name]) for name in names]
            result = self._evaluate(f, tensors)
            if isinstance(result, tuple | list):  # several outputs (y, argmax)
                return tuple(self.module.array(r) for r in result)
            return self.module.array(result)

        call.__name__ = op
        return call

    def _vjp(self, op: str, gradient: Gradient, forward: Callable[..., Any]) -> Callable[..., Any]:
        forward_params = list(_signature(gradient.forward).parameters)

        def call(*args: Any, **kwargs: Any) -> Any:
            params = _bind(op, args, kwargs)
            dtype = _dtype_of(params)
            primals: dict[str, Any] = {}
            for name in forward_params:
                if name in gradient.zeros:
                    primals[name] = np.zeros(gradient.zeros[name](params), dtype=dtype)
                elif name in params:
                    primals[name] = params[name]
            constants = self._convert({k: v for k, v in primals.items() if k not in gradient.wrt})
            sources = [self.module.tensor(primals[name]) for name in gradient.wrt]

            def f(*tensors: Any) -> Any:
                return forward(**constants, **dict(zip(gradient.wrt, tensors, strict=True)))

            cotangent = None
            if gradient.cotangent is not None:
                cotangent = self.module.tensor(params[gradient.cotangent])
            grads = self.module.vjp(f, sources, cotangent)
            outputs = tuple(self.module.array(g) for g in grads)
            return outputs[0] if len(outputs) == 1 else outputs

        call.__name__ = op
        return call

    def _jacobian(self, op: str, rows: JacobianRows) -> Callable[..., Any] | None:
        backward = self._functions.get(rows.backward) or self._build(rows.backward)
        if backward is None:
            self._reasons[op] = f"{op} is built from {rows.backward}: {self.why_not(rows.backward)}"
            return None

        def call(*args: Any, **kwargs: Any) -> Any:
            params = _bind(op, args, kwargs)
            at = np.moveaxis(params[rows.at], params["axis"], -1)
            k = at.shape[-1]
            if k == 0:
                return np.zeros((*at.shape, 0), dtype=at.dtype)
            basis = np.eye(k, dtype=at.dtype)
            lines = [
                backward(
                    **{rows.cotangent: np.broadcast_to(basis[i], at.shape).copy()},
                    **{rows.at: at, "axis": -1},
                )
                for i in range(k)
            ]
            return np.stack(lines, axis=-2)

        call.__name__ = op
        return call


def load(info: AdapterInfo) -> Adapter:
    """Import an adapter module and build its complete API (no setup: see :func:`adapter`)."""
    return Adapter(importlib.import_module(info.module), info)


def adapter(name: str, *, device: str = "cpu", allow_tf32: bool = False) -> Adapter:
    """Load framework ``name``'s adapter and set it up as the suite does (for reproducers)."""
    loaded = load(discover()[name])
    loaded.module.setup(device, allow_tf32=allow_tf32)
    return loaded
