"""Benchmark refcnn against PyTorch and TensorFlow on the CPU, in one process.

Every case is timed for ``fwd`` (the forward op) and ``fwd+bwd`` (the forward op followed by
all its gradients), in float32 and float64, for each implementation that imports:

- ``refcnn``: the NumPy reference, called through its public functions (NHWC, HWIO);
- ``torch``: ``torch.nn.functional`` on NCHW/OIHW tensors, ``torch.autograd.grad`` for the
  gradients; layout conversion happens once, outside the timed region. TensorFlow's
  asymmetric SAME padding is reproduced inside the timed call (``ceil_mode`` for pools whose
  extra pixel is after, else ``F.pad``), since that is what a PyTorch user has to run;
- ``tf``: ``tf.function``-compiled callables on NHWC tensors, ``tf.GradientTape`` for the
  gradients (the forward output is returned too, so graph pruning cannot skip it).

Timing: a warm-up call per implementation (tracing, allocator, caches), then ``--reps``
rounds; in each round every implementation runs once in turn (round-robin), so a slow
drift of the machine hits all of them alike. A call that takes less than
``--min-sample-ms`` is repeated ``number`` times per sample. Reported: the median per call.

For the convolutions the achieved rate ``flops / time`` uses
``2 * N * OH * OW * KH * KW * C * O`` for the forward pass and three times that for
``fwd+bwd``; it is set against a NumPy GEMM of the im2col size
``(N*OH*OW, KH*KW*C) @ (KH*KW*C, O)`` timed in the same rounds. ``peak MiB`` is refcnn's peak
extra memory during one call, measured by :mod:`tracemalloc` (NumPy reports its buffers to
it) in a separate, untimed call.

Run ``python benchmarks/bench.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

import refcnn
from refcnn.padding import Geometry, Windows, normalize_padding, window_geometry, windows

Array = npt.NDArray[Any]
Thunk = Callable[[], object]
Mode = Literal["VALID", "SAME"]

IMPLS = ("refcnn", "torch", "tf")
OPS = ("fwd", "fwd+bwd")
DTYPES = ("float32", "float64")
_MIB = 2.0**20


# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvCase:
    """A ``conv2d`` of NHWC ``x_shape`` with HWIO ``w_shape`` (and a bias)."""

    name: str
    x_shape: tuple[int, int, int, int]
    w_shape: tuple[int, int, int, int]
    stride: int
    padding: Mode

    @property
    def label(self) -> str:
        """Human-readable description for the table."""
        x, w = "x".join(map(str, self.x_shape)), "x".join(map(str, self.w_shape))
        return f"conv {x} * {w} s{self.stride} {self.padding}"

    def geometry(self) -> Geometry:
        """Output size and pads, from refcnn's padding rules."""
        return window_geometry(
            self.x_shape[1:3],
            self.w_shape[:2],
            (self.stride, self.stride),
            (1, 1),
            normalize_padding("bench", self.padding),
        )

    def flops(self) -> int:
        """Multiply-adds times two of the forward pass."""
        n, _, _, c = self.x_shape
        kh, kw, _, o = self.w_shape
        oh, ow = self.geometry().out_hw
        return 2 * n * oh * ow * kh * kw * c * o

    def gemm_shape(self) -> tuple[int, int, int]:
        """``(M, K, N)`` of the im2col GEMM doing the same forward work."""
        n, _, _, c = self.x_shape
        kh, kw, _, o = self.w_shape
        oh, ow = self.geometry().out_hw
        return n * oh * ow, kh * kw * c, o


@dataclass(frozen=True)
class PoolCase:
    """A ``max_pool2d`` or ``avg_pool2d`` (TensorFlow semantics: padding never counted)."""

    name: str
    kind: str  # "max" or "avg"
    x_shape: tuple[int, int, int, int]
    ksize: int
    stride: int
    padding: Mode

    @property
    def label(self) -> str:
        """Human-readable description for the table."""
        x = "x".join(map(str, self.x_shape))
        k = f"{self.ksize}x{self.ksize}"
        return f"{self.kind}pool {k} s{self.stride} {self.padding} on {x}"

    def geometry(self) -> Geometry:
        """Output size and pads, from refcnn's padding rules."""
        return window_geometry(
            self.x_shape[1:3],
            (self.ksize, self.ksize),
            (self.stride, self.stride),
            (1, 1),
            normalize_padding("bench", self.padding),
        )


@dataclass(frozen=True)
class XentCase:
    """Mean softmax cross-entropy of ``(B, K)`` logits with integer labels."""

    name: str
    shape: tuple[int, int]

    @property
    def label(self) -> str:
        """Human-readable description for the table."""
        return f"softmax-xent {self.shape[0]}x{self.shape[1]}"


# --- N-d, grouped, depthwise and transposed convolutions (refcnn.conv, conv_transpose) ---------


@dataclass(frozen=True)
class ConvNdCase:
    """A ``refcnn.conv`` of channels-last ``x`` (any rank, groups) or a ``conv_transpose``.

    ``w_shape`` is refcnn's filter: ``(*K, C/groups, O)`` for a conv, the forward conv's
    ``(*K, C_out/groups, C_in)`` for a transposed one.
    """

    name: str
    kind: str  # label prefix: "depthwise", "grouped", "conv1d", "conv3d", "conv_transpose"
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    stride: int
    padding: Mode
    groups: int = 1
    transpose: bool = False

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.x_shape) - 2

    @property
    def label(self) -> str:
        """Human-readable description for the table."""
        x, w = "x".join(map(str, self.x_shape)), "x".join(map(str, self.w_shape))
        groups = f" g{self.groups}" if self.groups > 1 else ""
        return f"{self.kind} {x} * {w} s{self.stride} {self.padding}{groups}"

    def windows(self) -> Windows:
        """Windows of the forward conv (of the output, for a transposed conv)."""
        spatial = self.x_shape[1:-1]
        if self.transpose:  # SAME: the output is input * stride
            spatial = tuple(n * self.stride for n in spatial)
        return windows(
            spatial,
            self.w_shape[: self.rank],
            (self.stride,) * self.rank,
            (1,) * self.rank,
            normalize_padding("bench", self.padding, self.rank),
        )

    def y_shape(self) -> tuple[int, ...]:
        """Shape of the op's output."""
        n = self.x_shape[0]
        if self.transpose:
            spatial = tuple(s * self.stride for s in self.x_shape[1:-1])
            return (n, *spatial, self.groups * self.w_shape[-2])
        return (n, *self.windows().out, self.w_shape[-1])

    def gemm_shape(self) -> tuple[int, int, int]:
        """``(M, K, N)`` of a dense GEMM with the same multiply-adds as the forward pass."""
        small = self.x_shape[1:-1] if self.transpose else self.windows().out
        kernel = math.prod(self.w_shape[: self.rank])
        return self.x_shape[0] * math.prod(small), kernel * self.w_shape[-2], self.w_shape[-1]

    def flops(self) -> int:
        """Multiply-adds times two of the forward pass."""
        m, k, n = self.gemm_shape()
        return 2 * m * k * n


