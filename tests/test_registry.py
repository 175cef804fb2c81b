"""The conformance registry covers refcnn's API, and the adapters' quirk overrides are real.

NumPy only: the registry and the adapters' constants are read without importing a framework
(adapter modules through :mod:`ast`).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import refcnn
from conformance.calls import SHAPE_SOURCES, parameters, signature
from conformance.frameworks import discover
from conformance.ops import REGISTRY, Gradient, JacobianRows

# Public functions the per-op suite does not check, and why (each is covered elsewhere).
NOT_PER_OP = {
    "evaluate": "a model-level loop over the functions; tests/test_layers.py",
    "load_digits": "data loading; tests/test_datasets.py",
    "load_mnist": "data loading; tests/test_datasets.py",
    "train_step": "a model-level step; conformance/test_network.py trains through it",
}
ADAPTER_DIR = Path(__file__).resolve().parents[1] / "conformance" / "frameworks"


def _public_functions() -> list[str]:
    return [n for n in refcnn.__all__ if inspect.isfunction(getattr(refcnn, n))]


def test_every_public_function_is_in_the_registry_or_explained() -> None:
    missing = [n for n in _public_functions() if n not in REGISTRY and n not in NOT_PER_OP]
    assert not missing, f"add a row to conformance/ops.py for {missing}"
    stale = [n for n in NOT_PER_OP if n not in refcnn.__all__]
    assert not stale, stale


@pytest.mark.parametrize("op", list(REGISTRY))
def test_registry_rows_fit_refcnn(op: str) -> None:
    spec = REGISTRY[op]
    assert spec.name == op
    assert op in refcnn.__all__, f"{op} is not a public refcnn function"
    assert len(spec.outputs) >= 1
    derivation = spec.derivation
    if isinstance(derivation, Gradient):
        forward = parameters(derivation.forward)
        assert set(derivation.wrt) <= forward, (op, derivation.wrt)
        if derivation.cotangent is not None:
            assert derivation.cotangent in signature(op).parameters
        assert len(derivation.wrt) == len(spec.outputs)
        # Every differentiated input is an argument of the backward or built as zeros (a
        # row marked `unless` says why that cannot be, and adapters must override it).
        if derivation.unless:
            return
        given = set(signature(op).parameters) | set(derivation.zeros)
        assert set(derivation.wrt) <= given | {SHAPE_SOURCES.get(n, n) for n in given}
    elif isinstance(derivation, JacobianRows):
        assert derivation.backward in REGISTRY
        assert derivation.at in signature(op).parameters


def _constants(path: Path) -> dict[str, ast.expr]:
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
    return found


@pytest.mark.parametrize("name", list(discover()))
def test_adapter_overrides_name_registered_functions_with_reasons(name: str) -> None:
    info = discover()[name]
    constants = _constants(ADAPTER_DIR / f"{info.module.rsplit('.', 1)[1]}.py")
    for table in ("OVERRIDES", "GRADIENT_FORWARDS", "ABSOLUTE_ACCURACY"):
        value = constants.get(table)
        if value is None:
            continue
        assert isinstance(value, ast.Dict), table
        for key, entry in zip(value.keys, value.values, strict=True):
            assert isinstance(key, ast.Constant), table
            assert key.value in REGISTRY, f"{name}.{table}: {key.value!r} is not a registry row"
            assert isinstance(entry, ast.Tuple), f"{name}.{table}[{key.value!r}]: (what, reason)"
            reason = entry.elts[-1]
            text = "".join(
                part.value
                for part in ast.walk(reason)
                if isinstance(part, ast.Constant) and isinstance(part.value, str)
            )
            assert len(text) > 40, f"{name}.{table}[{key.value!r}] needs its documented reason"
    for required in ("NAME", "REQUIRES", "DISTRIBUTIONS", "DEVICES"):
        assert required in constants, f"{name} adapter must declare {required}"
