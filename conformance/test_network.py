"""Network-level conformance: K SGD steps of one small CNN, implementation and frameworks.

The per-op suite (``test_ops.py``) checks each function against the float64 oracle. This
file checks the composition the way a user meets it: one network, trained for ``K = 5`` SGD
steps (lr 1/16, momentum 7/8) on the same batches from the same initial weights, in each
dtype ``D`` under test. Three runs of it:

- the *truth*: refcnn's own layers (:class:`refcnn.model.Sequential` with :class:`refcnn.SGD`)
  in float64, from the ``D``-rounded weights and batches (the per-op harness's oracle rule);
- the *implementation* named by ``--impl``, composed from its API functions alone
  (``conv2d``, ``relu``, ``max_pool2d``, ``tanh``, ``flatten``, ``dense``,
  ``softmax_cross_entropy`` and their backward functions) with the SGD update written out,
  in ``D``; for refcnn itself this also checks that the layers compose the functions right;
- each selected framework's own network and optimizer, in ``D``, from its adapter's
  ``train_network`` (PyTorch modules with ``torch.optim.SGD``, Keras layers with
  ``keras.optimizers.SGD``, JAX's ``lax`` ops differentiated by ``jax.value_and_grad`` with
  the update written in ``jnp``); a framework that cannot train (ONNX Runtime is
  inference-only) is counted as not expressible, with the reason.

Network (NHWC/HWIO)::

    Conv2D(4, 3, SAME) -> ReLU -> MaxPool2D(2) -> Conv2D(6, 2, VALID) -> Tanh
    -> Flatten -> Dense(10)        trained with softmax_cross_entropy (mean) on logits

Translation (in each adapter's ``train_network``):

- PyTorch: kernels HWIO -> OIHW (``transpose(3, 2, 0, 1)``), dense ``(I, O)`` -> ``(O, I)``;
  SAME with a 3x3 stride-1 kernel is the symmetric ``padding=1``. PyTorch's tensors are NCHW,
  so the feature map is permuted to NHWC *before* ``flatten`` to reproduce refcnn's
  channels-last feature order (else the dense kernel would see permuted features).
  ``torch.optim.SGD(momentum=m)`` is refcnn's update exactly.
- TensorFlow: Keras layers take NHWC/HWIO/(I, O) as they are; ``keras.optimizers.SGD``
  writes momentum as ``v = m v - lr g; p += v``, the same sequence up to rounding. Keras
  rounds ``lr`` and ``momentum`` to float32 even for float64 weights (see ``LR``), so both
  are chosen exactly representable in float32.

Tolerance: every run sums in its own order (im2col vs oneDNN/Eigen, and ``D`` vs float64),
so every gradient differs by a few ulps of its summands, and SGD carries those differences
into the next steps' weights. One documented bound covers every loss and every parameter
tensor after every step::

    max |p - p_truth| <= C * eps(D) * max(max |p_truth|, 1),   C = 2**12 = 4096

(``eps`` from :mod:`conformance.tolerance`'s table: ``4096 eps ~ 9.1e-13`` in float64,
``4.9e-4`` in float32). A priori: the longest reduction has ``K = 512`` terms (a conv filter
gradient sums ``N OH OW = 8 * 8 * 8``), off by at most ``c_sum K eps s`` by the per-op policy
(``s``, the summands' absolute sum, is below 1 here); SGD scales it by ``lr = 1/16`` and
momentum adds up at most ``1 + m + ... + m**4 < 5`` of them: ``2 * 512 / 16 * 5 = 320``
eps, plus the rounding of each update in ``D`` and what the slightly different weights
change in later gradients; ``C = 4096`` leaves a factor ~10 over that. Observed (the
report's error columns): PyTorch and TensorFlow 1.1e-4-2.4e-4 of the bound in both dtypes,
refcnn's functions 1.4e-4 in float32 and exactly 0 in float64 (the layers call the same
functions in the same order). A composition error (a flipped kernel, a transposed dense
gradient, a channels-first flatten: mutants m02, m20, m21 of the zoo) moves the weights by
``O(lr |g|) ~ 1e-3`` and fails in both dtypes; corner bugs the network never meets (a pad
on the wrong side, tie routing masked by the ReLU below) are the per-op suite's job.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from conformance.harness import Harness
from conformance.network import (
    BATCH,
    CLASSES,
    INPUT_SHAPE,
    LR,
    MOMENTUM,
    PARAMETERS,
    STEPS,
    Trajectory,
)
from conformance.tolerance import tolerance
from refcnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from refcnn.model import Sequential, train_step
from refcnn.optim import SGD

Array = npt.NDArray[Any]

C_NETWORK = 2.0**12
#: The API functions the network composes (each is required unless the run leaves it out).
NETWORK_FUNCTIONS = (
    "conv2d",
    "relu",
    "max_pool2d",
    "tanh",
    "flatten",
    "dense",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "dense_backward",
    "flatten_backward",
    "tanh_backward",
    "conv2d_backward",
    "max_pool2d_backward",
    "relu_backward",
)


def _model() -> Sequential:
    return Sequential(
        [
            Conv2D(4, 3, padding="SAME"),
            ReLU(),
            MaxPool2D(2),
            Conv2D(6, 2),
            Tanh(),
            Flatten(),
            Dense(CLASSES),
        ]
    )


def _batches(dtype: np.dtype[Any]) -> list[tuple[Array, Array]]:
    rng = np.random.default_rng(20240611)
    return [
        (
            rng.uniform(0.0, 1.0, size=(BATCH, *INPUT_SHAPE)).astype(dtype),
            rng.integers(0, CLASSES, size=BATCH).astype(np.int64),
        )
        for _ in range(STEPS)
    ]


def _initial_model() -> Sequential:
    model = _model()
    model.build(INPUT_SHAPE, np.random.default_rng(7))
    rng = np.random.default_rng(8)
    for name, value in model.parameters().items():
        if name.endswith("/bias"):  # non-zero biases, so a dropped bias term shows up
            value[...] = rng.uniform(-0.1, 0.1, size=value.shape)
    return model


def _initial_weights(dtype: np.dtype[Any]) -> dict[str, Array]:
    parameters = _initial_model().parameters()
    assert tuple(parameters) == PARAMETERS, tuple(parameters)
    return {name: value.astype(dtype) for name, value in parameters.items()}


def _refcnn_trajectory(model: Sequential, batches: list[tuple[Array, Array]]) -> Trajectory:
    optimizer = SGD(LR, momentum=MOMENTUM)
    losses, params = [], []
    for x, labels in batches:
        losses.append(train_step(model, optimizer, x, labels))
        params.append({k: v.copy() for k, v in model.parameters().items()})
    return Trajectory(losses, params)


def _truth_trajectory(initial: dict[str, Array], batches: list[tuple[Array, Array]]) -> Trajectory:
    """refcnn's layers in float64 from the given (already D-rounded) weights and batches."""
    model = _initial_model()
    for name, value in model.parameters().items():
        value[...] = initial[name].astype(np.float64)
    return _refcnn_trajectory(model, [(x.astype(np.float64), y) for x, y in batches])


