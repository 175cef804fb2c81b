"""Stochastic gradient descent, updating parameter arrays in place.

The update is PyTorch's ``torch.optim.SGD`` (``dampening=0``, ``nesterov=False``, no weight
decay), written with the same operations in the same order so that a float64 run can match
PyTorch step for step::

    v <- momentum * v + g          (v starts at 0; only when momentum != 0)
    p <- p - lr * v                (p <- p - lr * g without momentum)

Keras' SGD (``v <- momentum * v - lr * g; p <- p + v``) is the same sequence for a constant
learning rate, up to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from refcnn._checks import as_array_mapping, as_real, describe

__all__ = ["SGD"]

Array = npt.NDArray[Any]


class SGD:
    """Stochastic gradient descent with optional (heavy-ball) momentum.

    Parameters
    ----------
    lr : float
        Learning rate, finite and ``>= 0``.
    momentum : float, default 0.0
        Momentum factor, finite and ``>= 0``.

    Attributes
    ----------
    velocity : dict of str to ndarray
        The momentum buffers ``v`` by parameter name (empty without momentum).
    """

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        self.lr = as_real("SGD", "lr", lr, minimum=0.0, finite=True)
        self.momentum = as_real("SGD", "momentum", momentum, minimum=0.0, finite=True)
        self.velocity: dict[str, Array] = {}

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr!r}, momentum={self.momentum!r})"

    def step(self, parameters: Mapping[str, Array], gradients: Mapping[str, Array]) -> None:
        """Update every parameter in place from its gradient.

        Parameters
        ----------
        parameters : mapping of str to ndarray
            Updated in place (e.g. ``model.parameters()``).
        gradients : mapping of str to ndarray
            Same keys and shapes (e.g. ``model.gradients()``); read only.

        Notes
        -----
        ``v[k] = momentum * v[k] + g[k]; p[k] -= lr * v[k]``, or ``p[k] -= lr * g[k]`` when
        ``momentum == 0``. The scalars are cast to each parameter's dtype first, so a
        float32 model stays float32.
        """
        op = "SGD.step"
        params = as_array_mapping(op, "parameters", parameters)
        grads = as_array_mapping(op, "gradients", gradients)
        if params.keys() != grads.keys():
            missing = sorted(describe(k) for k in set(params) ^ set(grads))
            msg = f"{op}: parameters and gradients must have the same keys, differ in {missing}"
            raise ValueError(msg)
        # Everything is checked before anything is updated: a refused step changes nothing.
        for key, param in params.items():
            grad = grads[key]
            if grad.shape != param.shape or grad.dtype != param.dtype:
                msg = (
                    f"{op}: gradients[{describe(key)}] must match parameters[{describe(key)}] "
                    f"(shape {param.shape}, dtype {param.dtype}), got shape {grad.shape}, "
                    f"dtype {grad.dtype}"
                )
                raise ValueError(msg)
            if param.dtype.kind != "f":
                msg = f"{op}: parameters[{describe(key)}] must be floating, got {param.dtype}"
                raise TypeError(msg)
            if not param.flags.writeable:
                msg = f"{op}: parameters[{describe(key)}] is read-only, so it cannot be updated"
                raise ValueError(msg)
        for key, param in params.items():
            grad = grads[key]
            lr = param.dtype.type(self.lr)
            if self.momentum == 0.0:
                np.subtract(param, lr * grad, out=param)
                continue
            buffer = self.velocity.get(key)
            if buffer is None or buffer.shape != param.shape or buffer.dtype != param.dtype:
                buffer = self.velocity[key] = np.zeros_like(param)
            buffer *= param.dtype.type(self.momentum)
            buffer += grad
            np.subtract(param, lr * buffer, out=param)
