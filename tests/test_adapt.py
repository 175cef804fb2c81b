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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _torch_style_numpy as reference
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refcnn
from conformance.adapt import TORCH_STYLE, TorchStyle, torch_style
from conformance.harness import Harness
from conformance.ops import REGISTRY
from conformance.strategies import Call
from refcnn.padding import normalize_padding, window_geometry

REPO = Path(__file__).resolve().parents[1]
NHWC, NCHW, HWIO, OIHW = (0, 2, 3, 1), (0, 3, 1, 2), (2, 3, 1, 0), (3, 2, 0, 1)
Array = np.ndarray[Any, Any]


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if np.ndim(value) == 0 else (int(value[0]), int(value[1]))


def _explicit(padding: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    ph, pw = _pair(padding)
    return ((ph, ph), (pw, pw))


def _hwc(shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(shape[i]) for i in NHWC)


class ViaRefcnn:
    """PyTorch-style functions computed by refcnn behind transposes and symmetric pads."""

    @staticmethod
    def conv2d(x: Array, w: Array, b: Array | None = None, **kw: Any) -> Array:
        y = refcnn.conv2d(x.transpose(NHWC), w.transpose(HWIO), b, **_conv(**kw))
        return y.transpose(NCHW)

    @staticmethod
    def conv2d_backward_input(dy: Array, w: Array, input_shape: Any, **kw: Any) -> Array:
        dx = refcnn.conv2d_backward_input(
            dy.transpose(NHWC), w.transpose(HWIO), _hwc(input_shape), **_conv(**kw)
        )
        return dx.transpose(NCHW)

    @staticmethod
    def conv2d_backward_filter(dy: Array, x: Array, filter_shape: Any, **kw: Any) -> Array:
        hwio = tuple(int(filter_shape[i]) for i in HWIO)
        dw = refcnn.conv2d_backward_filter(
            dy.transpose(NHWC), x.transpose(NHWC), hwio, **_conv(**kw)
        )
        return dw.transpose(OIHW)

    @staticmethod
    def conv2d_backward_bias(dy: Array) -> Array:
        return refcnn.conv2d_backward_bias(dy.transpose(NHWC))

    @staticmethod
    def conv2d_backward(dy: Array, x: Array, w: Array, **kw: Any) -> tuple[Array, ...]:
        dx, dw, db = refcnn.conv2d_backward(
            dy.transpose(NHWC), x.transpose(NHWC), w.transpose(HWIO), **_conv(**kw)
        )
        return (dx.transpose(NCHW), dw.transpose(OIHW), db)

    @staticmethod
    def max_pool2d(x: Array, kernel_size: Any, **kw: Any) -> Array:
        return refcnn.max_pool2d(x.transpose(NHWC), kernel_size, **_pool(**kw)).transpose(NCHW)

    @staticmethod
    def max_pool2d_backward(dy: Array, x: Array, kernel_size: Any, **kw: Any) -> Array:
        dx = refcnn.max_pool2d_backward(
            dy.transpose(NHWC), x.transpose(NHWC), kernel_size, **_pool(**kw)
        )
        return dx.transpose(NCHW)

    @staticmethod
    def avg_pool2d(x: Array, kernel_size: Any, *, count_include_pad: bool, **kw: Any) -> Array:
        y = refcnn.avg_pool2d(
            x.transpose(NHWC), kernel_size, count_include_pad=count_include_pad, **_pool(**kw)
        )
        return y.transpose(NCHW)

    @staticmethod
    def avg_pool2d_backward(
        dy: Array, input_shape: Any, kernel_size: Any, *, count_include_pad: bool, **kw: Any
    ) -> Array:
        dx = refcnn.avg_pool2d_backward(
            dy.transpose(NHWC),
            _hwc(input_shape),
            kernel_size,
            count_include_pad=count_include_pad,
            **_pool(**kw),
        )
        return dx.transpose(NCHW)

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


def _conv(stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> dict[str, Any]:
    return {"strides": stride, "padding": _explicit(padding), "dilations": dilation}


def _pool(stride: Any = None, padding: Any = 0) -> dict[str, Any]:
    return {"strides": stride, "padding": _explicit(padding)}


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
    **{name: getattr(refcnn, name) for name in LAYOUT_FREE},
)
SERVED = sorted(VIA_REFCNN.functions)


def _asymmetric(call: Call) -> bool:
    """Whether the case's resolved pads differ between the two sides of an axis."""
    params = call.params
    shape = params.get("input_shape", params.get("x", np.empty(0)).shape)
    if "ksize" in params:
        kernel = _pair(params["ksize"])
        strides = kernel if params["strides"] is None else _pair(params["strides"])
        dilations = (1, 1)
    elif "strides" in params:
        filters = params.get("filter_shape", params.get("w", np.empty(0)).shape)
        kernel, strides = _pair(filters[:2]), _pair(params["strides"])
        dilations = _pair(params["dilations"])
    else:
        return False
    mode = normalize_padding("test", params["padding"])
    geometry = window_geometry(_pair(shape[1:3]), kernel, strides, dilations, mode)
    (top, bottom), (left, right) = geometry.pads
    return top != bottom or left != right


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
    assert {f.serves for f in TORCH_STYLE.values()} == set(SERVED)


@pytest.mark.parametrize("op", SERVED)
@given(data=st.data())
def test_translation_is_exact_or_refused(op: str, data: st.DataObject) -> None:
    call = data.draw(REGISTRY[op].strategy(), label=op).call()
    wrapped = getattr(VIA_REFCNN, op)
    refused = _asymmetric(call) or _flatten_refused(call)
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
        self.refused: list[str] = []

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
        self.refused.append(reason)


WRAPPED_REFERENCE = torch_style(reference)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16"])
@pytest.mark.parametrize("op", sorted(WRAPPED_REFERENCE.functions))
@given(data=st.data())
def test_wrapped_reference_meets_the_suite_bounds(op: str, dtype: str, data: st.DataObject) -> None:
    # The suite's own comparison (shapes, dtype, untouched inputs, elementwise bounds), one
    # case at a time: a refused case is skipped by the harness and must be one the
    # wrapper cannot express, every other case must pass.
    counts = _Counts()
    harness = Harness(impl_name="wrapped", impl=WRAPPED_REFERENCE, adapters={}, recorder=counts)
    case = data.draw(REGISTRY[op].strategy(), label=op)
    try:
        harness.check(case, framework="none", dtype=dtype)
    except pytest.skip.Exception:
        assert _asymmetric(case.call()) or _flatten_refused(case.call()), counts.refused
        return
    assert counts.examples == 1


API_MODULE = '''\
"""The --impl module: tests/_torch_style_numpy behind conformance.adapt."""
import _torch_style_numpy
from conformance.adapt import torch_style

__getattr__ = torch_style(_torch_style_numpy).__getattr__
'''


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
