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
from refcnn.dense import DenseGradients, dense, dense_backward, flatten, flatten_backward
from refcnn.losses import (
    cross_entropy,
    cross_entropy_backward,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)
from refcnn.pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward
from refcnn.softmax import log_softmax, softmax, softmax_backward, softmax_jacobian

__all__ = [
    "Conv2DGradients",
    "DenseGradients",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_backward_bias",
    "conv2d_backward_filter",
    "conv2d_backward_input",
    "cross_entropy",
    "cross_entropy_backward",
    "dense",
    "dense_backward",
    "flatten",
    "flatten_backward",
    "log_softmax",
    "max_pool2d",
    "max_pool2d_backward",
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
]
__version__ = "0.1.0"
