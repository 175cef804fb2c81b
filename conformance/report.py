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
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_LISTED",
    "Collector",
    "Row",
    "gate_verdict",
    "load_partials",
    "merge",
    "render_markdown",
    "stale_deviations",
    "write_report",
]

Key = tuple[str, str, str]

#: How many distinct refused calls and warning messages a row keeps (the counts are exact).
MAX_LISTED = 20


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
    refused: int = 0  # examples the implementation refused with NotImplementedError
    refused_calls: dict[str, int] = dataclasses.field(default_factory=dict)
    deviation: int = 0  # examples compared under a declared deviation
    deviation_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    warnings: int = 0  # warnings the implementation emitted
    warning_messages: dict[str, int] = dataclasses.field(default_factory=dict)
    excluded: str = ""  # why the run left the function out (--functions, skip = ...)
    max_err_impl: float | None = None
    max_err_framework: float | None = None
    outcome: str = ""  # pytest outcome: passed, failed, skipped, error
    failure: str = ""  # first line of the first failure
    failures: list[str] = dataclasses.field(default_factory=list)  # every distinct failure

    @property
    def key(self) -> Key:
        """``(function, framework, dtype)``."""
        return (self.function, self.framework, self.dtype)

    @property
    def status(self) -> str:
        """pass, FAIL, ERROR, excluded, not implemented, skipped, or not run."""
        if self.outcome == "failed":
            return "FAIL"
        if self.outcome == "error":
            return "ERROR"
        if self.excluded:
            return "excluded"
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
        for count, table in (
            ("refused", "refused_calls"),
            ("deviation", "deviation_reasons"),
            ("warnings", "warning_messages"),
        ):
            setattr(self, count, getattr(self, count) + getattr(other, count))
            merged = Counter(getattr(self, table))
            merged.update(getattr(other, table))
            setattr(self, table, dict(merged))
        self.excluded = self.excluded or other.excluded
        self.failures = [*self.failures, *(f for f in other.failures if f not in self.failures)]
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
        """Mark the function missing from the implementation (or the oracle)."""
        self.row(key).not_implemented = reason

    def refused(self, key: Key, arguments: str) -> None:
        """Count one example the implementation refused, keeping a few distinct calls."""
        row = self.row(key)
        row.refused += 1
        if arguments in row.refused_calls or len(row.refused_calls) < MAX_LISTED:
            row.refused_calls[arguments] = row.refused_calls.get(arguments, 0) + 1

    def deviation(self, key: Key, reason: str) -> None:
        """Count one implementation example compared under a declared deviation."""
        row = self.row(key)
        row.deviation += 1
        row.deviation_reasons[reason] = row.deviation_reasons.get(reason, 0) + 1

    def warned(self, key: Key, message: str) -> None:
        """Count one warning of the implementation (distinct messages kept, up to a few)."""
        row = self.row(key)
        row.warnings += 1
        if message in row.warning_messages or len(row.warning_messages) < MAX_LISTED:
            row.warning_messages[message] = row.warning_messages.get(message, 0) + 1

    def excluded(self, key: Key, reason: str) -> None:
        """Mark the function left out of this run on purpose, and why."""
        self.row(key).excluded = reason

    def outcome(self, key: Key, outcome: str, failures: list[str] | None = None) -> None:
        """Record the pytest outcome of the key's test and the text of each failure."""
        texts = failures or []
        first = (texts[0].strip().splitlines() or [""])[0] if texts else ""
        row = self.row(key)
        row.absorb(Row(*key, outcome=outcome, failure=first, failures=texts))

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


def _pattern(reason: str) -> str:
    """Blank a reason's numbers (shapes, sizes), to group repeated reasons."""
    return re.sub(r"-?\d+", "#", reason)


