"""conformance.adapt: refcnn's API over PyTorch-style implementations.

Three claims, each tested so that it can fail:

- the translation is exact: wrapped around PyTorch-style functions that are refcnn itself
  behind NCHW transposes and explicit symmetric pads, every call of the conformance cases
  gives refcnn's result bit for bit, or NotImplementedError exactly where PyTorch's
  ``padding=`` cannot say the resolved pads (asymmetric) or ``flatten(start_dim)`` cannot
  say the axis;
- the wrapper never pads: the implementation receives views of the caller's unpadded
  arrays and PyTorch's ``padding=`` integers;
- an independent, correct NCHW NumPy implementation (``_torch_style_numpy``) passes the
  conformance suite through the wrapper (``--framework none``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import _torch_style_numpy as reference
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from conformance.adapt import TORCH_STYLE, TorchStyle, torch_style
from conformance.calls import Call
from conformance.harness import Harness
from conformance.ops import REGISTRY
from refcnn.padding import normalize_padding, transpose_geometry, windows

REPO = Path(__file__).resolve().parents[1]
CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}
Array = np.ndarray[Any, Any]


def _per_axis(value: Any, rank: int) -> tuple[int, ...]:
    return (int(value),) * rank if np.ndim(value) == 0 else tuple(int(v) for v in value)


def _explicit(padding: Any, rank: int) -> tuple[tuple[int, int], ...]:
    return tuple((p, p) for p in _per_axis(padding, rank))


def _refcnn_filter(w: Array) -> Array:
    """PyTorch's ``(O, I, *K)`` -> refcnn's ``(*K, I, O)``."""
    rank = w.ndim - 2
    return w.transpose((*range(2, rank + 2), 1, 0))


def _torch_filter(w: Array) -> Array:
    rank = w.ndim - 2
    return w.transpose((rank + 1, rank, *range(rank)))


def _via_refcnn(rank: int) -> dict[str, Callable[..., Any]]:
    """PyTorch-style spatial functions of one rank computed by refcnn on channels-first data.

    Every option PyTorch has (and dilated average pooling, which it has not) is taken, so the
    wrapper's only refusals are the cases PyTorch's arguments cannot say.
    """
    layout = CHANNELS_FIRST[rank]

    def conv_options(
        stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
    ) -> dict[str, Any]:
        return {
            "strides": stride,
            "padding": _explicit(padding, rank),
            "dilations": dilation,
            "groups": groups,
            "data_format": layout,
        }

    def pool_options(
        stride: Any = None, padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False
    ) -> dict[str, Any]:
        return {
            "strides": stride,
            "padding": _explicit(padding, rank),
            "dilations": dilation,
            "ceil_mode": ceil_mode,
            "data_format": layout,
        }

    def conv(x: Array, w: Array, b: Array | None = None, **kw: Any) -> Array:
        return refcnn.conv(x, _refcnn_filter(w), b, **conv_options(**kw))

    def conv_backward_input(dy: Array, w: Array, input_shape: Any, **kw: Any) -> Array:
        return refcnn.conv_backward_input(dy, _refcnn_filter(w), input_shape, **conv_options(**kw))

    def conv_backward_filter(dy: Array, x: Array, filter_shape: Any, **kw: Any) -> Array:
        shape = tuple(int(filter_shape[i]) for i in (*range(2, rank + 2), 1, 0))
        dw = refcnn.conv_backward_filter(dy, x, shape, **conv_options(**kw))
        return _torch_filter(dw)

    def conv_backward_bias(dy: Array) -> Array:
        return refcnn.conv_backward_bias(dy, data_format=layout)

    def conv_backward(dy: Array, x: Array, w: Array, **kw: Any) -> tuple[Array, ...]:
        dx, dw, db = refcnn.conv_backward(dy, x, _refcnn_filter(w), **conv_options(**kw))
        return (dx, _torch_filter(dw), db)

    def conv_transpose(
        x: Array, w: Array, b: Array | None = None, *, output_padding: Any = 0, **kw: Any
    ) -> Array:
        # PyTorch's full[P : L - P + output_padding] is refcnn's explicit (P, P) pads with the
        # same output_padding (ONNX's size rule).
        options = conv_options(**kw)
        return refcnn.conv_transpose(
            x, _refcnn_filter(w), b, output_padding=output_padding, **options
        )

    def max_pool(
        x: Array, kernel_size: Any, *, return_indices: bool = False, **kw: Any
    ) -> Array | tuple[Array, Array]:
        if return_indices:
            return refcnn.max_pool_with_argmax(x, kernel_size, **pool_options(**kw))
        return refcnn.max_pool(x, kernel_size, **pool_options(**kw))

    def max_pool_backward(dy: Array, x: Array, kernel_size: Any, **kw: Any) -> Array:
        return refcnn.max_pool_backward(dy, x, kernel_size, **pool_options(**kw))

    def avg_pool(x: Array, kernel_size: Any, *, count_include_pad: bool, **kw: Any) -> Array:
        options = pool_options(**kw)
        return refcnn.avg_pool(x, kernel_size, count_include_pad=count_include_pad, **options)

    def avg_pool_backward(
        dy: Array, input_shape: Any, kernel_size: Any, *, count_include_pad: bool, **kw: Any
    ) -> Array:
        return refcnn.avg_pool_backward(
            dy, input_shape, kernel_size, count_include_pad=count_include_pad, **pool_options(**kw)
        )

    def adaptive_max_pool(x: Array, output_size: int) -> Array:
        assert output_size == 1
        return refcnn.global_max_pool(x, data_format=layout)

    def adaptive_max_pool_backward(dy: Array, x: Array) -> Array:
        return refcnn.global_max_pool_backward(dy, x, data_format=layout)

    def adaptive_avg_pool(x: Array, output_size: int) -> Array:
        assert output_size == 1
        return refcnn.global_avg_pool(x, data_format=layout)

    def adaptive_avg_pool_backward(dy: Array, input_shape: Any) -> Array:
        return refcnn.global_avg_pool_backward(dy, input_shape, data_format=layout)

    r = rank
    return {
        f"conv{r}d": conv,
        f"conv{r}d_backward_input": conv_backward_input,
        f"conv{r}d_backward_filter": conv_backward_filter,
        f"conv{r}d_backward_bias": conv_backward_bias,
        f"conv{r}d_backward": conv_backward,
        f"conv_transpose{r}d": conv_transpose,
        f"max_pool{r}d": max_pool,
        f"max_pool{r}d_backward": max_pool_backward,
        f"avg_pool{r}d": avg_pool,
        f"avg_pool{r}d_backward": avg_pool_backward,
        f"adaptive_max_pool{r}d": adaptive_max_pool,
        f"adaptive_max_pool{r}d_backward": adaptive_max_pool_backward,
        f"adaptive_avg_pool{r}d": adaptive_avg_pool,
        f"adaptive_avg_pool{r}d_backward": adaptive_avg_pool_backward,
    }


class ViaRefcnn:
    """PyTorch-style layout-free functions computed by refcnn (the spatial ones: _via_refcnn)."""

    @staticmethod
    def flatten(x: Array, start_dim: int = 1) -> Array:
        return refcnn.flatten(x, axis=start_dim)

    @staticmethod
    def flatten_backward(dy: Array, input_shape: Any, start_dim: int = 1) -> Array:
        return refcnn.flatten_backward(dy, input_shape, axis=start_dim)

    @staticmethod
    def linear(x: Array, w: Array, b: Array | None = None) -> Array:
        return refcnn.dense(x, w.T, b)

    @staticmethod
    def linear_backward(dy: Array, x: Array, w: Array) -> tuple[Array, ...]:
        dx, dw, db = refcnn.dense_backward(dy, x, w.T)
        return (dx, dw.T, db)

    @staticmethod
    def cross_entropy(logits: Array, target: Array, **kw: Any) -> Array:
        return refcnn.softmax_cross_entropy(logits, target, **_loss(logits, **kw))

    @staticmethod
    def cross_entropy_backward(logits: Array, target: Array, **kw: Any) -> Array:
        return refcnn.softmax_cross_entropy_backward(logits, target, **_loss(logits, **kw))


def _loss(
    logits: Array,
    weight: Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> dict[str, Any]:
    return {
        "axis": 1 if logits.ndim >= 2 else 0,
        "weights": weight,
        "ignore_index": ignore_index,
        "reduction": reduction,
        "label_smoothing": label_smoothing,
    }


# Layout-free functions keep refcnn's arguments: refcnn's own are PyTorch-style already.
LAYOUT_FREE = (
    *("relu", "sigmoid", "tanh"),
    *("relu_backward", "sigmoid_backward", "tanh_backward"),
    *("softmax", "log_softmax", "softmax_backward", "softmax_jacobian"),
)
VIA_REFCNN = torch_style(
    ViaRefcnn,
    **{name: f for rank in (1, 2, 3) for name, f in _via_refcnn(rank).items()},
    **{name: getattr(refcnn, name) for name in LAYOUT_FREE},
)
SERVED = sorted(VIA_REFCNN.functions)


class _Spatial(NamedTuple):
    rank: int
    sizes: tuple[int, ...]


def _spatial(params: dict[str, Any]) -> _Spatial:
    shape = tuple(params["input_shape"]) if "input_shape" in params else params["x"].shape
    rank = len(shape) - 2
    first = str(params.get("data_format") or "").startswith("NC")
    return _Spatial(rank, tuple(int(n) for n in (shape[2:] if first else shape[1:-1])))


def _asymmetric(call: Call) -> bool:
    """Whether the case's resolved pads differ between the two sides of an axis."""
    params = call.params
    if call.op == "conv_transpose" or "padding" not in params:
        return False
    rank, sizes = _spatial(params)
    if "ksize" in params:
        kernel = _per_axis(params["ksize"], rank)
        strides = kernel if params["strides"] is None else _per_axis(params["strides"], rank)
    else:
        filters = params.get("filter_shape", params.get("w", np.empty(0)).shape)
        kernel, strides = tuple(filters[:rank]), _per_axis(params["strides"], rank)
    dilations = _per_axis(params.get("dilations", 1), rank)
    mode = normalize_padding("test", params["padding"], rank)
    resolved = windows(
        sizes, kernel, strides, dilations, mode, ceil_mode=bool(params.get("ceil_mode"))
    )
    return any(before != after for before, after in resolved.pads)


