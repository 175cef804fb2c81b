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

A windowed op reads input index ``i*s + p*d - before`` for output ``i`` and kernel tap ``p``.
:func:`tap_range` gives, for one tap, the outputs whose read lands inside the input, and
:func:`live_span` the outputs and taps that read any input at all, so that work on pads and
dilations that reach only padding can be skipped, and :func:`crop_pads` the pads (negative:
crops) that turn the input into exactly the span the windows read. The input gradient reads
the same relation backwards: :func:`adjoint_geometry` for the textbook route (zero-inserted
``dy``, rotated kernel) and :func:`phases` for the split by stride phase.
:func:`transpose_geometry` is the size rule of the transposed convolution (ONNX
``ConvTranspose``).

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
    "LiveSpan",
    "PaddingLike",
    "Phase",
    "Windows",
    "adjoint_geometry",
    "axis_geometry",
    "crop_pads",
    "live_span",
    "normalize_padding",
    "phases",
    "tap_range",
    "transpose_geometry",
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


def tap_range(size: int, out: int, stride: int, offset: int) -> tuple[int, int]:
    """Return the outputs ``i`` in ``[0, out)`` with ``0 <= i*stride + offset < size``.

    The result is ``[lo, hi)``. ``offset`` is ``p*d - before`` for kernel tap ``p``; it can
    be any integer (a negative
    ``before`` means the first window starts inside the input). An empty range is returned
    as ``(lo, lo)``. The input index read by output ``lo`` is ``lo*stride + offset``.
    """
    lo = max(0, -(offset // stride))  # ceil(-offset / stride)
    hi = min(out, -((offset - size) // stride))  # ceil((size - offset) / stride)
    return (lo, max(lo, hi))


class LiveSpan(NamedTuple):
    """The part of one axis of a windowed op that reads real input.

    Outputs outside ``[out_start, out_stop)`` and taps outside ``[tap_start, tap_stop)``
    read padding only. Restricted to those, output ``out_start + i`` with tap
    ``tap_start + p`` reads input index ``i*s + p*d - before`` (``before`` may be negative:
    the restricted windows then start inside the input).
    """

    out_start: int
    out_stop: int
    tap_start: int
    tap_stop: int
    before: int

    @property
    def empty(self) -> bool:
        """True when no output reads any input element."""
        return self.out_stop <= self.out_start


def live_span(
    size: int, out: int, kernel: int, stride: int, dilation: int, before: int
) -> LiveSpan:
    """Find the outputs and taps of one axis that read some input element (:class:`LiveSpan`).

    Both ends of a tap's output range, :func:`tap_range`, fall as the tap index grows, so
    the first live output is the last live tap's first one and the last live output the
    first live tap's last one. The taps are scanned inwards from both ends: ``O(1)`` when
    the first and last taps read input (any ordinary padding), ``O(kernel)`` at worst,
    whatever the pads, strides and dilations.
    """
    first = next(
        (p for p in range(kernel) if _live(size, out, stride, p * dilation - before)), None
    )
    if first is None:
        return LiveSpan(0, 0, 0, 0, before)
    last = next(
        p
        for p in range(kernel - 1, first - 1, -1)
        if _live(size, out, stride, p * dilation - before)
    )
    out_start = tap_range(size, out, stride, last * dilation - before)[0]
    out_stop = tap_range(size, out, stride, first * dilation - before)[1]
    return LiveSpan(
        out_start, out_stop, first, last + 1, before - out_start * stride - first * dilation
    )


def _live(size: int, out: int, stride: int, offset: int) -> bool:
    lo, hi = tap_range(size, out, stride, offset)
    return lo < hi


def transpose_geometry(
    size: int,
    kernel: int,
    stride: int,
    dilation: int,
    padding: str | tuple[int, int],
    output_padding: int = 0,
) -> tuple[int, int]:
    """Output size and leading pad of a transposed convolution along one axis.

    ``size`` is the transposed op's input length (the forward conv's output length). The
    result ``(n, before)`` describes the forward conv whose adjoint it is: an input of
    length ``n`` whose window ``i`` (``0 <= i < size``) starts at index ``i*stride - before``.

    - explicit ``(before, after)`` (ONNX ``pads``):
      ``n = stride*(size - 1) + output_padding + (kernel - 1)*dilation + 1 - before - after``;
    - ``"VALID"``: the same with zero pads;
    - ``"SAME"`` / ``"SAME_LOWER"``: ``n = size*stride`` (ONNX), and ``before`` is the leading
      pad of the forward ``SAME``/``SAME_LOWER`` conv of length ``n`` (:func:`axis_geometry`),
      so the result is the adjoint of that conv. ONNX splits ``total = stride*(size - 1) +
      output_padding + extent - n`` instead, which agrees unless ``extent < stride`` or
      ``output_padding > 0``; callers refuse ``output_padding`` under SAME.

    ``n`` can come out negative for pads larger than the full output; the caller reports it.
    """
    extent = (kernel - 1) * dilation + 1
    if isinstance(padding, str) and padding != "VALID":
        n = size * stride
        _, before, _ = axis_geometry(n, kernel, stride, dilation, padding)
        return n, before
    before, after = (0, 0) if isinstance(padding, str) else padding
    return stride * (size - 1) + output_padding + extent - before - after, before


def crop_pads(
    size: int, out: int, kernel: int, stride: int, dilation: int, before: int
) -> tuple[int, int]:
    """Return the ``(before, after)`` that make an axis of ``size`` what ``out >= 1`` windows read.

    Window ``i`` reads padded positions ``[i*stride, i*stride + extent)``, so the padded length
    is ``(out - 1)*stride + extent``. A negative pad is a crop (the windows start after the
    input's first element, or end before its last).
    """
    reach = (out - 1) * stride + (kernel - 1) * dilation + 1
    return (before, reach - size - before)


def adjoint_geometry(
    out: int, kernel: int, stride: int, dilation: int, before: int
) -> tuple[int, int]:
    """Geometry of the textbook input gradient: ``(length of the zero-inserted dy, its pad)``.

    ``dx[r] = sum_{i,p : i*stride + p*dilation - before = r} dy[i] * w[p]``. With ``dyz`` the
    zero-inserted ``dy`` (``dyz[i*stride] = dy[i]``, length ``(out - 1)*stride + 1``) and
    ``q = kernel - 1 - p`` this is ``dx[r] = sum_q dyz[r + q*dilation - before'] * w[kernel-1-q]``
    with ``before' = (kernel - 1)*dilation - before``: a stride-1 correlation with the rotated
    kernel, one output per input index.
    """
    return ((out - 1) * stride + 1 if out else 0, (kernel - 1) * dilation - before)


class Phase(NamedTuple):
    """Input indices ``first + stride*u`` (``0 <= u < length``) and the taps that read them.

    Tap ``taps[j]`` reads input ``first + stride*u`` for output ``u - shifts[j]``, so the
    phase's gradient is ``dx[first + stride*u] = sum_j dy[u - shifts[j]] * w[taps[j]]``: a
    stride-1 correlation of ``dy`` with the reversed taps at dilation
    ``shifts[1] - shifts[0]`` and leading pad ``shifts[-1]`` (taps ascending, shifts evenly
    spaced).
    """

    first: int
    length: int
    taps: tuple[int, ...]
    shifts: tuple[int, ...]

    @property
    def dilation(self) -> int:
        """Spacing of the reversed taps in ``dy`` (1 for a single tap)."""
        return self.shifts[1] - self.shifts[0] if len(self.shifts) > 1 else 1


def phases(size: int, kernel: int, stride: int, dilation: int, before: int) -> list[Phase]:
    """Split the input indices of one axis by their remainder modulo the stride.

    Input index ``r`` is read by tap ``p`` of window ``i`` when ``i*stride + p*dilation -
    before = r``, so only taps with ``p*dilation - before = r (mod stride)`` reach ``r``.
    Returns one :class:`Phase` per remainder that some tap reaches and that has input
    indices (``first < size``), in increasing ``first``; indices of any other remainder are
    read by no tap (their gradient is zero). ``O(kernel)`` work.
    """
    by_first: dict[int, list[int]] = {}
    for p in range(kernel):
        first = (p * dilation - before) % stride
        if first < size:
            by_first.setdefault(first, []).append(p)
    result = []
    for first in sorted(by_first):
        taps = by_first[first]
        shifts = tuple((p * dilation - before - first) // stride for p in taps)
        result.append(Phase(first, -(-(size - first) // stride), tuple(taps), shifts))
    return result
