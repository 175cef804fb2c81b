"""Conformance test: every function of the op registry, forward and every backward.

One test, parametrized by function (:data:`conformance.ops.REGISTRY`), framework id (``none``
when only the float64 oracle is compared) and dtype. Each function's items also answer to
the keyword ``test_<function>``, so ``-k conv2d_backward_input`` or
``-k test_conv2d_backward_input`` selects one function, and ``-k "test_conv2d and not
backward"`` the forward alone. The comparison lives in :mod:`conformance.harness`; the cases
in :mod:`conformance.strategies`; the bounds in :mod:`conformance.tolerance`.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.harness import Harness
from conformance.ops import REGISTRY


@pytest.mark.parametrize("op", list(REGISTRY))
@given(data=st.data())
def test_api(harness: Harness, op: str, framework: str, dtype: str, data: st.DataObject) -> None:
    case = data.draw(REGISTRY[op].strategy(), label=op)
    harness.check(case, framework=framework, dtype=dtype)