CONV_ND_CASES: tuple[ConvNdCase, ...] = (
    ConvNdCase("depthwise-56", "depthwise", (16, 56, 56, 64), (3, 3, 1, 64), 1, "SAME", 64),
    ConvNdCase("grouped-28", "grouped", (16, 28, 28, 128), (3, 3, 32, 128), 1, "SAME", 4),
    ConvNdCase("conv1d-256", "conv1d", (32, 256, 64), (5, 64, 64), 1, "SAME"),
    ConvNdCase("conv3d-16", "conv3d", (4, 16, 16, 16, 16), (3, 3, 3, 16, 32), 1, "SAME"),
    ConvNdCase(
        "transpose-16s2", "conv_transpose", (8, 16, 16, 64), (4, 4, 32, 64), 2, "SAME", 1, True
    ),
)

# --- end of the N-d convolution cases ---------------------------------------------------------


Case = ConvCase | ConvNdCase | PoolCase | XentCase

CASES: tuple[Case, ...] = (
    ConvCase("conv-mnist", (1, 28, 28, 1), (3, 3, 1, 8), 1, "VALID"),
    ConvCase("conv-32", (32, 32, 32, 16), (3, 3, 16, 32), 1, "SAME"),
    ConvCase("conv-56s2", (16, 56, 56, 64), (3, 3, 64, 64), 2, "SAME"),
    ConvCase("conv-112s2", (8, 112, 112, 3), (7, 7, 3, 64), 2, "SAME"),
    PoolCase("maxpool3s2-56", "max", (16, 56, 56, 64), 3, 2, "SAME"),
    PoolCase("maxpool2s2-56", "max", (16, 56, 56, 64), 2, 2, "VALID"),
    PoolCase("avgpool3s2-56", "avg", (16, 56, 56, 64), 3, 2, "SAME"),
    PoolCase("avgpool2s2-56", "avg", (16, 56, 56, 64), 2, 2, "VALID"),
    PoolCase("maxpool3s2-32", "max", (32, 32, 32, 16), 3, 2, "SAME"),
    PoolCase("maxpool2s2-32", "max", (32, 32, 32, 16), 2, 2, "VALID"),
    PoolCase("avgpool3s2-32", "avg", (32, 32, 32, 16), 3, 2, "SAME"),
    PoolCase("avgpool2s2-32", "avg", (32, 32, 32, 16), 2, 2, "VALID"),
    XentCase("xent-256x10", (256, 10)),
    XentCase("xent-64x1000", (64, 1000)),
    *CONV_ND_CASES,
)


def select_cases(patterns: Sequence[str] | None) -> list[Case]:
    """Return the cases whose name matches any of the glob ``patterns`` (all if none).

    Raises
    ------
    ValueError
        If a pattern matches no case (a typo should not silently benchmark nothing).
    """
    if not patterns:
        return list(CASES)
    chosen: list[Case] = []
    for pattern in patterns:
        hits = [case for case in CASES if fnmatch.fnmatchcase(case.name, pattern)]
        if not hits:
            names = ", ".join(case.name for case in CASES)
            msg = f"--cases: {pattern!r} matches no case; known cases: {names}"
            raise ValueError(msg)
        chosen.extend(case for case in hits if case not in chosen)
    return chosen


# --------------------------------------------------------------------------------------
# Frameworks (optional)
# --------------------------------------------------------------------------------------


@dataclass
class Frameworks:
    """The optional framework modules (``None`` when not importable) and why not."""

    torch: Any = None
    tf: Any = None
    missing: dict[str, str] = field(default_factory=dict)


def load_frameworks(wanted: Sequence[str], threads: int) -> Frameworks:
    """Import PyTorch and TensorFlow when asked for and available, with ``threads`` threads."""
    fw = Frameworks()
    if "torch" in wanted:
        try:
            torch = importlib.import_module("torch")
        except ImportError as exc:
            fw.missing["torch"] = f"not importable: {exc}"
        else:
            torch.set_num_threads(threads)
            fw.torch = torch
    if "tf" in wanted:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            tf = importlib.import_module("tensorflow")
        except ImportError as exc:
            fw.missing["tf"] = f"not importable: {exc}"
        else:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # already initialized (imported elsewhere first)
                pass
            fw.tf = tf
    return fw


def _torch_pad_args(geometry: Geometry, kernel: int, stride: int) -> tuple[Any, ...]:
    """Say how PyTorch reproduces the refcnn/TF pads of a pooling window.

    Returns ``("none",)``, ``("sym", p)`` (PyTorch's own symmetric padding, at most half the
    kernel), ``("ceil",)``
    (``ceil_mode``: pads only after, each smaller than the kernel) or ``("pad", pads)``
    (explicit ``F.pad`` with ``(left, right, top, bottom)``).
    """
    (top, bottom), (left, right) = geometry.pads
    if top == bottom == left == right == 0:
        return ("none",)
    if top == bottom == left == right <= kernel // 2:
        return ("sym", top)
    if top == left == 0 and bottom <= kernel - 1 and right <= kernel - 1 and stride > 1:
        return ("ceil",)
    return ("pad", (left, right, top, bottom))


