"""Every ONNX backend test case of the Conv family, reproduced through refcnn in NCHW.

The cases are the folders of the onnx package's backend test data whose name contains
"conv" (``node/test_*conv*``, ``pytorch-converted/test_Conv*``,
``pytorch-operator/test_operator_conv*``), found by glob so that a new ONNX release's cases
join automatically. Each folder holds ``model.onnx`` and ``test_data_set_*/input_*.pb`` /
``output_*.pb``. Some onnx wheels ship without the ``node`` folder; then the same folders
are written from the cases' own definitions (``onnx.backend.test.case.node``, exactly what
``onnx.backend.test.cmd_tools generate-data`` writes) into a temporary directory first.

Every folder is either run or listed in :data:`NOT_EXPRESSED` with the reason, keyed by op
type; :func:`test_every_conv_case_is_run_or_explained` fails on any other (a new op type in
a new release must be looked at, never skipped silently).

Translation (all in this file): ONNX data is channels-first, so refcnn gets
``data_format="NCW"``/``"NCHW"``/``"NCDHW"``; Conv filters are ``(O, C/group, *K)`` and
ConvTranspose filters ``(C_in, C_out/group, *K)``, both moved to refcnn's ``(*K, ., .)``;
``pads = [b_1, ..., b_r, e_1, ..., e_r]`` become ``r`` ``(b_i, e_i)`` pairs; ``auto_pad``
``SAME_UPPER``/``SAME_LOWER``/``VALID`` become ``"SAME"``/``"SAME_LOWER"``/``"VALID"``.
ConvTranspose's ``output_shape`` becomes refcnn's ``output_shape`` (the adjoint of the conv
of that shape, with the node's pads or none): ONNX then derives the pads from
``output_shape`` and any ``output_padding`` only moves that total, so ``output_padding`` is
not passed with it (refcnn refuses both at once).

Comparison: the truth is refcnn on the case's inputs in float64 (float inputs are exact in
float64); an output matches when within the conformance suite's sum bound for the output's
dtype (:mod:`conformance.tolerance`, the ``conv2d`` row: ``c_sum K eps s + K eta``,
``s`` the same op on absolute values, ``K`` the terms per output). Integer ops must match
exactly.
"""

from __future__ import annotations

import atexit
import math
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

import refcnn
from conformance.tolerance import tolerance

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402  (only after the importorskip)

Array = npt.NDArray[Any]

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
PATTERNS = (
    "node/test_*[Cc]onv*",
    "pytorch-converted/test_*[Cc]onv*",
    "pytorch-operator/test_*[Cc]onv*",
)
# onnx 1.23.2 holds 80 such folders: 63 run (all 47 Conv and ConvTranspose ones), 17
# explained; fewer means discovery broke.
MIN_FOLDERS = 80
MIN_RUN = 63
MIN_CONV_AND_TRANSPOSE = 47
CHANNELS_FIRST = {1: "NCW", 2: "NCHW", 3: "NCDHW"}

#: Cases that refcnn's functions cannot express, by op type, and why.
NOT_EXPRESSED = {
    "DeformConv": (
        "deformable convolution samples the input bilinearly at learned per-output offsets "
        "(and masks): not a correlation on the fixed window grid that refcnn.conv computes"
    ),
    "<graph>": (
        "a function-expanded graph (Shape, Concat, Slice, ... around a Conv node), not one "
        "node; the op's own node case is run"
    ),
}


def _write_generated_node_cases(root: Path) -> None:
    """Write the conv node cases as ONNX backend test folders (cmd_tools' layout)."""
    from onnx.backend.test.case import node  # noqa: PLC0415  (slow import, fallback only)

    with warnings.catch_warnings():
        # The generators of unrelated cases (Cast to float8/int4) overflow on purpose.
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    for case in cases:
        if "conv" not in case.name.lower() or case.model is None:
            continue
        folder = root / "node" / case.name
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(case.model.SerializeToString())
        for i, (inputs, outputs) in enumerate(case.data_sets or []):
            data_set = folder / f"test_data_set_{i}"
            data_set.mkdir()
            for kind, arrays, infos in (
                ("input", inputs, case.model.graph.input),
                ("output", outputs, case.model.graph.output),
            ):
                for j, array in enumerate(arrays):
                    tensor = numpy_helper.from_array(np.asarray(array), infos[j].name)
                    (data_set / f"{kind}_{j}.pb").write_bytes(tensor.SerializeToString())