def _transpose_refused(call: Call) -> bool:
    """Whether refcnn's transposed-conv output is no ``full[P : L - P + op]``, ``op`` in range."""
    if call.op != "conv_transpose":
        return False
    params = call.params
    rank, sizes = _spatial(params)  # the transposed conv's input sizes
    kernel = params["w"].shape[:rank]
    strides = _per_axis(params["strides"], rank)
    dilations = _per_axis(params["dilations"], rank)
    extra = _per_axis(params.get("output_padding", 0), rank)
    mode = normalize_padding("test", params["padding"], rank)
    wanted = params.get("output_shape")
    if wanted is not None and len(wanted) == rank + 2:
        first = str(params.get("data_format") or "").startswith("NC")
        wanted = wanted[2:] if first else wanted[1:-1]
    for a in range(rank):
        axis_mode = mode if isinstance(mode, str) else mode[a]
        if wanted is None:
            n, before = transpose_geometry(
                sizes[a], kernel[a], strides[a], dilations[a], axis_mode, extra[a]
            )
        else:
            n = int(wanted[a])
            one = axis_mode if isinstance(axis_mode, str) else (axis_mode,)
            resolved = windows([n], [kernel[a]], [strides[a]], [dilations[a]], one)
            before = resolved.pads[0][0]
        full = (sizes[a] - 1) * strides[a] + (kernel[a] - 1) * dilations[a] + 1
        if not 0 <= 2 * before + n - full < max(strides[a], dilations[a]):
            return True
    return False