# --------------------------------------------------------------------------------------
# Thunks: one zero-argument callable per (implementation, op), plus a converter that turns
# its result into the NHWC NumPy array checked against refcnn (outside the timed region).
# --------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A timed callable and how to read its checked output."""

    run: Thunk
    check: Callable[[object], Array]


def _nchw(a: Array) -> Array:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _first(result: object) -> Any:
    if isinstance(result, tuple | list):
        return result[0]
    return result


def _np_first(result: object) -> Array:
    return np.asarray(_first(result))


def _prepare_conv(
    case: ConvCase, dtype: str, op: str, fw: Frameworks
) -> tuple[dict[str, Prepared | str], Prepared]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    w = (rng.standard_normal(case.w_shape) / math.sqrt(np.prod(case.w_shape[:3]))).astype(dtype)
    b = rng.standard_normal(case.w_shape[3]).astype(dtype)
    geometry = case.geometry()
    y_shape = (case.x_shape[0], *geometry.out_hw, case.w_shape[3])
    dy = rng.standard_normal(y_shape).astype(dtype)
    s, pad = case.stride, case.padding
    out: dict[str, Prepared | str] = {}

    # The checked output is y for fwd and dx for fwd+bwd.
    if op == "fwd":
        out["refcnn"] = Prepared(lambda: refcnn.conv2d(x, w, b, strides=s, padding=pad), np.asarray)
    else:

        def ref_both() -> tuple[Array, refcnn.Conv2DGradients]:
            y = refcnn.conv2d(x, w, b, strides=s, padding=pad)
            return y, refcnn.conv2d_backward(dy, x, w, strides=s, padding=pad)

        out["refcnn"] = Prepared(ref_both, lambda r: np.asarray(r[1].dx))  # type: ignore[index]

    if fw.torch is not None:
        out["torch"] = _torch_conv(fw.torch, case, op, x, w, b, dy)
    if fw.tf is not None:
        out["tf"] = _tf_conv(fw.tf, case, op, x, w, b, dy)

    m, k, n = case.gemm_shape()
    a_mat = rng.standard_normal((m, k)).astype(dtype)
    b_mat = rng.standard_normal((k, n)).astype(dtype)
    gemm = Prepared(lambda: a_mat @ b_mat, np.asarray)
    return out, gemm


def _torch_conv(
    torch: Any, case: ConvCase, op: str, x: Array, w: Array, b: Array, dy: Array
) -> Prepared:
    f = torch.nn.functional
    (top, bottom), (left, right) = case.geometry().pads
    stride = case.stride
    # Symmetric pads go to conv2d; TF's asymmetric SAME needs an explicit F.pad (timed).
    symmetric = top == bottom == left == right
    conv_pad = top if symmetric else 0
    explicit = None if symmetric else (left, right, top, bottom)
    xt = torch.from_numpy(_nchw(x))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    bt = torch.from_numpy(b.copy())
    dyt = torch.from_numpy(_nchw(dy))

    def conv(xi: Any, wi: Any, bi: Any) -> Any:
        if explicit is not None:
            xi = f.pad(xi, explicit)
        return f.conv2d(xi, wi, bi, stride=stride, padding=conv_pad)

    def to_nhwc(r: object) -> Array:
        return np.asarray(_first(r).detach().numpy().transpose(0, 2, 3, 1))

    if op == "fwd":

        def run() -> object:
            with torch.no_grad():
                return conv(xt, wt, bt)

        return Prepared(run, to_nhwc)
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))

    def run_both() -> object:
        y = conv(xg, wg, bg)
        return (*torch.autograd.grad(y, (xg, wg, bg), dyt), y)

    return Prepared(run_both, to_nhwc)


def _tf_conv(tf: Any, case: ConvCase, op: str, x: Array, w: Array, b: Array, dy: Array) -> Prepared:
    xt, wt, bt, dyt = (tf.constant(a) for a in (x, w, b, dy))
    stride, pad = case.stride, case.padding

    def conv(xi: Any, wi: Any, bi: Any) -> Any:
        return tf.nn.bias_add(tf.nn.conv2d(xi, wi, stride, pad), bi)

    if op == "fwd":
        fwd = tf.function(conv, autograph=False)
        return Prepared(lambda: fwd(xt, wt, bt), lambda r: np.asarray(_first(r).numpy()))

    def _both(xi: Any, wi: Any, bi: Any, dyi: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch([xi, wi, bi])
            y = conv(xi, wi, bi)
        return (*tape.gradient(y, [xi, wi, bi], output_gradients=dyi), y)

    both = tf.function(_both, autograph=False)
    return Prepared(lambda: both(xt, wt, bt, dyt), lambda r: np.asarray(_first(r).numpy()))


# --- N-d, grouped, depthwise and transposed convolutions: thunks -------------------------------


def _prepare_conv_nd(
    case: ConvNdCase, dtype: str, op: str, fw: Frameworks
) -> tuple[dict[str, Prepared | str], Prepared]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    w = rng.standard_normal(case.w_shape) / math.sqrt(math.prod(case.w_shape[:-1]))
    w = w.astype(dtype)
    y_shape = case.y_shape()
    b = rng.standard_normal(y_shape[-1]).astype(dtype)
    dy = rng.standard_normal(y_shape).astype(dtype)
    kwargs: dict[str, Any] = {
        "strides": case.stride,
        "padding": case.padding,
        "groups": case.groups,
    }
    out: dict[str, Prepared | str] = {}
    if case.transpose:

        def ref_fwd() -> Array:
            return refcnn.conv_transpose(x, w, b, **kwargs)

        def ref_both() -> tuple[Array, ...]:
            # y = A^T x for the conv A of w: dx = A dy, dw = the conv's filter gradient
            # with dy as its input and x as its upstream gradient.
            y = ref_fwd()
            dx = refcnn.conv(dy, w, **kwargs)
            dw = refcnn.conv_backward_filter(x, dy, w.shape, **kwargs)
            return dx, dw, refcnn.conv_backward_bias(dy), y

    else:

        def ref_fwd() -> Array:
            return refcnn.conv(x, w, b, **kwargs)

        def ref_both() -> tuple[Array, ...]:
            y = ref_fwd()
            return (*refcnn.conv_backward(dy, x, w, **kwargs), y)

    out["refcnn"] = Prepared(ref_fwd, np.asarray) if op == "fwd" else Prepared(ref_both, _np_first)
    if fw.torch is not None:
        out["torch"] = _torch_conv_nd(fw.torch, case, op, x, w, b, dy)
    if fw.tf is not None:
        out["tf"] = _tf_conv_nd(fw.tf, case, op, x, w, b, dy)
    m, k, n = case.gemm_shape()
    a_mat = rng.standard_normal((m, k)).astype(dtype)
    b_mat = rng.standard_normal((k, n)).astype(dtype)
    return out, Prepared(lambda: a_mat @ b_mat, np.asarray)


def _channels_first(a: Array) -> Array:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def _torch_conv_nd(
    torch: Any, case: ConvNdCase, op: str, x: Array, w: Array, b: Array, dy: Array
) -> Prepared | str:
    f = torch.nn.functional
    pads = case.windows().pads
    if any(before != after for before, after in pads):
        return "n/a (asymmetric pads)"
    padding = tuple(before for before, _ in pads)
    xt, dyt = torch.from_numpy(_channels_first(x)), torch.from_numpy(_channels_first(dy))
    # torch: conv weight (O, C/groups, *K); conv_transpose weight (C_in, C_out/groups, *K).
    wt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(w, (-1, -2), (0, 1))))
    bt = torch.from_numpy(b.copy())
    if case.transpose:
        function = {1: f.conv_transpose1d, 2: f.conv_transpose2d, 3: f.conv_transpose3d}[case.rank]
    else:
        function = {1: f.conv1d, 2: f.conv2d, 3: f.conv3d}[case.rank]

    def conv(xi: Any, wi: Any, bi: Any) -> Any:
        return function(xi, wi, bi, stride=case.stride, padding=padding, groups=case.groups)

    def channels_last(r: object) -> Array:
        return np.moveaxis(np.asarray(_first(r).detach().numpy()), 1, -1)

    if op == "fwd":

        def run() -> object:
            with torch.no_grad():
                return conv(xt, wt, bt)

        return Prepared(run, channels_last)
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))

    def run_both() -> object:
        y = conv(xg, wg, bg)
        return (*torch.autograd.grad(y, (xg, wg, bg), dyt), y)

    return Prepared(run_both, channels_last)


