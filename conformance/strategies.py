"""Hypothesis strategies for the conformance suite, one plural-noun strategy per API family.

A family strategy (``conv2d_cases(op=...)``, ``pool_cases``, ...) draws the named values of
one example — arrays in float64 and options — for any function of its family: it asks
refcnn's signature of ``op`` which parameters exist (:func:`parameters`) and draws only
those. The :class:`Case` it returns builds its :class:`Call` from that same signature
(:func:`make_call`), so no signature is written twice; ``repr(case)`` is a copy-pasteable
reproducer (``import numpy as np, refcnn``, the arrays at full precision, the call, the
resolved pads). Which family serves which function is the op registry's business
(:mod:`conformance.ops`).

Array *values* come from :class:`Field`, an index-keyed pseudo-random generator seeded by
Hypothesis (drawing thousands of elements one by one would be slow and Hypothesis' sparse
``fill`` would make most arrays constant, which hides kernel flips and transposes; keying
values by index keeps the surviving elements' values when a shape shrinks). The seed, the
value profile and every shape, stride, dilation, padding and option are Hypothesis draws,
so shrinking still minimizes the geometry. The generators are biased toward the corners
where wrong implementations hide (see ``conformance/selftest``):

- geometry: H != W, C != O, N != K drawn independently; strides 1-4 including stride >
  kernel; dilations 1-3 drawn independently of strides (stride > 1 with dilation > 1 on one
  axis, where a gradient can drop the dilation, in about half the cases; 1 is drawn twice as
  often as other values, since TensorFlow cannot express that combination); even kernels;
  inputs sized so the kernel fits, exactly equals the input, or (VALID) exceeds it, giving an empty
  output; every padding mode, with odd total pads (SAME vs SAME_LOWER) about half the time,
  asymmetric explicit pads, and leftover rows no window reads;
- values: small integers (exact sums, ties in max pooling, exact zeros), normal and
  wide-magnitude floats with exact zeros, distinct values; logits with rows near +-1e4 next
  to rows near 0 (a global instead of per-row max fails there); probabilities down to 1e-30,
  exact zeros (``0 * log 0``) and, sometimes, ``p = 0`` where ``y > 0`` (an infinite loss);
  index labels with ``ignore_index``, probability labels, class weights, label smoothing.

Arrays stay small (at most :data:`MAX_ELEMENTS` elements) so examples are fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
from hypothesis import assume
from hypothesis import strategies as st

from conformance.calls import (
    Call,
    make_call,
    parameters,
    render_reproducer,
)
from refcnn.padding import axis_geometry, normalize_padding, window_geometry, windows

__all__ = [
    "MAX_ELEMENTS",
    "Case",
    "Field",
    "activation_cases",
    "conv_cases",
    "conv_transpose_cases",
    "cross_entropy_cases",
    "dense_cases",
    "flatten_cases",
    "pool_cases",
    "softmax_cases",
    "softmax_cross_entropy_cases",
]

Array: TypeAlias = npt.NDArray[Any]
IntPair: TypeAlias = int | tuple[int, int]
Padding: TypeAlias = str | tuple[tuple[int, int], tuple[int, int]]

#: Upper bound on the elements of any one generated array.
MAX_ELEMENTS = 4000

PADDING_MODES = ("VALID", "SAME", "SAME_LOWER", "explicit")
# Drawn twice as often: SAME (odd total pads, where SAME and SAME_LOWER part) and explicit
# (asymmetric pads, leftover rows) hide more bugs than VALID.
_PADDING_DRAWS = (*PADDING_MODES, "SAME", "explicit")


# --- calls and reproducers ---------------------------------------------------------------


def _geometry_note(
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: IntPair | None,
    dilations: IntPair,
    padding: Padding,
) -> str:
    pair = _as_pair(strides if strides is not None else kernel_hw)
    geometry = window_geometry(
        input_hw, kernel_hw, pair, _as_pair(dilations), normalize_padding("note", padding)
    )
    return f"resolved pads {geometry.pads}, output {geometry.out_h}x{geometry.out_w}"


def _as_pair(value: IntPair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


# --- cases --------------------------------------------------------------------------------


class Case(NamedTuple):
    """One drawn example: the function, its named values (float64 arrays) and a note.

    ``repr(case)`` is the copy-pasteable reproducer; ``note`` carries what the values do
    not show (the resolved pads and output size of a windowed op).
    """

    op: str
    values: dict[str, Any]
    note: str = ""

    def call(self) -> Call:
        """Return the API call this case makes (see :func:`make_call`)."""
        return make_call(self.op, self.values)

    def __repr__(self) -> str:
        return render_reproducer(self.call(), note=self.note)


# --- values ------------------------------------------------------------------------------

#: Value profiles for general float data, see :func:`_fill`.
VALUE_PROFILES = ("integers", "normal", "wide", "distinct")
#: Pooling adds all-negative maps (a zero pad would win a max) and more ties.
POOL_PROFILES = ("integers", "integers", "negative", "normal", "distinct", "wide")


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(z: Array) -> Array:
    """Apply the splitmix64 finalizer elementwise (uint64 array arithmetic wraps silently)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return np.asarray(z ^ (z >> np.uint64(31)))


