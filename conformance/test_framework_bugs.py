"""Framework bugs the suite found, pinned so the adapters' workarounds cannot regress.

Each case is one the property tests shrank to; the adapter must give refcnn's (and the
framework's float64) answer, not the buggy one.
"""

from __future__ import annotations

import numpy as np
import pytest

import refcnn
from conformance.frameworks import adapter


def test_torch_float32_conv2d_single_channel_permuted_input() -> None:
    # torch 2.13 CPU, float32: an NCHW view of an NHWC array with C = 1 keeps channels-last
    # strides and conv2d returns [120, 162, 248]; float64 and refcnn give [120, 184, 248].
    pytest.importorskip("torch")
    torch_api = adapter("torch")
    x = np.arange(24, dtype=np.float32).reshape(1, 6, 4, 1)
    w = np.ones((4, 4, 1, 1), dtype=np.float32)
    expected = refcnn.conv2d(x, w, strides=(1, 3))
    np.testing.assert_array_equal(expected.ravel(), [120, 184, 248])
    np.testing.assert_array_equal(torch_api.conv2d(x, w, strides=(1, 3)), expected)
