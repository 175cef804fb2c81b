"""Speed routes of :mod:`refcnn.convolution`: the same sums, arranged to move less data.

Nothing here is public and nothing here defines a result: every function computes one of the
formulas of :mod:`refcnn.convolution` (whose tests check each route against the loop oracle
and against each other, exactly, in rational arithmetic). What lives here:

- :class:`Problem` and :func:`restrict`: one correlation over ``r`` spatial axes, cut down to
  the outputs and kernel taps that read real input (:func:`refcnn.padding.live_span`), so
  pads and dilations that only reach padding cost nothing;
- the route choice (:func:`forward_method`, :func:`input_gradient_method`) and the chunking
  of the column buffers (:func:`batch_chunks`, :func:`row_chunks`);
- ``taps``: one GEMM per kernel tap on the strided slice of the *unpadded* input that the tap
  meets (no padded copy, no column buffer), for problems whose im2col buffer or padded input
  would be large;
- ``depthwise-taps``: the same tap loop as elementwise multiply-adds, for ``groups == C``
  when the padded input that the depthwise einsum of :mod:`refcnn.convolution` reads would be
  mostly padding;
- ``col2im``: the input gradient as the adjoint of im2col, scattered into channel-first
  phase planes;
- ``polyphase``: the textbook input gradient split by stride phase, so the zeros it inserts
  are never multiplied.

Arrays are channels-last (``x``: ``(N, *S, C)``, ``y``: ``(N, *OS, O)``), filters
``(*K, C/groups, O)``; output channel ``o`` belongs to group ``o // (O/groups)``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn import padding
from refcnn.padding import Phase, live_span, phases, tap_range

Array = npt.NDArray[Any]

#: Above this many bytes per image the im2col matrix (and col2im's gradient of it) is replaced
#: by a loop over kernel taps (one GEMM per tap on a strided view), which needs no buffer.
IM2COL_MAX_BYTES = 64 * 2**20
#: im2col, col2im and the filter gradient run over batch chunks of about this many column
#: bytes (at least one image, or a block of its rows, see :func:`row_chunks`). A chunk that
#: stays in the L2 cache is reused there by the GEMM and the scatter instead of going through
#: memory: on the benchmark shapes 2 MiB was 1.1-1.5x faster than one 64 MiB chunk with one
#: BLAS thread and with two (2-core Xeon, 2 MiB L2), and 1 MiB was as fast as 2 MiB or up to
#: 10% faster on all ten fwd+bwd conv shapes of the benchmark (2-D, grouped, 3-D; float32
#: and float64, one thread, alternating runs).
CHUNK_BYTES = 2**20
#: The polyphase input gradient builds its im2col buffer from ``dy`` (``O/groups`` channels);
#: col2im scatters ``prod(K)`` blocks of ``C/groups`` channels. Polyphase is taken up to this
#: ratio of output to input channels per group.
POLYPHASE_MAX_CHANNEL_RATIO = 2


class Problem(NamedTuple):
    """One correlation: output ``i`` with tap ``p`` reads input ``i*s + p*d - before``.

    All fields have one entry per spatial axis. ``before`` may be negative (the windows
    start inside the input) and the windows need not reach the input's end: indices outside
    ``[0, size)`` read zero.
    """

    sizes: tuple[int, ...]
    out: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    before: tuple[int, ...]


@functools.lru_cache(maxsize=256)
def crop_pads(problem: Problem) -> tuple[tuple[int, int], ...]:
    """Return the pads (negative: crops) that turn the input into what the windows read."""
    return tuple(
        padding.crop_pads(n, o, k, s, d, b) for n, o, k, s, d, b in zip(*problem, strict=True)
    )


class Restricted(NamedTuple):
    """A problem cut down to what reads input, and where that part sits in the full one."""

    problem: Problem
    outputs: tuple[slice, ...]
    taps: tuple[slice, ...]


@functools.lru_cache(maxsize=256)
def restrict(problem: Problem) -> Restricted | None:
    """Cut ``problem`` down to its live outputs and taps; ``None`` if nothing reads input.

    Cached: a training loop asks the same few geometries over and over, and for small
    images this integer work is a visible part of a call.
    """
    spans = [live_span(*axis) for axis in zip(*problem, strict=True)]
    if any(span.empty for span in spans):
        return None
    return Restricted(
        Problem(
            problem.sizes,
            tuple(span.out_stop - span.out_start for span in spans),
            tuple(span.tap_stop - span.tap_start for span in spans),
            problem.strides,
            problem.dilations,
            tuple(span.before for span in spans),
        ),
        tuple(slice(span.out_start, span.out_stop) for span in spans),
        tuple(slice(span.tap_start, span.tap_stop) for span in spans),
    )


def spatial(index: Iterable[slice], batch: slice | None = None) -> tuple[slice, ...]:
    """Index spatial axes ``index`` of a channels-last array (the whole batch, or ``batch``)."""
    return (slice(None) if batch is None else batch, *index)


def embed(part: Array, shape: tuple[int, ...], where: tuple[slice, ...]) -> Array:
    """Return an array of ``shape`` that is ``part`` at ``where`` (spatial axes) and 0 elsewhere."""
    if part.shape == shape:
        return part
    full = np.zeros(shape, dtype=part.dtype)
    full[spatial(where)] = part
    return full


def batch_chunks(n: int, bytes_per_image: int) -> list[slice]:
    """Batch slices of about :data:`CHUNK_BYTES` of buffer each (at least one image)."""
    step = max(1, CHUNK_BYTES // max(bytes_per_image, 1))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def row_chunks(n: int, rows: int, bytes_per_image: int) -> list[tuple[slice, slice]]:
    """``(batch, first output axis)`` blocks of about :data:`CHUNK_BYTES` of buffer each.

    Like :func:`batch_chunks` while an image fits; an image whose buffer alone is larger
    (a 3-D volume, a large 2-D image) is cut along its first output axis, so the column
    block the GEMM reads still comes from cache (1.3-1.6x on the 3-D benchmark shape).
    Each block of a channels-last output is contiguous.
    """
    if bytes_per_image <= CHUNK_BYTES or rows <= 1:
        return [(chunk, slice(None)) for chunk in batch_chunks(n, bytes_per_image)]
    step = max(1, CHUNK_BYTES // max(bytes_per_image // rows, 1))
    return [
        (slice(image, image + 1), slice(start, min(start + step, rows)))
        for image in range(n)
        for start in range(0, rows, step)
    ]


def _padded_fits(problem: Problem, channels: int) -> bool:
    """Whether im2col's padded input and column buffer stay within bounds, per image.

    The padded copy is allowed to be as large as the input plus the column buffer (so a
    route that pads never needs more than twice what im2col needs anyway); past that the
    pads are mostly empty space and the tap loop, which never pads, is cheaper.
    """
    columns = math.prod(problem.out) * math.prod(problem.kernel)
    reach = math.prod(
        (o - 1) * s + (k - 1) * d + 1
        for o, k, s, d in zip(
            problem.out, problem.kernel, problem.strides, problem.dilations, strict=True
        )
    )
    return reach <= math.prod(problem.sizes) + columns and columns * channels < 2**62


@functools.lru_cache(maxsize=256)
def forward_method(problem: Problem, channels: int, groups: int, itemsize: int) -> str:
    """Route for a (restricted) forward correlation or filter gradient.

    Every group with one input channel: ``"depthwise"`` (one einsum over the window
    view of the padded input) or, when the padded input would be mostly padding,
    ``"depthwise-taps"``. Otherwise ``"im2col"`` when one image's column buffer is at most
    :data:`IM2COL_MAX_BYTES` and the padded input is not mostly padding, ``"taps"`` else.
    """
    fits = _padded_fits(problem, channels)
    if groups > 1 and channels == groups:
        return "depthwise" if fits else "depthwise-taps"
    per_image = math.prod(problem.out) * math.prod(problem.kernel) * channels * itemsize
    if per_image <= IM2COL_MAX_BYTES and fits:
        return "im2col"
    return "taps"


@functools.lru_cache(maxsize=256)
def input_gradient_method(
    problem: Problem, channels: int, out_channels: int, groups: int, itemsize: int
) -> str:
    """Route for a (restricted) input gradient: ``"polyphase"`` or ``"col2im"``.

    Polyphase runs the forward routes on ``dy``; col2im builds the gradient of the column
    matrix (``prod(K) * C/groups`` values per output position) and scatters it. Polyphase
    is taken when ``dy`` has at most :data:`POLYPHASE_MAX_CHANNEL_RATIO` times the channels
    of ``x`` per group, for depthwise filters (col2im would be one tiny GEMM per channel),
    and whenever col2im's buffer for one image would pass :data:`IM2COL_MAX_BYTES`.
    """
    per_group_in, per_group_out = channels // groups, out_channels // groups
    per_image = math.prod(problem.out) * math.prod(problem.kernel) * channels * itemsize
    if (
        per_group_out <= POLYPHASE_MAX_CHANNEL_RATIO * per_group_in
        or per_group_in == 1
        or per_image > IM2COL_MAX_BYTES
    ):
        return "polyphase"
    return "col2im"


# --- filters by group ------------------------------------------------------------------------


def group_filter(w: Array, groups: int) -> Array:
    """``(*K, C/groups, O)`` -> ``(groups, prod(K) * C/groups, O/groups)``, one matrix per group."""
    *kernel, cg, o = w.shape
    kt = math.prod(kernel)
    if groups == 1:
        return w.reshape(1, kt * cg, o)
    by_group: Array = w.reshape(kt, cg, groups, o // groups).transpose(2, 0, 1, 3)
    return by_group.reshape(groups, kt * cg, o // groups)


def ungroup_filter(dw: Array, kernel: tuple[int, ...], groups: int) -> Array:
    """Undo :func:`group_filter`: ``(groups, prod(K)*Cg, Og)`` -> ``(*K, Cg, groups*Og)``."""
    _, rows, og = dw.shape
    kt = math.prod(kernel)
    cg = rows // kt if kt else 0
    if groups == 1:
        return dw.reshape(*kernel, cg, og)
    by_tap: Array = dw.reshape(groups, kt, cg, og).transpose(1, 2, 0, 3)
    return by_tap.reshape(*kernel, cg, groups * og)


def swap_filter_channels(w: Array, groups: int) -> Array:
    """Filter of the adjoint correlation: ``w[..., c, g*Og + o]`` -> ``w'[..., o, g*Cg + c]``.

    ``(*K, Cg, groups*Og)`` -> ``(*K, Og, groups*Cg)``: within each group the input and output
    channels trade places, the groups keep their order.
    """
    *kernel, cg, o = w.shape
    og = o // groups
    swapped = w.reshape(*kernel, cg, groups, og)
    rank = len(kernel)
    order = (*range(rank), rank + 2, rank + 1, rank)
    moved: Array = swapped.transpose(order)
    return moved.reshape(*kernel, og, groups * cg)


def columns(windows: Array, groups: int) -> Array:
    """Copy a window view ``(N, *OS, *K, C)`` into columns ``(G, N*prod(OS), prod(K)*Cg)``.

    For one group this is the plain im2col matrix (one row per output position). With
    groups, each group's channels are gathered into their own matrix so every group is one
    GEMM on contiguous memory.
    """
    rank = (windows.ndim - 2) // 2
    n, out, kernel, c = (
        windows.shape[0],
        windows.shape[1 : 1 + rank],
        windows.shape[1 + rank : -1],
        windows.shape[-1],
    )
    m, kt = n * math.prod(out), math.prod(kernel)
    if groups == 1:
        return windows.reshape(1, m, kt * c)
    split = windows.reshape(*windows.shape[:-1], groups, c // groups)
    moved = np.moveaxis(split, -2, 0)
    return np.ascontiguousarray(moved).reshape(groups, m, kt * (c // groups))


# --- taps: no padding, no column buffer ------------------------------------------------------


def tap_slices(problem: Problem, tap: tuple[int, ...]) -> tuple[tuple[slice, ...], ...] | None:
    """Return the ``(outputs, inputs)`` slices that tap ``tap`` pairs, or ``None``.

    Output block ``outputs`` reads input block ``inputs`` (strided by the stride) through that
    tap; ``None`` when the tap reads only padding for every output.
    """
    outs, ins = [], []
    for p, n, o, s, d, b in zip(
        tap,
        problem.sizes,
        problem.out,
        problem.strides,
        problem.dilations,
        problem.before,
        strict=True,
    ):
        lo, hi = tap_range(n, o, s, p * d - b)
        if lo == hi:
            return None
        start = lo * s + p * d - b
        outs.append(slice(lo, hi))
        ins.append(slice(start, start + (hi - lo - 1) * s + 1, s))
    return tuple(outs), tuple(ins)


def _taps(
    problem: Problem,
) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]]:
    for tap in itertools.product(*map(range, problem.kernel)):
        where = tap_slices(problem, tap)
        if where is not None:
            yield tap, where[0], where[1]


def _flat(a: Array) -> Array:
    return a.reshape(-1, a.shape[-1])


def correlate_taps(x: Array, w: Array, problem: Problem, groups: int) -> Array:
    """Forward correlation as one GEMM per live tap on the strided slice it reads."""
    n, c, o = x.shape[0], x.shape[-1], w.shape[-1]
    y = np.zeros((n, *problem.out, o), dtype=x.dtype)
    cg, og = c // groups, o // groups
    for tap, outs, ins in _taps(problem):
        rows = _flat(x[spatial(ins)])
        target = y[spatial(outs)]
        if groups == 1:
            product = rows @ w[tap]
        else:
            by_group = rows.reshape(-1, groups, cg).transpose(1, 0, 2)
            product = np.matmul(by_group, w[tap].reshape(cg, groups, og).transpose(1, 0, 2))
            product = product.transpose(1, 0, 2)
        target += product.reshape(target.shape)
    return y


def filter_gradient_taps(dy: Array, x: Array, problem: Problem, groups: int) -> Array:
    """``dw[p] = sum over outputs of x_tap^T dy``, one GEMM per live tap."""
    c, o = x.shape[-1], dy.shape[-1]
    cg, og = c // groups, o // groups
    dw = np.zeros((*problem.kernel, cg, o), dtype=dy.dtype)
    for tap, outs, ins in _taps(problem):
        rows = _flat(x[spatial(ins)])
        grads = _flat(dy[spatial(outs)])
        if groups == 1:
            dw[tap] = rows.T @ grads
        else:
            by_group = rows.reshape(-1, groups, cg).transpose(1, 2, 0)  # (G, Cg, M)
            per_group = np.matmul(by_group, grads.reshape(-1, groups, og).transpose(1, 0, 2))
            dw[tap] = per_group.transpose(1, 0, 2).reshape(cg, o)
    return dw


# --- depthwise: groups == C, when the padded input would be mostly padding ---------------------


def correlate_depthwise(x: Array, w: Array, problem: Problem, groups: int) -> Array:
    """Forward correlation with one input channel per group, tap by live tap.

    ``y[..., c*m + j] += x_tap[..., c] * w[tap, 0, c*m + j]`` on the strided slice of the
    unpadded input each tap meets.
    """
    n, c, o = x.shape[0], x.shape[-1], w.shape[-1]
    assert groups == c, (groups, c)
    y = np.zeros((n, *problem.out, c, o // c), dtype=x.dtype)
    for tap, outs, ins in _taps(problem):
        y[spatial(outs)] += x[spatial(ins)][..., None] * w[tap].reshape(c, o // c)
    return y.reshape(n, *problem.out, o)


def filter_gradient_depthwise(dy: Array, x: Array, problem: Problem, groups: int) -> Array:
    """``dw[tap, 0, c*m + j] = sum over outputs of x_tap[..., c] * dy[..., c*m + j]``."""
    c, o = x.shape[-1], dy.shape[-1]
    assert groups == c, (groups, c)
    dw = np.zeros((*problem.kernel, 1, o), dtype=dy.dtype)
    # Explicit subscripts: NumPy's einsum refuses an ellipsis for object arrays.
    axes = "nijk"[: len(problem.kernel) + 1]
    for tap, outs, ins in _taps(problem):
        grads = dy[spatial(outs)]
        grads = grads.reshape(*grads.shape[:-1], c, o // c)
        dw[tap][0] = np.einsum(f"{axes}c,{axes}cm->cm", x[spatial(ins)], grads).reshape(o)
    return dw


# --- input gradient -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _axis_phases(problem: Problem) -> tuple[tuple[Phase, ...], ...]:
    """:func:`refcnn.padding.phases` of every axis (cached, like :func:`restrict`)."""
    return tuple(
        tuple(phases(n, k, s, d, b))
        for n, k, s, d, b in zip(
            problem.sizes,
            problem.kernel,
            problem.strides,
            problem.dilations,
            problem.before,
            strict=True,
        )
    )


def _reversed_taps(phase: Phase) -> slice:
    """Return the phase's taps, last first, as a slice (they are evenly spaced)."""
    step = phase.taps[1] - phase.taps[0] if len(phase.taps) > 1 else 1
    stop = phase.taps[0] - step
    return slice(phase.taps[-1], stop if stop >= 0 else None, -step)