def _flatten_refused(call: Call) -> bool:
    if call.op not in {"flatten", "flatten_backward"}:
        return False
    ndim = (
        len(call.params["input_shape"]) if "input_shape" in call.params else call.params["x"].ndim
    )
    return ndim < 2 or call.params.get("axis", 1) not in (1, 1 - ndim)


def _outputs(result: Any) -> tuple[Any, ...]:
    return tuple(result) if isinstance(result, tuple) else (result,)


def test_served_is_every_registry_function_but_probability_cross_entropy_pair() -> None:
    # PyTorch has no cross-entropy of probabilities: the one function without a route.
    assert set(SERVED) == set(REGISTRY) - {"cross_entropy", "cross_entropy_backward"}
    assert {op for f in TORCH_STYLE.values() for op in f.serves} == set(SERVED)


@pytest.mark.parametrize("op", SERVED)
@given(data=st.data())
def test_translation_is_exact_or_refused(op: str, data: st.DataObject) -> None:
    call = data.draw(REGISTRY[op].strategy(), label=op).call()
    wrapped = getattr(VIA_REFCNN, op)
    refused = _asymmetric(call) or _transpose_refused(call) or _flatten_refused(call)
    if refused:
        with pytest.raises(NotImplementedError, match=r"not expressible|only axis 1"):
            wrapped(*call.args, **call.kwargs)
        return
    got = _outputs(wrapped(*call.args, **call.kwargs))
    want = _outputs(getattr(refcnn, op)(*call.args, **call.kwargs))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray | np.generic)
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w, strict=True)


