"""pytest plugin of the conformance suite: options, Hypothesis profiles, parametrization, report.

Options
-------
``--impl MODULE``
    Any importable module exposing the refcnn API (default ``refcnn``). A function it lacks,
    or one that raises ``NotImplementedError``, makes that test a skip reported as "not
    implemented" (and counted in the report), never an error.
``--framework NAME|all|none``
    Frameworks compared against the float64 oracle besides the implementation: one of the
    adapters discovered in ``conformance/frameworks`` (``torch``, ``tensorflow``, ``jax``,
    ``onnxruntime``, ...). ``all`` (default) means every installed one; naming one that is
    not available is a usage error; ``none`` compares the implementation with the oracle
    only (NumPy alone suffices).
``--device {cpu,cuda}``
    Where the frameworks run (default ``cpu``). ``cuda`` needs a CUDA device visible to each
    selected framework (a usage error otherwise); frameworks that only run on the CPU here
    are left out, with the reason in the report. The report records the device, the CUDA and
    cuDNN versions and whether TensorFloat-32 was on.
``--allow-tf32``
    Let CUDA float32 math use TensorFloat-32 (off by default). Its errors are larger than
    the float32 bounds allow, and the run shows them as failures.
``--report-dir DIR``
    Where ``report.json`` and ``report.md`` go (default ``conformance-report`` in the
    current directory). Under pytest-xdist each worker writes ``DIR/partial/<worker>.json``
    and the controller merges them.

Hypothesis profiles, chosen by the ``HYPOTHESIS_PROFILE`` environment variable (all with
``deadline=None``: an example's time is dominated by the framework calls, whose first run
includes kernel selection and warm-up, so per-example deadlines would only be noise):

``quick`` (default)
    60 examples per test; interactive, the whole suite in under 3 minutes on 2 cores with
    ``-n 2``.
``ci``
    The CI gate: 150 examples, derandomized (reproducible), no example database; the
    whole suite against both frameworks in under 6 minutes on 2 cores.
``thorough``
    Nightly size: 1500 examples, ten times ``ci``.
``dev``
    10 examples, for editing the suite itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fnmatch
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import FlakyFailure, Unsatisfiable

from conformance.deviations import Deviations, DeviationsError, load_deviations
from conformance.frameworks import Adapter, AdapterInfo, discover, load
from conformance.harness import Harness, Options
from conformance.ops import DTYPES, REGISTRY
from conformance.report import (
    Collector,
    Row,
    gate_verdict,
    load_partials,
    merge,
    stale_deviations,
    write_report,
)

ADAPTERS: dict[str, AdapterInfo] = discover()
PROFILE_ENV = "HYPOTHESIS_PROFILE"
# pyproject.toml's filterwarnings, for runs where it does not apply. Hypothesis's failure
# report walks loaded modules; where mypy is installed that touches mypy_extensions'
# deprecated names, and the warning would replace the counterexample.
WARNING_FILTERS = (
    "error",
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning",
    "ignore:'mypy_extensions.NoReturn' is deprecated:DeprecationWarning",
)
DEFAULT_PROFILE = "quick"

# too_slow: drawing one case resolves its geometry and builds up to ~4000-element arrays
# (measured 1-20 ms per draw); on a loaded 2-core CI runner with xdist that can cross the
# health check's budget for the first draws without the strategies being at fault.
# filter_too_much: a case the implementation refuses or a framework cannot express is
# rejected so another is drawn; a framework that cannot run, say, half the conv cases
# (TensorFlow's empty outputs) must not trip the health check for it.
_COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
#: Profile name -> settings; ``explore`` is the only one keeping an example database.
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 10},
    "quick": {"max_examples": 60},
    "ci": {"max_examples": 150, "derandomize": True, "database": None, "print_blob": True},
    "thorough": {"max_examples": 1500, "print_blob": True},
    "explore": {"max_examples": 500, "print_blob": True},
}
DEFAULT_EXAMPLE_DB = ".hypothesis/conformance-examples"
for _name, _values in PROFILES.items():
    settings.register_profile(_name, **_values, **_COMMON)


@dataclasses.dataclass
class State:
    """What the session knows: choices, the recorder, and where the report goes."""

    impl_name: str
    frameworks: list[str]
    excluded: dict[str, str]
    report_dir: Path
    profile: str
    worker: str | None
    device: str = "cpu"
    functions: frozenset[str] = frozenset(REGISTRY)
    deviations: Deviations = dataclasses.field(default_factory=Deviations)
    max_examples: int = 0
    seed: int | None = None
    adapters: dict[str, Adapter] = dataclasses.field(default_factory=dict)
    setups: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    collector: Collector = dataclasses.field(default_factory=Collector)
    markdown: str = ""
    rows: list[Row] = dataclasses.field(default_factory=list)
    verdict: tuple[bool, str] | None = None


STATE = pytest.StashKey[State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register --impl, --framework, --device, --allow-tf32 and --report-dir."""
    group = parser.getgroup("conformance", "refcnn conformance harness")
    group.addoption(
        "--impl",
        default="refcnn",
        metavar="MODULE",
        help="importable module implementing the refcnn API to test (default: refcnn)",
    )
    group.addoption(
        "--framework",
        default="all",
        choices=(*ADAPTERS, "all", "none"),
        help=f"frameworks to compare with the oracle: {', '.join(ADAPTERS)}, all (default: "
        "every installed one) or none (the float64 oracle only)",
    )
    group.addoption(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where the frameworks run (default: cpu); cuda needs a visible CUDA device",
    )
    group.addoption(
        "--allow-tf32",
        action="store_true",
        help="let CUDA float32 math use TensorFloat-32 (off by default; its larger errors "
        "then show as failures)",
    )
    group.addoption(
        "--report-dir",
        default="conformance-report",
        metavar="DIR",
        help="directory for report.json and report.md (default: ./conformance-report)",
    )
    group.addoption(
        "--functions",
        default="",
        metavar="NAMES",
        help="comma-separated functions to judge (default: all); the others are reported as "
        "excluded, and the gate does not require them",
    )
    group.addoption(
        "--deviations",
        default="",
        metavar="FILE",
        help="TOML file of the implementation's declared deviations (see "
        "conformance/deviations.py); each use is counted, unused ones reported stale",
    )
    group.addoption(
        "--strict-warnings",
        action="store_true",
        help="fail a case whose values pass but whose implementation warned (default: "
        "warnings are counted in the report)",
    )
    group.addoption(
        "--no-layouts",
        action="store_true",
        help="pass C-contiguous arrays only (default: also Fortran-ordered, transposed, "
        "negative-stride, strided and read-only copies of the same values)",
    )
    group.addoption(
        "--profile",
        default="",
        metavar="NAME",
        help=f"Hypothesis profile: {', '.join(PROFILES)} (default: $HYPOTHESIS_PROFILE or "
        f"{DEFAULT_PROFILE}); --hypothesis-profile is the same option",
    )
    group.addoption(
        "--max-examples",
        type=int,
        default=0,
        metavar="N",
        help="examples per function, framework and dtype (overrides the profile's)",
    )
    group.addoption(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="random seed of a randomized profile (same as --hypothesis-seed)",
    )
    group.addoption(
        "--example-db",
        default=DEFAULT_EXAMPLE_DB,
        metavar="PATH",
        help=f"example database of the explore profile (default: {DEFAULT_EXAMPLE_DB}); "
        "other profiles keep none",
    )


