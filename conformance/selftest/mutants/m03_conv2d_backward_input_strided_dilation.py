"""conv2d_backward_input that drops the dilation whenever the stride is > 1.

Bug: the scatter ``dx[i*s + p*d] += dy[i] * w[p]`` uses tap offset ``p`` instead of ``p*d``
on the strided path (``d`` is only honoured when ``strides == 1``). TensorFlow's CPU
``conv2d`` refused ``strides > 1`` together with ``dilations > 1`` for years, so gradient code
ported from or tested against it never exercised the combination, and col2im ports that
special-case "stride 1, dilated" vs "strided, undilated" silently lose the dilation when
both are set. The output shape is still right (it comes from the forward geometry), so
nothing crashes.

Only differs when stride > 1 AND dilation > 1 on the same call (and the kernel has more
than one tap along that axis). Must be rejected by ``test_conv2d_backward_input``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import classic_form, install_refcnn, pair, scatter_tap
from refcnn.padding import normalize_padding, window_geometry

TARGET = "test_conv2d_backward_input"
K_EXPR = "test_conv2d_backward_input"


@classic_form(refcnn.conv2d_backward_input, new=("data_format", "groups"))
def conv2d_backward_input(
    dy: npt.ArrayLike,
    w: npt.ArrayLike,
    input_shape: Any,
    *,
    strides: Any = 1,
    padding: Any = "VALID",
    dilations: Any = 1,
) -> npt.NDArray[Any]:
    """Mutant input gradient: dilation ignored when strided (see the module docstring)."""
    # Let refcnn validate everything (and compute the right answer's dtype and shape).
    expected = refcnn.conv2d_backward_input(
        dy, w, input_shape, strides=strides, padding=padding, dilations=dilations
    )
    dy_arr, w_arr = np.asarray(dy), np.asarray(w)
    s, d = pair(strides), pair(dilations)
    if s == (1, 1) or d == (1, 1) or dy_arr.size == 0:
        return expected
    n, h, wid, c = (int(v) for v in input_shape)
    kh, kw = w_arr.shape[:2]
    geometry = window_geometry(
        (h, wid), (kh, kw), s, d, normalize_padding("conv2d_backward_input", padding)
    )
    (top, bottom), (left, right) = geometry.pads
    acc = np.float32 if dy_arr.dtype == np.float16 else dy_arr.dtype
    dxp = np.zeros((n, h + top + bottom, wid + left + right, c), dtype=acc)
    dy_acc, w_acc = dy_arr.astype(acc), w_arr.astype(acc)
    tap_step = (1, 1)  # BUG: should be d; the strided branch was written without dilation
    for p in range(kh):
        for q in range(kw):
            values = np.einsum("nijo,co->nijc", dy_acc, w_acc[p, q])
            scatter_tap(dxp, (p * tap_step[0], q * tap_step[1]), values, s)
    return dxp[:, top : top + h, left : left + wid, :].astype(dy_arr.dtype)


install_refcnn(__name__)
