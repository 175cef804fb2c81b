"""Speed routes behind :mod:`refcnn.pool`: how its window maxima, sums and scatters are computed.

:mod:`refcnn.pool` says *what* each op computes (the formulas, the validation, the divisors);
this module computes it, with these rearrangements of the same arithmetic:

1. **One spatial axis at a time.** A pooling window is a box, the product of one 1-D window
   per spatial axis, so its max (or sum) is a chain of 1-D maxima (sums)::

       max_{p,q} x[n, i*sh + p*dh - top, j*sw + q*dw - left, c]
           = max_p ( max_q x[n, i*sh + p*dh - top, j*sw + q*dw - left, c] )

   A chain of stages costs ``sum_a K_a`` passes over shrinking arrays instead of
   ``prod_a K_a`` passes: 9 instead of 27 for a 3x3x3 window. Max is exact in any order; a
   sum is regrouped (still at most ``sum_a (K_a - 1)`` roundings per output, fewer than the
   ``prod_a K_a - 1`` of one long sum). Values-only stages run in the order of least work
   (:func:`_cheapest_order`), outer axes first on ties so the first, largest stage reads
   long contiguous runs; a one-tap stride-1 axis is no stage at all.
2. **Only taps that touch the input.** A stage loops over the kernel taps of its axis that
   reach a real element for at least one window (:func:`axis_spans`), each one a strided
   slice of the input against a slice of the output. A tap that only ever meets padding is
   never visited, so a 10**4-wide SAME window over 4 pixels costs a handful of slices, not
   10**4 passes: the cost is the number of (output, real element) pairs.
3. **No pad values.** Tap ``t`` is the first real tap of the windows in ``Span.fresh``; those
   windows are *assigned* from it and every later tap is *combined* into them. No window is
   seeded with ``-inf``, a dtype minimum or zero, so integer and ``object`` arrays need no
   sentinel and a window never reads padding.
4. **First maximum in one running pass.** The stage of the innermost spatial axis runs first
   and the outermost last, each keeping, per window, the tap of its first maximum (a strict
   ``>``: ties keep the earlier tap; a NaN beats a number, the first NaN stays). Undoing the
   chain from the outermost axis in gives the row-major first maximum of the whole window:
   the outer stage picks the first outer index whose inner window holds the maximum, and the
   inner stage recorded that inner window's first maximum.
5. **One scatter.** A max-pool gradient goes to each window's winner with one ``np.add.at``
   (unbuffered: windows sharing a winner add up, in the accumulation dtype, exactly for
   integers and ``object``). The average-pool gradient runs the sum's stages backwards,
   each *assigning* where no earlier tap wrote and adding elsewhere (no zero pass).
6. **Batch chunks.** Windows never span images, so work is done :data:`CHUNK_BYTES` of input
   at a time: the intermediate arrays of a chunk stay in cache and the memory beyond the
   result stays bounded.

Nothing here validates: :mod:`refcnn.pool` does, and guarantees every window holds at least
one real element.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHUNK_BYTES",
    "Axis",
    "Span",
    "axis_spans",
    "first_max",
    "max_backward",
    "window_max",
    "window_sum",
    "window_sum_adjoint",
]

Array = npt.NDArray[Any]

#: Bytes of input per batch chunk (whole images; one image when an image is larger). A
#: chunk, its stage outputs, tap arrays and temporaries take about 3-4 times this, which
#: then fits a 2 MiB L2 cache: measured on (32, 32, 32, 16) float64, 3x3 s2 max-pool
#: gradient 3.7 ms with 2 MiB chunks, 3.5 ms with 1 MiB, 3.8 ms with 512 KiB, 5.2 ms with
#: 128 KiB (Python overhead per chunk); averages 5-15% faster at 512 KiB-1 MiB than at 2 MiB.
CHUNK_BYTES = 2**19


class Span(NamedTuple):
    """Kernel tap ``tap`` of one axis: the windows ``[lo, hi)`` for which it is a real element.

    Window ``i`` reads input ``first + (i - lo) * stride`` at this tap. Windows
    ``[lo, lo + fresh)`` meet no earlier real tap: this tap is their first element.
    """

    tap: int
    lo: int
    hi: int
    first: int
    fresh: int


class Axis(NamedTuple):
    """One spatial axis of a pooling call: array axis, sizes, window and the touching taps."""

    axis: int
    size: int
    out: int
    kernel: int
    stride: int
    dilation: int
    before: int
    spans: tuple[Span, ...]

    @property
    def identity(self) -> bool:
        """Whether the stage of this axis is a plain copy (one tap, stride 1, no padding)."""
        return self.out == self.size and len(self.spans) == 1 and self.stride == 1


def _touching_taps(
    size: int, out: int, kernel: int, stride: int, dilation: int, before: int
) -> Sequence[int]:
    """Return the taps real for at least one window, in increasing order.

    Tap ``t`` can only be real when ``t*dilation`` lies in ``[before - (out-1)*stride,
    before + size - 1]``. When that range holds more taps than there are windows (a stride
    far above the input size), the taps are collected window by window instead, so the
    count of taps looked at is at most the number of windows or of (window, real element)
    pairs, never the kernel size.
    """
    t_first = max(0, -((-(before - (out - 1) * stride)) // dilation))
    t_last = min(kernel - 1, (before + size - 1) // dilation)
    if t_last - t_first + 1 <= out:
        return range(t_first, t_last + 1)
    taps: list[int] = []
    for i in reversed(range(out)):  # later windows start later: their taps come earlier
        offset = i * stride - before
        lo = max(0, -(offset // dilation), taps[-1] + 1 if taps else 0)
        hi = min(kernel - 1, (size - 1 - offset) // dilation)
        taps.extend(range(lo, hi + 1))
    return taps


#: Geometries whose stage plans are kept (they are pure functions of a few ints; a training
#: loop calls the same few geometries over and over).
PLAN_CACHE_SIZE = 256


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def axis_spans(
    axis: int, size: int, out: int, kernel: int, stride: int, dilation: int, before: int
) -> Axis:
    """List the taps of one axis that reach the input, in increasing tap order.

    Tap ``t`` of window ``i`` reads input ``i*stride + t*dilation - before``; see
    :func:`_touching_taps` for which taps are visited.
    """
    spans: list[Span] = []
    if out > 0 and size > 0:
        previous_lo = out
        for t in _touching_taps(size, out, kernel, stride, dilation, before):
            offset = t * dilation - before
            lo = max(0, -(offset // stride))  # ceil(-offset / stride)
            hi = min(out, (size - 1 - offset) // stride + 1)
            if hi <= lo:
                continue
            # Windows past `previous_lo` met the previous real tap (the taps real for a
            # window are consecutive, and both ends of [lo, hi) fall as t grows).
            fresh = min(hi, previous_lo) - lo
            spans.append(Span(t, lo, hi, lo * stride + offset, fresh))
            previous_lo = lo
    return Axis(axis, size, out, kernel, stride, dilation, before, tuple(spans))


def _at(a: Array, axis: int, where: slice) -> Array:
    """View of ``a`` with ``where`` applied on ``axis``."""
    return a[(slice(None),) * axis + (where,)]


def _part(ax: Axis, span: Span, u: int, v: int) -> tuple[slice, slice]:
    """Output slice ``[u, v)`` of a span and the strided input slice its windows read."""
    start = span.first + (u - span.lo) * ax.stride
    return slice(u, v), slice(start, start + (v - u - 1) * ax.stride + 1, ax.stride)


def _resized(shape: Sequence[int], axis: int, size: int) -> tuple[int, ...]:
    return tuple(size if i == axis else n for i, n in enumerate(shape))


Combine = Callable[..., Any]


class _Step(NamedTuple):
    """One slice operation of a stage, over the windows ``out``.

    ``"assign"``: the windows' first real tap, read at ``first``. ``"pair"``: two taps both
    real for these windows, the earlier at ``first`` (their first real tap) and the later at
    ``second``, combined straight into the output. ``"combine"``: a later tap at ``first``,
    combined into what the windows hold.
    """

    kind: str
    out: slice
    first: slice
    second: slice
    tap: int
    second_tap: int


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _steps(ax: Axis) -> tuple[_Step, ...]:
    """List the slice operations of one stage, in tap order.

    The first two spans are paired where both are real (the usual interior windows): one
    combine of two input slices instead of a copy and a combine.
    """
    none = slice(0, 0)
    first, rest = ax.spans[0], ax.spans[1:]
    steps: list[_Step] = []
    u = v = first.lo
    if rest and rest[0].hi > rest[0].lo + rest[0].fresh:
        second = rest[0]
        u, v = second.lo + second.fresh, second.hi
        o, i0 = _part(ax, first, u, v)
        _, i1 = _part(ax, second, u, v)
        steps.append(_Step("pair", o, i0, i1, first.tap, second.tap))
    for lo, hi in ((first.lo, u), (v, first.hi)):
        if hi > lo:
            o, i = _part(ax, first, lo, hi)
            steps.append(_Step("assign", o, i, none, first.tap, first.tap))
    for k, span in enumerate(rest):
        if span.fresh:
            o, i = _part(ax, span, span.lo, span.lo + span.fresh)
            steps.append(_Step("assign", o, i, none, span.tap, span.tap))
        seen = span.lo + span.fresh
        if span.hi > seen and not (k == 0 and u < v):  # the pair did the second's shared part
            o, i = _part(ax, span, seen, span.hi)
            steps.append(_Step("combine", o, i, none, span.tap, span.tap))
    return tuple(steps)


def _reduce_stage(
    a: Array, ax: Axis, combine: Combine, dtype: np.dtype[Any], into: Array | None = None
) -> Array:
    """One 1-D stage: ``out[i] = combine over the real taps t of window i of a[tap(i, t)]``.

    ``into`` is where the result goes (a fresh array if None).
    """
    out = np.empty(_resized(a.shape, ax.axis, ax.out), dtype=dtype) if into is None else into
    for step in _steps(ax):
        block = _at(out, ax.axis, step.out)
        if step.kind == "assign":
            np.copyto(block, _at(a, ax.axis, step.first))
        elif step.kind == "pair":
            earlier, later = _at(a, ax.axis, step.first), _at(a, ax.axis, step.second)
            combine(earlier, later, out=block, dtype=dtype)
        else:
            combine(block, _at(a, ax.axis, step.first), out=block, dtype=dtype)
    return out


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _cheapest_order(shape: tuple[int, ...], axes: tuple[Axis, ...]) -> tuple[Axis, ...]:
    """Order the stages of a max or sum by total work: ``sum`` of taps x stage output size.

    Ties go to the outer axes first (their slices keep the inner axes contiguous). Copies
    (:attr:`Axis.identity`) are dropped.
    """
    work = tuple(ax for ax in axes if not ax.identity)
    best, best_cost = work, None
    for order in itertools.permutations(work):
        current = [1, *shape[1:]]  # the batch size scales every order alike
        cost = 0
        for ax in order:
            current[ax.axis] = ax.out
            cost += len(ax.spans) * math.prod(current)
        if best_cost is None or cost < best_cost:
            best, best_cost = order, cost
    return best


def batch_chunks(n: int, bytes_per_image: int) -> Iterator[slice]:
    """Split a batch of ``n`` images into runs of about :data:`CHUNK_BYTES`."""
    step = max(1, CHUNK_BYTES // max(1, bytes_per_image))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _chunked(
    x: Array,
    axes: Sequence[Axis],
    out_shape: tuple[int, ...],
    combine: Combine,
    dtype: np.dtype[Any],
) -> Array:
    """Run the stages of :func:`_cheapest_order` chunk by chunk, the last one into the result."""
    out = np.empty(out_shape, dtype=dtype)
    if out.size == 0:
        return out
    order = _cheapest_order((1, *x.shape[1:]), tuple(axes))
    if not order:  # 1x1 windows with stride 1: every stage is a copy
        np.copyto(out, x)
        return out
    # Ufuncs take no byte order in dtype=: stages run in the native one ('>f8' -> '<f8' on a
    # little-endian machine) and the last writes into the result, in the caller's.
    loop = dtype if dtype.isnative else dtype.newbyteorder("=")
    image_bytes = (x.size // x.shape[0]) * x.itemsize
    for part in batch_chunks(x.shape[0], image_bytes):
        a = x[part]
        for k, ax in enumerate(order):
            a = _reduce_stage(a, ax, combine, loop, out[part] if k == len(order) - 1 else None)
    return out


def window_max(x: Array, axes: Sequence[Axis], out_shape: tuple[int, ...]) -> Array:
    """Max over the real elements of every window (NaN propagates), in ``x``'s dtype."""
    return _chunked(x, axes, out_shape, np.maximum, x.dtype)


