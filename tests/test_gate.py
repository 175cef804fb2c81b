"""The conformance gate on other people's code: each of issue 14's holes, closed.

Every case runs the harness in a subprocess on a deliberately built implementation from
``conformance/selftest/gate`` (``--framework none``: the float64 oracle only, NumPy alone),
derandomized (``--profile ci``, fewer examples), and reads the verdict line, the exit code
and ``report.json``. Each would have passed (or crashed) before the gate semantics existed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import refcnn
from conformance.calls import make_call
from conformance.harness import reproducer

pytestmark = pytest.mark.zoo

REPO = Path(__file__).resolve().parents[1]
GATE = "conformance.selftest.gate"


def _run(
    impl: str, tmp_path: Path, *args: str, examples: int = 40
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report_dir = tmp_path / "report"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "conformance",
        "--impl",
        impl,
        "--framework",
        "none",
        "--profile",
        "ci",
        "--max-examples",
        str(examples),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "--report-dir",
        str(report_dir),
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_PROFILE"}
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    path = report_dir / "report.json"
    report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return result, report


def _rows(report: dict[str, Any], function: str) -> list[dict[str, Any]]:
    return [r for r in report.get("rows", []) if r["function"] == function]


def _gate_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("GATE: ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    return lines[-1]


def test_an_empty_module_fails_the_gate(tmp_path: Path) -> None:
    result, report = _run(f"{GATE}.empty", tmp_path)
    assert result.returncode == 1
    assert _gate_line(result).startswith("GATE: FAIL")
    assert "missing from the implementation" in _gate_line(result)
    assert all(r["status"] == "FAIL" for r in _rows(report, "conv2d"))
    # The network row composes functions: it fails naming one, and is not itself "missing".
    missing = _gate_line(result).split("missing from the implementation: ")[1]
    assert "conv2d" in missing
    assert "network_sgd_steps" not in missing
    network = _rows(report, "network_sgd_steps")
    assert network
    assert all(r["status"] == "FAIL" for r in network)
    assert all("has no function" in " ".join(r["failures"]) for r in network)


def test_a_narrowed_run_judges_only_what_it_names(tmp_path: Path) -> None:
    result, report = _run(f"{GATE}.only_relu", tmp_path, "--functions", "relu")
    assert result.returncode == 0, result.stdout[-3000:]
    assert _gate_line(result).startswith("GATE: PASS")
    assert all(r["status"] == "pass" for r in _rows(report, "relu"))
    # The rest is visibly excluded, not silently dropped.
    excluded = _rows(report, "conv2d") + _rows(report, "network_sgd_steps")
    assert excluded
    assert all(r["status"] == "excluded" for r in excluded)


def test_a_refusal_for_some_arguments_is_counted_and_the_rest_tested(tmp_path: Path) -> None:
    result, report = _run(
        f"{GATE}.refuses_dilation", tmp_path, "-k", "test_conv2d and not backward"
    )
    assert result.returncode == 0, result.stdout[-3000:]
    for row in _rows(report, "conv2d"):
        assert row["refused"] > 0
        assert row["examples"] >= 40  # refused cases do not spend the function's examples
        assert any("dilations" in call for call in row["refused_calls"])


def test_a_function_refusing_everything_fails(tmp_path: Path) -> None:
    result, report = _run(
        f"{GATE}.refuses_everything", tmp_path, "-k", "test_relu and not backward"
    )
    assert result.returncode == 1
    assert all("no example compared" in r["failure"] for r in _rows(report, "relu"))


def test_layout_dependent_results_are_rejected(tmp_path: Path) -> None:
    result, report = _run(
        f"{GATE}.layout_dependent",
        tmp_path,
        "-k",
        "(test_conv2d and not backward) or (test_dense and not backward)",
    )
    assert result.returncode == 1
    for function in ("conv2d", "dense"):
        rows = _rows(report, function)
        assert rows
        assert all(r["status"] == "FAIL" for r in rows)
        assert all("layout-dependent" in " ".join(r["failures"]) for r in rows)
        assert all("relayout(" in " ".join(r["failures"]) for r in rows)  # in the reproducer


def test_warnings_are_counted_and_fail_only_when_strict(tmp_path: Path) -> None:
    selection = ("-k", "test_sigmoid and not backward and float32")
    result, report = _run(f"{GATE}.warns", tmp_path, *selection)
    assert result.returncode == 0, result.stdout[-3000:]
    (row,) = _rows(report, "sigmoid")
    assert row["warnings"] > 0
    assert any("overflow" in message for message in row["warning_messages"])
    strict, _ = _run(f"{GATE}.warns", tmp_path / "strict", *selection, "--strict-warnings")
    assert strict.returncode == 1


def test_a_warning_never_hides_the_value_error(tmp_path: Path) -> None:
    result, report = _run(f"{GATE}.warns", tmp_path, "-k", "test_tanh and not backward and float64")
    assert result.returncode == 1
    (row,) = _rows(report, "tanh")
    assert "differs from the float64 oracle" in row["failure"]
    assert "it also warned" in row["failure"]


def test_every_distinct_failure_is_reported(tmp_path: Path) -> None:
    result, report = _run(
        f"{GATE}.two_bugs", tmp_path, "-k", "test_conv2d and not backward and float64"
    )
    assert result.returncode == 1
    (row,) = _rows(report, "conv2d")
    texts = " ".join(row["failures"])
    assert len(row["failures"]) >= 2
    assert "raised IndexError: empty batch" in texts
    assert "differs from the float64 oracle" in texts


def test_a_failure_that_depends_on_earlier_calls_is_labelled(tmp_path: Path) -> None:
    result, report = _run(
        f"{GATE}.stateful", tmp_path, "-k", "test_relu and not backward and float64"
    )
    assert result.returncode == 1
    (row,) = _rows(report, "relu")
    assert "depends on earlier calls" in " ".join(row["failures"])


def test_the_report_names_the_profile_and_bad_profiles_are_usage_errors(tmp_path: Path) -> None:
    result, report = _run("refcnn", tmp_path, "-k", "test_relu and not backward", examples=7)
    assert result.returncode == 0
    assert report["meta"]["profile"] == "ci"
    assert report["meta"]["max_examples"] == 7
    assert all(r["examples"] == 7 for r in _rows(report, "relu"))
    bad, _ = _run("refcnn", tmp_path / "bad", "--profile", "thorugh")
    assert bad.returncode == 4  # pytest's usage error, not INTERNALERROR (3)
    assert "unknown Hypothesis profile 'thorugh'" in bad.stderr
    assert "INTERNALERROR" not in bad.stdout + bad.stderr


def test_declared_deviations_are_counted_and_stale_ones_reported(tmp_path: Path) -> None:
    deviations = tmp_path / "deviations.toml"
    deviations.write_text(
        '[conv2d]\nsame_split = "before"\nreason = "our SAME rounds the leading pad up"\n'
        '[max_pool2d_backward]\ntie_rule = "last"\n',
        encoding="utf-8",
    )
    impl = "conformance.selftest.mutants.m01_conv2d_same_pad_before"
    selection = ("-k", "test_conv2d and not backward")
    undeclared, _ = _run(impl, tmp_path / "plain", *selection)
    assert undeclared.returncode == 1  # the zoo's mutant: a real bug unless declared
    result, report = _run(impl, tmp_path, *selection, "--deviations", str(deviations))
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(r["deviation"] > 0 for r in _rows(report, "conv2d"))
    assert report["meta"]["stale_deviations"] == ["max_pool2d_backward: tie_rule"]
    assert "stale deviations: max_pool2d_backward: tie_rule" in _gate_line(result)


def test_a_bad_deviations_file_is_a_usage_error(tmp_path: Path) -> None:
    deviations = tmp_path / "deviations.toml"
    deviations.write_text("[conv2d]\ntolerance_factor = 10\n", encoding="utf-8")
    result, _ = _run("refcnn", tmp_path, "--deviations", str(deviations))
    assert result.returncode == 4
    assert "tolerance_factor needs a reason" in result.stderr


def test_the_suite_help_is_short_and_about_the_suite() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conformance", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) < 80, len(lines)
    for option in ("--impl", "--framework", "--functions", "--deviations", "--strict-warnings"):
        assert option in result.stdout


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_printed_reproducers_run_and_compute_the_truth_on_the_same_arrays(dtype: type) -> None:
    # A single-input call once printed `z, = z.astype(np.float64)`, which unpacks the first
    # axis: pasted, the truth was computed on the wrong array.
    x = np.linspace(-2, 2, 6).reshape(2, 3).astype(dtype)
    for call in (
        make_call("relu", {"x": x}),
        make_call("dense", {"x": x, "w": np.ones((3, 2), dtype=dtype), "b": None}),
    ):
        source = reproducer(call, _impl_side())
        namespace: dict[str, Any] = {}
        exec(source, namespace)
        expected = getattr(refcnn, call.op)(
            *(
                np.asarray(a, dtype=np.float64) if isinstance(a, np.ndarray) else a
                for a in call.args
            ),
            **call.kwargs,
        )
        np.testing.assert_array_equal(namespace["truth"], expected)
        assert namespace["got"].dtype == dtype
        assert namespace["truth"].shape == namespace["got"].shape


def _impl_side() -> Any:
    from conformance.harness import _Side  # noqa: PLC0415 - the harness's own side record

    return _Side("impl", "refcnn", "refcnn", refcnn.relu)
