"""Run the conformance suite: ``python -m conformance --impl my.module [pytest options...]``.

Runs pytest on this installed package directory, so it works outside the repository once
``refcnn[conformance]`` is installed. Every argument is forwarded to pytest (``--impl``,
``--framework``, ``--report-dir``, ``-n auto``, ``-k test_conv2d_backward_input``, ...); the
exit code is pytest's: 0 when every comparison passed, 1 when any failed.

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

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run pytest on the conformance package with ``argv`` (default: ``sys.argv[1:]``)."""
    suite = Path(__file__).resolve().parent
    args = sys.argv[1:] if argv is None else argv
    isolation = ["-c", os.devnull, "--rootdir", str(suite), "-p", "no:cacheprovider"]
    return int(pytest.main([str(suite), *isolation, *args]))


if __name__ == "__main__":
    sys.exit(main())
