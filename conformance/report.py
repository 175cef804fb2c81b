"""The conformance report: a matrix function x framework x dtype, as JSON and Markdown.

The harness records, per key ``(function, framework, dtype)``: how many examples ran; how
many the framework could not express, with the reasons; how many it was compared on under a
documented rule (subnormals flushed to zero, max-pool ties broken, float16 partial sums past
the range not compared, a kernel's documented absolute accuracy), with the rule; whether the
function is not implemented; and the largest normalized error of the implementation and of
the framework against the float64 oracle (1 is the tolerance). The pytest hooks in
``conftest.py`` add each test's outcome. Under pytest-xdist every worker writes its rows to
``<report-dir>/partial/<worker>.json`` and the controller merges them (:func:`merge`) into
``report.json`` and ``report.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Collector", "Row", "load_partials", "merge", "render_markdown", "write_report"]

Key = tuple[str, str, str]


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _dump_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return repr(value)  # "inf"/"nan": JSON has no literal for them


def _load_float(value: float | str | None) -> float | None:
    return None if value is None else float(value)


@dataclasses.dataclass
class Row:
    """Everything known about one (function, framework, dtype)."""

    function: str
    framework: str
    dtype: str
    examples: int = 0
    not_expressible: int = 0
    not_expressible_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    rule: int = 0
    rule_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    not_implemented: str = ""
    max_err_impl: float | None = None
    max_err_framework: float | None = None
    outcome: str = ""  # pytest outcome: passed, failed, skipped, error
    failure: str = ""  # first line of the failure

    @property
    def key(self) -> Key:
        """``(function, framework, dtype)``."""
        return (self.function, self.framework, self.dtype)

    @property
    def status(self) -> str:
        """pass, FAIL, ERROR, not implemented, skipped, or not run."""
        if self.outcome == "failed":
            return "FAIL"
        if self.outcome == "error":
            return "ERROR"
        if self.not_implemented:
            return "not implemented"
        if self.outcome == "passed":
            return "pass"
        return self.outcome or "not run"

    def absorb(self, other: Row) -> None:
        """Merge another record of the same key into this one."""
        self.examples += other.examples
        self.not_expressible += other.not_expressible
        reasons = Counter(self.not_expressible_reasons)
        reasons.update(other.not_expressible_reasons)
        self.not_expressible_reasons = dict(reasons)
        self.rule += other.rule
        rule_reasons = Counter(self.rule_reasons)
        rule_reasons.update(other.rule_reasons)
        self.rule_reasons = dict(rule_reasons)
        self.not_implemented = self.not_implemented or other.not_implemented
        self.max_err_impl = _max(self.max_err_impl, other.max_err_impl)
        self.max_err_framework = _max(self.max_err_framework, other.max_err_framework)
        rank = ["", "skipped", "passed", "failed", "error"]
        if rank.index(other.outcome) > rank.index(self.outcome):
            self.outcome = other.outcome
        self.failure = self.failure or other.failure

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite errors as strings) with the derived status."""
        data = dataclasses.asdict(self)
        data["max_err_impl"] = _dump_float(self.max_err_impl)
        data["max_err_framework"] = _dump_float(self.max_err_framework)
        data["status"] = self.status
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        """Inverse of :meth:`to_json`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        row = cls(**{k: v for k, v in data.items() if k in fields})
        row.max_err_impl = _load_float(data.get("max_err_impl"))
        row.max_err_framework = _load_float(data.get("max_err_framework"))
        return row


class Collector:
    """Rows recorded by one process (the :class:`conformance.harness.Recorder` protocol)."""

    def __init__(self) -> None:
        self.rows: dict[Key, Row] = {}

    def row(self, key: Key) -> Row:
        """Return the row of ``key``, created on first use."""
        if key not in self.rows:
            self.rows[key] = Row(*key)
        return self.rows[key]

    def example(self, key: Key) -> None:
        """Count one example."""
        self.row(key).examples += 1

    def impl_error(self, key: Key, err: float) -> None:
        """Record the implementation's normalized error on one example."""
        row = self.row(key)
        row.max_err_impl = _max(row.max_err_impl, err)

    def framework_error(self, key: Key, err: float) -> None:
        """Record the framework's normalized error on one example."""
        row = self.row(key)
        row.max_err_framework = _max(row.max_err_framework, err)

    def not_expressible(self, key: Key, reason: str) -> None:
        """Count one example the framework could not express."""
        row = self.row(key)
        row.not_expressible += 1
        row.not_expressible_reasons[reason] = row.not_expressible_reasons.get(reason, 0) + 1

    def rule(self, key: Key, reason: str) -> None:
        """Count one framework example compared under a documented rule (``reason``)."""
        row = self.row(key)
        row.rule += 1
        row.rule_reasons[reason] = row.rule_reasons.get(reason, 0) + 1

    def not_implemented(self, key: Key, reason: str) -> None:
        """Mark the function not implemented by the implementation or the oracle."""
        self.row(key).not_implemented = reason

    def outcome(self, key: Key, outcome: str, failure: str = "") -> None:
        """Record the pytest outcome of the key's test."""
        row = self.row(key)
        row.absorb(Row(*key, outcome=outcome, failure=failure))

    def dump(self, path: Path) -> None:
        """Write the rows as JSON (a worker's partial report)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([r.to_json() for r in self.rows.values()], indent=1))


def merge(row_lists: Iterable[Iterable[Row]]) -> list[Row]:
    """Combine rows from several processes, sorted by function, framework, dtype."""
    merged: dict[Key, Row] = {}
    for rows in row_lists:
        for row in rows:
            if row.key in merged:
                merged[row.key].absorb(row)
            else:
                merged[row.key] = dataclasses.replace(row)
    return [merged[k] for k in sorted(merged)]


def load_partials(directory: Path) -> list[list[Row]]:
    """Load every partial report in ``directory``."""
    return [
        [Row.from_json(d) for d in json.loads(path.read_text())]
        for path in sorted(directory.glob("*.json"))
    ]


def _err(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}"


def render_markdown(rows: list[Row], meta: Mapping[str, Any]) -> str:
    """Render the report as Markdown: header, matrix, not-expressible reasons, failures."""
    frameworks = ", ".join(f"{k} {v}" for k, v in meta.get("frameworks", {}).items()) or "none"
    counts = Counter(r.status for r in rows)
    lines = [
        "# refcnn conformance report",
        "",
        f"- implementation: `{meta.get('impl')}` {meta.get('impl_version', '')}".rstrip(),
        f"- frameworks: {frameworks}",
        *(
            f"- not compared: {name} ({why})"
            for name, why in meta.get("frameworks_excluded", {}).items()
        ),
        *(
            f"- {name}: " + ", ".join(f"{k} {v}" for k, v in info.items())
            for name, info in meta.get("framework_setup", {}).items()
        ),
        f"- device: {meta.get('device', 'cpu')}",
        f"- numpy {meta.get('numpy')}, hypothesis {meta.get('hypothesis')}, "
        f"python {meta.get('python')}",
        f"- profile: {meta.get('profile')}; date: {meta.get('date')}",
        "- errors are normalized (|out - truth| / bound, tolerance 1; see "
        "conformance/tolerance.py)",
        f"- summary: {', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'no tests'}",
        "",
        "| function | framework | dtype | examples | not expressible | rule | "
        "not implemented | impl err | framework err | status |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        fw_err = _err(r.max_err_framework) if r.framework != "none" else "n/a"
        lines.append(
            f"| {r.function} | {r.framework} | {r.dtype} | {r.examples} | {r.not_expressible} "
            f"| {r.rule} | {'yes' if r.not_implemented else ''} | {_err(r.max_err_impl)} "
            f"| {fw_err} | {r.status} |"
        )
    reasons = [r for r in rows if r.not_expressible_reasons]
    if reasons:
        lines += ["", "## Not expressible", ""]
        for r in reasons:
            for reason, n in sorted(r.not_expressible_reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"- {r.function} / {r.framework} / {r.dtype}: {n} x {reason}")
    ruled = [r for r in rows if r.rule_reasons]
    if ruled:
        lines += [
            "",
            "## Documented rule differences",
            "",
            "Examples a framework was compared on under a documented rule (the "
            "implementation always gets the original inputs and every element): subnormals "
            "flushed to zero (FTZ/DAZ), max-pool ties broken toward refcnn's first maximum "
            "for frameworks with another MAX_POOL_TIE_RULE, float16 elements whose partial "
            "sums can pass 65504 not compared, a kernel's measured absolute accuracy. See "
            "conformance/harness.py.",
            "",
        ]
        for r in ruled:
            for reason, n in sorted(r.rule_reasons.items(), key=lambda kv: -kv[1]):
                lines.append(f"- {r.function} / {r.framework} / {r.dtype}: {n} x {reason}")
    limits = meta.get("framework_limits", {})
    if any(limits.values()):
        lines += ["", "## What the frameworks cannot express (their adapters' LIMITS)", ""]
        for name, topics in limits.items():
            lines += [f"- {name} / {topic}: {why}" for topic, why in topics.items()]
    failures = [r for r in rows if r.failure or r.not_implemented]
    if failures:
        lines += ["", "## Failures and gaps", ""]
        lines += [
            f"- {r.function} / {r.framework} / {r.dtype}: {r.failure or r.not_implemented}"
            for r in failures
        ]
    return "\n".join(lines) + "\n"


def write_report(directory: Path, rows: list[Row], meta: Mapping[str, Any]) -> str:
    """Write ``report.json`` and ``report.md`` into ``directory``; return the Markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(rows, meta)
    payload = {"meta": dict(meta), "rows": [r.to_json() for r in rows]}
    (directory / "report.json").write_text(json.dumps(payload, indent=1) + "\n")
    (directory / "report.md").write_text(markdown)
    return markdown
