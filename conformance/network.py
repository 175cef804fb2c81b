"""The network the network-level conformance test trains, described once for every runner.

``Conv2D(4, 3, SAME) -> ReLU -> MaxPool2D(2) -> Conv2D(6, 2, VALID) -> Tanh -> Flatten ->
Dense(10)`` on ``(8, 8, 1)`` NHWC inputs, trained with ``softmax_cross_entropy`` (mean) on the
logits for :data:`STEPS` SGD steps (lr :data:`LR`, heavy-ball momentum :data:`MOMENTUM`,
PyTorch's update ``v = m v + g; p -= lr v``). ``conformance/test_network.py`` runs refcnn's
layers (the truth) and the implementation under test; an adapter that can train this
network with its framework's own layers and optimizer provides
``train_network(initial, batches) -> Trajectory`` (weights and gradients in refcnn's
names and layouts: HWIO kernels, ``(I, O)`` dense kernel, NHWC feature order at the
flatten).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy.typing as npt

__all__ = [
    "BATCH",
    "CLASSES",
    "INPUT_SHAPE",
    "LR",
    "MOMENTUM",
    "PARAMETERS",
    "STEPS",
    "Trajectory",
]

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
# Parameter names as refcnn's layers call them; every run reports its weights under these.
PARAMETERS = (
    "conv2d/kernel",
    "conv2d/bias",
    "conv2d_1/kernel",
    "conv2d_1/bias",
    "dense/kernel",
    "dense/bias",
)


class Trajectory(NamedTuple):
    """Losses before each step and every parameter after each step (refcnn names, layouts)."""

    losses: list[float]
    params: list[dict[str, Array]]