def window_sum(
    x: Array, axes: Sequence[Axis], out_shape: tuple[int, ...], dtype: np.dtype[Any]
) -> Array:
    """Sum over the real elements of every window, carried in ``dtype``."""
    return _chunked(x, axes, out_shape, np.add, dtype)


def _runs(flags: Array) -> list[tuple[int, int, bool]]:
    """Split a 1-D bool array into maximal runs ``(start, stop, value)``."""
    edges = np.flatnonzero(np.diff(flags.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), flags.size]
    return [(lo, hi, bool(flags[lo])) for lo, hi in itertools.pairwise(bounds)]


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _spread_steps(ax: Axis) -> tuple[tuple[tuple[str, slice, slice], ...], tuple[slice, ...]]:
    """List the slice operations of one adjoint stage and the input slices no window reaches.

    Each span's inputs are split into the runs nothing has written yet (``"assign"``) and
    the runs an earlier span wrote (``"add"``), so no input is zeroed and then added to:
    non-overlapping windows (``strides == ksize``) become plain copies.
    """
    written = np.zeros(ax.size, dtype=bool)
    steps: list[tuple[str, slice, slice]] = []
    for span in ax.spans:
        count = span.hi - span.lo
        inputs = span.first + ax.stride * np.arange(count)
        for lo, hi, seen in _runs(written[inputs]):
            o, i = _part(ax, span, span.lo + lo, span.lo + hi)
            steps.append(("add" if seen else "assign", o, i))
        written[inputs] = True
    gaps = tuple(slice(lo, hi) for lo, hi, seen in _runs(written) if not seen)
    return tuple(steps), gaps