def _impl_trajectory(
    impl: ModuleType, initial: dict[str, Array], batches: list[tuple[Array, Array]]
) -> Trajectory:
    """The network composed from the implementation's API functions, SGD written out."""
    params = {name: value.copy() for name, value in initial.items()}
    velocity: dict[str, Array] = {}
    losses, trajectory = [], []
    for x, labels in batches:
        loss, gradients = _loss_and_gradients(impl, params, x, labels)
        losses.append(float(loss))
        for name, gradient in gradients.items():
            # PyTorch's (and refcnn.SGD's) heavy ball: v = m v + g (v = g at the first step).
            previous = velocity.get(name)
            velocity[name] = gradient if previous is None else MOMENTUM * previous + gradient
            params[name] = params[name] - params[name].dtype.type(LR) * velocity[name]
        trajectory.append({name: value.copy() for name, value in params.items()})
    return Trajectory(losses, trajectory)


def _loss_and_gradients(
    impl: ModuleType, params: dict[str, Array], x: Array, labels: Array
) -> tuple[Any, dict[str, Array]]:
    w1, b1 = params["conv2d/kernel"], params["conv2d/bias"]
    w2, b2 = params["conv2d_1/kernel"], params["conv2d_1/bias"]
    w3, b3 = params["dense/kernel"], params["dense/bias"]
    h1 = impl.conv2d(x, w1, b1, padding="SAME")
    a1 = impl.relu(h1)
    p1 = impl.max_pool2d(a1, 2)
    h2 = impl.conv2d(p1, w2, b2, padding="VALID")
    a2 = impl.tanh(h2)
    features = impl.flatten(a2)
    logits = impl.dense(features, w3, b3)
    loss = impl.softmax_cross_entropy(logits, labels)
    dlogits = impl.softmax_cross_entropy_backward(logits, labels)
    dfeatures, dw3, db3 = impl.dense_backward(dlogits, features, w3)
    da2 = impl.flatten_backward(dfeatures, a2.shape)
    dh2 = impl.tanh_backward(da2, h2)
    dp1, dw2, db2 = impl.conv2d_backward(dh2, p1, w2, padding="VALID")
    da1 = impl.max_pool2d_backward(dp1, a1, 2)
    dh1 = impl.relu_backward(da1, h1)
    _, dw1, db1 = impl.conv2d_backward(dh1, x, w1, padding="SAME")
    gradients = dict(zip(PARAMETERS, (dw1, db1, dw2, db2, dw3, db3), strict=True))
    return loss, gradients


