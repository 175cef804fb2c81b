"""conv_transpose that adds its ``output_padding`` before the output instead of after it.

Bug: the ``output_padding`` extra indices are put at the START of each axis of the full
transposed output (before the pads are cropped) instead of after its last index, so the
result is shifted: ``y[r] = full[r + before - op]`` instead of ``full[r + before]`` (0 where
the index falls outside). ONNX ``ConvTranspose`` and PyTorch add it "to one side", the end;
implementations that build the output with ``np.pad`` or ``torch.nn.functional.pad`` get the
side wrong easily (``F.pad`` lists the LAST axis first as ``(left, right)``, so ``(op, 0)``
and ``(0, op)`` are one typo apart), and TensorFlow has no ``output_padding`` at all (its
``conv_transpose`` takes an ``output_shape``), so code translating between the two has to
place the extra indices itself.

Exact whenever ``output_padding`` is 0, so with ``output_shape`` given, under SAME and at
stride and dilation 1 (where it must be 0); only ONNX's size rule with ``output_padding > 0``
on some axis (stride or dilation > 1 there) differs. Must be rejected by
``test_conv_transpose``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

import refcnn
from conformance.selftest import install_refcnn
from refcnn.padding import normalize_padding

TARGET = "test_conv_transpose"
K_EXPR = "test_conv_transpose"


def conv_transpose(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    output_shape: Any = None,
    strides: Any = 1,
    padding: Any = "VALID",
    output_padding: Any = 0,
    dilations: Any = 1,
    groups: int = 1,
    data_format: str | None = None,
    method: str = "auto",
) -> npt.NDArray[Any]:
    """Mutant transposed conv: output padding at the front (see the module docstring)."""
    options: dict[str, Any] = {
        "strides": strides,
        "dilations": dilations,
        "groups": groups,
        "data_format": data_format,
        "method": method,
    }
    expected: npt.NDArray[Any] = refcnn.conv_transpose(
        x,
        w,
        b,
        output_shape=output_shape,
        padding=padding,
        output_padding=output_padding,
        **options,
    )  # validation
    rank = np.ndim(x) - 2
    extra = (output_padding,) * rank if np.ndim(output_padding) == 0 else tuple(output_padding)
    if output_shape is not None or not any(extra):
        return expected
    pads = normalize_padding("conv_transpose", padding, rank)
    pairs = ((0, 0),) * rank if isinstance(pads, str) else pads
    # The full output with only the trailing pads cropped, then the output padding and the
    # leading crop per axis.
    y = np.asarray(
        refcnn.conv_transpose(x, w, None, padding=tuple((0, a) for _, a in pairs), **options)
    )
    first = 2 if isinstance(data_format, str) and data_format.startswith("NC") else 1
    widths = [(0, 0)] * y.ndim
    crop = [slice(None)] * y.ndim
    for axis, ((before, _), op) in enumerate(zip(pairs, extra, strict=True)):
        widths[first + axis] = (int(op), 0)  # BUG: ONNX puts the output padding after: (0, op)
        crop[first + axis] = slice(before, None)
    y = np.pad(y, widths)[tuple(crop)]
    if b is not None:
        shape = [1] * y.ndim
        shape[1 if first == 2 else -1] = expected.shape[1 if first == 2 else -1]
        y = y + np.asarray(b).reshape(shape)
    return np.ascontiguousarray(y, dtype=expected.dtype)


install_refcnn(__name__)
