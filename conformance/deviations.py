"""Declared deviations: what an implementation under test does differently, on purpose.

``--deviations FILE`` names a TOML file with one table per function. Each key is a rule the
harness knows; every example a rule changes is counted in the report (the "deviation"
column and section), and a declared rule that never fired is reported as stale::

    [max_pool2d_backward]
    tie_rule = "last"              # ties route the gradient to the last maximum
    reason = "our kernel scans windows backwards"

    [conv2d]
    same_split = "before"          # "SAME" puts the odd pad pixel before (ONNX SAME_LOWER)

    [dense]
    float16_accumulation = "float16"   # sums carried in float16 (may overflow on the way)

    [avg_pool2d]
    empty_results = "refused"      # raises ValueError instead of returning an empty result

    [softmax]
    tolerance_factor = 4.0         # bounds times 4 ...
    reason = "exp by a 3-ulp polynomial"   # ... and why (required with a factor)

    [conv2d_backward_filter]
    skip = "not written yet"       # leave the function out of the run (counted as skipped)

Rules, their meaning for the comparison:

- ``tie_rule = "last" | "any"``: max-pool backward examples with tied maxima are compared on a
  tie-free copy of ``x`` that keeps refcnn's routing (the adapters' rule for frameworks).
- ``same_split = "before"``: calls with ``padding="SAME"`` are compared with refcnn's
  ``"SAME_LOWER"`` (the odd pixel before; where the split is even both agree).
- ``float16_accumulation = "float16"``: in float16, elements whose partial sums can pass
  65504 are not compared (the frameworks' range rule, see :mod:`conformance.tolerance`).
- ``empty_results = "refused"``: a ``ValueError`` or ``NotImplementedError`` where the truth is
  empty is counted, not a failure.
- ``tolerance_factor = k`` with ``reason``: the implementation's bounds are multiplied by
  ``k`` (>= 1).
- ``skip = "reason"``: the function is not run; the gate does not require it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["RULES", "Deviations", "DeviationsError", "load_deviations"]

#: Every known rule and the values it accepts (None: a free text / number, checked below).
RULES: dict[str, tuple[Any, ...] | None] = {
    "tie_rule": ("last", "any"),
    "same_split": ("before",),
    "float16_accumulation": ("float16",),
    "empty_results": ("refused",),
    "tolerance_factor": None,
    "skip": None,
    "reason": None,
}


class DeviationsError(ValueError):
    """A deviations file that does not say something the harness understands."""


@dataclasses.dataclass
class Deviations:
    """Per function, the declared rules; counts of the examples each one changed."""

    rules: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    source: str = ""
    fired: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)

    def get(self, op: str, rule: str) -> Any:
        """Return the declared value of ``rule`` for ``op`` (None when not declared)."""
        return self.rules.get(op, {}).get(rule)

    def skipped(self, op: str) -> str:
        """Return why ``op`` is declared out of the run ('' when it is in)."""
        return str(self.get(op, "skip") or "")

    def describe(self, op: str, rule: str) -> str:
        """Return ``rule = value`` for the report, with the declared reason."""
        value = self.get(op, rule)
        reason = self.get(op, "reason")
        text = f"declared {rule} = {value!r} ({self.source})"
        return f"{text}: {reason}" if reason else text

    def declared(self) -> list[tuple[str, str]]:
        """List every declared ``(function, rule)``, reasons and skips excluded."""
        return [
            (op, rule)
            for op, table in self.rules.items()
            for rule in table
            if rule not in {"reason", "skip"}
        ]


def load_deviations(path: Path, functions: set[str]) -> Deviations:
    """Parse and validate a deviations file; ``functions`` are the ones the suite knows."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"--deviations {path}: {exc}"
        raise DeviationsError(msg) from exc
    rules: dict[str, dict[str, Any]] = {}
    for op, table in data.items():
        where = f"--deviations {path}: [{op}]"
        if op not in functions:
            msg = f"{where} is not a function of the suite (known: {', '.join(sorted(functions))})"
            raise DeviationsError(msg)
        if not isinstance(table, dict):
            msg = f"{where} must be a table of rules"
            raise DeviationsError(msg)
        for rule, value in table.items():
            if rule not in RULES:
                msg = f"{where}: unknown rule {rule!r} (known: {', '.join(RULES)})"
                raise DeviationsError(msg)
            allowed = RULES[rule]
            if allowed is not None and value not in allowed:
                msg = f"{where}: {rule} must be one of {allowed}, got {value!r}"
                raise DeviationsError(msg)
        factor = table.get("tolerance_factor")
        if factor is not None:
            if isinstance(factor, bool) or not isinstance(factor, int | float):
                msg = f"{where}: tolerance_factor must be a number, got {factor!r}"
                raise DeviationsError(msg)
            if not (math.isfinite(factor) and factor >= 1):
                msg = f"{where}: tolerance_factor must be finite and >= 1, got {factor!r}"
                raise DeviationsError(msg)
            if not table.get("reason"):
                msg = f'{where}: tolerance_factor needs a reason = "..." saying why'
                raise DeviationsError(msg)
        if "skip" in table and not (isinstance(table["skip"], str) and table["skip"]):
            msg = f"{where}: skip must be the reason, a non-empty string"
            raise DeviationsError(msg)
        rules[op] = dict(table)
    return Deviations(rules, str(path))