def _resolve_frameworks(choice: str, device: str) -> tuple[list[str], dict[str, str]]:
    if choice == "none":
        return [], {}
    chosen, excluded = [], {}
    for name in ADAPTERS if choice == "all" else (choice,):
        info = ADAPTERS[name]
        problem = info.unavailable()
        if not problem and device not in info.devices:
            problem = f"{name} runs on {', '.join(info.devices)} only in this suite"
        if problem and choice != "all":
            msg = f"--framework {name}: {problem}"
            raise pytest.UsageError(msg)
        if problem:
            excluded[name] = problem
        else:
            chosen.append(name)
    return chosen, excluded


def _set_up(
    frameworks: list[str], device: str, *, allow_tf32: bool
) -> tuple[dict[str, Adapter], dict[str, dict[str, str]]]:
    """Import and configure each adapter; a device it cannot use is a usage error."""
    adapters, setups = {}, {}
    for name in frameworks:
        adapter = load(ADAPTERS[name])
        try:
            setups[name] = adapter.module.setup(device, allow_tf32=allow_tf32)
        except RuntimeError as exc:
            msg = f"--device {device}: {name} cannot use it ({exc})"
            raise pytest.UsageError(msg) from exc
        adapters[name] = adapter
    return adapters, setups


def _load_profile(config: pytest.Config) -> tuple[str, int, int | None]:
    """Load the chosen Hypothesis profile, with --max-examples and --seed applied.

    Hypothesis' own ``--hypothesis-profile`` is read here too (and cleared, so its plugin
    does not load the profile again without the overrides); an unknown name is a usage error.
    """
    named = config.getoption("profile") or config.getoption("hypothesis_profile", None)
    config.option.hypothesis_profile = None
    profile = named or os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)
    if profile not in PROFILES:
        msg = f"unknown Hypothesis profile {profile!r}; choose one of {', '.join(PROFILES)}"
        raise pytest.UsageError(msg)
    values = {**PROFILES[profile], **_COMMON}
    if profile == "explore":
        db_path = Path(config.invocation_params.dir, config.getoption("example_db"))
        values["database"] = DirectoryBasedExampleDatabase(str(db_path))
    max_examples = config.getoption("max_examples") or values["max_examples"]
    if max_examples < 1:
        msg = f"--max-examples must be >= 1, got {max_examples}"
        raise pytest.UsageError(msg)
    values["max_examples"] = max_examples
    seed = config.getoption("seed")
    if seed is None:
        seed = config.getoption("hypothesis_seed", None)
    elif values.get("derandomize"):
        msg = f"--seed: the {profile} profile is derandomized (it has no seed); use quick"
        raise pytest.UsageError(msg)
    if seed is not None:
        config.option.hypothesis_seed = seed  # Hypothesis' plugin seeds every test with it
    settings.register_profile(f"{profile}-session", **values)
    settings.load_profile(f"{profile}-session")
    return profile, max_examples, None if seed is None else int(seed)


