"""Padding geometry: the one place in refcnn that decides output sizes and pads.

Conventions, for one spatial axis of size ``n`` with kernel size ``k``, stride ``s`` and
dilation ``d``; the dilated kernel extent is ``e = (k - 1) * d + 1``:

- ``"VALID"``: no padding; windows that do not fit are dropped.
  ``out = ceil((n - e + 1) / s)`` when ``n >= e``, else ``0`` (TensorFlow allows empty outputs).
- ``"SAME"`` (TensorFlow's rule, ONNX ``SAME_UPPER``): ``out = ceil(n / s)``,
  ``total = max((out - 1) * s + e - n, 0)``, ``before = total // 2``, the odd extra pixel after.
- ``"SAME_LOWER"`` (ONNX): same ``out`` and ``total``, the odd extra pixel before.
- explicit ``(before, after)`` pairs of non-negative ints, one per spatial axis:
  ``out = (n + before + after - e) // s + 1`` when ``n + before + after >= e``, else ``0``.

Pooling's ``ceil_mode`` (explicit and VALID padding) rounds the window count up instead:
``out = ceil((n + before + after - e) / s) + 1``, minus one when that last window would start
at or past ``n + before`` (it would hold padding only; PyTorch's rule, which ONNX's reference
adopted). The last window may then run past the end pad: :attr:`Windows.overhang`. Under
``SAME``/``SAME_LOWER`` ``ceil_mode`` changes nothing: ``out = ceil(n / s)`` already, as in
ONNX, whose ``auto_pad`` SAME output size does not depend on ``ceil_mode``.

Every function here works for any number of spatial axes (1-D, 2-D and 3-D ops ask the
same functions); :func:`window_geometry` and :class:`Geometry` are the 2-D forms. Everything
is integer arithmetic on Python ints (no overflow, whatever the sizes); nothing here touches
array data.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, TypeAlias

from refcnn._checks import describe

__all__ = [
    "AxisPads",
    "ExplicitPads",
    "Geometry",
    "PaddingLike",
    "Windows",
    "axis_geometry",
    "normalize_padding",
    "window_geometry",
    "windows",
]

AxisPads: TypeAlias = tuple[tuple[int, int], ...]
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


class Windows(NamedTuple):
    """Resolved geometry of a windowed op over any number of spatial axes.

    ``out`` is the output size and ``pads`` the ``(before, after)`` pads of each axis;
    ``overhang`` is how far the last window runs past the end pad (only ``ceil_mode`` makes
    it non-zero), so window ``i`` covers padded positions ``[i*s, i*s + e)`` of an axis
    whose padded length is ``n + before + after + overhang``.
    """

    out: tuple[int, ...]
    pads: AxisPads
    overhang: tuple[int, ...]

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.out)


def _expected_pads(rank: int) -> str:
    if rank == 2:
        return "((top, bottom), (left, right))"
    return f"{rank} (before, after) pairs, one per spatial axis,"


def normalize_padding(op: str, padding: Any, rank: int = 2) -> str | AxisPads:
    """Validate a padding argument: a mode string, or ``rank`` ``(before, after)`` pairs.

    Mode strings are case-insensitive (``"same"`` == ``"SAME"``). For ``rank == 2`` the
    explicit form is ``((top, bottom), (left, right))``.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in _MODES:
            msg = (
                f"{op}: padding must be one of {', '.join(_MODES)} or "
                f"{_expected_pads(rank)}, got {describe(padding)}"
            )
            raise ValueError(msg)
        return mode
    expected = f"{_expected_pads(rank)} of non-negative ints"
    if not isinstance(padding, Sequence) or len(padding) != rank:
        msg = f"{op}: padding must be a mode string or {expected}, got {describe(padding)}"
        raise (TypeError if not isinstance(padding, Sequence) else ValueError)(msg)
    pairs: list[tuple[int, int]] = []
    for axis_pads in padding:
        if not isinstance(axis_pads, Sequence) or len(axis_pads) != 2:
            msg = f"{op}: padding must be {expected}, got {describe(padding)}"
            raise ValueError(msg)
        for pad in axis_pads:
            if isinstance(pad, bool) or not isinstance(pad, numbers.Integral):
                msg = f"{op}: padding must be {expected}, got {describe(padding)}"
                raise TypeError(msg)
            if pad < 0:
                msg = f"{op}: padding must be {expected}, got a negative pad in {describe(padding)}"
                raise ValueError(msg)
        pairs.append((int(axis_pads[0]), int(axis_pads[1])))
    return tuple(pairs)


def axis_geometry(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: str | tuple[int, int],
    *,
    ceil_mode: bool = False,
) -> tuple[int, int, int]:
    """Output size and ``(before, after)`` pads along one axis.

    Parameters
    ----------
    size, kernel, stride, dilation : int
        Input size (>= 0), kernel size, stride and dilation (each >= 1).
    padding : {"VALID", "SAME", "SAME_LOWER"} or (before, after)
        Already normalized (see :func:`normalize_padding`).
    ceil_mode : bool
        Count the last, partial window too (explicit and VALID padding; see the module
        docstring).

    Returns
    -------
    (out, before, after) : tuple of int
        See the module docstring for the formulas.
    """
    extent = (kernel - 1) * dilation + 1
    if isinstance(padding, str) and padding != "VALID":
        out = -(-size // stride)
        total = max((out - 1) * stride + extent - size, 0) if out > 0 else 0
        small, large = total // 2, total - total // 2
        if padding == "SAME":
            return out, small, large
        return out, large, small
    before, after = (0, 0) if isinstance(padding, str) else padding
    padded = size + before + after
    if padded < extent:
        return 0, before, after
    if not ceil_mode:
        return (padded - extent) // stride + 1, before, after
    out = -(-(padded - extent) // stride) + 1
    if (out - 1) * stride >= size + before:
        out -= 1  # that window would start in the end padding (or past it)
    return out, before, after


def windows(
    input_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    padding: str | AxisPads,
    *,
    ceil_mode: bool = False,
) -> Windows:
    """Resolve a normalized padding into output sizes and explicit pads on every axis.

    All sequences have one entry per spatial axis; ``padding`` is a mode string or one
    ``(before, after)`` pair per axis (see :func:`normalize_padding`).
    """
    rank = len(input_sizes)
    outs, pads, overhangs = [], [], []
    for axis in range(rank):
        axis_padding = padding if isinstance(padding, str) else padding[axis]
        out, before, after = axis_geometry(
            int(input_sizes[axis]),
            int(kernel[axis]),
            int(strides[axis]),
            int(dilations[axis]),
            axis_padding,
            ceil_mode=ceil_mode,
        )
        extent = (int(kernel[axis]) - 1) * int(dilations[axis]) + 1
        reach = (out - 1) * int(strides[axis]) + extent if out else 0
        outs.append(out)
        pads.append((before, after))
        overhangs.append(max(reach - (int(input_sizes[axis]) + before + after), 0))
    return Windows(tuple(outs), tuple(pads), tuple(overhangs))


def window_geometry(
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    padding: str | AxisPads,
) -> Geometry:
    """Resolve a normalized padding into output size and explicit pads on both axes (2-D)."""
    resolved = windows(input_hw, kernel_hw, strides, dilations, padding)
    (out_h, out_w), (rows, cols) = resolved.out, resolved.pads
    return Geometry(out_h, out_w, (rows, cols))
