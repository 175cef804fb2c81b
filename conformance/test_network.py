"""Network-level conformance: K SGD steps of one small CNN in refcnn, PyTorch and TensorFlow.

The per-op suite (``test_ops.py``) checks each function against the float64 oracle. This
file checks the composition the way a user meets it: the same network, built from refcnn's
initial weights, trained for ``K = 5`` SGD steps (lr 1/16, momentum 7/8) on the same batches in
float64, must give the same loss at every step and the same parameters after every step.

Network (refcnn, NHWC/HWIO)::

    Conv2D(4, 3, SAME) -> ReLU -> MaxPool2D(2) -> Conv2D(6, 2, VALID) -> Tanh
    -> Flatten -> Dense(10)        trained with softmax_cross_entropy (mean) on logits

Translation (kept here because it is about a whole model, not one op):

- PyTorch: kernels HWIO -> OIHW (``transpose(3, 2, 0, 1)``), dense ``(I, O)`` -> ``(O, I)``;
  SAME with a 3x3 stride-1 kernel is the symmetric ``padding=1``. PyTorch's tensors are NCHW,
  so the feature map is permuted to NHWC *before* ``flatten`` to reproduce refcnn's
  channels-last feature order (else the dense kernel would see permuted features).
  ``torch.optim.SGD(momentum=0.9)`` is refcnn's update exactly.
- TensorFlow: Keras layers take NHWC/HWIO/(I, O) as they are; ``keras.optimizers.SGD``
  writes momentum as ``v = m v - lr g; p += v``, the same sequence up to rounding. Keras
  rounds ``lr`` and ``momentum`` to float32 even for float64 weights (see ``LR``), so both
  are chosen exactly representable in float32.

Tolerance: refcnn and the frameworks sum in different orders (im2col vs oneDNN/Eigen), so
every gradient differs by a few ulps of its summands, and SGD carries those differences into
the next steps' weights. One documented float64 bound covers every loss and every parameter
tensor after every step::

    max |p_refcnn - p_framework| <= C * eps * max(max |p_refcnn|, 1),   C = 2**12 = 4096

(``eps`` from :mod:`conformance.tolerance`'s table, so ``4096 eps ~ 9.1e-13``). A priori:
the longest reduction has ``K = 512`` terms (a conv filter gradient sums ``N OH OW = 8 * 8 *
8``), off by at most ``c_sum K eps s`` by the per-op policy (``s``, the summands' absolute
sum, is below 1 here); SGD scales it by ``lr = 1/16`` and momentum adds up at most
``1 + m + ... + m**4 < 5`` of them: ``2 * 512 / 16 * 5 = 320`` eps, plus what the slightly
different weights change in later gradients; ``C = 4096`` leaves a factor ~10 over that.
Observed: about 1 eps (normalized error ~2.4e-4 against both frameworks; printed with
``-s``). Any real disagreement (a wrong flatten order, a misplaced pad, a tie routed to
another element, a missing bias gradient) moves the weights by ``O(lr |g|) ~ 1e-3``, nine
orders of magnitude above the bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

from conformance.tolerance import tolerance
from refcnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from refcnn.model import Sequential, train_step
from refcnn.optim import SGD

Array = npt.NDArray[Any]

STEPS = 5
BATCH = 8
CLASSES = 10
# Both exactly representable in float32: Keras keeps learning_rate in a floatx (float32)
# variable and converts the Python momentum to a float32 tensor before casting it to the
# variable's dtype, so lr=0.05 / momentum=0.9 would really be float32(0.05) / float32(0.9)
# there (relative errors 1.5e-8 / 2.6e-8, weights off by ~1e-10 after two steps).
LR = 0.0625
MOMENTUM = 0.875
INPUT_SHAPE = (8, 8, 1)
C_NETWORK = 2.0**12
BOUND = C_NETWORK * tolerance(np.float64).eps


class Trajectory(NamedTuple):
    """Losses before each step and every parameter after each step (refcnn names, layouts)."""

    losses: list[float]
    params: list[dict[str, Array]]


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


def _batches() -> list[tuple[Array, Array]]:
    rng = np.random.default_rng(20240611)
    return [
        (
            rng.uniform(0.0, 1.0, size=(BATCH, *INPUT_SHAPE)),
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


def _refcnn_trajectory(model: Sequential, batches: list[tuple[Array, Array]]) -> Trajectory:
    optimizer = SGD(LR, momentum=MOMENTUM)
    losses, params = [], []
    for x, labels in batches:
        losses.append(train_step(model, optimizer, x, labels))
        params.append({k: v.copy() for k, v in model.parameters().items()})
    return Trajectory(losses, params)


def _torch_trajectory(initial: dict[str, Array], batches: list[tuple[Array, Array]]) -> Trajectory:
    torch = pytest.importorskip("torch")
    nn: Any = torch.nn
    module: Any = nn.Module  # torch is untyped here (mypy override): subclass an Any

    class Net(module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.conv2d = nn.Conv2d(1, 4, 3, padding=1, dtype=torch.float64)
            self.pool = nn.MaxPool2d(2)
            self.conv2d_1 = nn.Conv2d(4, 6, 2, dtype=torch.float64)
            self.dense = nn.Linear(3 * 3 * 6, CLASSES, dtype=torch.float64)

        def forward(self, x: Any) -> Any:
            h = torch.tanh(self.conv2d_1(self.pool(torch.relu(self.conv2d(x)))))
            # NCHW -> NHWC before flattening: refcnn's (and Keras') feature order.
            return self.dense(torch.flatten(h.permute(0, 2, 3, 1), 1))

    def to_torch(name: str, value: Array) -> Any:
        if name.endswith("/kernel") and value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        elif name.endswith("/kernel"):
            value = value.T  # (I, O) -> (O, I)
        return torch.from_numpy(np.ascontiguousarray(value))

    def from_torch(name: str, tensor: Any) -> Array:
        value: Array = tensor.detach().numpy().copy()
        if name.endswith("/kernel") and value.ndim == 4:
            return np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # OIHW -> HWIO
        if name.endswith("/kernel"):
            return np.ascontiguousarray(value.T)
        return value

    net = Net()
    torch_params = {
        f"{layer}/{'kernel' if kind == 'weight' else 'bias'}": p
        for layer, module in (
            ("conv2d", net.conv2d),
            ("conv2d_1", net.conv2d_1),
            ("dense", net.dense),
        )
        for kind, p in (("weight", module.weight), ("bias", module.bias))
    }
    with torch.no_grad():
        for name, p in torch_params.items():
            p.copy_(to_torch(name, initial[name]))
    optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    losses, params = [], []
    for x, labels in batches:
        optimizer.zero_grad()
        logits = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        params.append({name: from_torch(name, p) for name, p in torch_params.items()})
    return Trajectory(losses, params)


def _tensorflow_trajectory(
    initial: dict[str, Array], batches: list[tuple[Array, Array]]
) -> Trajectory:
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    layers = {
        "conv2d": keras.layers.Conv2D(4, 3, padding="same", dtype="float64"),
        "conv2d_1": keras.layers.Conv2D(6, 2, padding="valid", dtype="float64"),
        "dense": keras.layers.Dense(CLASSES, dtype="float64"),
    }
    net = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE, dtype="float64"),
            layers["conv2d"],
            keras.layers.ReLU(dtype="float64"),
            keras.layers.MaxPooling2D(2, dtype="float64"),
            layers["conv2d_1"],
            keras.layers.Activation("tanh", dtype="float64"),
            keras.layers.Flatten(dtype="float64"),
            layers["dense"],
        ]
    )
    for name, layer in layers.items():
        layer.set_weights([initial[f"{name}/kernel"], initial[f"{name}/bias"]])
    # dtype: Keras losses otherwise compute in floatx (float32).
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
    optimizer = keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM)
    losses, params = [], []
    for x, labels in batches:
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.constant(labels), net(tf.constant(x), training=True))
        grads = tape.gradient(loss, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables, strict=True))
        losses.append(float(loss))
        params.append(
            {
                f"{name}/{key}": np.array(weight)
                for name, layer in layers.items()
                for key, weight in zip(("kernel", "bias"), layer.get_weights(), strict=True)
            }
        )
    return Trajectory(losses, params)


FRAMEWORK_RUNS: dict[str, Callable[[dict[str, Array], list[tuple[Array, Array]]], Trajectory]] = {
    "torch": _torch_trajectory,
    "tensorflow": _tensorflow_trajectory,
}


def _selected(config: pytest.Config, framework: str) -> bool:
    # The harness's --framework option (conformance/conftest.py): all (default), none, or one.
    choice = config.getoption("framework", default="all")
    return choice in {"all", framework}


def _normalized_error(ours: Array | float, theirs: Array | float) -> float:
    """``max |ours - theirs| / (BOUND * max(max |ours|, 1))``: passes when <= 1."""
    a, b = np.asarray(ours), np.asarray(theirs)
    scale = max(float(np.max(np.abs(a))), 1.0)
    return float(np.max(np.abs(a - b))) / (BOUND * scale)


@pytest.mark.parametrize("framework", list(FRAMEWORK_RUNS))
def test_sgd_trajectory_matches(request: pytest.FixtureRequest, framework: str) -> None:
    if not _selected(request.config, framework):
        pytest.skip(f"{framework} not selected by --framework")
    batches = _batches()
    model = _initial_model()
    initial = {k: v.copy() for k, v in model.parameters().items()}
    theirs = FRAMEWORK_RUNS[framework](initial, batches)
    ours = _refcnn_trajectory(model, batches)
    worst = 0.0
    for step in range(STEPS):
        errors = {"loss": _normalized_error(ours.losses[step], theirs.losses[step])}
        errors.update(
            {
                name: _normalized_error(value, theirs.params[step][name])
                for name, value in ours.params[step].items()
            }
        )
        where, error = max(errors.items(), key=lambda item: item[1])
        worst = max(worst, error)
        assert error <= 1.0, (
            f"{framework}: after SGD step {step + 1} of {STEPS}, {where} differs by "
            f"{error:.3g} x the bound {BOUND:.3g} (x max(|value|, 1))"
        )
    # Training moved the weights: the comparison is not of an untouched model.
    moved = max(float(np.max(np.abs(ours.params[-1][name] - initial[name]))) for name in initial)
    assert moved > 1e-3
    assert ours.losses[-1] != ours.losses[0]
    print(f"{framework}: max normalized error {worst:.3g} (bound {BOUND:.3g} relative)")


def test_refcnn_trajectory_is_reproducible() -> None:
    """The reference run itself is deterministic (same seed, same batches, same bits)."""
    batches = _batches()
    first = _refcnn_trajectory(_initial_model(), batches)
    second = _refcnn_trajectory(_initial_model(), batches)
    assert first.losses == second.losses
    for a, b in zip(first.params, second.params, strict=True):
        for name, value in a.items():
            np.testing.assert_array_equal(value, b[name])
