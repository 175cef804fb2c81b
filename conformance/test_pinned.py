"""Regression memory: every bug the suite has found, in refcnn or a framework, as a pinned case.

Each case below is the shrunk reproducer of a finding; it runs through the same harness as
the drawn examples, for every framework and dtype of the session, so a regression in
refcnn, in an adapter's workaround, or in a framework (or a new implementation repeating
the bug) fails here whatever Hypothesis draws. The findings are explained where they are
handled: refcnn's modules, the adapters' docstrings, conformance/test_framework_bugs.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conformance.harness import Harness
from conformance.strategies import Case


def _case(op: str, note: str, **values: Any) -> Case:
    return Case(op, values, note)


PINNED: dict[str, Case] = {
    "torch_conv2d_single_channel_channels_last_view": _case(
        "conv2d",
        "torch 2.13 float32 CPU conv2d on a C = 1 NCHW view with channels-last strides gave "
        "[120, 162, 248] for [120, 184, 248]",
        x=np.arange(24.0).reshape(1, 6, 4, 1),
        w=np.ones((4, 4, 1, 1)),
        b=None,
        strides=(1, 3),
        padding="VALID",
        dilations=1,
    ),
    "tensorflow_empty_strided_conv_output": _case(
        "conv2d_backward_filter",
        "TF 2.21 float64 conv gradients segfault on an empty strided output (guarded)",
        dy=np.zeros((2, 1, 0, 1)),
        x=np.ones((2, 5, 2, 1)),
        w=np.ones((4, 3, 1, 1)),
        strides=2,
        padding="VALID",
        dilations=1,
    ),
    "tensorflow_float32_conv2d_single_channel_strided": _case(
        "conv2d",
        "TF 2.21 float32 CPU conv2d (oneDNN) with C = 1 and strides (1, 2) gave [144, 304, "
        "g, 624, 784, g'] (g uninitialized memory) for [144, 224, 304, 624, 704, 784]",
        x=np.arange(60.0).reshape(2, 6, 5, 1),
        w=np.ones((4, 4, 1, 1)),
        b=None,
        strides=(1, 2),
        padding="VALID",
        dilations=1,
    ),
    "tensorflow_reduce_max_gradient_splits_ties": _case(
        "global_max_pool_backward",
        "tf.reduce_max's gradient splits a tie 0.5/0.5 (refcnn: all to the first maximum); "
        "the adapter's global max pool is a max pool",
        dy=np.ones((1, 1, 1)),
        x=np.array([1.0, 3.0, 3.0, 2.0]).reshape(1, 4, 1),
        data_format=None,
        keepdims=True,
    ),
    "tensorflow_max_pool3d_gradient_to_every_tie": _case(
        "max_pool_backward",
        "TF 2.21's MaxPool3DGrad gave every tied maximum the window's gradient ([1, 3, 5, 3] "
        "for [1, 2, 3, 0]); the adapter differentiates two 2-D max pools",
        dy=np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3, 1, 1),
        x=np.ones((1, 1, 4, 1, 1)),
        ksize=(1, 2, 1),
        strides=1,
        padding="VALID",
        dilations=1,
        ceil_mode=False,
        data_format=None,
    ),
    "float16_partial_sums_past_65504": _case(
        "conv2d",
        "float16 sums of 200 * 200 pass 65504 on the way (TF's float16 filter gradient gave "
        "-inf for +298914); refcnn's final cast warned before the fix",
        x=np.full((1, 3, 3, 1), 200.0),
        w=np.stack([np.full((3, 3, 1), 200.0), np.full((3, 3, 1), 0.01)], axis=-1),
        b=None,
        strides=1,
        padding="VALID",
        dilations=1,
    ),
    "cross_entropy_backward_tiny_p": _case(
        "cross_entropy_backward",
        "refcnn's float32 -y/p overflowed with a RuntimeWarning for tiny p before the fix",
        p=np.array([[1e-30, 1.0 - 1e-30], [0.5, 0.5]]),
        y=np.array([[1.0, 0.0], [0.5, 0.5]]),
        axis=-1,
        reduction="mean",
        eps=None,
    ),
    "xlogy_gradient_at_zero": _case(
        "cross_entropy_backward",
        "torch's and jax's xlogy gradient is NaN at p = y = 0 (the adapters use the where "
        "idiom); refcnn's is 0",
        p=np.array([0.0, 1.0]),
        y=np.array([0.0, 1.0]),
        axis=-1,
        reduction="sum",
        eps=None,
    ),
    "jax_clip_gradient_at_the_bound": _case(
        "cross_entropy_backward",
        "jnp.clip splits the gradient 0.5/0.5 at p == 1 (the adapter clamps with where)",
        p=np.array([1.0]),
        y=np.array([1.0]),
        axis=0,
        reduction="sum",
        eps=1e-7,
    ),
    "jax_max_gradient_splits_ties": _case(
        "global_max_pool_backward",
        "jnp.max's gradient splits a tie 0.5/0.5 (the adapter's global max pool is a "
        "reduce_window max, gradient to the first maximum)",
        dy=np.ones((1, 1, 1)),
        x=np.ones((1, 2, 1)),
        data_format=None,
        keepdims=True,
    ),
    "onnxruntime_average_pool_same_stride_above_window": _case(
        "avg_pool2d",
        "ONNX Runtime's AveragePool crops under SAME_UPPER when the stride exceeds the window "
        "(the adapter passes explicit pads)",
        x=np.array([0.0, 2.0, -1.0, -1.0, 2.0, -3.0]).reshape(1, 3, 2, 1),
        ksize=(1, 2),
        strides=(3, 1),
        padding="SAME",
        count_include_pad=False,
    ),
    "onnxruntime_pool_window_larger_than_input": _case(
        "max_pool2d",
        "ONNX Runtime's pooling returns one output for a window larger than the input "
        "(refused by the adapter)",
        x=np.arange(1.0, 5.0).reshape(1, 1, 4, 1),
        ksize=2,
        strides=None,
        padding="VALID",
    ),
    "onnxruntime_sigmoid_far_left": _case(
        "sigmoid",
        "ONNX Runtime's Sigmoid is off by over 100% at x = -17 in float32 (absolute-accuracy "
        "rule); refcnn within 6 eps relative",
        x=np.array([-17.0, -3.5, 0.0, 17.0]),
    ),
    "onnxruntime_pool_pads_at_the_window_size": _case(
        "max_pool_with_argmax",
        "ONNX Runtime 1.32's pooling rejects pads >= kernel_shape ('Pad should be smaller "
        "than kernel'), which SAME reaches with a dilated window: k = 2, d = 3, W = 3 pads "
        "(1, 2) (the adapter applies the rest as -inf)",
        x=np.array([3.0, 1.0, 2.0]).reshape(1, 3, 1),
        ksize=2,
        strides=1,
        padding="SAME",
        dilations=3,
    ),
    "onnxruntime_avg_pool_pads_at_the_window_size": _case(
        "avg_pool",
        "the same pads in average pooling with count_include_pad=True (the adapter applies "
        "the rest as zeros, which its divisor counts as pads)",
        x=np.array([3.0, 1.0, 2.0]).reshape(1, 3, 1),
        ksize=2,
        strides=1,
        padding="SAME",
        dilations=3,
        count_include_pad=True,
    ),
    "onnxruntime_conv_transpose_output_padding_at_the_stride": _case(
        "conv_transpose",
        "ONNX Runtime 1.32's ConvTranspose refuses output_padding >= stride although it is "
        "below the dilation (the adapter appends zero inputs)",
        x=np.array([1.0, 2.0]).reshape(1, 2, 1),
        w=np.array([1.0, 10.0]).reshape(2, 1, 1),
        b=None,
        dilations=3,
        output_padding=1,
    ),
    "onnxruntime_conv_dilated_same": _case(
        "conv",
        "ONNX Runtime 1.32's Conv refuses dilation under auto_pad SAME (the adapter passes "
        "refcnn's SAME pads)",
        x=np.array([1.0, 2.0, 4.0]).reshape(1, 3, 1),
        w=np.array([1.0, 10.0]).reshape(2, 1, 1),
        b=None,
        strides=1,
        padding="SAME",
        dilations=2,
    ),
    "max_pool_ties_first_maximum": _case(
        "max_pool2d_backward",
        "every framework routes a tied window's gradient to its first maximum, as refcnn",
        dy=np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1),
        x=np.ones((1, 3, 3, 1)),
        ksize=2,
        strides=1,
        padding="VALID",
    ),
    "torch_conv3d_single_channel_channels_last_view": _case(
        "conv3d",
        "torch 2.13 float32 CPU conv3d (oneDNN) on a C = 1 NCDHW view with channels-last "
        "strides gave e.g. [66, 65, 246, 170] for [66, 102, 246, 282]",
        x=np.arange(30.0).reshape(2, 1, 5, 3, 1),
        w=np.ones((1, 4, 3, 1, 1)),
        b=None,
        strides=(1, 1, 2),
        padding="VALID",
        dilations=1,
    ),
    "torch_avg_pool3d_input_smaller_than_window": _case(
        "avg_pool3d",
        "torch 2.13's avg_pool3d rejects W = 1 < ksize 3 although padding 1 makes it fit "
        "(avg_pool2d and max_pool3d accept it); the adapter pads with F.pad there",
        x=np.array([2.0]).reshape(1, 1, 1, 1, 1),
        ksize=(1, 1, 3),
        strides=None,
        padding="SAME",
        count_include_pad=False,
    ),
}


@pytest.mark.parametrize(("op", "pinned"), [(c.op, name) for name, c in PINNED.items()])
def test_pinned(harness: Harness, op: str, pinned: str, framework: str, dtype: str) -> None:
    harness.check(PINNED[pinned], framework=framework, dtype=dtype)
