"""The conformance harness must reject every mutant in the zoo and accept refcnn itself.

Each module in ``conformance/selftest/mutants`` is refcnn with ONE function replaced by a
subtly wrong version; it names the conformance test function that must catch it (``TARGET``)
and a ``-k`` expression selecting only that function (``K_EXPR``). Every mutant is run
through the harness in its own subprocess (``--framework none``: compared with refcnn in
float64 only, so no framework is imported), with the derandomized ``ci`` Hypothesis profile
and ``-x`` (the first failure is enough). The subprocesses of the selected tests are started
together, one per CPU (one in all under pytest-xdist, whose workers already fill the CPUs),
and each test waits for its own. A mutant that the harness passes is a hole in the
harness's generators or tolerances, not in the mutant: fix the harness.

The modules are read with :mod:`ast` (not imported), so discovery needs no ``sys.path`` setup
and a broken mutant shows up as a failing case rather than a collection error.
"""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

pytestmark = pytest.mark.zoo

REPO = Path(__file__).resolve().parents[1]
MUTANT_DIR = REPO / "conformance" / "selftest" / "mutants"
MUTANT_PACKAGE = "conformance.selftest.mutants"
MIN_MUTANTS = 12
# One subprocess can hang only through a harness bug; fail it instead of the whole run.
SUBPROCESS_TIMEOUT_S = 900


class Mutant(NamedTuple):
    """A zoo module's metadata, read from its source."""

    name: str
    docstring: str
    target: str
    k_expr: str


def _string_constant(tree: ast.Module, name: str) -> str:
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    return ""


def _load(name: str) -> Mutant:
    tree = ast.parse((MUTANT_DIR / f"{name}.py").read_text(encoding="utf-8"))
    return Mutant(
        name=name,
        docstring=ast.get_docstring(tree) or "",
        target=_string_constant(tree, "TARGET"),
        k_expr=_string_constant(tree, "K_EXPR"),
    )


MUTANTS = [_load(info.name) for info in sorted(pkgutil.iter_modules([str(MUTANT_DIR)]))]


def _run_harness(impl: str, k_expr: str, report_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "conformance",
        "--impl",
        impl,
        "--framework",
        "none",
        "-k",
        k_expr,
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--report-dir",
        str(report_dir),
    ]
    env = {**os.environ, "HYPOTHESIS_PROFILE": "ci"}
    return subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    tail = (result.stdout + result.stderr)[-6000:]
    return f"exit code {result.returncode}; command {' '.join(result.args)}\n{tail}"


REFCNN = "refcnn"
Runs = dict[str, "Future[subprocess.CompletedProcess[str]]"]


def _refcnn_k_expr() -> str:
    return " or ".join(f"({expr})" for expr in sorted({m.k_expr for m in MUTANTS}))


@pytest.fixture(scope="module")
def harness_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runs, dict[str, Path]]]:
    """Start every selected harness run at once; map mutant name (or "refcnn") to its run."""
    wanted: dict[str, tuple[str, str]] = {}
    for item in request.session.items:
        name = getattr(item, "originalname", item.name)
        callspec = getattr(item, "callspec", None)
        if name == "test_harness_accepts_refcnn":
            wanted[REFCNN] = (REFCNN, _refcnn_k_expr())
        elif name == "test_harness_rejects_mutant" and callspec is not None:
            mutant = callspec.params["mutant"]
            wanted[mutant.name] = (f"{MUTANT_PACKAGE}.{mutant.name}", mutant.k_expr)
    workers = 1 if "PYTEST_XDIST_WORKER" in os.environ else os.cpu_count() or 1
    report_dirs = {key: tmp_path_factory.mktemp(key) for key in wanted}
    executor = ThreadPoolExecutor(max_workers=workers)
    # refcnn's run is the longest (every example passes, nothing stops early): start it first.
    order = sorted(wanted, key=lambda key: key != REFCNN)
    runs = {key: executor.submit(_run_harness, *wanted[key], report_dirs[key]) for key in order}
    yield runs, report_dirs
    executor.shutdown(wait=True, cancel_futures=True)


def _statuses(report: Any, target: str) -> list[str]:
    """The ``status`` of every report.json row (one per framework x dtype) for ``target``."""
    function = target.removeprefix("test_")
    rows = report.get("rows", []) if isinstance(report, dict) else []
    return [str(r.get("status")) for r in rows if r.get("function") == function]


def test_zoo_is_large_enough() -> None:
    assert len(MUTANTS) >= MIN_MUTANTS, [m.name for m in MUTANTS]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_is_documented(mutant: Mutant) -> None:
    assert mutant.target.startswith("test_"), f"{mutant.name}: TARGET = {mutant.target!r}"
    assert mutant.k_expr, f"{mutant.name}: no K_EXPR"
    assert mutant.target.removeprefix("test_") in mutant.k_expr or mutant.target in mutant.k_expr
    assert "Bug" in mutant.docstring, f"{mutant.name}: the docstring must describe the bug"
    assert mutant.target in mutant.docstring, (
        f"{mutant.name}: the docstring must name the test that rejects it ({mutant.target})"
    )


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_harness_rejects_mutant(mutant: Mutant, harness_runs: tuple[Runs, dict[str, Path]]) -> None:
    runs, report_dirs = harness_runs
    result = runs[mutant.name].result()
    # 0: the harness let the bug through; 2-5: interrupted, internal, usage or nothing
    # collected, i.e. the run proved nothing about the bug.
    assert result.returncode == 1, (
        f"{mutant.name} (target {mutant.target}) was not rejected:\n{_describe(result)}"
    )
    report = report_dirs[mutant.name] / "report.json"
    if report.exists():
        content = json.loads(report.read_text(encoding="utf-8"))
        statuses = _statuses(content, mutant.target)
        assert "FAIL" in statuses, (
            f"{mutant.name}: report.json does not mark {mutant.target} FAIL "
            f"(statuses found: {statuses})"
        )
        functions = {row.get("function") for row in content.get("rows", [])}
        assert functions == {mutant.target.removeprefix("test_")}, (
            f"{mutant.name}: K_EXPR {mutant.k_expr!r} must select {mutant.target} only, "
            f"it ran {sorted(map(str, functions))}"
        )


def test_harness_accepts_refcnn(harness_runs: tuple[Runs, dict[str, Path]]) -> None:
    result = harness_runs[0][REFCNN].result()
    assert result.returncode == 0, f"refcnn itself failed the harness:\n{_describe(result)}"
    assert " passed" in result.stdout, _describe(result)
