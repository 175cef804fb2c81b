"""The harness's memory layouts keep values, shape and dtype, and really change the strides."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.layouts import LAYOUTS, relayout


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4, 5), (0, 3), (1, 1, 2)])
def test_relayout_keeps_values_shape_and_dtype(layout: str, shape: tuple[int, ...]) -> None:
    a = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    b = relayout(a, layout)
    assert b.shape == a.shape
    assert b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)
    assert not np.shares_memory(a, b)


def test_layouts_are_what_they_say() -> None:
    a = np.arange(24.0).reshape(2, 3, 4)
    assert relayout(a, "fortran").flags.f_contiguous
    assert not relayout(a, "fortran").flags.c_contiguous
    # NHWC values stored as NCHW: the last axis is outermost in memory.
    assert relayout(a, "transposed").strides == (24, 8, 48)
    assert all(stride < 0 for stride in relayout(a, "negative_strides").strides)
    assert not relayout(a, "strided").flags.c_contiguous
    assert not relayout(a, "readonly").flags.writeable


def test_unknown_layout_is_named() -> None:
    with pytest.raises(ValueError, match="layout must be one of"):
        relayout(np.zeros(2), "diagonal")
