"""Run the conformance suite: ``python -m conformance --impl my.module [options]``.

Runs pytest on this installed package directory, so it works outside the repository once
``refcnn[conformance]`` is installed. Every argument is forwarded to pytest (``--impl``,
``--framework``, ``--functions``, ``--report-dir``, ``-n auto``, ``-k conv2d_backward_input``,
``--junitxml``, ...); the exit code is pytest's: 0 when the gate passes, 1 when it fails, 4 for
a usage error. ``--help`` describes the suite's own options; ``--pytest-help`` is pytest's.

The run ignores whatever pytest configuration surrounds the installed package (``-c`` an
empty file, ``--rootdir`` this directory) so a project's ``addopts`` cannot change it; the
suite's own ``conftest.py`` carries its options, profiles and warning policy. Pass ``-c`` or
``--rootdir`` yourself to override.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

__all__ = ["HELP", "main"]

HELP = """\
usage: python -m conformance [options] [pytest options]

Judge an implementation of refcnn's API against refcnn's float64 oracle (and, optionally,
PyTorch, TensorFlow, JAX, ONNX Runtime): outputs and gradients, drawn by Hypothesis.
The run ends with one line, GATE: PASS or GATE: FAIL and why; the full table and every
failure with its copy-pasteable reproducer are in REPORT_DIR/report.md (and report.json).

The contract: NHWC data, HWIO filters, TensorFlow argument names (strides, padding,
dilations, ksize), cross-correlation; the output dtype is the input dtype (float16 summed
wider); inputs are never modified, whatever their memory layout; empty results are returned,
not refused; NotImplementedError refuses one case (counted), a missing function fails.

options:
  --impl MODULE          the implementation (default: refcnn)
  --framework NAME       torch, tensorflow, jax, onnxruntime, all (default: every
                         installed one) or none (the float64 oracle only; for gates)
  --functions NAMES      comma-separated functions to judge; the rest is reported as
                         excluded and not required
  --deviations FILE      TOML: the implementation's declared deviations (tie rule, SAME
                         split, float16 accumulation, empty results refused, tolerance
                         factor with a reason, skip); see conformance/deviations.py
  --strict-warnings      a warning fails the case (default: counted in the report)
  --no-layouts           C-contiguous inputs only (default: also Fortran, transposed,
                         negative-stride, strided and read-only copies)
  --profile NAME         dev (10 examples), quick (60, default), ci (150, derandomized:
                         the gate), thorough (1500), explore (500, keeps an example
                         database); also $HYPOTHESIS_PROFILE or --hypothesis-profile
  --max-examples N       examples per function, framework and dtype
  --seed N               seed of a randomized profile
  --example-db PATH      the explore profile's database
  --report-dir DIR       where report.md and report.json go (default: conformance-report)
  --device cpu|cuda      where the frameworks run; --allow-tf32 lets CUDA use TF32
  -k EXPR                select functions, e.g. -k conv2d_backward_input
  -n auto                run in parallel (pytest-xdist)
  --junitxml FILE        JUnit XML for CI systems
  --pytest-help          pytest's own (long) help
"""


def main(argv: list[str] | None = None) -> int:
    """Run pytest on the conformance package with ``argv`` (default: ``sys.argv[1:]``)."""
    suite = Path(__file__).resolve().parent
    args = sys.argv[1:] if argv is None else list(argv)
    if "-h" in args or "--help" in args:
        sys.stdout.write(HELP)
        return 0
    if "--pytest-help" in args:
        args = [a if a != "--pytest-help" else "--help" for a in args]
    isolation = ["-c", os.devnull, "--rootdir", str(suite), "-p", "no:cacheprovider"]
    return int(pytest.main([str(suite), *isolation, *args]))


if __name__ == "__main__":
    sys.exit(main())