def _phase_index(phase: Phase, stride: int) -> slice:
    return slice(phase.first, phase.first + stride * (phase.length - 1) + 1, stride)


def input_gradient_polyphase(
    dy: Array,
    w: Array,
    problem: Problem,
    groups: int,
    correlate: Callable[[Array, Array, Problem, int], Array],
) -> Array:
    """Compute the textbook input gradient split by stride phase (:class:`~refcnn.padding.Phase`).

    Each combination of per-axis phases is a stride-1 correlation of ``dy`` with that
    phase's taps, reversed and with their channels swapped (:func:`swap_filter_channels`),
    run by ``correlate`` (the forward core, which picks its own route). At stride 1 there is
    one phase per axis and this is exactly the textbook route.
    """
    n, c = dy.shape[0], groups * w.shape[-2]
    swapped = swap_filter_channels(w, groups)
    dx: Array | None = None
    for combo in itertools.product(*_axis_phases(problem)):
        sub_w = swapped[tuple(_reversed_taps(phase) for phase in combo)]
        sub = Problem(
            problem.out,
            tuple(phase.length for phase in combo),
            tuple(len(phase.taps) for phase in combo),
            (1,) * len(combo),
            tuple(phase.dilation for phase in combo),
            tuple(phase.shifts[-1] for phase in combo),
        )
        part = correlate(dy, sub_w, sub, groups)
        if sub.out == problem.sizes:  # stride 1 (or one phase covers all): part is all of dx
            return part
        if dx is None:
            dx = np.zeros((n, *problem.sizes, c), dtype=dy.dtype)
        index = tuple(_phase_index(ph, s) for ph, s in zip(combo, problem.strides, strict=True))
        dx[spatial(index)] = part
    if dx is None:
        dx = np.zeros((n, *problem.sizes, c), dtype=dy.dtype)
    return dx