def _grouped(reasons: Mapping[str, int]) -> list[tuple[int, str, int]]:
    """Group reasons that differ only in their numbers: (count, one example, variants)."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for reason, n in reasons.items():
        groups.setdefault(_pattern(reason), []).append((reason, n))
    out = [
        (sum(n for _, n in members), max(members, key=lambda m: m[1])[0], len(members))
        for members in groups.values()
    ]
    return sorted(out, key=lambda item: -item[0])


def stale_deviations(rows: Iterable[Row], declared: Iterable[tuple[str, str]]) -> list[str]:
    """List the declared ``(function, rule)`` deviations that no example of the run needed."""
    fired = {
        (r.function, reason.split(" ", 2)[1])
        for r in rows
        for reason in r.deviation_reasons
        if reason.startswith("declared ")
    }
    return [f"{op}: {rule}" for op, rule in declared if (op, rule) not in fired]


def gate_verdict(rows: list[Row], meta: Mapping[str, Any]) -> tuple[bool, str]:
    """Return ``(passed, why)``: the one-line verdict of the run as a gate."""
    failed = [r for r in rows if r.status in {"FAIL", "ERROR"}]
    missing = sorted({r.function for r in rows if r.not_implemented and not r.excluded})
    checked = [r for r in rows if r.status == "pass"]
    if not rows or (not checked and not failed):
        return False, "nothing was compared"
    if failed or missing:
        functions = sorted({r.function for r in failed})
        parts = [f"{len(failed)} of {len(rows)} rows fail ({', '.join(functions)})"]
        if missing:
            parts.append(f"missing from the implementation: {', '.join(missing)}")
        return False, "; ".join(parts)
    excluded = sorted({r.function for r in rows if r.excluded})
    refused = sum(r.refused for r in rows)
    parts = [f"{len(checked)} rows pass"]
    if excluded:
        parts.append(f"{len(excluded)} functions excluded on purpose ({', '.join(excluded)})")
    if refused:
        parts.append(f"{refused} cases refused by the implementation (listed in the report)")
    stale = meta.get("stale_deviations", [])
    if stale:
        parts.append(f"stale deviations: {', '.join(stale)}")
    return True, "; ".join(parts)


def render_markdown(rows: list[Row], meta: Mapping[str, Any]) -> str:
    """Render the report as Markdown: header, verdict, matrix, reasons, every failure."""
    frameworks = ", ".join(f"{k} {v}" for k, v in meta.get("frameworks", {}).items()) or "none"
    counts = Counter(r.status for r in rows)
    passed, why = gate_verdict(rows, meta)
    lines = [
        "# refcnn conformance report",
        "",
        f"**GATE: {'PASS' if passed else 'FAIL'}** ({why})",
        "",
        f"- implementation: `{meta.get('impl')}` {meta.get('impl_version', '')}".rstrip(),
        f"- frameworks: {frameworks}",
        *(
            f"- not compared: {name} ({reason})"
            for name, reason in meta.get("frameworks_excluded", {}).items()
        ),
        *(
            f"- {name}: " + ", ".join(f"{k} {v}" for k, v in info.items())
            for name, info in meta.get("framework_setup", {}).items()
        ),
        f"- device: {meta.get('device', 'cpu')}",
        f"- numpy {meta.get('numpy')}, hypothesis {meta.get('hypothesis')}, "
        f"python {meta.get('python')}",
        f"- profile: {meta.get('profile')} ({meta.get('max_examples', '?')} examples per "
        f"row{', seed ' + str(meta['seed']) if meta.get('seed') is not None else ''}); "
        f"date: {meta.get('date')}",
        *([f"- deviations: {meta['deviations']}"] if meta.get("deviations") else []),
        "- errors are normalized (|out - truth| / bound, tolerance 1; see "
        "conformance/tolerance.py)",
        f"- summary: {', '.join(f'{n} {s}' for s, n in sorted(counts.items())) or 'no tests'}",
        "",
        "| function | framework | dtype | examples | refused | not expressible | rule | "
        "deviation | warnings | impl err | framework err | status |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        fw_err = _err(r.max_err_framework) if r.framework != "none" else "n/a"
        lines.append(
            f"| {r.function} | {r.framework} | {r.dtype} | {r.examples} | {r.refused} "
            f"| {r.not_expressible} | {r.rule} | {r.deviation} | {r.warnings} "
            f"| {_err(r.max_err_impl)} | {fw_err} | {r.status} |"
        )
    lines += _reason_section(
        rows,
        "Not expressible",
        "not_expressible_reasons",
        "Cases a framework could not run faithfully (never silently skipped; reasons that "
        "differ only in their numbers are grouped).",
    )
    lines += _reason_section(
        rows,
        "Documented rule differences",
        "rule_reasons",
        "Examples a framework was compared on under a documented rule (the implementation "
        "always gets the original inputs and every element): subnormals flushed to zero "
        "(FTZ/DAZ), max-pool ties broken toward refcnn's first maximum for frameworks with "
        "another MAX_POOL_TIE_RULE, float16 elements whose partial sums can pass 65504 not "
        "compared, a kernel's measured absolute accuracy. See conformance/harness.py.",
    )
    lines += _reason_section(
        rows,
        "Declared deviations of the implementation",
        "deviation_reasons",
        "Examples compared under a rule the implementation declared (--deviations).",
    )
    stale = meta.get("stale_deviations", [])
    if stale:
        lines += ["", "Stale (declared, never needed): " + ", ".join(stale)]
    lines += _reason_section(
        rows,
        "Refused by the implementation",
        "refused_calls",
        "Cases the implementation raised NotImplementedError for (the function kept being "
        "tested on the others); a few distinct calls per row.",
        group=False,
    )
    lines += _reason_section(
        rows,
        "Warnings of the implementation",
        "warning_messages",
        "Warnings are counted, not failures, unless --strict-warnings; values come first.",
    )
    limits = meta.get("framework_limits", {})
    if any(limits.values()):
        lines += ["", "## What the frameworks cannot express (their adapters' LIMITS)", ""]
        for name, topics in limits.items():
            lines += [f"- {name} / {topic}: {text}" for topic, text in topics.items()]
    excluded = [r for r in rows if r.excluded]
    if excluded:
        lines += ["", "## Excluded on purpose", ""]
        lines += [f"- {r.function} / {r.framework} / {r.dtype}: {r.excluded}" for r in excluded]
    failing = [r for r in rows if r.failures or r.failure or r.not_implemented]
    if failing:
        lines += ["", "## Failures and gaps", ""]
        for r in failing:
            texts = r.failures or [r.failure or r.not_implemented]
            lines.append(f"### {r.function} / {r.framework} / {r.dtype}")
            for i, text in enumerate(texts, 1):
                lines += ["", f"Failure {i} of {len(texts)}:", "", "```", text.strip(), "```"]
            lines.append("")
    return "\n".join(lines) + "\n"


def _reason_section(
    rows: list[Row], title: str, field: str, intro: str, *, group: bool = True
) -> list[str]:
    with_reasons = [r for r in rows if getattr(r, field)]
    if not with_reasons:
        return []
    lines = ["", f"## {title}", "", intro, ""]
    for r in with_reasons:
        reasons: dict[str, int] = getattr(r, field)
        entries = _grouped(reasons) if group else [(n, text, 1) for text, n in reasons.items()]
        for n, example, variants in entries:
            more = f" (and {variants - 1} variants)" if variants > 1 else ""
            lines.append(f"- {r.function} / {r.framework} / {r.dtype}: {n} x {example}{more}")
    return lines


def write_report(directory: Path, rows: list[Row], meta: Mapping[str, Any]) -> str:
    """Write ``report.json`` and ``report.md`` into ``directory``; return the Markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(rows, meta)
    payload = {"meta": dict(meta), "rows": [r.to_json() for r in rows]}
    (directory / "report.json").write_text(json.dumps(payload, indent=1) + "\n")
    (directory / "report.md").write_text(markdown)
    return markdown
