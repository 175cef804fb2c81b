"""relu that is wrong on every 5th call: its result depends on earlier calls.

A replay of the failing case may pass; the report must label such a failure as depending on
earlier calls (flaky) rather than show a clean, reproducible counterexample.
"""

from __future__ import annotations

from typing import Any

import refcnn
from conformance.selftest import install_refcnn

_CALLS = [0]


def relu(x: Any) -> Any:
    """refcnn.relu, plus one on every 5th call."""
    _CALLS[0] += 1
    y = refcnn.relu(x)
    return y + y.dtype.type(1) if _CALLS[0] % 5 == 0 else y


install_refcnn(__name__)