def _folders() -> list[Path]:
    roots = [DATA]
    if not (DATA / "node").is_dir():
        generated = Path(tempfile.mkdtemp(prefix="refcnn-onnx-conv-"))
        atexit.register(shutil.rmtree, generated, ignore_errors=True)
        _write_generated_node_cases(generated)
        roots.append(generated)
    found = {
        folder.relative_to(root): folder
        for root in roots
        for pattern in PATTERNS
        for folder in root.glob(pattern)
        if (folder / "model.onnx").is_file()
    }
    return [found[name] for name in sorted(found)]


FOLDERS = _folders()


class NodeCase(NamedTuple):
    """One data set of one folder: the node, its inputs by position, expected outputs."""

    name: str
    op_type: str
    attrs: dict[str, Any]
    inputs: list[Array | None]
    outputs: list[Array]


def _op_type(folder: Path) -> str:
    graph = onnx.load(str(folder / "model.onnx")).graph
    return graph.node[0].op_type if len(graph.node) == 1 else "<graph>"


def _load(folder: Path) -> list[NodeCase]:
    model = onnx.load(str(folder / "model.onnx"))
    graph = model.graph
    (node,) = graph.node
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    initial = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    fed = [i.name for i in graph.input if i.name not in initial]
    cases = []
    for data_set in sorted(folder.glob("test_data_set_*")):
        values = dict(initial)
        for j, name in enumerate(fed):
            values[name] = numpy_helper.to_array(_tensor(data_set / f"input_{j}.pb"))
        outputs = [
            numpy_helper.to_array(_tensor(data_set / f"output_{j}.pb"))
            for j in range(len(graph.output))
        ]
        inputs = [values[name] if name else None for name in node.input]
        cases.append(
            NodeCase(f"{folder.name}/{data_set.name}", node.op_type, attrs, inputs, outputs)
        )
    return cases


def _tensor(path: Path) -> Any:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return tensor


# --- translation --------------------------------------------------------------------------


def _geometry(attrs: dict[str, Any], rank: int) -> dict[str, Any]:
    """refcnn's strides/dilations/padding/groups from a Conv-family node's attributes."""
    auto_pad = attrs.get("auto_pad", "NOTSET")
    pads = attrs.get("pads", [0] * (2 * rank))
    padding: Any = {"SAME_UPPER": "SAME", "SAME_LOWER": "SAME_LOWER", "VALID": "VALID"}.get(
        auto_pad, tuple((pads[a], pads[a + rank]) for a in range(rank))
    )
    return {
        "strides": tuple(attrs.get("strides", [1] * rank)),
        "dilations": tuple(attrs.get("dilations", [1] * rank)),
        "padding": padding,
        "groups": int(attrs.get("group", 1)),
        "data_format": CHANNELS_FIRST[rank],
    }


def _filter(w: Array) -> Array:
    """``(A, B, *K)`` (ONNX OIHW or IOHW) -> ``(*K, B, A)`` (refcnn's layout for both ops)."""
    return np.moveaxis(w, (0, 1), (-1, -2))


def _check_kernel(attrs: dict[str, Any], w: Array) -> None:
    if "kernel_shape" in attrs:
        assert tuple(attrs["kernel_shape"]) == w.shape[2:], "kernel_shape must match W"


class Evaluation(NamedTuple):
    """refcnn's result in float64, the same op on absolute values, terms per output."""

    got: Array
    scale: Array
    terms: int