def _spread_stage(g: Array, ax: Axis, into: Array | None = None) -> Array:
    """Adjoint of one sum stage: every window sends ``g[i]`` to each of its real inputs."""
    gin = np.empty(_resized(g.shape, ax.axis, ax.size), dtype=g.dtype) if into is None else into
    steps, gaps = _spread_steps(ax)
    for gap in gaps:
        _at(gin, ax.axis, gap)[...] = 0
    for kind, o, i in steps:
        block = _at(gin, ax.axis, i)
        if kind == "assign":
            np.copyto(block, _at(g, ax.axis, o))
        else:
            # Within one tap distinct windows reach distinct inputs: `+=` on a slice is safe.
            np.add(block, _at(g, ax.axis, o), out=block)
    return gin


def window_sum_adjoint(g: Array, axes: Sequence[Axis], input_shape: tuple[int, ...]) -> Array:
    """Adjoint of :func:`window_sum`: ``dx[h] = sum of g[i] over the windows i holding h``.

    The stages of :func:`window_sum` run in reverse order, each spreading one axis back.
    """
    if g.size == 0:
        return np.zeros(input_shape, dtype=g.dtype)
    dx = np.empty(input_shape, dtype=g.dtype)
    order = _cheapest_order((1, *input_shape[1:]), tuple(axes))
    if not order:
        np.copyto(dx, g)
        return dx
    image_bytes = (dx.size // dx.shape[0]) * dx.itemsize
    for part in batch_chunks(input_shape[0], image_bytes):
        a = g[part]
        for k, ax in enumerate(reversed(order)):
            a = _spread_stage(a, ax, dx[part] if k == len(order) - 1 else None)
    return dx


# --- first maximum ---------------------------------------------------------------------------


def _isnan(a: Array) -> Array:
    """Elementwise NaN test; integer and ``object`` (Fraction) arrays hold no NaN."""
    if a.dtype.kind == "f":
        return np.isnan(a)
    return np.zeros(a.shape, dtype=bool)


def _better(values: Array, best: Array, nan_aware: bool) -> Array:
    """Where ``values`` replaces the running maximum: strictly larger, or a first NaN."""
    better: Array = np.greater(values, best)
    if nan_aware:
        better |= _isnan(values) & ~_isnan(best)
    return better


def _max_stage_with_taps(a: Array, ax: Axis, nan_aware: bool) -> tuple[Array, Array]:
    """One 1-D max stage that also keeps each window's first-maximum tap ``t``."""
    out = np.empty(_resized(a.shape, ax.axis, ax.out), dtype=a.dtype)
    tap_dtype = np.min_scalar_type(ax.kernel - 1)
    taps = np.empty(out.shape, dtype=tap_dtype)
    for step in _steps(ax):
        best, won = _at(out, ax.axis, step.out), _at(taps, ax.axis, step.out)
        if step.kind == "assign":
            np.copyto(best, _at(a, ax.axis, step.first))
            won[...] = step.tap
        elif step.kind == "pair":
            earlier, values = _at(a, ax.axis, step.first), _at(a, ax.axis, step.second)
            if nan_aware:
                better = _better(values, earlier, nan_aware)
                np.maximum(earlier, values, out=best)
            else:
                # Without NaN the later tap won exactly where the maximum differs from the
                # earlier one; comparing against the contiguous result is the cheaper read.
                np.maximum(earlier, values, out=best)
                better = np.not_equal(best, earlier)
            np.multiply(better, tap_dtype.type(step.second_tap - step.tap), out=won)
            if step.tap:
                won += tap_dtype.type(step.tap)
        else:
            values = _at(a, ax.axis, step.first)
            better = _better(values, best, nan_aware)
            np.maximum(best, values, out=best)
            # Every tap recorded so far is smaller than this one, so "set to t where better"
            # is a maximum with t * better: two branch-free passes over small integers.
            moved = np.multiply(better, tap_dtype.type(step.tap), dtype=tap_dtype)
            np.maximum(won, moved, out=won)
    return out, taps


def _gather_outer(taps: Array, index: Array, first: int, axis: int) -> Array:
    """``taps[p, index, q]`` with the axes ``first .. axis-1`` merged and indexed by ``index``.

    ``taps`` has shape ``(*P, *outer, *Q)`` (outer: the input sizes of the axes decided so
    far), ``index`` the output shape ``(*P, *J, *Q)`` holding row-major indices into
    ``outer``. The flat index is ``(p * L + index) * |Q| + q``; one ``np.take`` reads it,
    where a ``take_along_axis`` over the same arrays builds broadcast index arrays per axis.
    """
    lead = math.prod(taps.shape[:first])
    outer = math.prod(taps.shape[first:axis])
    inner = math.prod(taps.shape[axis:])
    ix = index.reshape(lead, -1, inner)
    flat = ix * inner
    flat += (np.arange(lead, dtype=index.dtype) * (outer * inner))[:, None, None]
    flat += np.arange(inner, dtype=index.dtype)
    return np.take(taps.reshape(-1), flat).reshape(index.shape)


def _index_dtype(size: int) -> np.dtype[Any]:
    """int32 for indices below 2**31 (half the memory traffic of int64), else int64."""
    return np.dtype(np.int32 if size < 2**31 else np.int64)


def _wrapped(value: int, dtype: np.dtype[Any]) -> Any:
    """``value`` (below 2**62) as a ``dtype`` scalar, modulo 2**bits where it does not fit.

    A window's start or tap offset may pass int32 (a stride of 2**40 with one window), but
    the index it adds up to is a real element's and fits: integer arithmetic modulo 2**32
    gives it exactly, where NumPy would refuse the Python int outright.
    """
    return np.array(value, dtype=np.int64).astype(dtype)[()]


def _first_max_part(
    x: Array, axes: Sequence[Axis], *, nan_aware: bool = False
) -> tuple[Array, Array]:
    """``(y, index)`` of one batch chunk: maxima and row-major spatial index of each winner.

    Float chunks rerun with the NaN-aware comparisons only when their maxima hold a NaN (a
    window holding a NaN pools to NaN, so none is missed).
    """
    order = sorted(axes, key=lambda ax: -ax.axis)  # innermost axis first: see point 4 above
    a = x
    tap_arrays: list[Array] = []
    for ax in order:
        a, taps = _max_stage_with_taps(a, ax, nan_aware)
        tap_arrays.append(taps)
    y = a
    if not nan_aware and x.dtype.kind == "f" and np.isnan(y).any():
        return _first_max_part(x, axes, nan_aware=True)
    first = min(ax.axis for ax in axes)
    dtype = _index_dtype(x.size)
    index: Array | None = None
    # Undo the chain from the outermost axis in. The taps of a stage are at output size on
    # its axis and the inner ones, at input size on the outer ones, whose winning positions
    # are known: merged into one axis, they are read with one np.take by `index`, the
    # row-major index over those outer axes.
    for ax, taps in zip(reversed(order), reversed(tap_arrays), strict=True):
        tap = taps if index is None else _gather_outer(taps, index, first, ax.axis)
        # In int64 (below 2**62 by the geometry checks), then wrapped to the index dtype.
        window_starts = np.arange(ax.out, dtype=np.int64) * ax.stride - ax.before
        starts = window_starts.astype(dtype).reshape((-1,) + (1,) * (x.ndim - 1 - ax.axis))
        position = np.multiply(tap, _wrapped(ax.dilation, dtype), dtype=dtype)
        position += starts
        if index is None:
            index = position
        else:
            index *= ax.size
            index += position
    assert index is not None
    return y, index


def first_max(x: Array, axes: Sequence[Axis], out_shape: tuple[int, ...]) -> tuple[Array, Array]:
    """Window maxima and the row-major spatial index of each window's first maximum.

    The index counts within the window's own ``(n, c)`` spatial volume. A NaN counts as the
    maximum and the first NaN wins; float chunks run the NaN-aware comparisons only when
    their maxima hold a NaN (a window holding a NaN pools to NaN, so none is missed).
    """
    y = np.empty(out_shape, dtype=x.dtype)
    index = np.empty(out_shape, dtype=np.int64)
    if y.size == 0:
        return y, index
    image_bytes = (x.size // x.shape[0]) * x.itemsize
    for part in batch_chunks(x.shape[0], image_bytes):
        y[part], index[part] = _first_max_part(x[part], axes)
    return y, index


def max_backward(
    dy: Array,
    x: Array,
    axes: Sequence[Axis],
    channel_axis: int,
    dtype: np.dtype[Any],
) -> Array:
    """Send each window's ``dy`` to its first maximum; windows sharing one add up in ``dtype``."""
    dx = np.zeros(x.shape, dtype=dtype)
    if dy.size == 0:
        return dx
    volume = int(np.prod([ax.size for ax in axes]))
    channels = x.shape[channel_axis]
    image_bytes = (x.size // x.shape[0]) * x.itemsize
    for part in batch_chunks(x.shape[0], image_bytes):
        _, index = _first_max_part(x[part], axes)  # int32 or int64 by the chunk's size
        channel = np.arange(channels, dtype=index.dtype).reshape(
            (-1,) + (1,) * (x.ndim - 1 - channel_axis)
        )
        batch = np.arange(index.shape[0], dtype=index.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
        if channel_axis == 1:  # (N, C, spatial...): flat = (n*C + c)*S + s
            flat = (batch * channels + channel) * volume + index
        else:  # (N, spatial..., C): flat = (n*S + s)*C + c
            flat = (batch * volume + index) * channels + channel
        target = dx[part].reshape(-1)  # a view: a batch slice of a C-contiguous array
        np.add.at(target, flat.reshape(-1), dy[part].astype(dtype, copy=False).reshape(-1))
    return dx
