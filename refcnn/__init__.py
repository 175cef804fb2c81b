"""refcnn: a golden NumPy reference for CNN building blocks (NHWC data, HWIO filters)."""

from refcnn.activations import (
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    tanh,
    tanh_backward,
)
from refcnn.conv import (
    Conv2DGradients,
    conv2d,
    conv2d_backward,
    conv2d_backward_bias,
    conv2d_backward_filter,
    conv2d_backward_input,
)
from refcnn.datasets import load_digits, load_mnist
from refcnn.dense import DenseGradients, dense, dense_backward, flatten, flatten_backward
from refcnn.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    Layer,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from refcnn.losses import (
    cross_entropy,
    cross_entropy_backward,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)
from refcnn.model import Sequential, evaluate, train_step
from refcnn.optim import SGD

# --- pooling (issue 12) -------------------------------------------------------------------
from refcnn.pool import (
    avg_pool,
    avg_pool1d,
    avg_pool2d,
    avg_pool2d_backward,
    avg_pool3d,
    avg_pool_backward,
    global_avg_pool,
    global_avg_pool_backward,
    global_max_pool,
    global_max_pool_backward,
    max_pool,
    max_pool1d,
    max_pool2d,
    max_pool2d_backward,
    max_pool3d,
    max_pool_backward,
    max_pool_with_argmax,
)

# --- end pooling ---------------------------------------------------------------------------
from refcnn.softmax import log_softmax, softmax, softmax_backward, softmax_jacobian

__all__ = [
    "SGD",
    "AvgPool2D",
    "Conv2D",
    "Conv2DGradients",
    "Dense",
    "DenseGradients",
    "Flatten",
    "Layer",
    "MaxPool2D",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool3d",
    "avg_pool_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_bias",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "cross_entropy",
    "cross_entropy_backward",
    "dense",
    "dense_backward",
    "evaluate",
    "flatten",
    "flatten_backward",
    "global_avg_pool",
    "global_avg_pool_backward",
    "global_max_pool",
    "global_max_pool_backward",
    "load_digits",
    "load_mnist",
    "log_softmax",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool3d",
    "max_pool_backward",
    "max_pool_with_argmax",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "softmax_jacobian",
    "tanh",
    "tanh_backward",
    "train_step",
]
__version__ = "0.1.0"