@pytest.mark.parametrize(
    ("padding", "pads"),
    [
        ("SAME", ((0, 1), (0, 1))),  # a 2x2 window at stride 1: one pad row, after
        ("SAME_LOWER", ((1, 0), (1, 0))),  # the same row, before
        (((1, 0), (1, 1)), ((1, 0), (1, 1))),
    ],
)
def test_asymmetric_pads_raise_not_implemented(padding: Any, pads: Any) -> None:
    calls: list[Any] = []
    api = torch_style(conv2d=lambda *a, **k: calls.append((a, k)))
    x, w = np.zeros((1, 4, 5, 1)), np.zeros((2, 2, 1, 1))
    with pytest.raises(
        NotImplementedError, match=rf"conv2d: .*{re.escape(repr(pads))}.*never pads"
    ):
        api.conv2d(x, w, padding=padding)
    assert calls == []  # refused before the implementation ran


def _spy(seen: list[dict[str, Any]], function: Callable[..., Any]) -> Callable[..., Any]:
    def spy(*arrays: Any, **options: Any) -> Any:
        seen.append({"arrays": arrays, "options": options})
        return function(*arrays, **options)

    return spy


@pytest.mark.parametrize(
    ("padding", "torch_padding"),
    [("SAME", 1), ("VALID", 0), (((1, 1), (2, 2)), (1, 2)), (((2, 2), (2, 2)), 2)],
)
def test_wrapper_never_pads(padding: Any, torch_padding: Any) -> None:
    seen: list[dict[str, Any]] = []
    api = torch_style(
        conv2d=_spy(seen, reference.conv2d),
        max_pool2d=_spy(seen, reference.max_pool2d),
        avg_pool2d=_spy(seen, reference.avg_pool2d),
    )
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 6, 7, 3)), rng.standard_normal((3, 3, 3, 4))
    results = (
        api.conv2d(x, w, padding=padding),
        api.max_pool2d(x, 3, strides=1, padding=padding),
        api.avg_pool2d(x, 3, strides=1, padding=padding),
    )
    for call in seen:
        received = call["arrays"][0]
        assert received.shape == (2, 3, 6, 7)  # NCHW of the caller's array, unpadded
        assert np.shares_memory(received, x)  # a view: no copy, no padded buffer
        assert call["options"]["padding"] == torch_padding
    np.testing.assert_allclose(results[0], refcnn.conv2d(x, w, padding=padding), rtol=1e-13)
    np.testing.assert_array_equal(results[1], refcnn.max_pool2d(x, 3, strides=1, padding=padding))


def test_missing_option_serves_the_default_and_refuses_the_rest() -> None:
    def conv2d(
        x: Array, w: Array, b: Array | None = None, stride: int = 1, padding: int = 0
    ) -> Array:
        return reference.conv2d(x, w, b, stride, padding)

    api = torch_style(conv2d=conv2d)
    x, w = np.ones((1, 5, 5, 1)), np.ones((2, 2, 1, 1))
    np.testing.assert_array_equal(api.conv2d(x, w, strides=2), refcnn.conv2d(x, w, strides=2))
    with pytest.raises(NotImplementedError, match=r"has no 'dilation' parameter.*dilation=2"):
        api.conv2d(x, w, dilations=2)


def test_softmax_cross_entropy_moves_the_class_axis_to_one() -> None:
    seen: list[dict[str, Any]] = []
    api = torch_style(cross_entropy=_spy(seen, ViaRefcnn.cross_entropy))
    logits = np.arange(24.0).reshape(2, 3, 4) % 5
    labels = np.array([[0, 3, 1], [2, 0, 1]])  # shape (2, 3): class axis 2 (K = 4) removed
    got = api.softmax_cross_entropy(logits, labels, axis=2, reduction="none", ignore_index=None)
    assert seen[0]["arrays"][0].shape == (2, 4, 3)
    assert "ignore_index" not in seen[0]["options"]  # refcnn's None is PyTorch's omission
    np.testing.assert_array_equal(
        got, refcnn.softmax_cross_entropy(logits, labels, axis=2, reduction="none")
    )