def _tf_conv_nd(
    tf: Any, case: ConvNdCase, op: str, x: Array, w: Array, b: Array, dy: Array
) -> Prepared | str:
    xt, bt, dyt = (tf.constant(a) for a in (x, b, dy))
    s, pad, rank = case.stride, case.padding, case.rank
    channels = case.x_shape[-1]
    if case.transpose:
        if case.groups != 1:
            return "n/a (grouped transpose)"
        wt = tf.constant(w)  # TF's conv_transpose filter is (*K, C_out, C_in), as refcnn's
        shape = case.y_shape()

        def conv(xi: Any, wi: Any) -> Any:
            return tf.nn.conv_transpose(xi, wi, shape, s, pad)

    elif case.groups == channels and rank == 2:
        kh, kw, _, o = case.w_shape
        wt = tf.constant(w.reshape(kh, kw, channels, o // channels))  # channel c*m + j

        def conv(xi: Any, wi: Any) -> Any:
            return tf.nn.depthwise_conv2d(xi, wi, [1, s, s, 1], pad)

    else:
        wt = tf.constant(w)
        function = {1: tf.nn.conv1d, 2: tf.nn.conv2d, 3: tf.nn.conv3d}[rank]
        strides = s if rank < 3 else [1, s, s, s, 1]

        def conv(xi: Any, wi: Any) -> Any:
            return function(xi, wi, strides, pad)

    def biased(xi: Any, wi: Any, bi: Any) -> Any:
        return tf.nn.bias_add(conv(xi, wi), bi)

    if op == "fwd":
        fwd = tf.function(biased, autograph=False)
        return Prepared(lambda: fwd(xt, wt, bt), lambda r: np.asarray(_first(r).numpy()))

    def _both(xi: Any, wi: Any, bi: Any, dyi: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch([xi, wi, bi])
            y = biased(xi, wi, bi)
        return (*tape.gradient(y, [xi, wi, bi], output_gradients=dyi), y)

    both = tf.function(_both, autograph=False)
    return Prepared(lambda: both(xt, wt, bt, dyt), lambda r: np.asarray(_first(r).numpy()))


# --- end of the N-d convolution thunks ---------------------------------------------------------


def _prepare_pool(case: PoolCase, dtype: str, op: str, fw: Frameworks) -> dict[str, Prepared | str]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    geometry = case.geometry()
    dy = rng.standard_normal((case.x_shape[0], *geometry.out_hw, case.x_shape[3])).astype(dtype)
    k, s, pad = case.ksize, case.stride, case.padding
    out: dict[str, Prepared | str] = {}
    if case.kind == "max":

        def ref_fwd() -> object:
            return refcnn.max_pool2d(x, k, strides=s, padding=pad)

        def ref_bwd() -> object:
            return refcnn.max_pool2d_backward(dy, x, k, strides=s, padding=pad)

    else:

        def ref_fwd() -> object:
            return refcnn.avg_pool2d(x, k, strides=s, padding=pad)

        def ref_bwd() -> object:
            return refcnn.avg_pool2d_backward(dy, x.shape, k, strides=s, padding=pad)

    if op == "fwd":
        out["refcnn"] = Prepared(ref_fwd, np.asarray)
    else:
        out["refcnn"] = Prepared(lambda: (ref_bwd(), ref_fwd()), _np_first)
    if fw.torch is not None:
        out["torch"] = _torch_pool(fw.torch, case, op, x, dy)
    if fw.tf is not None:
        out["tf"] = _tf_pool(fw.tf, case, op, x, dy)
    return out


def _torch_pool(torch: Any, case: PoolCase, op: str, x: Array, dy: Array) -> Prepared:
    f = torch.nn.functional
    geometry = case.geometry()
    mode = _torch_pad_args(geometry, case.ksize, case.stride)
    k, s = case.ksize, case.stride
    xt, dyt = torch.from_numpy(_nchw(x)), torch.from_numpy(_nchw(dy))
    scale = None
    if mode[0] == "pad" and case.kind == "avg":
        # Zero padding then a plain mean counts the pads; rescale by area / real count.
        counts = np.ones((1, 1, *x.shape[1:3]), dtype=x.dtype)
        (top, bottom), (left, right) = geometry.pads
        counts = np.pad(counts, ((0, 0), (0, 0), (top, bottom), (left, right)))
        real = f.avg_pool2d(torch.from_numpy(counts), k, s) * (k * k)
        scale = (k * k) / real

    def pool(xi: Any) -> Any:
        ceil = mode[0] == "ceil"
        native_pad = mode[1] if mode[0] == "sym" else 0
        if mode[0] == "pad":
            fill = -math.inf if case.kind == "max" else 0.0
            xi = f.pad(xi, mode[1], value=fill)
        if case.kind == "max":
            return f.max_pool2d(xi, k, s, native_pad, ceil_mode=ceil)
        y = f.avg_pool2d(xi, k, s, native_pad, ceil_mode=ceil, count_include_pad=False)
        return y if scale is None else y * scale

    def to_nhwc(r: object) -> Array:
        return np.asarray(_first(r).detach().numpy().transpose(0, 2, 3, 1))

    if op == "fwd":

        def run() -> object:
            with torch.no_grad():
                return pool(xt)

        return Prepared(run, to_nhwc)
    xg = xt.clone().requires_grad_(True)

    def run_both() -> object:
        y = pool(xg)
        return (*torch.autograd.grad(y, (xg,), dyt), y)

    return Prepared(run_both, to_nhwc)


def _tf_pool(tf: Any, case: PoolCase, op: str, x: Array, dy: Array) -> Prepared:
    xt, dyt = tf.constant(x), tf.constant(dy)
    k, s, pad = case.ksize, case.stride, case.padding
    fn = tf.nn.max_pool2d if case.kind == "max" else tf.nn.avg_pool2d

    def pool(xi: Any) -> Any:
        return fn(xi, k, s, pad)

    if op == "fwd":
        fwd = tf.function(pool, autograph=False)
        return Prepared(lambda: fwd(xt), lambda r: np.asarray(_first(r).numpy()))

    def _both(xi: Any, dyi: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(xi)
            y = pool(xi)
        return (tape.gradient(y, xi, output_gradients=dyi), y)

    both = tf.function(_both, autograph=False)
    return Prepared(lambda: both(xt, dyt), lambda r: np.asarray(_first(r).numpy()))


def _prepare_xent(case: XentCase, dtype: str, op: str, fw: Frameworks) -> dict[str, Prepared | str]:
    rng = np.random.default_rng(2)
    z = (3.0 * rng.standard_normal(case.shape)).astype(dtype)
    labels = rng.integers(0, case.shape[1], size=case.shape[0], dtype=np.int64)
    out: dict[str, Prepared | str] = {}
    if op == "fwd":
        out["refcnn"] = Prepared(lambda: refcnn.softmax_cross_entropy(z, labels), np.asarray)
    else:

        def ref_both() -> object:
            loss = refcnn.softmax_cross_entropy(z, labels)
            return refcnn.softmax_cross_entropy_backward(z, labels), loss

        out["refcnn"] = Prepared(ref_both, _np_first)
    if fw.torch is not None:
        torch, f = fw.torch, fw.torch.nn.functional
        z_torch, labels_torch = torch.from_numpy(z), torch.from_numpy(labels)

        def to_np(r: object) -> Array:
            return np.asarray(_first(r).detach().numpy())

        if op == "fwd":

            def run() -> object:
                with torch.no_grad():
                    return f.cross_entropy(z_torch, labels_torch)

            out["torch"] = Prepared(run, to_np)
        else:
            zg = z_torch.clone().requires_grad_(True)

            def run_both() -> object:
                loss = f.cross_entropy(zg, labels_torch)
                return (*torch.autograd.grad(loss, (zg,)), loss)

            out["torch"] = Prepared(run_both, to_np)
    if fw.tf is not None:
        tf = fw.tf
        z_tf, labels_tf = tf.constant(z), tf.constant(labels)

        def xent(zi: Any, li: Any) -> Any:
            return tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=li, logits=zi)
            )

        def tf_np(r: object) -> Array:
            return np.asarray(_first(r).numpy())

        if op == "fwd":
            fwd = tf.function(xent, autograph=False)
            out["tf"] = Prepared(lambda: fwd(z_tf, labels_tf), tf_np)
        else:

            def _both(zi: Any, li: Any) -> Any:
                with tf.GradientTape() as tape:
                    tape.watch(zi)
                    loss = xent(zi, li)
                return (tape.gradient(loss, zi), loss)

            both = tf.function(_both, autograph=False)
            out["tf"] = Prepared(lambda: both(z_tf, labels_tf), tf_np)
    return out


# --------------------------------------------------------------------------------------
# N-d pooling cases (issue 12): 3-D pools and ceil mode. One block, so the conv and pool
# work merge cleanly; the cases join CASES at its end and run_case dispatches to it.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolNdCase:
    """A ``max_pool`` or ``avg_pool`` of channels-last ``x_shape`` (1 to 3 spatial axes).

    TensorFlow semantics for the divisor (padding never counted). ``ceil_mode`` cases run in
    TensorFlow only when the ceil-mode windows are the VALID ones (TensorFlow has no ceil
    mode); PyTorch gets ``ceil_mode`` natively and SAME through ``ceil_mode`` when its pads
    are all after (as :func:`_torch_pad_args` does for the 2-D cases).
    """

    name: str
    kind: str  # "max" or "avg"
    x_shape: tuple[int, ...]
    ksize: int
    stride: int
    padding: Mode
    ceil_mode: bool = False

    @property
    def rank(self) -> int:
        """Number of spatial axes."""
        return len(self.x_shape) - 2

    @property
    def label(self) -> str:
        """Human-readable description for the table."""
        x = "x".join(map(str, self.x_shape))
        k = "x".join([str(self.ksize)] * self.rank)
        ceil = " ceil" if self.ceil_mode else ""
        return f"{self.kind}pool{self.rank}d {k} s{self.stride} {self.padding}{ceil} on {x}"

    def geometry(self, *, ceil_mode: bool | None = None) -> Windows:
        """Output sizes and pads, from refcnn's padding rules."""
        rank = self.rank
        return windows(
            self.x_shape[1:-1],
            (self.ksize,) * rank,
            (self.stride,) * rank,
            (1,) * rank,
            normalize_padding("bench", self.padding, rank),
            ceil_mode=self.ceil_mode if ceil_mode is None else ceil_mode,
        )


POOL_ND_CASES: tuple[PoolNdCase, ...] = (
    PoolNdCase("maxpool3d-3s2-32", "max", (4, 16, 32, 32, 16), 3, 2, "SAME"),
    PoolNdCase("avgpool3d-3s2-32", "avg", (4, 16, 32, 32, 16), 3, 2, "SAME"),
    PoolNdCase("maxpool3s2ceil-55", "max", (16, 55, 55, 64), 3, 2, "VALID", ceil_mode=True),
    PoolNdCase("avgpool3s2ceil-55", "avg", (16, 55, 55, 64), 3, 2, "VALID", ceil_mode=True),
)


def _channels_first(a: Array) -> Array:
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def _prepare_pool_nd(
    case: PoolNdCase, dtype: str, op: str, fw: Frameworks
) -> dict[str, Prepared | str]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(case.x_shape).astype(dtype)
    geometry = case.geometry()
    dy = rng.standard_normal((case.x_shape[0], *geometry.out, case.x_shape[-1])).astype(dtype)
    k, s, pad, ceil = case.ksize, case.stride, case.padding, case.ceil_mode
    fwd_fn = refcnn.max_pool if case.kind == "max" else refcnn.avg_pool

    def ref_fwd() -> object:
        return fwd_fn(x, k, strides=s, padding=pad, ceil_mode=ceil)

    def ref_bwd() -> object:
        if case.kind == "max":
            return refcnn.max_pool_backward(dy, x, k, strides=s, padding=pad, ceil_mode=ceil)
        return refcnn.avg_pool_backward(dy, x.shape, k, strides=s, padding=pad, ceil_mode=ceil)

    out: dict[str, Prepared | str] = {}
    if op == "fwd":
        out["refcnn"] = Prepared(ref_fwd, np.asarray)
    else:
        out["refcnn"] = Prepared(lambda: (ref_bwd(), ref_fwd()), _np_first)
    if fw.torch is not None:
        out["torch"] = _torch_pool_nd(fw.torch, case, op, x, dy, geometry)
    if fw.tf is not None:
        out["tf"] = _tf_pool_nd(fw.tf, case, op, x, dy)
    return out


def _torch_pool_nd(
    torch: Any, case: PoolNdCase, op: str, x: Array, dy: Array, geometry: Windows
) -> Prepared | str:
    f = torch.nn.functional
    pool_fn = getattr(f, f"{case.kind}_pool{case.rank}d")
    if case.padding == "SAME":
        if any(before for before, _ in geometry.pads) or case.stride == 1:
            return "n/a"  # SAME with pads before needs F.pad; not one of these cases
        ceil = True  # pads only after, each < kernel: PyTorch's ceil_mode makes them
    else:
        ceil = case.ceil_mode
    options: dict[str, Any] = {"ceil_mode": ceil}
    if case.kind == "avg":
        options["count_include_pad"] = False
    xt, dyt = torch.from_numpy(_channels_first(x)), torch.from_numpy(_channels_first(dy))

    def pool(xi: Any) -> Any:
        return pool_fn(xi, case.ksize, case.stride, **options)

    def to_last(r: object) -> Array:
        return np.asarray(np.moveaxis(_first(r).detach().numpy(), 1, -1))

    if op == "fwd":

        def run() -> object:
            with torch.no_grad():
                return pool(xt)

        return Prepared(run, to_last)
    xg = xt.clone().requires_grad_(True)

    def run_both() -> object:
        y = pool(xg)
        return (*torch.autograd.grad(y, (xg,), dyt), y)

    return Prepared(run_both, to_last)


def _tf_pool_nd(tf: Any, case: PoolNdCase, op: str, x: Array, dy: Array) -> Prepared | str:
    if case.ceil_mode and case.geometry() != case.geometry(ceil_mode=False):
        return "n/a"  # TensorFlow has no ceil mode
    xt, dyt = tf.constant(x), tf.constant(dy)
    fn = tf.nn.max_pool if case.kind == "max" else tf.nn.avg_pool
    padding = "VALID" if case.ceil_mode else case.padding

    def pool(xi: Any) -> Any:
        return fn(xi, case.ksize, case.stride, padding)

    if op == "fwd":
        fwd = tf.function(pool, autograph=False)
        return Prepared(lambda: fwd(xt), lambda r: np.asarray(_first(r).numpy()))

    def _both(xi: Any, dyi: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(xi)
            y = pool(xi)
        return (tape.gradient(y, xi, output_gradients=dyi), y)

    both = tf.function(_both, autograph=False)
    return Prepared(lambda: both(xt, dyt), lambda r: np.asarray(_first(r).numpy()))


CASES = (*CASES, *POOL_ND_CASES)

# --- end of the N-d pooling block -----------------------------------------------------------


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Per-call times of one implementation, in seconds, or why there are none."""

    status: str = "ok"
    number: int = 1
    samples: list[float] = field(default_factory=list)
    max_rel_diff: float | None = None

    @property
    def median(self) -> float | None:
        """Median per-call time (seconds), ``None`` without samples."""
        return statistics.median(self.samples) if self.samples else None


def _call_status(exc: BaseException) -> str:
    if isinstance(exc, NotImplementedError):
        return "not implemented"
    return f"error: {type(exc).__name__}: {exc}"


def time_round_robin(
    thunks: dict[str, Prepared | str],
    *,
    reps: int,
    min_sample_s: float,
    reference: str | None = "refcnn",
) -> dict[str, Timing]:
    """Time each callable ``reps`` times, one call of each in turn per round.

    Parameters
    ----------
    thunks : dict
        Implementation name -> :class:`Prepared`, or a string saying why it cannot run.
    reps : int
        Number of rounds (samples per implementation).
    min_sample_s : float
        A sample repeats a call ``number`` times so that it lasts at least this long.
    reference : str, optional
        Implementation whose warm-up output the others are checked against.

    Returns
    -------
    dict
        Implementation name -> :class:`Timing`; failures in the warm-up call give a
        status (``"not implemented"`` or the error) and no samples.
    """
    timings: dict[str, Timing] = {}
    live: dict[str, Prepared] = {}
    outputs: dict[str, Array] = {}
    for name, prepared in thunks.items():
        if isinstance(prepared, str):
            timings[name] = Timing(status=prepared)
            continue
        try:
            result = prepared.run()  # warm-up: tracing, first-touch allocation
            start = time.perf_counter()
            result = prepared.run()
            once = time.perf_counter() - start
            outputs[name] = prepared.check(result)
        except Exception as exc:  # a framework that lacks a dtype/op must not stop the run
            timings[name] = Timing(status=_call_status(exc))
            continue
        number = max(1, min(1000, math.ceil(min_sample_s / max(once, 1e-9))))
        timings[name] = Timing(number=number)
        live[name] = prepared
    for _ in range(reps):
        for name, prepared in live.items():
            number = timings[name].number
            start = time.perf_counter()
            for _ in range(number):
                prepared.run()
            timings[name].samples.append((time.perf_counter() - start) / number)
    if reference in outputs:
        expected = outputs[reference]
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
        for name, got in outputs.items():
            if name != reference and got.shape == expected.shape:
                diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
                timings[name].max_rel_diff = diff / scale if scale else diff
            elif name != reference:
                timings[name].status = f"shape mismatch {got.shape} vs {expected.shape}"
    return timings


def peak_extra_mib(run: Thunk) -> float | None:
    """Peak memory allocated during one call above what was live before it, in MiB."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        try:
            run()
        except Exception:  # reported by the timing pass
            return None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (peak - before) / _MIB


# --------------------------------------------------------------------------------------
# Machine information
# --------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _blas_info() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        info["threadpoolctl"] = "not installed"
    else:
        info["threadpools"] = threadpoolctl.threadpool_info()
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # NumPy < 1.26 only prints
        config = None
    if isinstance(config, dict):
        info["numpy_build"] = config.get("Build Dependencies", {})
    return info


def machine_info(fw: Frameworks, threads: int) -> dict[str, Any]:
    """CPU, library versions, BLAS, thread settings and the date, for the JSON report."""
    versions: dict[str, str] = {"numpy": np.__version__, "refcnn": refcnn.__version__}
    if fw.torch is not None:
        versions["torch"] = str(fw.torch.__version__)
    if fw.tf is not None:
        versions["tensorflow"] = str(fw.tf.__version__)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "frameworks_missing": fw.missing,
        "blas": _blas_info(),
        "env": {
            key: os.environ[key]
            for key in (
                "OPENBLAS_CORETYPE",
                "OPENBLAS_L2_SIZE",
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
            )
            if key in os.environ
        },
    }


def _blas_summary(info: dict[str, Any]) -> str:
    pools = info.get("blas", {}).get("threadpools", [])
    parts = [
        f"{p.get('internal_api')} {p.get('version')} {p.get('architecture', '')} "
        f"x{p.get('num_threads')}".strip()
        for p in pools
        if p.get("user_api") == "blas"
    ]
    return "; ".join(parts) or "unknown (threadpoolctl not installed)"


# --------------------------------------------------------------------------------------
# Running and reporting
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    case: Case
    dtype: str
    op: str
    timings: dict[str, Timing]
    gemm: Timing | None = None
    flops: int | None = None
    peak_mib: float | None = None

    def ms(self, impl: str) -> float | None:
        """Median milliseconds of ``impl``, ``None`` if it did not run."""
        timing = self.timings.get(impl)
        median = timing.median if timing is not None else None
        return None if median is None else 1e3 * median

    def refcnn_gflops(self) -> float | None:
        """Achieved refcnn GFLOP/s (conv cases only)."""
        ms = self.ms("refcnn")
        return None if self.flops is None or not ms else self.flops / (ms * 1e6)

    def gemm_gflops(self) -> float | None:
        """GFLOP/s of the same-size NumPy GEMM (conv cases only)."""
        if self.gemm is None or self.gemm.median is None:
            return None
        if not isinstance(self.case, ConvCase | ConvNdCase):
            return None
        m, k, n = self.case.gemm_shape()
        return 2 * m * k * n / (self.gemm.median * 1e9)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready record: medians, samples, statuses and the derived rates."""
        impls = {
            name: {
                "status": t.status,
                "median_ms": None if t.median is None else 1e3 * t.median,
                "min_ms": 1e3 * min(t.samples) if t.samples else None,
                "calls_per_sample": t.number,
                "samples_ms": [1e3 * s for s in t.samples],
                "max_rel_diff_vs_refcnn": t.max_rel_diff,
            }
            for name, t in self.timings.items()
        }
        return {
            "case": self.case.name,
            "label": self.case.label,
            "dtype": self.dtype,
            "op": self.op,
            "impls": impls,
            "flops": self.flops,
            "refcnn_gflops": self.refcnn_gflops(),
            "gemm_shape_mkn": (
                list(self.case.gemm_shape())
                if isinstance(self.case, ConvCase | ConvNdCase)
                else None
            ),
            "gemm_median_ms": (
                None if self.gemm is None or self.gemm.median is None else 1e3 * self.gemm.median
            ),
            "gemm_gflops": self.gemm_gflops(),
            "refcnn_peak_extra_mib": self.peak_mib,
        }


def run_case(
    case: Case, dtype: str, op: str, fw: Frameworks, *, reps: int, min_sample_s: float
) -> Row:
    """Prepare, time and measure one (case, dtype, op)."""
    gemm: Prepared | None = None
    flops: int | None = None
    if isinstance(case, ConvCase):
        thunks, gemm = _prepare_conv(case, dtype, op, fw)
        flops = case.flops() * (3 if op == "fwd+bwd" else 1)
    elif isinstance(case, PoolNdCase):  # issue 12
        thunks = _prepare_pool_nd(case, dtype, op, fw)
    elif isinstance(case, ConvNdCase):
        thunks, gemm = _prepare_conv_nd(case, dtype, op, fw)
        flops = case.flops() * (3 if op == "fwd+bwd" else 1)
    elif isinstance(case, PoolCase):
        thunks = _prepare_pool(case, dtype, op, fw)
    else:
        thunks = _prepare_xent(case, dtype, op, fw)
    for name, reason in fw.missing.items():
        thunks[name] = "n/a"
        del reason
    if gemm is not None:
        thunks["gemm"] = gemm
    timings = time_round_robin(thunks, reps=reps, min_sample_s=min_sample_s)
    gemm_timing = timings.pop("gemm", None)
    ref = thunks.get("refcnn")
    peak = None
    if isinstance(ref, Prepared) and timings["refcnn"].status == "ok":
        peak = peak_extra_mib(ref.run)
    return Row(case, dtype, op, timings, gemm_timing, flops, peak)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _cell_ms(row: Row, impl: str) -> str:
    timing = row.timings.get(impl)
    if timing is None:
        return "n/a"
    if timing.median is None:
        return "n/a" if timing.status in {"n/a", "ok"} else timing.status.split(":")[0]
    return f"{1e3 * timing.median:.3g}"


def _ratio(row: Row, impl: str) -> str:
    ours, theirs = row.ms("refcnn"), row.ms(impl)
    return "-" if ours is None or not theirs else f"{ours / theirs:.2f}"


HEADER = (
    "case",
    "dtype",
    "op",
    "refcnn ms",
    "torch ms",
    "tf ms",
    "refcnn/torch",
    "refcnn/tf",
    "refcnn GFLOP/s",
    "GEMM GFLOP/s",
    "% of GEMM",
    "peak MiB",
)


def markdown_table(rows: Sequence[Row]) -> str:
    """Render the results as a GitHub Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for row in rows:
        ours, gemm = row.refcnn_gflops(), row.gemm_gflops()
        share = None if ours is None or not gemm else 100 * ours / gemm
        cells = (
            row.case.label,
            row.dtype,
            row.op,
            _cell_ms(row, "refcnn"),
            _cell_ms(row, "torch"),
            _cell_ms(row, "tf"),
            _ratio(row, "torch"),
            _ratio(row, "tf"),
            _fmt(ours, ".1f"),
            _fmt(gemm, ".1f"),
            _fmt(share, ".0f"),
            _fmt(row.peak_mib, ".1f"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _limit_blas_threads(threads: int) -> None:
    """Give NumPy's BLAS the same thread count as the frameworks (needs threadpoolctl)."""
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        return
    # Kept alive for the whole run: the limit lasts as long as this object.
    _BLAS_LIMITS.append(threadpoolctl.threadpool_limits(limits=threads, user_api="blas"))


_BLAS_LIMITS: list[Any] = []


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description=(
            "Time refcnn against PyTorch and TensorFlow (CPU, same process, round-robin, "
            "medians); write a Markdown table and a JSON report."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="few reps (CI smoke run)")
    parser.add_argument("--reps", type=int, default=None, help="rounds per case (default 15)")
    parser.add_argument(
        "--min-sample-ms",
        type=float,
        default=None,
        help="repeat fast calls so one sample lasts this long (default 20, quick 2)",
    )
    parser.add_argument("--dtype", choices=(*DTYPES, "both"), default="both")
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="GLOB",
        help="case names or globs, e.g. 'conv-*' maxpool3s2-56 (default: all); "
        + ", ".join(case.name for case in CASES),
    )
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS))
    parser.add_argument(
        "--impls",
        nargs="+",
        choices=IMPLS,
        default=list(IMPLS),
        help="implementations to time (refcnn always runs)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for NumPy's BLAS, torch and tf (default: all cores)",
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--markdown", type=Path, default=Path("benchmarks/results.md"))
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 3 if args.quick else 15
    if args.min_sample_ms is None:
        args.min_sample_ms = 2.0 if args.quick else 20.0
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    try:
        args.selected = select_cases(args.cases)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the Markdown table; write the JSON and Markdown files.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0.
    """
    args = _parse_args(argv)
    fw = load_frameworks([i for i in args.impls if i != "refcnn"], args.threads)
    for name in IMPLS[1:]:
        if name not in args.impls:
            fw.missing.setdefault(name, "not requested")
    _limit_blas_threads(args.threads)
    dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]
    info = machine_info(fw, args.threads)
    rows: list[Row] = []
    for case in args.selected:
        for dtype in dtypes:
            for op in args.ops:
                row = run_case(
                    case, dtype, op, fw, reps=args.reps, min_sample_s=args.min_sample_ms / 1e3
                )
                rows.append(row)
                print(
                    f"  {case.name} {dtype} {op}: refcnn {_cell_ms(row, 'refcnn')} ms",
                    file=sys.stderr,
                    flush=True,
                )
    table = markdown_table(rows)
    print(table)
    summary = (
        f"# refcnn benchmark\n\n{info['date']} - {info['cpu_model']}, {info['cpu_count']} "
        f"cores, {args.threads} threads - NumPy {np.__version__} "
        f"({_blas_summary(info)}) - "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k != "numpy")
        + f"\n\nMedian of {args.reps} round-robin reps per call. "
        "GFLOP/s: conv only (fwd 2*N*OH*OW*KH*KW*C*O, fwd+bwd x3); GEMM: NumPy "
        "(N*OH*OW, KH*KW*C) @ (KH*KW*C, O). peak MiB: refcnn, tracemalloc.\n\n"
    )
    settings = {k: v for k, v in vars(args).items() if k not in {"selected", "json", "markdown"}}
    report = {"machine": info, "settings": settings, "results": [r.to_json() for r in rows]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(summary + table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
