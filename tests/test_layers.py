"""Layers, Sequential, SGD: whole-model gradients, shape inference and checks, the optimizer."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import refcnn
from refcnn.layers import (
    AvgPool2D,
    Conv2D,
    Dense,
    Flatten,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    glorot_uniform,
    he_uniform,
)
from refcnn.model import Sequential, evaluate, train_step
from refcnn.optim import SGD

Array = npt.NDArray[Any]

# Central differences along a unit direction: error h^2/6 |f'''| (truncation) plus
# ~eps |f| / h (rounding of f). With h = 1e-5 and f, f''' of order 1 that is ~2e-11 + 2e-11;
# 1e-8 relative to the directional derivative's scale leaves a factor ~200, while a wrong
# gradient (a dropped term, a transposed kernel) is off by O(1).
FD_STEP = 1e-5
FD_RTOL = 1e-8


def _tiny_model(*, seed: int = 0) -> Sequential:
    """Every layer kind with parameters or geometry: strides, dilation, SAME, VALID, no bias."""
    return Sequential(
        [
            Conv2D(3, 3, padding="SAME"),
            Tanh(),
            MaxPool2D(2, strides=1),
            Conv2D(4, (2, 3), strides=(1, 2), dilations=(2, 1), use_bias=False),
            Sigmoid(),
            AvgPool2D(2, padding="SAME"),
            Flatten(),
            Dense(5, kernel_initializer="he_uniform"),
            ReLU(),
            Dense(3),
        ],
        seed=seed,
    )


def _randomize_biases(model: Sequential, rng: np.random.Generator) -> None:
    # Zero biases would hide a bias gradient routed to the wrong place.
    for name, value in model.parameters().items():
        if name.endswith("/bias"):
            value[...] = rng.uniform(-0.5, 0.5, size=value.shape)


def _flat(arrays: list[Array]) -> Array:
    return np.concatenate([a.ravel() for a in arrays])


def _directional_check(
    model: Sequential, loss_and_dy: Any, x: Array, rng: np.random.Generator
) -> None:
    """Check <grad, d> against (f(theta + h d) - f(theta - h d)) / 2h over x and parameters."""
    params = model.parameters()
    model.zero_grad()
    y = model.forward(x)
    _, dy = loss_and_dy(y)
    dx = model.backward(dy)
    grads = model.gradients()
    originals = {name: value.copy() for name, value in params.items()}
    for _ in range(3):
        dir_x = rng.standard_normal(x.shape)
        dirs = {name: rng.standard_normal(value.shape) for name, value in params.items()}
        norm = math.sqrt(float(np.sum(_flat([dir_x, *dirs.values()]) ** 2)))
        dir_x /= norm
        dirs = {name: d / norm for name, d in dirs.items()}
        analytic = float(np.sum(dx * dir_x)) + sum(
            float(np.sum(grads[name] * dirs[name])) for name in params
        )

        def loss_at(sign: float, dir_x: Array = dir_x, dirs: dict[str, Array] = dirs) -> float:
            for name, value in params.items():
                value[...] = originals[name] + sign * FD_STEP * dirs[name]
            loss, _ = loss_and_dy(model.forward(x + sign * FD_STEP * dir_x))
            return loss

        numeric = (loss_at(1.0) - loss_at(-1.0)) / (2 * FD_STEP)
        for name, value in params.items():
            value[...] = originals[name]
        scale = math.sqrt(float(np.sum(_flat([dx, *grads.values()]) ** 2)))
        assert abs(numeric - analytic) <= FD_RTOL * max(scale, 1.0), (numeric, analytic, scale)


def test_whole_model_gradient_matches_central_differences() -> None:
    rng = np.random.default_rng(1)
    model = _tiny_model()
    x = rng.uniform(-1, 1, size=(3, 7, 9, 2))
    labels = np.array([0, 2, 1])
    model.build(x.shape[1:], np.random.default_rng(2))
    _randomize_biases(model, rng)

    def loss_and_dy(logits: Array) -> tuple[float, Array]:
        loss = float(refcnn.softmax_cross_entropy(logits, labels))
        return loss, refcnn.softmax_cross_entropy_backward(logits, labels)

    _directional_check(model, loss_and_dy, x, rng)


def test_softmax_layer_gradient_matches_central_differences() -> None:
    rng = np.random.default_rng(3)
    model = Sequential([Flatten(), Dense(4), Softmax()])
    x = rng.standard_normal((2, 3, 2, 1))
    model.build(x.shape[1:], rng)
    weights = rng.standard_normal((2, 4))

    def loss_and_dy(p: Array) -> tuple[float, Array]:
        return float(np.sum(weights * p)), weights

    _directional_check(model, loss_and_dy, x, rng)


def test_backward_accumulates_and_zero_grad_resets() -> None:
    rng = np.random.default_rng(4)
    model = _tiny_model()
    x = rng.uniform(-1, 1, size=(2, 7, 9, 2))
    y = model.forward(x)
    dy = rng.standard_normal(y.shape)
    dx_once = model.backward(dy)
    once = {k: v.copy() for k, v in model.gradients().items()}
    dx_twice = model.backward(dy)
    np.testing.assert_array_equal(dx_once, dx_twice)
    for name, grad in model.gradients().items():
        np.testing.assert_array_equal(grad, 2 * once[name])
    grads_before = model.gradients()
    model.zero_grad()
    for name, grad in model.gradients().items():
        assert grad is grads_before[name]  # reset in place: an optimizer's references stay valid
        assert not grad.any()


def test_layers_call_the_functional_api() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 6, 6, 3))
    conv = Conv2D(4, 3, strides=2, padding="SAME", dilations=1)
    conv.build(x.shape[1:], rng)
    conv.params["bias"][...] = rng.standard_normal(4)
    w, b = conv.params["kernel"], conv.params["bias"]
    y = conv.forward(x)
    np.testing.assert_array_equal(y, refcnn.conv2d(x, w, b, strides=2, padding="SAME"))
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    expected = refcnn.conv2d_backward(dy, x, w, strides=2, padding="SAME")
    np.testing.assert_array_equal(dx, expected.dx)
    np.testing.assert_array_equal(conv.grads["kernel"], expected.dw)
    np.testing.assert_array_equal(conv.grads["bias"], expected.db)
    pool = AvgPool2D(3, strides=2, padding="SAME", count_include_pad=True)
    np.testing.assert_array_equal(
        pool.forward(x),
        refcnn.avg_pool2d(x, 3, strides=2, padding="SAME", count_include_pad=True),
    )


# -- shapes ------------------------------------------------------------------------------


def test_shape_inference_and_build_at_first_forward_match() -> None:
    explicit = Sequential(
        [Conv2D(8, 3, padding="SAME"), ReLU(), MaxPool2D(2), Flatten(), Dense(10)]
    )
    out = explicit.build((8, 8, 1), np.random.default_rng(7))
    assert out == (10,)
    assert [layer.output_shape for layer in explicit.layers] == [
        (8, 8, 8),
        (8, 8, 8),
        (4, 4, 8),
        (128,),
        (10,),
    ]
    assert explicit.parameters()["conv2d/kernel"].shape == (3, 3, 1, 8)
    assert explicit.parameters()["dense/kernel"].shape == (128, 10)
    implicit = Sequential(
        [Conv2D(8, 3, padding="SAME"), ReLU(), MaxPool2D(2), Flatten(), Dense(10)], seed=7
    )
    assert not implicit.built
    y = implicit.forward(np.zeros((5, 8, 8, 1)))
    assert y.shape == (5, 10)
    assert implicit.input_shape == (8, 8, 1)
    for (name_a, a), (name_b, b) in zip(
        explicit.parameters().items(), implicit.parameters().items(), strict=True
    ):
        assert name_a == name_b
        np.testing.assert_array_equal(a, b)


def test_default_names_are_unique_and_keys_parallel() -> None:
    model = Sequential([Dense(3), ReLU(), Dense(2, name="head"), ReLU(), Dense(2, use_bias=False)])
    assert [layer.name for layer in model.layers] == ["dense", "relu", "head", "relu_1", "dense_1"]
    model.build((4,))
    assert list(model.parameters()) == [
        "dense/kernel",
        "dense/bias",
        "head/kernel",
        "head/bias",
        "dense_1/kernel",
    ]
    assert list(model.gradients()) == list(model.parameters())
    for name, grad in model.gradients().items():
        assert grad.shape == model.parameters()[name].shape


def test_wrong_input_shape_names_layer_and_shapes() -> None:
    model = Sequential([Conv2D(2, 3), Flatten(), Dense(3)])
    model.forward(np.zeros((1, 5, 5, 1)))
    message = (
        "Sequential.forward: x must have shape (N, 5, 5, 1) (fixed when the model was built), "
        "got (2, 6, 5, 1)"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        model.forward(np.zeros((2, 6, 5, 1)))
    with pytest.raises(ValueError, match=re.escape("got (2, 5, 5)")):
        model.forward(np.zeros((2, 5, 5)))
    with pytest.raises(TypeError, match=r"Sequential.forward: x must have dtype float64 .*float32"):
        model.forward(np.zeros((2, 5, 5, 1), dtype=np.float32))
    conv, dense = model.layers[0], model.layers[2]
    message = "conv2d: x must have shape (N, 5, 5, 1) (fixed when the layer was built)"
    with pytest.raises(ValueError, match=re.escape(message)):
        conv.forward(np.zeros((2, 6, 5, 1)))
    with pytest.raises(TypeError, match=r"conv2d: x must have dtype float64 .*float32"):
        conv.forward(np.zeros((2, 5, 5, 1), dtype=np.float32))
    with pytest.raises(ValueError, match=re.escape("dense: x must have shape (N, 18)")):
        dense.forward(np.zeros((2, 17)))


def test_wrong_dy_shape_and_order_errors() -> None:
    model = Sequential([Flatten(), Dense(3)])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward(np.zeros((2, 3)))
    model.forward(np.zeros((2, 2, 2, 1)))
    message = "Sequential.backward: dy must have shape (2, 3) (the last forward output)"
    with pytest.raises(ValueError, match=re.escape(message)):
        model.backward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=re.escape("dense: dy must have shape (2, 3)")):
        model.layers[1].backward(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="dense: dy must have dtype float64"):
        model.layers[1].backward(np.zeros((2, 3), dtype=np.float32))


def test_build_errors_name_the_layer() -> None:
    with pytest.raises(ValueError, match=r"dense: cannot build on input_shape \(N, 4, 4, 2\)"):
        Sequential([Dense(3)]).build((4, 4, 2))
    with pytest.raises(ValueError, match=r"conv2d: cannot build .*\(N, 2, 2, 1\)"):
        Sequential([Conv2D(2, 3, dilations=2)]).build((2, 2, 1))
    with pytest.raises(ValueError, match=r"max_pool2d: cannot build"):
        Sequential([MaxPool2D(2, padding=((2, 0), (0, 0)))]).build((4, 4, 1))
    with pytest.raises(RuntimeError, match=r"call build\(input_shape, rng\)"):
        Dense(3).forward(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="floating dtype"):
        Sequential([Dense(3)]).build((2,), dtype=np.int64)
    model = Sequential([ReLU()])
    model.build((2,))
    with pytest.raises(RuntimeError, match="already built"):
        model.build((2,))


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="filters must be >= 1"):
        Conv2D(0, 3)
    with pytest.raises(TypeError, match="units must be an int"):
        Dense(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel_initializer must be one of"):
        Dense(2, kernel_initializer="zeros")
    with pytest.raises(ValueError, match="padding"):
        MaxPool2D(2, padding="FULL")  # type: ignore[arg-type]
    relu = ReLU()
    with pytest.raises(ValueError, match="appears twice"):
        Sequential([relu, relu])
    with pytest.raises(ValueError, match="unique"):
        Sequential([ReLU(name="a"), Tanh(name="a")])
    with pytest.raises(TypeError, match=r"layers\[1\] must be a Layer"):
        Sequential([ReLU(), "dense"])  # type: ignore[list-item]


def test_parameterless_layer_builds_itself() -> None:
    layer = Tanh()
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    np.testing.assert_array_equal(layer.forward(x), refcnn.tanh(x))
    assert layer.input_shape == (3,)
    assert layer.count_parameters() == 0


def test_summary_text() -> None:
    model = Sequential([Conv2D(8, 3, padding="SAME"), ReLU(), MaxPool2D(2), Flatten(), Dense(10)])
    model.build((8, 8, 1))
    printed: list[str] = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    assert text == (
        "Input shape: (None, 8, 8, 1)\n"
        "------------------------------------------------\n"
        "Layer (type)            Output Shape     Param #\n"
        "------------------------------------------------\n"
        "conv2d (Conv2D)         (None, 8, 8, 8)       80\n"
        "relu (ReLU)             (None, 8, 8, 8)        0\n"
        "max_pool2d (MaxPool2D)  (None, 4, 4, 8)        0\n"
        "flatten (Flatten)       (None, 128)            0\n"
        "dense (Dense)           (None, 10)          1290\n"
        "------------------------------------------------\n"
        "Total params: 1370"
    )
    assert model.count_parameters() == 3 * 3 * 1 * 8 + 8 + 128 * 10 + 10
    with pytest.raises(RuntimeError, match="built model"):
        Sequential([ReLU()]).summary()


# -- initializers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initializer", "shape", "limit"),
    [
        (glorot_uniform, (3, 3, 2, 4), math.sqrt(6 / (18 + 36))),
        (glorot_uniform, (20, 10), math.sqrt(6 / 30)),
        (he_uniform, (3, 3, 2, 4), math.sqrt(6 / 18)),
        (he_uniform, (20, 10), math.sqrt(6 / 20)),
    ],
)
def test_initializer_limits(initializer: Any, shape: tuple[int, ...], limit: float) -> None:
    w = initializer(shape, np.random.default_rng(0))
    assert w.shape == shape
    assert w.dtype == np.float64
    assert np.max(np.abs(w)) <= limit
    # The draw is the documented one: a uniform on [-limit, limit) from the given generator.
    np.testing.assert_array_equal(w, np.random.default_rng(0).uniform(-limit, limit, size=shape))


def test_build_draws_from_the_given_generator_in_layer_order() -> None:
    model = Sequential([Conv2D(2, 3, kernel_initializer="he_uniform"), Flatten(), Dense(3)])
    model.build((4, 4, 1), np.random.default_rng(11))
    rng = np.random.default_rng(11)
    np.testing.assert_array_equal(
        model.parameters()["conv2d/kernel"], he_uniform((3, 3, 1, 2), rng)
    )
    np.testing.assert_array_equal(model.parameters()["dense/kernel"], glorot_uniform((8, 3), rng))
    assert not model.parameters()["dense/bias"].any()


def test_float32_model_keeps_float32() -> None:
    model = Sequential([Flatten(), Dense(3)])
    y = model.forward(np.ones((2, 2, 2, 1), dtype=np.float32))
    assert y.dtype == np.float32
    assert all(p.dtype == np.float32 for p in model.parameters().values())
    train_step(model, SGD(0.1), np.ones((2, 2, 2, 1), dtype=np.float32), np.array([0, 1]))
    assert all(p.dtype == np.float32 for p in model.parameters().values())


# -- SGD ---------------------------------------------------------------------------------


def test_sgd_step_arithmetic() -> None:
    p = {"w": np.array([1.0, -2.0, 0.5])}
    g = {"w": np.array([0.5, 0.25, -4.0])}
    alias = p["w"]
    SGD(0.5).step(p, g)
    assert p["w"] is alias
    np.testing.assert_array_equal(p["w"], [0.75, -2.125, 2.5])


def test_sgd_momentum_arithmetic() -> None:
    # v1 = g1, p1 = p0 - lr v1; v2 = m v1 + g2, p2 = p1 - lr v2 (PyTorch's update); all
    # values are dyadic so every operation is exact.
    p = {"w": np.array([1.0, 2.0])}
    opt = SGD(0.25, momentum=0.5)
    opt.step(p, {"w": np.array([1.0, -2.0])})
    np.testing.assert_array_equal(p["w"], [0.75, 2.5])
    opt.step(p, {"w": np.array([2.0, 0.0])})
    np.testing.assert_array_equal(opt.velocity["w"], [2.5, -1.0])
    np.testing.assert_array_equal(p["w"], [0.125, 2.75])


def test_sgd_validation() -> None:
    with pytest.raises(ValueError, match="lr must be >= 0"):
        SGD(-0.1)
    with pytest.raises(ValueError, match="momentum must be >= 0"):
        SGD(0.1, momentum=float("nan"))
    with pytest.raises(TypeError, match="lr must be a real number"):
        SGD("0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same keys"):
        SGD(0.1).step({"a": np.zeros(2)}, {"b": np.zeros(2)})
    with pytest.raises(ValueError, match=re.escape("gradients['a'] must match parameters['a']")):
        SGD(0.1).step({"a": np.zeros(2)}, {"a": np.zeros(3)})


# -- training ----------------------------------------------------------------------------


def test_train_step_is_forward_loss_backward_update() -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 3, 1))
    labels = np.array([0, 1, 2, 1])
    model = Sequential([Flatten(), Dense(3)], seed=3)
    reference = Sequential([Flatten(), Dense(3)], seed=3)
    loss = train_step(model, SGD(0.1), x, labels)
    logits = reference.forward(x)
    assert loss == float(refcnn.softmax_cross_entropy(logits, labels))
    reference.backward(refcnn.softmax_cross_entropy_backward(logits, labels))
    for name, value in reference.parameters().items():
        np.testing.assert_array_equal(
            model.parameters()[name], value - 0.1 * reference.gradients()[name]
        )


def test_training_reduces_loss_and_evaluate() -> None:
    rng = np.random.default_rng(13)
    x = rng.standard_normal((20, 4, 4, 1))
    labels = (x.sum(axis=(1, 2, 3)) > 0).astype(np.int64)
    model = Sequential([Conv2D(2, 3, padding="SAME"), ReLU(), Flatten(), Dense(2)])
    opt = SGD(0.1, momentum=0.9)
    before = evaluate(model, x, labels)
    for _ in range(30):
        train_step(model, opt, x, labels)
    after = evaluate(model, x, labels, batch_size=7)
    assert after.loss < before.loss / 2
    assert after.accuracy >= 0.9


def test_train_step_refuses_a_softmax_output() -> None:
    model = Sequential([Flatten(), Dense(2), Softmax()])
    with pytest.raises(ValueError, match="train on logits"):
        train_step(model, SGD(0.1), np.zeros((1, 2, 2, 1)), np.array([0]))


# -- hostile input (found by the bad-input fuzzer, tests/test_fuzz_bad_input.py) ----------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ReLU(name=5), TypeError, "ReLU: name must be None or a str"),
        (lambda: ReLU(name=""), ValueError, "ReLU: name must not be empty"),
        (lambda: Dense(2, use_bias="no"), TypeError, "Dense: use_bias must be a bool"),
        (lambda: Conv2D(2, 3, use_bias=1), TypeError, "Conv2D: use_bias must be a bool"),
        (lambda: AvgPool2D(2, count_include_pad=0), TypeError, "count_include_pad must be a bool"),
        (lambda: Dense(2, kernel_initializer=["he"]), ValueError, "kernel_initializer must be one"),
        (lambda: Softmax(axis="last"), TypeError, "Softmax: axis must be an int"),
        (lambda: ReLU().build([5.0, 3.0]), TypeError, "relu: input_shape must be an int"),
        (
            lambda: ReLU().build(range(10**20)),
            ValueError,
            "relu: input_shape must be non-negative ints",
        ),
        (lambda: ReLU().build((2**63, 5)), ValueError, "relu: input_shape would need an array"),
        (lambda: ReLU().build((3,), rng=5), TypeError, "relu: rng must be None or a numpy"),
        (lambda: ReLU().build((3,), dtype="bogus"), TypeError, "relu: dtype must be a floating"),
        (
            lambda: Dense(2**40).build((3,), np.random.default_rng(0)),
            ValueError,
            "Dense: units and the input size would need an array of shape (3, 1099511627776)",
        ),
        (lambda: ReLU().forward([[1.0]]), TypeError, "relu: x must be a numpy array, got list"),
        (lambda: ReLU().forward(np.zeros(())), ValueError, "relu: x must have a batch axis"),
        (lambda: ReLU().forward(np.zeros((1, 2), int)), TypeError, "relu: x must have a floating"),
        (lambda: Sequential(ReLU()), TypeError, "Sequential: layers must be an iterable of Layer"),
        (lambda: Sequential(None), TypeError, "Sequential: layers must be an iterable of Layer"),
        (lambda: Sequential([]), ValueError, "Sequential: layers must hold at least one Layer"),
        (lambda: Sequential([ReLU()], seed=-1), ValueError, "Sequential: seed must be >= 0"),
        (lambda: Sequential([ReLU()], seed="0"), TypeError, "Sequential: seed must be None or an"),
        (lambda: Sequential([ReLU()]).build((3,), rng=1), TypeError, "Sequential.build: rng must"),
        (lambda: SGD(np.inf), ValueError, "SGD: lr must be a finite real number"),
        (lambda: SGD(0.1, momentum=np.inf), ValueError, "SGD: momentum must be a finite real"),
        (lambda: SGD(0.1).step(None, {}), TypeError, "SGD.step: parameters must be a mapping"),
        (lambda: SGD(0.1).step({}, {"a": [1]}), TypeError, r"SGD.step: gradients['a'] must be an"),
    ],
)
def test_hostile_constructor_and_build_arguments(
    call: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=re.escape(match)):
        call()


def test_refused_sequential_leaves_its_layers_unnamed() -> None:
    # The third layer would be renamed dense_1, clashing with the second: the whole model is
    # refused, and the layers keep the names they came with.
    layers = [Dense(2), Dense(2, name="dense_1"), Dense(2)]
    with pytest.raises(ValueError, match="the layers' names must be unique"):
        Sequential(layers)
    assert [layer.name for layer in layers] == ["dense", "dense_1", "dense"]


def test_refused_sgd_step_updates_nothing() -> None:
    parameters = {"a": np.ones(2), "b": np.ones(2)}
    with pytest.raises(ValueError, match=re.escape("gradients['b'] must match parameters['b']")):
        SGD(0.5).step(parameters, {"a": np.ones(2), "b": np.ones(3)})
    np.testing.assert_array_equal(parameters["a"], [1.0, 1.0])  # once updated before the refusal
    frozen = np.ones(2)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=re.escape("SGD.step: parameters['a'] is read-only")):
        SGD(0.5).step({"a": frozen}, {"a": np.ones(2)})


def _model_and_batch() -> tuple[Sequential, Array, Array]:
    model = Sequential([Flatten(), Dense(3)], seed=0)
    model.build((2, 2, 1))
    return model, np.ones((4, 2, 2, 1)), np.array([0, 1, 2, 1])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, y: train_step(None, SGD(0.1), x, y), TypeError, "train_step: model must be"),
        (lambda m, x, y: train_step(m, "sgd", x, y), TypeError, "train_step: optimizer must be"),
        (lambda m, x, y: train_step(m, SGD(0.1), x.tolist(), y), TypeError, "train_step: x must"),
        (lambda m, x, y: train_step(m, SGD(0.1), x, y[:3]), ValueError, "train_step: labels must"),
        (lambda m, x, y: train_step(m, SGD(0.1), x, y * 1.0), TypeError, "train_step: labels must"),
        (lambda m, x, y: train_step(m, SGD(0.1), x, y + 3), ValueError, "train_step: softmax_cr"),
        (lambda m, x, y: evaluate(m, x, y, batch_size=0), ValueError, "evaluate: batch_size must"),
        (lambda m, x, y: evaluate(m, x, y, batch_size=-1), ValueError, "evaluate: batch_size must"),
        (lambda m, x, y: evaluate(m, x, y, batch_size=True), TypeError, "evaluate: batch_size"),
        (lambda m, x, y: evaluate(m, x[:0], y[:0]), ValueError, "evaluate: x holds no samples"),
        (lambda m, x, y: evaluate(5, x, y), TypeError, "evaluate: model must be a Sequential"),
        (lambda m, x, y: m.forward(x[..., 0]), ValueError, "Sequential.forward: x must have"),
        (lambda m, x, y: m.backward(np.ones(3)), RuntimeError, "backward called before forward"),
    ],
)
def test_hostile_training_arguments_change_nothing(
    call: Any, error: type[Exception], match: str
) -> None:
    model, x, labels = _model_and_batch()
    before = {key: value.copy() for key, value in model.parameters().items()}
    with pytest.raises(error, match=re.escape(match)):
        call(model, x, labels)
    for key, value in model.parameters().items():
        np.testing.assert_array_equal(value, before[key])
