"""Conformance test: every function of the op registry, forward and every backward.

One test, parametrized by function (:data:`conformance.ops.REGISTRY`), framework id (``none``
when only the float64 oracle is compared) and dtype. Each function's items also answer to
the keyword ``test_<function>``, so ``-k conv2d_backward_input`` or
``-k test_conv2d_backward_input`` selects one function, and ``-k "test_conv2d and not
backward"`` the forward alone. The comparison lives in :mod:`conformance.harness`; the cases
in :mod:`conformance.strategies`; the bounds in :mod:`conformance.tolerance`; the layouts in
:mod:`conformance.layouts`.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.harness import Harness
from conformance.layouts import LAYOUTS
from conformance.ops import REGISTRY


@pytest.mark.parametrize("op", list(REGISTRY))
def test_api(harness: Harness, op: str, framework: str, dtype: str) -> None:
    # A function the implementation lacks fails here, before any example is drawn.
    harness.require(op, (op, framework, dtype))
    _examples(harness, op, framework, dtype)


@given(data=st.data())
def _examples(harness: Harness, op: str, framework: str, dtype: str, data: st.DataObject) -> None:
    case = data.draw(REGISTRY[op].strategy(), label=op)
    # The implementation also gets the same values in another memory layout (after the
    # C-contiguous call); the draw makes every layout appear in a run and shrink like the rest.
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    harness.check(case, framework=framework, dtype=dtype, layout=layout)