class Field:
    """Index-keyed pseudo-random values: the generator behind every array of a case.

    The value at multi-index ``i`` of the ``k``-th request depends only on ``(seed, k, i)``,
    not on the shape, so when Hypothesis shrinks a shape the surviving elements keep their
    values and a failure caused by one element survives the shrink: reproducers come out
    small. The methods mirror the few of :class:`numpy.random.Generator` the strategies use.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.requests = 0

    def random(self, shape: tuple[int, ...]) -> Array:
        """Draw uniform floats in [0, 1)."""
        self.requests += 1
        size = math.prod(shape)
        # Python-int arithmetic for the stream offset: NumPy warns on uint64 *scalar* overflow.
        stream = np.uint64((0x9E3779B97F4A7C15 * self.requests) % 2**64)
        key = _splitmix(np.full(size, self.seed, dtype=np.uint64) + stream)
        for index in np.indices(shape, dtype=np.uint64).reshape(len(shape), size):
            key = _splitmix(key + _GOLDEN * (index + np.uint64(1)))
        uniform: Array = (key >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return uniform.reshape(shape)

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> Array:
        """Draw integers in ``[low, high)`` (int64)."""
        return np.asarray(low + np.floor(self.random(shape) * (high - low)), dtype=np.int64)

    def uniform(self, low: float, high: float, shape: tuple[int, ...]) -> Array:
        """Draw uniform floats in ``[low, high)``."""
        return np.asarray(low + (high - low) * self.random(shape))

    def standard_normal(self, shape: tuple[int, ...]) -> Array:
        """Draw standard normal floats (Box-Muller)."""
        radius = np.sqrt(-2.0 * np.log1p(-self.random(shape)))
        return np.asarray(radius * np.cos(2.0 * np.pi * self.random(shape)))

    def choice(self, options: Sequence[float], shape: tuple[int, ...]) -> Array:
        """Draw elements of ``options``, uniformly."""
        return np.asarray(options, dtype=np.float64)[self.integers(0, len(options), shape)]


def _fill(rng: Field, shape: tuple[int, ...], profile: str, zeros: float) -> Array:
    """Float64 values of one profile; ``zeros`` is the fraction set to exactly 0.

    - ``integers``: -3..3 (exact products and sums, ties, zeros);
    - ``normal``: standard normal;
    - ``wide``: random sign times 10**U(-3, 3) (mixed magnitudes);
    - ``distinct``: the ranks of uniform draws on a quarter-integer grid (no ties, exact in
      float32);
    - ``negative``: integers -5..-1 (every value below a zero pad; ties).
    """
    values: Array
    if profile == "integers":
        values = rng.integers(-3, 4, shape).astype(np.float64)
    elif profile == "normal":
        values = rng.standard_normal(shape)
    elif profile == "wide":
        values = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-3, 3, shape)
    elif profile == "negative":
        values = rng.integers(-5, 0, shape).astype(np.float64)
        zeros = 0.0
    else:
        ranks = np.argsort(np.argsort(rng.random(shape), axis=None)).reshape(shape)
        values = (ranks - ranks.size // 2) * 0.25
        zeros = 0.0
    if zeros:
        values = np.where(rng.random(shape) < zeros, 0.0, values)
    return np.asarray(values, dtype=np.float64)


@st.composite
def _fields(draw: st.DrawFn) -> Field:
    return Field(draw(st.integers(0, 2**32 - 1)))


@st.composite
def _rngs(draw: st.DrawFn) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def _float_arrays(
    draw: st.DrawFn, shape: tuple[int, ...], *, profiles: Sequence[str] = VALUE_PROFILES
) -> Array:
    profile = draw(st.sampled_from(profiles))
    zeros = draw(st.sampled_from([0.0, 0.2, 0.6]))
    return _fill(draw(_fields()), shape, profile, zeros)


def _chance(draw: st.DrawFn, probability: float) -> bool:
    """Draw True with ``probability`` (Hypothesis' small-integer draws favour their bounds)."""
    return bool(draw(_rngs()).random() < probability)


def _pair_value(draw: st.DrawFn, pair: tuple[int, int]) -> IntPair:
    """Draw an int when both entries agree (sometimes), else keep the pair."""
    if pair[0] == pair[1] and draw(st.booleans()):
        return pair[0]
    return pair


def _same_total(size: int, extent: int, stride: int) -> int:
    """Total SAME padding of one axis, from :mod:`refcnn.padding` (extent = dilated kernel)."""
    _, before, after = axis_geometry(size, extent, stride, 1, "SAME")
    return before + after


def _side(draw: st.DrawFn, extent: int, stride: int) -> int:
    """Draw an input side: the window fits (most often), equals it, or anything 1..12.

    Half the fitting sides are chosen among those whose SAME total padding is odd, the only
    case where SAME (odd pixel after) and SAME_LOWER (before) differ.
    """
    fit = draw(st.sampled_from(["fits", "fits", "fits", "exact", "free"]))
    if fit == "exact":
        return extent
    if fit == "free":
        return draw(st.integers(1, 12))
    sides = range(extent, extent + 8)
    odd = [n for n in sides if _same_total(n, extent, stride) % 2]
    prefer_odd = draw(st.booleans())
    if odd and prefer_odd:
        return draw(st.sampled_from(odd))
    return draw(st.sampled_from(sides))


def _batch(draw: st.DrawFn, *, per_item: int, most: int = 4) -> int:
    """Batch size 1..most (0, an empty batch, about one time in ten), capped by MAX_ELEMENTS.

    The empty batch is where the draw shrinks to (not :func:`_chance`, whose shrunk seed
    says no): while Hypothesis shrinks one failure it then passes through N = 0, so a crash
    on an empty batch is found and reported beside a value bug of the same function.
    """
    n = 0 if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, most))
    return min(n, max(1, MAX_ELEMENTS // max(per_item, 1)))


def _nd_padding(
    draw: st.DrawFn,
    kernel: tuple[int, ...],
    *,
    pool: bool,
    modes: Sequence[str] = _PADDING_DRAWS,
) -> Any:
    """Draw a padding mode among ``modes``, or one explicit ``(before, after)`` pair per axis.

    For pooling each pad is below the kernel on its axis (a pad as wide as the window would
    make a window of padding only).
    """
    mode = draw(st.sampled_from(modes))
    if mode != "explicit":
        return mode
    return tuple(
        (draw(st.integers(0, k - 1 if pool else 4)), draw(st.integers(0, k - 1 if pool else 4)))
        for k in kernel
    )


def _padding(draw: st.DrawFn, kernel_hw: tuple[int, int], *, pool: bool) -> Padding:
    mode = draw(st.sampled_from(_PADDING_DRAWS))
    if mode != "explicit":
        return mode
    # Pooling requires each explicit pad < the kernel on that axis; conv allows any pad.
    top_max, left_max = (kernel_hw[0] - 1, kernel_hw[1] - 1) if pool else (4, 4)
    top, bottom = draw(st.integers(0, top_max)), draw(st.integers(0, top_max))
    left, right = draw(st.integers(0, left_max)), draw(st.integers(0, left_max))
    return ((top, bottom), (left, right))


def _out_hw(
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: tuple[int, int],
    dilations: tuple[int, int],
    padding: Padding,
) -> tuple[int, int]:
    geometry = window_geometry(
        input_hw, kernel_hw, strides, dilations, normalize_padding("strategy", padding)
    )
    return geometry.out_hw


# --- conv --------------------------------------------------------------------------------

_LEGACY_CONV = {
    "conv2d",
    "conv2d_backward_input",
    "conv2d_backward_filter",
    "conv2d_backward_bias",
    "conv2d_backward",
}


@st.composite
def _channels_and_groups(
    draw: st.DrawFn, names: frozenset[str], legacy: bool
) -> tuple[int, int, int]:
    """``(C, O, groups)``: groups 1 most often, else 2-3 or depthwise (``groups = C``)."""
    if "groups" not in names or _chance(draw, 0.8 if legacy else 0.5):
        return draw(st.integers(1, 5)), draw(st.integers(1, 5)), 1
    if draw(st.booleans()):  # depthwise: groups = C, O = multiplier * C
        c = draw(st.integers(1, 4))
        return c, c * draw(st.integers(1, 2)), c
    groups = draw(st.integers(2, 3))
    return groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups


@st.composite
def conv_cases(draw: st.DrawFn, *, op: str = "conv") -> Case:
    """Cases for the convolutions of every rank and their backward functions.

    Kernels 1-6 per axis (1-3 in 3-D), dilations 1-3 and strides 1-4 each drawn per axis
    (about a third of the axes strided and dilated at once, where a gradient can drop the
    dilation), input sides fitting the dilated kernel, equal to it or (VALID) smaller; C, O
    1-5, groups (incl. depthwise) and channels-first layouts where the function takes them;
    N 0-4. The bias is drawn (half the time) where the function takes one, the upstream
    ``dy`` where it takes it. Options at their defaults are left out of the call, so the
    classic 2-D NHWC form keeps most of its corner cases.
    """
    names = parameters(op)
    legacy = op in _LEGACY_CONV
    rank = _rank_of(op) or draw(st.sampled_from([1, 2, 2, 3]))
    most_kernel = 3 if rank == 3 else 6
    kernel = tuple(draw(st.integers(1, most_kernel)) for _ in range(rank))
    # 1 drawn twice as often: TensorFlow cannot express a dilated conv gradient at stride > 1
    # on any axis, so a quarter of the cases are undilated and about one in six unstrided.
    dilations = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(rank))
    strides = tuple(draw(st.sampled_from([1, 1, 2, 3, 4])) for _ in range(rank))
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    spatial = tuple(
        _side(draw, e, s) if rank < 3 else min(_side(draw, e, s), e + 2)
        for e, s in zip(extents, strides, strict=True)
    )
    c, o, groups = draw(_channels_and_groups(names, legacy))
    padding = _nd_padding(draw, kernel, pool=False)
    resolved = windows(spatial, kernel, strides, dilations, normalize_padding("s", padding, rank))
    data_format, channels_first = _layout(draw, names, rank, legacy)
    per_item = max(math.prod(spatial) * c, math.prod(resolved.out) * o)
    n = _batch(draw, per_item=per_item)
    values: dict[str, Any] = {
        "x": draw(_float_arrays(_with_channels(spatial, n, c, channels_first))),
        "w": draw(_float_arrays((*kernel, c // groups, o))),
    }
    if "b" in names:
        values["b"] = draw(_float_arrays((o,))) if draw(st.booleans()) else None
    if "dy" in names:
        values["dy"] = draw(_float_arrays(_with_channels(resolved.out, n, o, channels_first)))
    if "strides" in names:
        values |= {
            "strides": _axis_value(draw, strides),
            "padding": padding,
            "dilations": _axis_value(draw, dilations),
        }
    if groups != 1:
        values["groups"] = groups
    if data_format is not None:
        values["data_format"] = data_format
    note = f"resolved pads {resolved.pads}, output {'x'.join(map(str, resolved.out))}"
    return Case(op, values, note)


@st.composite
def conv_transpose_cases(draw: st.DrawFn, *, op: str = "conv_transpose") -> Case:
    """Cases for ``conv_transpose``, the adjoint of a drawn forward convolution.

    A forward conv (input size ``n``, any rank, groups, layouts, padding) gives the
    transpose's input size (the forward output) and its filter ``(*K, C_out/groups, C_in)``;
    the output size is then asked for with ``output_shape`` (spatial or full) or left to
    ONNX's rule, with an ``output_padding`` below the stride or the dilation.
    """
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    most_kernel = 3 if rank == 3 else 5
    kernel = tuple(draw(st.integers(1, most_kernel)) for _ in range(rank))
    dilations = tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(rank))
    strides = tuple(draw(st.sampled_from([1, 1, 2, 3])) for _ in range(rank))
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    out_sizes = tuple(max(e + draw(st.integers(0, 4 if rank < 3 else 2)), 1) for e in extents)
    padding = _nd_padding(draw, kernel, pool=True)
    mode = normalize_padding("s", padding, rank)
    forward = windows(out_sizes, kernel, strides, dilations, mode)
    assume(all(m > 0 for m in forward.out))
    c_out, c_in, groups = draw(_channels_and_groups(parameters(op), legacy=False))
    data_format, channels_first = _layout(draw, parameters(op), rank, legacy=False)
    n = _batch(draw, per_item=max(math.prod(out_sizes) * c_out, math.prod(forward.out) * c_in))
    values: dict[str, Any] = {
        "x": draw(_float_arrays(_with_channels(forward.out, n, c_in, channels_first))),
        "w": draw(_float_arrays((*kernel, c_out // groups, c_in))),
        "b": draw(_float_arrays((c_out,))) if draw(st.booleans()) else None,
        "strides": _axis_value(draw, strides),
        "padding": padding,
        "dilations": _axis_value(draw, dilations),
    }
    how = draw(st.sampled_from(["spatial", "full", "onnx", "onnx"]))
    if how == "spatial":
        values["output_shape"] = out_sizes
    elif how == "full":
        values["output_shape"] = _with_channels(out_sizes, n, c_out, channels_first)
    elif isinstance(mode, tuple) or mode == "VALID":
        # ONNX's size rule from the transposed input; an output padding below the stride or
        # the dilation on some axes (the forward sizes that the rule cannot reach otherwise).
        output_padding = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(strides, dilations, strict=True)
        )
        if any(output_padding):
            values["output_padding"] = _axis_value(draw, output_padding)
    if groups != 1:
        values["groups"] = groups
    if data_format is not None:
        values["data_format"] = data_format
    return Case(op, values, f"forward conv of output size {'x'.join(map(str, out_sizes))}")


# --- pooling -----------------------------------------------------------------------------

#: Data formats by spatial rank: channels-last (TensorFlow's default), channels-first.
DATA_FORMATS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


def _rank_of(op: str) -> int | None:
    """Return the spatial rank a function is restricted to (``conv1d``, ``max_pool3d``, ...)."""
    for rank in (1, 2, 3):
        if f"{rank}d" in op:
            return rank
    return None


def _windows_hold_real_elements(
    size: int, kernel: int, stride: int, dilation: int, before: int, out: int
) -> bool:
    """Whether every window of one axis has a tap inside ``[0, size)`` (pooling's rule)."""
    for i in range(out):
        start = i * stride - before
        first = max(0, -(start // dilation) if start < 0 else 0)
        last = min(kernel - 1, (size - 1 - start) // dilation) if size - 1 >= start else -1
        if first > last:
            return False
    return True


def _layout(
    draw: st.DrawFn, names: frozenset[str], rank: int, legacy: bool
) -> tuple[str | None, bool]:
    """Draw the data_format to pass (None: left to the default) and if it is channels-first.

    A function of the 2-D NHWC API (``legacy``) gets its default most of the time, so the
    corner cases of its classic form keep most of the examples.
    """
    if "data_format" not in names or _chance(draw, 0.7 if legacy else 0.35):
        return None, False
    channels_first = draw(st.booleans())
    return DATA_FORMATS[rank][int(channels_first)], channels_first


def _with_channels(
    spatial: tuple[int, ...], n: int, c: int, channels_first: bool
) -> tuple[int, ...]:
    return (n, c, *spatial) if channels_first else (n, *spatial, c)


def _axis_value(draw: st.DrawFn, values: tuple[int, ...]) -> int | tuple[int, ...]:
    """Draw an int when every axis agrees (sometimes), else keep the tuple."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return values


def _partial_last_windows(
    draw: st.DrawFn,
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
    padding: Any,
    *,
    in_end_pad: bool = False,
) -> tuple[int, ...]:
    """Redraw the sides so that ceil mode has an extra last window on every strided axis.

    Each new side ``n`` (1 to the larger of the drawn side and ``e + s``) leaves a remainder
    after the last full window (``(n + before + after - e) % s != 0``), and the extra
    ceil-mode window starts on a real element (so it is kept, and runs past the end pad), or,
    with ``in_end_pad``, at or past ``n + before`` (so ceil mode must drop it: a window of
    padding only). Axes without such a side keep theirs. ``padding`` is VALID or explicit
    pairs (under SAME ceil mode changes nothing).
    """
    sides = []
    for a, size in enumerate(spatial):
        before, after = (0, 0) if isinstance(padding, str) else padding[a]
        extent = (kernel[a] - 1) * dilations[a] + 1
        stride = strides[a]
        fits = [
            n
            for n in range(1, max(size, extent + stride) + 1)
            if n + before + after >= extent
            and (n + before + after - extent) % stride
            and (-(-(n + before + after - extent) // stride) * stride < n + before) != in_end_pad
        ]
        sides.append(draw(st.sampled_from(fits)) if fits else size)
    return tuple(sides)


@st.composite
def pool_cases(draw: st.DrawFn, *, op: str) -> Case:
    """Cases for the max/avg pooling functions, over 1, 2 or 3 spatial axes.

    Windows 1-6 per axis (1-3 in 3-D), strides default (= ksize) or 1-4 per axis
    (overlapping and gapped windows), dilations 1-3 where the function takes them, every
    padding mode with explicit pads below the window, ceil mode, channels-first layouts,
    ``count_include_pad`` both ways. Ceil mode (three cases in ten) changes nothing under
    SAME and adds a window only where the last one is partial, so a third of its cases take VALID
    or explicit pads and sides whose last window on each strided axis is partial and kept,
    running past the end pad (:func:`_partial_last_windows`: where ceil mode's divisors
    differ; the free draw gave one such case in 25, one in 40 with ``count_include_pad``,
    too few for a 150-example run), a third one starting in the end pad (to be dropped), a
    third keep the free draw. Options at their defaults
    are left out of the call, so the classic 2-D NHWC form keeps its corner cases. Values
    are integer-valued half the time, so windows hold tied maxima. Geometries where a
    window would hold padding only (refused by refcnn, undefined anywhere) are not drawn.
    """
    names = parameters(op)
    legacy = op in {"max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"}
    rank = _rank_of(op) or draw(st.sampled_from([1, 2, 2, 3]))
    most_kernel, most_side = (3, 5) if rank == 3 else (6, 12)
    kernel = tuple(draw(st.integers(1, most_kernel)) for _ in range(rank))
    steps = kernel
    strides: int | tuple[int, ...] | None = None
    if _chance(draw, 0.75):
        steps = tuple(draw(st.integers(1, 4)) for _ in range(rank))
        strides = _axis_value(draw, steps)
    dilations = (1,) * rank
    if "dilations" in names and _chance(draw, 0.3):
        dilations = tuple(draw(st.sampled_from([1, 2, 3])) for _ in range(rank))
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    spatial = tuple(
        min(_side(draw, e, s), most_side) if rank < 3 else draw(st.integers(1, most_side))
        for e, s in zip(extents, steps, strict=True)
    )
    ceil_mode = "ceil_mode" in names and _chance(draw, 0.3)
    targeted = draw(st.sampled_from(["free", "kept", "dropped"])) if ceil_mode else "free"
    if targeted != "free":
        # Two thirds of the ceil-mode cases get an extra last window on every axis where the
        # stride allows one: partial and kept (the only windows where ceil mode's divisors
        # differ), or starting in the end pad and dropped (the rule most often missed).
        padding = _nd_padding(draw, kernel, pool=True, modes=("VALID", "explicit", "explicit"))
        spatial = _partial_last_windows(
            draw, spatial, kernel, steps, dilations, padding, in_end_pad=targeted == "dropped"
        )
    else:
        padding = _nd_padding(draw, kernel, pool=True)
    resolved = windows(
        spatial,
        kernel,
        steps,
        dilations,
        normalize_padding("strategy", padding, rank),
        ceil_mode=ceil_mode,
    )
    assume(
        all(
            _windows_hold_real_elements(n, k, st_, d, pads[0], out)
            for n, k, st_, d, pads, out in zip(
                spatial, kernel, steps, dilations, resolved.pads, resolved.out, strict=True
            )
        )
    )
    data_format, channels_first = _layout(draw, names, rank, legacy)
    c = draw(st.integers(1, 5 if rank < 3 else 3))
    n = _batch(draw, per_item=math.prod(spatial) * c)
    x_shape = _with_channels(spatial, n, c, channels_first)
    values: dict[str, Any] = {"x": draw(_float_arrays(x_shape, profiles=POOL_PROFILES))}
    if "dy" in names:
        values["dy"] = draw(_float_arrays(_with_channels(resolved.out, n, c, channels_first)))
    values |= {"ksize": _axis_value(draw, kernel), "strides": strides, "padding": padding}
    if dilations != (1,) * rank:
        values["dilations"] = _axis_value(draw, dilations)
    if ceil_mode:
        values["ceil_mode"] = True
    if "count_include_pad" in names:
        values["count_include_pad"] = draw(st.booleans())
    if data_format is not None:
        values["data_format"] = data_format
    note = f"resolved pads {resolved.pads}, output {'x'.join(map(str, resolved.out))}"
    return Case(op, values, note)


@st.composite
def global_pool_cases(draw: st.DrawFn, *, op: str) -> Case:
    """Cases for the global max/avg pools: 1-3 spatial axes, both layouts, keepdims both ways.

    Spatial sides 0-6 (an empty volume one time in ten is refused by refcnn: not drawn).
    """
    names = parameters(op)
    rank = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 6 if rank < 3 else 4)) for _ in range(rank))
    data_format, channels_first = _layout(draw, names, rank, legacy=False)
    c = draw(st.integers(1, 5))
    n = _batch(draw, per_item=math.prod(spatial) * c)
    x_shape = _with_channels(spatial, n, c, channels_first)
    values: dict[str, Any] = {
        "x": draw(_float_arrays(x_shape, profiles=POOL_PROFILES)),
        "keepdims": draw(st.booleans()),
    }
    if "dy" in names:
        kept = (1,) * rank if values["keepdims"] else ()
        values["dy"] = draw(_float_arrays(_with_channels(kept, n, c, channels_first)))
    if data_format is not None:
        values["data_format"] = data_format
    return Case(op, values)


# --- dense and flatten -------------------------------------------------------------------


@st.composite
def dense_cases(draw: st.DrawFn, *, op: str = "dense") -> Case:
    """Cases for ``dense`` / ``dense_backward``: N 0-6, I 1-12, O 1-8 drawn independently."""
    names = parameters(op)
    i, o = draw(st.integers(1, 12)), draw(st.integers(1, 8))
    n = _batch(draw, per_item=i, most=6)
    values: dict[str, Any] = {"x": draw(_float_arrays((n, i))), "w": draw(_float_arrays((i, o)))}
    if "b" in names:
        values["b"] = draw(_float_arrays((o,))) if draw(st.booleans()) else None
    if "dy" in names:
        values["dy"] = draw(_float_arrays((n, o)))
    return Case(op, values)


@st.composite
def flatten_cases(draw: st.DrawFn, *, op: str = "flatten") -> Case:
    """Cases for ``flatten`` / ``flatten_backward`` (ONNX ``Flatten``).

    Half the cases are the layer's real use, an NHWC map (N 0-4, H, W, C 1-5 drawn
    independently) flattened at ``axis=1`` (or ``-3``), where a channels-first feature order
    is wrong exactly when ``C > 1`` and ``H * W > 1``; the rest any rank 0-5 with sides 1-5
    (a 0 on the first axis one time in ten) and any axis in ``[-ndim, ndim]``.
    """
    if draw(st.booleans()):
        ndim = 4
        hwc = [draw(st.integers(1, 5)) for _ in range(3)]
        shape = (_batch(draw, per_item=math.prod(hwc)), *hwc)
        axis = draw(st.sampled_from([1, -3]))
    else:
        ndim = draw(st.integers(0, 5))
        shape = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
        if ndim and _chance(draw, 0.1):
            shape = (0, *shape[1:])
        axis = draw(st.integers(-ndim, ndim))
    values: dict[str, Any] = {"x": draw(_float_arrays(shape)), "axis": axis}
    if "dy" in parameters(op):
        split = axis + ndim if axis < 0 else axis
        dy_shape = (math.prod(shape[:split]), math.prod(shape[split:]))
        values["dy"] = draw(_float_arrays(dy_shape))
    return Case(op, values)


# --- activations -------------------------------------------------------------------------


@st.composite
def _shapes(draw: st.DrawFn, *, min_dims: int = 0, max_dims: int = 4, max_side: int = 7) -> Any:
    ndim = draw(st.integers(min_dims, max_dims))
    return tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))


@st.composite
def activation_cases(draw: st.DrawFn, *, op: str) -> Case:
    """Cases for the elementwise activations and their backward functions: any rank 0-4.

    Values mix exact zeros, tiny (1e-20) and moderate values with saturating ones (|x| up to
    ~100, where sigmoid underflows in float32 and ``1 - tanh**2`` cancels).
    """
    shape = draw(_shapes())
    rng = draw(_fields())
    if _chance(draw, 0.25):
        x = rng.integers(-3, 4, shape).astype(np.float64)  # many exact zeros
    else:
        x = rng.standard_normal(shape) * draw(st.sampled_from([1.0, 4.0, 30.0]))
    specials = [0.0, -0.0, 1e-20, -1e-20, 20.0, -20.0, 100.0, -100.0, 0.5, -0.5]
    mask = rng.random(shape) < draw(st.sampled_from([0.0, 0.3, 0.3]))
    x = np.where(mask, rng.choice(specials, shape), x)
    values: dict[str, Any] = {"x": np.asarray(x, dtype=np.float64)}
    if "dy" in parameters(op):
        values["dy"] = draw(_float_arrays(shape))
    return Case(op, values)


# --- softmax -----------------------------------------------------------------------------


def _stable_softmax(z: Array, axis: int) -> Array:
    shifted = z - z.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


@st.composite
def _logits(draw: st.DrawFn, shape: tuple[int, ...], axis: int) -> Array:
    """Draw logits by profile: ``normal`` (scaled), ``integers`` (ties) or ``rows``.

    ``rows`` shifts every slice along ``axis`` by its own offset from {0, +-50, +-1e4}, so rows
    near +-1e4 sit next to rows near 0. Within a slice the spread is 1, 10, 100 or 1000 (the
    last two make ``exp`` underflow in float32, the last in float64 too, where
    ``log(softmax)`` would give ``-inf``).
    """
    rng = draw(_fields())
    profile = draw(st.sampled_from(["normal", "integers", "rows", "rows"]))
    if profile == "integers":
        return rng.integers(-3, 4, shape).astype(np.float64)
    spread = draw(st.sampled_from([1.0, 10.0, 100.0, 1000.0]))
    z = rng.standard_normal(shape) * spread
    if profile == "rows":
        offset_shape = tuple(1 if a == axis % len(shape) else s for a, s in enumerate(shape))
        offsets = rng.choice([0.0, 0.0, 50.0, -50.0, 1e4, -1e4], offset_shape)
        z = z + offsets
    return np.asarray(z, dtype=np.float64)


@st.composite
def softmax_cases(draw: st.DrawFn, *, op: str) -> Case:
    """Cases for the softmax family: rank 1-3, any axis (negative too), K 1-9.

    ``p`` is the softmax of ``z`` (float64), so jacobian/backward get real probability rows,
    including ones with entries that underflow toward 0.
    """
    shape = draw(_shapes(min_dims=1, max_dims=3, max_side=9))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    z = draw(_logits(shape, axis))
    p = _stable_softmax(z, axis)
    values: dict[str, Any] = {"z": z, "p": p, "axis": axis}
    if "dp" in parameters(op):
        values["dp"] = draw(_float_arrays(shape))
    return Case(op, values)


# --- losses ------------------------------------------------------------------------------

REDUCTIONS = ("sum", "mean", "none")
# "mean" (softmax_cross_entropy's default, and where divisors go wrong) is drawn twice as often.
_REDUCTION_DRAWS = (*REDUCTIONS, "mean")


@st.composite
def _probabilities(draw: st.DrawFn, shape: tuple[int, ...], axis: int) -> Array:
    """Rows summing to 1 along ``axis``: one-hot, uniform-ish, or peaked down to ~1e-30."""
    rng = draw(_fields())
    kind = draw(st.sampled_from(["onehot", "soft", "peaked"]))
    k = shape[axis]
    if kind == "onehot":
        hot = rng.integers(0, k, shape[:axis] + shape[axis + 1 :])
        return np.moveaxis(np.eye(k)[hot], -1, axis)
    z = rng.standard_normal(shape) * (1.0 if kind == "soft" else 25.0)
    return _stable_softmax(z, axis)


@st.composite
def cross_entropy_cases(draw: st.DrawFn, *, op: str = "cross_entropy") -> Case:
    """Cases for ``cross_entropy(_backward)``: ``p`` and ``y`` probability rows along ``axis``.

    Some entries of ``p`` are exactly 0 with ``y`` 0 there too (``0 * log 0 = 0``); in about
    one case in six an entry has ``p = 0`` where ``y > 0`` (an infinite loss), unless ``eps``
    clips ``p`` away from 0.
    """
    shape = draw(_shapes(min_dims=1, max_dims=3, max_side=8))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    pos = axis % len(shape)
    p = draw(_probabilities(shape, pos))
    y = draw(_probabilities(shape, pos))
    rng = draw(_fields())
    zero = rng.random(shape) < draw(st.sampled_from([0.0, 0.3]))
    p = np.where(zero, 0.0, p)
    y = np.where(zero, 0.0, y)
    if _chance(draw, 1 / 6) and p.size:
        # One p = 0 where y > 0: the loss is +inf (its gradient -inf) unless eps clips.
        flat = int(rng.integers(0, p.size, ()))
        p.flat[flat], y.flat[flat] = 0.0, max(y.flat[flat], 0.5)
    reduction = draw(st.sampled_from(_REDUCTION_DRAWS))
    eps = draw(st.sampled_from([None, None, 1e-7, 1e-3]))
    return Case(op, {"p": p, "y": y, "axis": axis, "reduction": reduction, "eps": eps})


@st.composite
def softmax_cross_entropy_cases(draw: st.DrawFn, *, op: str = "softmax_cross_entropy") -> Case:
    """Cases for ``softmax_cross_entropy(_backward)``.

    Logits as for softmax (rows near +-1e4 beside rows near 0), rank 1-3, any axis; labels
    either class indices (shape of logits without ``axis``; some equal to ``ignore_index``
    when it is set) or probability rows; optional positive per-class ``weights`` (K,);
    ``label_smoothing`` 0 or in (0, 1); every reduction.
    """
    shape = draw(_shapes(min_dims=1, max_dims=3, max_side=8))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    pos, k = axis % len(shape), shape[axis]
    logits = draw(_logits(shape, axis))
    rng = draw(_fields())
    ignore_index: int | None = None
    if _chance(draw, 2 / 3):  # index labels
        row_shape = shape[:pos] + shape[pos + 1 :]
        labels = rng.integers(0, k, row_shape)
        ignore_index = draw(st.sampled_from([None, -100, 0]))
        if ignore_index == -100:
            labels = np.where(rng.random(row_shape) < 0.3, -100, labels)
    else:
        labels = draw(_probabilities(shape, pos))
    weights = None
    if draw(st.booleans()):
        weights = rng.uniform(0.25, 4.0, (k,))
    smoothing = draw(st.sampled_from([0.0, 0.0, 0.1, 0.37, 0.9]))
    reduction = draw(st.sampled_from(_REDUCTION_DRAWS))
    values = {
        "logits": logits,
        "labels": labels,
        "axis": axis,
        "reduction": reduction,
        "weights": weights,
        "ignore_index": ignore_index,
        "label_smoothing": smoothing,
    }
    return Case(op, values)