def _conv(case: NodeCase) -> list[Evaluation]:
    x, w, b = (*case.inputs, None)[:3]
    assert x is not None
    assert w is not None
    _check_kernel(case.attrs, w)
    rank = x.ndim - 2
    kwargs = _geometry(case.attrs, rank)
    w64, x64 = _filter(w).astype(np.float64), x.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    got = refcnn.conv(x64, w64, b64, **kwargs)
    scale = refcnn.conv(np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64), **kwargs)
    return [Evaluation(got, scale, math.prod(w.shape[1:]) + (b is not None))]


def _conv_transpose(case: NodeCase) -> list[Evaluation]:
    x, w, b = (*case.inputs, None)[:3]
    assert x is not None
    assert w is not None
    _check_kernel(case.attrs, w)
    rank = x.ndim - 2
    kwargs = _geometry(case.attrs, rank)
    if "output_shape" in case.attrs:
        kwargs["output_shape"] = tuple(case.attrs["output_shape"])
        if isinstance(kwargs["padding"], tuple) and "pads" not in case.attrs:
            kwargs["padding"] = "VALID"  # ONNX derives the pads from output_shape
    else:
        kwargs["output_padding"] = tuple(case.attrs.get("output_padding", [0] * rank))
    w64, x64 = _filter(w).astype(np.float64), x.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    got = refcnn.conv_transpose(x64, w64, b64, **kwargs)
    scale = refcnn.conv_transpose(
        np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64), **kwargs
    )
    # Terms landing on one output: at most every tap of every input channel of a group.
    return [Evaluation(got, scale, math.prod(w.shape[2:]) * (w.shape[0] // kwargs["groups"]) + 1)]


def _integer_operands(
    case: NodeCase, x_at: int, w_at: int, zeros: tuple[int, int]
) -> tuple[Array, Array]:
    """``x - x_zero_point`` and ``w - w_zero_point`` (per output channel) as exact int64."""
    x, w = case.inputs[x_at], case.inputs[w_at]
    assert x is not None
    assert w is not None
    x_zero = case.inputs[zeros[0]] if len(case.inputs) > zeros[0] else None
    w_zero = case.inputs[zeros[1]] if len(case.inputs) > zeros[1] else None
    xi, wi = x.astype(np.int64), w.astype(np.int64)
    if x_zero is not None:
        xi = xi - x_zero.astype(np.int64)
    if w_zero is not None:
        wz = w_zero.astype(np.int64)
        wi = wi - (wz.reshape(-1, *(1,) * (w.ndim - 1)) if wz.ndim == 1 else wz)
    return xi, wi


def _conv_integer(case: NodeCase) -> list[Evaluation]:
    xi, wi = _integer_operands(case, 0, 1, (2, 3))
    got = refcnn.conv(xi, _filter(wi), **_geometry(case.attrs, xi.ndim - 2))
    return [Evaluation(got, np.zeros(got.shape), 0)]


def _qlinear_conv(case: NodeCase) -> list[Evaluation]:
    x_scale, w_scale, y_scale, y_zero = (case.inputs[i] for i in (1, 4, 6, 7))
    bias = case.inputs[8] if len(case.inputs) > 8 else None
    xi, wi = _integer_operands(case, 0, 3, (2, 5))
    kwargs = _geometry(case.attrs, xi.ndim - 2)
    acc = refcnn.conv(xi, _filter(wi), None if bias is None else bias.astype(np.int64), **kwargs)
    assert x_scale is not None
    assert w_scale is not None
    assert y_scale is not None
    # ONNX's requantization (its reference, in float64): scale, add the zero point, clip,
    # round half to even. The integer sums are refcnn's, exact.
    ratio = (x_scale * w_scale / y_scale).astype(np.float64)
    ratio = ratio.reshape(1, -1, *(1,) * (acc.ndim - 2)) if ratio.ndim == 1 else ratio
    requantized = acc * ratio + (0 if y_zero is None else float(y_zero))
    info = np.iinfo(np.uint8 if y_zero is None else y_zero.dtype)
    got = np.round(np.clip(requantized, info.min, info.max))
    return [Evaluation(got, np.zeros(got.shape), 0)]


def _causal_conv_with_state(case: NodeCase) -> list[Evaluation]:
    x, w, b, past = (*case.inputs, None, None)[:4]
    assert x is not None
    assert w is not None
    k = w.shape[-1]
    x64 = x.astype(np.float64)
    state = np.zeros((*x.shape[:2], k - 1)) if past is None else past.astype(np.float64)
    padded = np.concatenate([state, x64], axis=2)
    w64 = _filter(w).astype(np.float64)  # (K, 1, C): depthwise
    b64 = None if b is None else b.astype(np.float64)
    kwargs: dict[str, Any] = {"groups": x.shape[1], "data_format": "NCW"}
    y = refcnn.conv1d(padded, w64, b64, **kwargs)
    scale = refcnn.conv1d(
        np.abs(padded), np.abs(w64), None if b64 is None else np.abs(b64), **kwargs
    )
    terms = k + (b is not None)
    if case.attrs.get("activation", "none") in {"silu", "swish"}:
        # y * sigmoid(y); its scale: |y| bound carried through (sigmoid <= 1, derivative
        # of y*sigmoid(y) at most 1.1), plus the elementwise chain's own rounding.
        y = y * refcnn.sigmoid(y)
        scale = 1.1 * scale + np.abs(y)
    return [
        Evaluation(y, scale, terms + 6),
        Evaluation(
            padded[:, :, padded.shape[2] - (k - 1) :],
            np.zeros(past.shape if past is not None else (*x.shape[:2], k - 1)),
            0,
        ),
    ]


EXPRESSED: dict[str, Callable[[NodeCase], list[Evaluation]]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "ConvInteger": _conv_integer,
    "QLinearConv": _qlinear_conv,
    "CausalConvWithState": _causal_conv_with_state,
}

OP_TYPES = {folder: _op_type(folder) for folder in FOLDERS}
RUN = [folder for folder in FOLDERS if OP_TYPES[folder] in EXPRESSED]


def _id(folder: Path) -> str:
    return f"{folder.parent.name}/{folder.name}"


def test_every_conv_case_is_run_or_explained() -> None:
    assert len(FOLDERS) >= MIN_FOLDERS, f"found only {len(FOLDERS)} folders under {DATA}"
    unknown = {
        _id(f): op for f, op in OP_TYPES.items() if op not in EXPRESSED and op not in NOT_EXPRESSED
    }
    assert not unknown, f"conv cases of op types neither run nor explained: {unknown}"
    assert len(RUN) >= MIN_RUN
    conv_nodes = [f for f in RUN if OP_TYPES[f] in {"Conv", "ConvTranspose"}]
    assert len(conv_nodes) >= MIN_CONV_AND_TRANSPOSE
    explained = sorted(_id(f) for f in FOLDERS if f not in RUN)
    # Printed with -rA / -s: the list of what is not run, and why.
    for name in explained:
        op = OP_TYPES[next(f for f in FOLDERS if _id(f) == name)]
        print(f"not expressed: {name} ({op}): {NOT_EXPRESSED[op]}")


@pytest.mark.parametrize("folder", RUN, ids=_id)
def test_onnx_case_reproduces(folder: Path) -> None:
    for case in _load(folder):
        evaluations = EXPRESSED[case.op_type](case)
        assert len(evaluations) == len(case.outputs), case.name
        for index, (evaluation, expected) in enumerate(zip(evaluations, case.outputs, strict=True)):
            where = f"{case.name} output {index} ({case.op_type} {case.attrs})"
            assert evaluation.got.shape == expected.shape, where
            if expected.dtype.kind in "iu" or evaluation.terms == 0:
                np.testing.assert_array_equal(evaluation.got, expected, err_msg=where)
                continue
            tol = tolerance(expected.dtype)
            bound = tol.c_sum * evaluation.terms * tol.eps * evaluation.scale
            bound += np.where(evaluation.scale != 0, evaluation.terms * tol.eta, 0.0)
            error = np.abs(expected.astype(np.float64) - evaluation.got)
            worst = float(np.max(error / np.where(bound > 0, bound, 1.0))) if error.size else 0.0
            assert (error <= bound).all(), f"{where}: error {worst:.3g} x bound"