def test_torch_style_validates_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"unknown function names \['dense'\]"):
        torch_style(dense=reference.linear)
    with pytest.raises(TypeError, match="conv2d must be callable"):
        torch_style(conv2d=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no PyTorch-style function found"):
        torch_style(object())
    api = torch_style(reference)
    assert isinstance(api, TorchStyle)
    assert "dense" in dir(api)
    with pytest.raises(AttributeError, match="softmax_cross_entropy"):
        _ = api.softmax_cross_entropy  # the reference has no cross_entropy


class _Counts:
    """A conformance.harness Recorder that keeps only what this test asserts on."""

    def __init__(self) -> None:
        self.examples = 0
        self.refusals: list[str] = []
        self.missing: list[str] = []

    def example(self, key: tuple[str, str, str]) -> None:
        self.examples += 1

    def impl_error(self, key: tuple[str, str, str], err: float) -> None:
        pass

    def framework_error(self, key: tuple[str, str, str], err: float) -> None:
        pass

    def not_expressible(self, key: tuple[str, str, str], reason: str) -> None:
        pass

    def rule(self, key: tuple[str, str, str], reason: str) -> None:
        pass

    def not_implemented(self, key: tuple[str, str, str], reason: str) -> None:
        self.missing.append(reason)

    def refused(self, key: tuple[str, str, str], arguments: str) -> None:
        self.refusals.append(arguments)

    def deviation(self, key: tuple[str, str, str], reason: str) -> None:
        pass

    def warned(self, key: tuple[str, str, str], message: str) -> None:
        pass

    def excluded(self, key: tuple[str, str, str], reason: str) -> None:
        pass


WRAPPED_REFERENCE = torch_style(reference)
SPATIAL = ("conv", "max_pool", "avg_pool")


def _beyond_the_reference(call: Call) -> bool:
    """Whether the case needs what tests/_torch_style_numpy has not: 2-D, no groups, ...

    The reference has conv2d, max_pool2d and avg_pool2d (and their backwards) only, without
    ``groups`` and, for pooling, without ``dilation`` and ``ceil_mode``.
    """
    params = call.params
    if not call.op.startswith(SPATIAL):
        return False
    data = params["x"] if "x" in params else params["dy"]
    ndim = len(params["input_shape"]) if "input_shape" in params else data.ndim
    if ndim != 4 or params.get("groups", 1) != 1:
        return True
    pooling = "ksize" in params
    dilated = any(d != 1 for d in _per_axis(params.get("dilations", 1), 2))
    return pooling and (dilated or bool(params.get("ceil_mode")))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("op", sorted(WRAPPED_REFERENCE.functions))
@given(data=st.data())
def test_wrapped_reference_meets_the_suite_bounds(op: str, dtype: str, data: st.DataObject) -> None:
    # The suite's own comparison (shapes, dtype, untouched inputs, elementwise bounds), one
    # case at a time: a case the wrapper cannot express, or the reference has no parameter
    # for, must be refused (NotImplementedError); every other case must pass, unrefused.
    counts = _Counts()
    harness = Harness(impl_name="wrapped", impl=WRAPPED_REFERENCE, adapters={}, recorder=counts)
    case = data.draw(REGISTRY[op].strategy(), label=op)
    call = case.call()
    if _asymmetric(call) or _flatten_refused(call) or _beyond_the_reference(call):
        with pytest.raises(NotImplementedError):
            getattr(WRAPPED_REFERENCE, op)(*call.args, **call.kwargs)
        return
    harness.check(case, framework="none", dtype=dtype)
    assert (counts.examples, counts.refusals, counts.missing) == (1, [], [])


API_MODULE = '''\
"""The --impl module: tests/_torch_style_numpy behind conformance.adapt."""
import _torch_style_numpy
from conformance.adapt import torch_style

__getattr__ = torch_style(_torch_style_numpy).__getattr__
'''


@pytest.mark.zoo  # a whole conformance run in a subprocess: once, on the main Python
def test_suite_passes_the_wrapped_numpy_reference(tmp_path: Path) -> None:
    (tmp_path / "torch_style_api.py").write_text(API_MODULE, encoding="utf-8")
    report_dir = tmp_path / "report"
    paths = [str(tmp_path), str(Path(__file__).parent), str(REPO), os.environ.get("PYTHONPATH", "")]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "conformance",
        "--impl",
        "torch_style_api",
        "--framework",
        "none",
        # The gate requires every function of the API: the reference's are named (the rest,
        # conv1d, conv_transpose, the global pools, the losses, ..., are reported excluded).
        "--functions",
        ",".join(sorted(WRAPPED_REFERENCE.functions)),
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-k",
        "not network",
        "--report-dir",
        str(report_dir),
    ]
    env = {**os.environ, "HYPOTHESIS_PROFILE": "dev", "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    rows = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))["rows"]
    statuses = {(row["function"], row["dtype"]): str(row["status"]) for row in rows}
    assert not [key for key, status in statuses.items() if status == "FAIL"], tail
    expressed_everywhere = {"dense", "dense_backward", "relu", "tanh_backward", "softmax"}
    for (function, _), status in statuses.items():
        if function in expressed_everywhere:
            assert status == "pass", (function, status, tail)


def test_layout_free_wrappers_take_refcnns_parameter_names() -> None:
    # The frameworks' Adapter (and any caller) may pass refcnn's names by keyword; the
    # PyTorch-style function still receives them positionally.
    api = torch_style(reference)
    z = np.array([[1.0, 2.0], [0.5, -1.0]])
    np.testing.assert_array_equal(api.softmax(z=z, axis=0), reference.softmax(z, 0))
    np.testing.assert_array_equal(api.relu_backward(dy=z, x=-z), reference.relu_backward(z, -z))


def test_an_nd_function_serves_the_ranks_given_and_names_the_missing_one() -> None:
    api = torch_style(conv2d=reference.conv2d)
    assert {"conv", "conv2d"} <= set(api.functions)
    assert "conv1d" not in api.functions
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((2, 3, 3, 4))
    np.testing.assert_allclose(api.conv(x, w), refcnn.conv(x, w), rtol=1e-13)
    with pytest.raises(NotImplementedError, match=r"1 spatial axes .* no conv1d \(it has conv2d\)"):
        api.conv(x[:, 0], w[0])
    with pytest.raises(ValueError, match=r"conv2d: x must be 4-D"):
        api.conv2d(x[:, 0], w[0])  # refcnn's rank check, not a refusal


def test_argmax_is_served_only_by_a_max_pool_returning_indices() -> None:
    assert "max_pool_with_argmax" not in torch_style(reference).functions  # no return_indices
    seen: list[dict[str, Any]] = []
    max_pool2d = _via_refcnn(2)["max_pool2d"]
    api = torch_style(max_pool2d=_spy(seen, max_pool2d))
    x = np.random.default_rng(2).standard_normal((2, 5, 6, 3))
    y, argmax = api.max_pool_with_argmax(x, 2, strides=1, padding="VALID")
    assert seen[-1]["options"]["return_indices"] is True
    want = refcnn.max_pool_with_argmax(x, 2, strides=1, padding="VALID")
    np.testing.assert_array_equal(y, want[0], strict=True)
    np.testing.assert_array_equal(argmax, want[1], strict=True)
    with pytest.raises(NotImplementedError, match=r"1 spatial axes .* no max_pool1d"):
        api.max_pool_with_argmax(x[:, 0], 2)


def test_options_at_pytorchs_default_are_not_passed() -> None:
    # groups, dilation and ceil_mode at their defaults stay out of a **kwargs call (a
    # function forwarding them to an older signature still serves those cases).
    seen: list[dict[str, Any]] = []
    api = torch_style(
        conv2d=_spy(seen, reference.conv2d), max_pool2d=_spy(seen, reference.max_pool2d)
    )
    x, w = np.ones((1, 5, 5, 2)), np.ones((2, 2, 2, 2))
    api.conv2d(x, w, strides=2, groups=1, dilations=1)
    api.max_pool2d(x, 2, ceil_mode=False, dilations=(1, 1))
    assert [sorted(call["options"]) for call in seen] == [["padding", "stride"]] * 2
    with pytest.raises(TypeError, match="groups"):  # off the default: passed, and refused
        api.conv2d(x, w, groups=2)