def _selected_functions(config: pytest.Config, deviations: Deviations) -> frozenset[str]:
    text = config.getoption("functions")
    chosen = {name.strip() for name in text.split(",") if name.strip()} or set(REGISTRY)
    unknown = sorted(chosen - set(REGISTRY))
    if unknown:
        msg = f"--functions: unknown {', '.join(unknown)} (known: {', '.join(REGISTRY)})"
        raise pytest.UsageError(msg)
    return frozenset(name for name in chosen if not deviations.skipped(name))


def pytest_configure(config: pytest.Config) -> None:
    """Load the profile, resolve the options, reset the partial reports (controller)."""
    profile, max_examples, seed = _load_profile(config)
    config.addinivalue_line(
        "markers", "dtypes(*names): run the test only in these of the suite's dtypes"
    )
    if not config.getini("filterwarnings"):
        # No pyproject applies (python -m conformance, an installed package): keep the
        # project's rule that any warning, NumPy overflow included, fails, with its narrow
        # exemptions (later lines win, so they follow "error").
        for line in WARNING_FILTERS:
            config.addinivalue_line("filterwarnings", line)
    # Hypothesis's failure report walks loaded modules; where mypy is installed that touches
    # mypy_extensions' deprecated names, and the warning would replace the counterexample.
    for deprecated in ("mypy_extensions.TypedDict", "'mypy_extensions.NoReturn'"):
        config.addinivalue_line(
            "filterwarnings", f"ignore:{deprecated} is deprecated:DeprecationWarning"
        )
    # A failing case's repr is its reproducer, full arrays included, by design; Hypothesis
    # warns when a repr passes 50 kB, and under "error" the warning would replace the report.
    config.addinivalue_line(
        "filterwarnings", "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
    )
    impl_name = config.getoption("impl")
    try:
        importlib.import_module(impl_name)
    except ImportError as exc:
        msg = f"--impl {impl_name}: cannot import it ({exc})"
        raise pytest.UsageError(msg) from exc
    deviations = Deviations()
    if config.getoption("deviations"):
        path = Path(config.invocation_params.dir, config.getoption("deviations"))
        try:
            deviations = load_deviations(path, set(REGISTRY))
        except DeviationsError as exc:
            raise pytest.UsageError(str(exc)) from exc
    functions = _selected_functions(config, deviations)
    device = config.getoption("device")
    if device == "cpu" and config.getoption("allow_tf32"):
        msg = "--allow-tf32 applies to --device cuda only (CPU float32 math has no TF32)"
        raise pytest.UsageError(msg)
    frameworks, excluded = _resolve_frameworks(config.getoption("framework"), device)
    if device == "cuda" and not frameworks:
        msg = "--device cuda: no selected framework can run there"
        raise pytest.UsageError(msg)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up log lines only
    adapters, setups = _set_up(frameworks, device, allow_tf32=config.getoption("allow_tf32"))
    report_dir = Path(config.invocation_params.dir, config.getoption("report_dir")).resolve()
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None:
        shutil.rmtree(report_dir / "partial", ignore_errors=True)
    config.stash[STATE] = State(
        impl_name,
        frameworks,
        excluded,
        report_dir,
        profile,
        worker,
        device,
        functions,
        deviations,
        max_examples,
        seed,
        adapters,
        setups,
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every conformance test by framework id and dtype."""
    if not {"framework", "dtype"} <= set(metafunc.fixturenames):
        return
    state = metafunc.config.stash[STATE]
    marker = metafunc.definition.get_closest_marker("dtypes")
    dtypes = [dt for dt in DTYPES if marker is None or dt in marker.args]
    params = [(fw, dt) for fw in state.frameworks or ["none"] for dt in dtypes]
    metafunc.parametrize(("framework", "dtype"), params, ids=[f"{f}-{d}" for f, d in params])


#: Tests of the suite itself, of refcnn and of the frameworks (their findings, ONNX's node
#: cases, the options): run when refcnn is the implementation, not in a gate of other code,
#: where a framework's or a peer's fixed bug must not fail someone else's run.
SUITE_SELF_TESTS = (
    "test_framework_bugs.py",
    "test_onnx_*_nodes.py",
    "test_options.py",
    "peers/test_*.py",
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the suite's self-tests out of runs judging another implementation."""
    if config.getoption("impl") == "refcnn":
        return None
    relative = collection_path.relative_to(Path(__file__).parent).as_posix()
    return any(fnmatch.fnmatch(relative, pattern) for pattern in SUITE_SELF_TESTS) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Name the items ``test_<function>`` for ``-k``; leave out the unselected functions.

    A function left out by ``--functions`` or a deviations ``skip`` is deselected and its
    rows are reported as excluded, with the reason, so the narrowing shows in the report.
    """
    state = config.stash[STATE]
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        op = callspec.params.get("op") if callspec is not None else None
        if op is None:
            kept.append(item)
            continue
        item.extra_keyword_matches.add(f"test_{op}")
        if op in state.functions:
            kept.append(item)
            continue
        dropped.append(item)
        key = _key(item)
        reason = state.deviations.skipped(op) or "not in --functions"
        if key is not None:  # every xdist worker collects; the merge keeps one
            state.collector.excluded(key, reason)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config) -> Harness:
    """Build the session's harness: implementation, the set-up adapters, recorder."""
    state = pytestconfig.stash[STATE]
    options = Options(
        deviations=state.deviations,
        strict_warnings=pytestconfig.getoption("strict_warnings"),
        layouts=not pytestconfig.getoption("no_layouts"),
        functions=state.functions,
    )
    return Harness(
        impl_name=state.impl_name,
        impl=importlib.import_module(state.impl_name),
        adapters=state.adapters,
        recorder=state.collector,
        options=options,
    )


def _key(item: pytest.Item) -> tuple[str, str, str] | None:
    """Return ``(function, framework, dtype)`` of a conformance test item (None for others).

    The registry's test carries the function as its ``op`` parameter; other parametrized
    conformance tests (the network test) are named ``test_<row name>``.
    """
    callspec = getattr(item, "callspec", None)
    name = getattr(item, "originalname", "")
    if callspec is None or not name.startswith("test_"):
        return None
    params = callspec.params
    if "framework" not in params or "dtype" not in params:
        return None
    function = str(params["op"]) if "op" in params else name.removeprefix("test_")
    return (function, str(params["framework"]), str(params["dtype"]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Record each conformance test's outcome and the full text of each distinct failure."""
    report = yield
    key = _key(item)
    if key is None or not (report.when == "call" or report.outcome != "passed"):
        return report
    outcome = report.outcome
    if report.failed and report.when != "call":
        outcome = "error"
    failures: list[str] = []
    if report.failed and call.excinfo is not None:
        failures = failure_texts(call.excinfo.value)
    item.config.stash[STATE].collector.outcome(key, outcome, failures)
    return report


def _with_notes(exc: BaseException) -> str:
    notes = getattr(exc, "__notes__", [])
    return "\n".join([str(exc).strip(), *(str(n) for n in notes)]).strip()


def failure_texts(exc: BaseException) -> list[str]:
    """Each distinct failure of a test, whole: Hypothesis reports several at once.

    A flaky failure (it failed, then passed when Hypothesis replayed it) depends on earlier
    calls: it is labelled so, with what failed. A run that found no case to compare
    (every drawn case refused or not expressible) says so.
    """
    if isinstance(exc, FlakyFailure):
        inner = [_with_notes(e) for e in exc.exceptions]
        label = (
            "FLAKY: failed once and passed when replayed, so the result depends on earlier "
            "calls (state kept between calls?); the failing calls were:"
        )
        return [label + "\n" + "\n\n".join(inner)]
    grouped = getattr(exc, "exceptions", None)  # an ExceptionGroup (a backport on 3.10)
    if isinstance(grouped, tuple | list):
        return [text for e in grouped for text in failure_texts(e)]
    if isinstance(exc, Unsatisfiable):
        return [
            "no example compared: every drawn case was refused by the implementation "
            "(NotImplementedError) or not expressible by the framework"
        ]
    return [_with_notes(exc)]


def _version(*distributions: str) -> str:
    for name in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return "unknown"


def _meta(state: State) -> dict[str, Any]:
    impl = sys.modules.get(state.impl_name)
    return {
        "impl": state.impl_name,
        "impl_version": str(getattr(impl, "__version__", "")),
        "frameworks": {name: _version(*ADAPTERS[name].distributions) for name in state.frameworks},
        "frameworks_excluded": state.excluded,
        "device": state.device,
        "framework_setup": state.setups,
        "framework_limits": {name: a.limits for name, a in state.adapters.items()},
        "numpy": np.__version__,
        "hypothesis": hypothesis.__version__,
        "pytest": pytest.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "profile": state.profile,
        "max_examples": state.max_examples,
        "seed": state.seed,
        "deviations": state.deviations.source,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Workers write their partial rows; the controller merges and writes the report."""
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    partial = state.report_dir / "partial"
    if state.worker is not None:
        state.collector.dump(partial / f"{state.worker}.json")
        return
    rows = merge([list(state.collector.rows.values()), *load_partials(partial)])
    shutil.rmtree(partial, ignore_errors=True)
    if not rows:
        return
    meta = _meta(state)
    meta["stale_deviations"] = stale_deviations(rows, state.deviations.declared())
    state.markdown = write_report(state.report_dir, rows, meta)
    state.rows = rows
    state.verdict = gate_verdict(rows, meta)
    if not state.verdict[0] and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # e.g. nothing was compared


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Print the failing rows, where the report went, and last the one-line gate verdict."""
    state = config.stash.get(STATE, None)
    if state is None or state.verdict is None:
        return
    terminalreporter.write_sep("=", "conformance report")
    failing = [r for r in state.rows if r.status in {"FAIL", "ERROR"}]
    for r in failing:
        terminalreporter.write_line(
            f"{r.status}: {r.function} / {r.framework} / {r.dtype}: {r.failure}"
        )
    counts = ", ".join(
        f"{n} {status}" for status, n in sorted(Counter(r.status for r in state.rows).items())
    )
    terminalreporter.write_line(f"{len(state.rows)} rows: {counts}")
    terminalreporter.write_line(
        f"full table, every failure with its reproducer: {state.report_dir}/report.md "
        "(and report.json)"
    )
    passed, why = state.verdict
    terminalreporter.write_line(f"GATE: {'PASS' if passed else 'FAIL'} ({why})")
