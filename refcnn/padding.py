"""Padding geometry: the one place in refcnn that decides output sizes and pads.

Conventions, for one spatial axis of size ``n`` with kernel size ``k``, stride ``s`` and
dilation ``d``; the dilated kernel extent is ``e = (k - 1) * d + 1``:

- ``"VALID"``: no padding; windows that do not fit are dropped.
  ``out = ceil((n - e + 1) / s)`` when ``n >= e``, else ``0`` (TensorFlow allows empty outputs).
- ``"SAME"`` (TensorFlow's rule, ONNX ``SAME_UPPER``): ``out = ceil(n / s)``,
  ``total = max((out - 1) * s + e - n, 0)``, ``before = total // 2``, the odd extra pixel after.
- ``"SAME_LOWER"`` (ONNX): same ``out`` and ``total``, the odd extra pixel before.
- explicit ``((top, bottom), (left, right))`` of non-negative ints:
  ``out = (n + before + after - e) // s + 1`` when ``n + before + after >= e``, else ``0``.

Everything here is integer arithmetic on Python ints; nothing here touches array data.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, TypeAlias

__all__ = [
    "ExplicitPads",
    "Geometry",
    "PaddingLike",
    "axis_geometry",
    "normalize_padding",
    "window_geometry",
]

ExplicitPads: TypeAlias = tuple[tuple[int, int], tuple[int, int]]
PaddingLike: TypeAlias = Literal["VALID", "SAME", "SAME_LOWER"] | Sequence[Sequence[int]]

_MODES = ("VALID", "SAME", "SAME_LOWER")


class Geometry(NamedTuple):
    """Resolved geometry of a 2-D windowed op: output size and the pads that produce it."""

    out_h: int
    out_w: int
    pads: ExplicitPads

    @property
    def out_hw(self) -> tuple[int, int]:
        """``(out_h, out_w)``."""
        return (self.out_h, self.out_w)


def normalize_padding(op: str, padding: Any) -> str | ExplicitPads:
    """Validate a padding argument: a mode string, or ``((top, bottom), (left, right))``.

    Mode strings are case-insensitive (``"same"`` == ``"SAME"``).
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in _MODES:
            msg = (
                f"{op}: padding must be one of {', '.join(_MODES)} or "
                f"((top, bottom), (left, right)), got {padding!r}"
            )
            raise ValueError(msg)
        return mode
    expected = "((top, bottom), (left, right)) of non-negative ints"
    if not isinstance(padding, Sequence) or len(padding) != 2:
        msg = f"{op}: padding must be a mode string or {expected}, got {padding!r}"
        raise (TypeError if not isinstance(padding, Sequence) else ValueError)(msg)
    pairs: list[tuple[int, int]] = []
    for axis_pads in padding:
        if not isinstance(axis_pads, Sequence) or len(axis_pads) != 2:
            msg = f"{op}: padding must be {expected}, got {padding!r}"
            raise ValueError(msg)
        for pad in axis_pads:
            if isinstance(pad, bool) or not isinstance(pad, numbers.Integral):
                msg = f"{op}: padding must be {expected}, got {padding!r}"
                raise TypeError(msg)
            if pad < 0:
                msg = f"{op}: padding must be {expected}, got a negative pad in {padding!r}"
                raise ValueError(msg)
        pairs.append((int(axis_pads[0]), int(axis_pads[1])))
    return (pairs[0], pairs[1])


def axis_geometry(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: str | tuple[int, int],
) -> tuple[int, int, int]:
    """Output size and ``(before, after)`` pads along one axis.

    Parameters
    ----------
    size, kernel, stride, dilation : int
        Input size (>= 0), kernel size, stride and dilation (each >= 1).
    padding : {"VALID", "SAME", "SAME_LOWER"} or (before, after)
        Already normalized (see :func:`normalize_padding`).

    Returns
    -------
    (out, before, after) : tuple of int
        See the module docstring for the formulas.
    """
    extent = (kernel - 1) * dilation + 1
    if isinstance(padding, tuple):
        before, after = padding
        padded = size + before + after
        out = (padded - extent) // stride + 1 if padded >= extent else 0
        return out, before, after
    if padding == "VALID":
        out = -(-(size - extent + 1) // stride) if size >= extent else 0
        return out, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0) if out > 0 else 0
    small, large = total // 2, total - total // 2
    if padding == "SAME":
        return out, small, large
    return out, large, small


def window_geometry(
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    padding: str | ExplicitPads,
) -> Geometry:
    """Resolve a normalized padding into output size and explicit pads on both axes."""
    per_axis: list[tuple[int, int, int]] = []
    for axis in range(2):
        axis_padding: str | tuple[int, int] = padding if isinstance(padding, str) else padding[axis]
        per_axis.append(
            axis_geometry(
                input_hw[axis], kernel_hw[axis], strides[axis], dilations[axis], axis_padding
            )
        )
    (out_h, top, bottom), (out_w, left, right) = per_axis
    return Geometry(out_h, out_w, ((top, bottom), (left, right)))