def _worst_error(run: Trajectory, truth: Trajectory, eps: float) -> tuple[float, str]:
    """Largest ``|value - truth| / (C eps max(max |truth|, 1))`` over steps; and where."""
    worst, where = 0.0, ""
    for step in range(STEPS):
        pairs: list[tuple[str, Any, Any]] = [("loss", run.losses[step], truth.losses[step])]
        pairs += [(name, run.params[step][name], truth.params[step][name]) for name in PARAMETERS]
        for name, value, expected in pairs:
            got, want = np.asarray(value, dtype=np.float64), np.asarray(expected)
            if got.shape != want.shape:
                return math.inf, f"{name} after step {step + 1}: shape {got.shape} != {want.shape}"
            scale = max(float(np.max(np.abs(want))), 1.0)
            error = float(np.max(np.abs(got - want))) / (C_NETWORK * eps * scale)
            if not error <= worst:  # NaN counts as the worst
                worst, where = error, f"{name} after SGD step {step + 1} of {STEPS}"
    return worst, where


# Not float16: its C * eps = 4096 * 2**-10 = 4 would exceed the weights themselves, and
# float16 training has no tighter a priori bound (K eps = 0.5 for the longest reduction).
@pytest.mark.dtypes("float64", "float32")
def test_network_sgd_steps(harness: Harness, framework: str, dtype: str) -> None:
    key = ("network_sgd_steps", framework, dtype)
    dt = np.dtype(dtype)
    eps = tolerance(dt).eps
    batches = _batches(dt)
    initial = _initial_weights(dt)
    truth = _truth_trajectory(initial, batches)
    outside = [f for f in NETWORK_FUNCTIONS if f not in harness.options.functions]
    if outside:
        # The run was narrowed (--functions, a deviations skip) to leave these out on purpose.
        reason = f"uses functions this run leaves out: {', '.join(outside)}"
        harness.recorder.excluded(key, reason)
        pytest.skip(reason)
    for function in NETWORK_FUNCTIONS:
        harness.require(function, key)  # a missing one fails the gate
    try:
        ours = _impl_trajectory(harness.impl, initial, batches)
    except NotImplementedError as exc:
        pytest.fail(
            f"--impl {harness.impl_name} refused a call of the network (NotImplementedError: "
            f"{exc}); its plain layers must be expressible, or narrow the run with --functions"
        )
    harness.recorder.example(key)
    for name in PARAMETERS:
        got = ours.params[-1][name]
        assert isinstance(got, np.ndarray), f"--impl {harness.impl_name}: {name} is {type(got)}"
        assert got.dtype == dt, f"--impl {harness.impl_name}: {name} became {got.dtype}"
    error, where = _worst_error(ours, truth, eps)
    harness.recorder.impl_error(key, error)
    assert error <= 1.0, (
        f"--impl {harness.impl_name} ({dtype}): {where} differs from refcnn's float64 layers "
        f"by {error:.3g} x the bound {C_NETWORK:g} eps (x max(|value|, 1))"
    )
    # Training moved the weights: the comparison is not of an untouched model.
    moved = max(float(np.max(np.abs(truth.params[-1][n] - initial[n]))) for n in PARAMETERS)
    assert moved > 1e-3
    if framework == "none":
        return
    train_network = getattr(harness.adapters[framework].module, "train_network", None)
    if train_network is None:
        reason = harness.adapters[framework].limits.get(
            "training", f"the {framework} adapter provides no training trajectory"
        )
        harness.recorder.not_expressible(key, reason)
        return
    theirs = train_network(initial, batches)
    error, where = _worst_error(theirs, truth, eps)
    harness.recorder.framework_error(key, error)
    assert error <= 1.0, (
        f"{framework} ({dtype}): {where} differs from refcnn's float64 layers by {error:.3g} x "
        f"the bound {C_NETWORK:g} eps (x max(|value|, 1))"
    )


def test_refcnn_trajectory_is_reproducible() -> None:
    """The reference run itself is deterministic (same seed, same batches, same bits)."""
    batches = _batches(np.dtype(np.float64))
    first = _refcnn_trajectory(_initial_model(), batches)
    second = _refcnn_trajectory(_initial_model(), batches)
    assert first.losses == second.losses
    for a, b in zip(first.params, second.params, strict=True):
        for name, value in a.items():
            np.testing.assert_array_equal(value, b[name])