def input_gradient_col2im(dy: Array, w: Array, problem: Problem, groups: int) -> Array:
    """Input gradient as the adjoint of im2col: ``dcols = W dy^T``, then scatter-add.

    ``dcols[g, (p, c), (n, i)] = sum_o w[p, c, g*Og + o] dy[n, i, g*Og + o]`` is the gradient
    of group ``g``'s column matrix; each entry goes back (``+=``) to the input element its
    column read. The scatter is where the time goes, so it runs on channel-first phase
    planes (:func:`refcnn.padding.phases`): every tap adds one contiguous block into one
    plane, instead of moving ``C`` elements at a time (3 for an RGB input) strided by the
    stride. Taps that read only padding are skipped; nothing is padded.
    """
    n, o = dy.shape[0], dy.shape[-1]
    cg, og = w.shape[-2], o // groups
    kernel, out = problem.kernel, problem.out
    kt, m_image = math.prod(kernel), math.prod(out)
    axis_phases = _axis_phases(problem)
    # For each axis and tap: (index of its phase, its shift), or nothing if no input reads it.
    located = [
        {
            p: (j, shift)
            for j, ph in enumerate(axis)
            for p, shift in zip(ph.taps, ph.shifts, strict=True)
        }
        for axis in axis_phases
    ]
    # (tap number, phase per axis, dcols block, plane block)
    scatters: list[tuple[int, tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]] = []
    for t, tap in enumerate(itertools.product(*map(range, kernel))):
        spots = [located[a].get(p) for a, p in enumerate(tap)]
        if None in spots:
            continue
        combo: list[int] = []
        blocks: list[slice] = []
        targets: list[slice] = []
        for a, spot in enumerate(spots):
            assert spot is not None
            j, shift = spot
            # Output i of this tap lands on index i + shift of its phase plane.
            lo, hi = tap_range(axis_phases[a][j].length, out[a], 1, shift)
            combo.append(j)
            blocks.append(slice(lo, hi))
            targets.append(slice(lo + shift, hi + shift))
        if all(block.start < block.stop for block in blocks):
            scatters.append((t, tuple(combo), tuple(blocks), tuple(targets)))
    planes: dict[tuple[int, ...], Array] = {}
    for scatter in scatters:
        if scatter[1] not in planes:
            lengths = tuple(axis_phases[a][j].length for a, j in enumerate(scatter[1]))
            planes[scatter[1]] = np.zeros((n, groups, cg, *lengths), dtype=dy.dtype)
    w_groups = group_filter(w, groups)  # (G, prod(K)*Cg, Og)
    for chunk in batch_chunks(n, m_image * kt * cg * groups * dy.itemsize):
        nb = chunk.stop - chunk.start
        dy_groups = _flat(dy[chunk]).reshape(nb * m_image, groups, og).transpose(1, 2, 0)
        dcols = np.matmul(w_groups, dy_groups).reshape(groups, kt, cg, nb, *out)
        for t, phase_combo, block, target in scatters:
            src_index = (slice(None), slice(None), slice(None), *block)
            dst_index = (chunk, slice(None), slice(None), *target)
            src = dcols[:, t][src_index]  # (G, Cg, nb, *block)
            dst = planes[phase_combo][dst_index]
            dst += np.moveaxis(src, 2, 0)
    dx = np.zeros((n, *problem.sizes, groups * cg), dtype=dy.dtype)
    for key, plane in planes.items():
        index = [_phase_index(axis_phases[a][j], problem.strides[a]) for a, j in enumerate(key)]
        dx[spatial(index)] = np.moveaxis(plane.reshape(n, groups * cg, *plane.shape[3:]), 1, -1)
    return dx
