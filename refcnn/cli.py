"""Command line: ``refcnn train`` (also ``python -m refcnn train``).

By default it reproduces the classic small experiment: 200 training and 40 held-out test
digits (scikit-learn's 8x8 digits, split by a seeded shuffle), the network
``Conv2D(8, 3, SAME) -> ReLU -> MaxPool2D(2) -> Flatten -> Dense(10)`` trained on logits with
softmax cross-entropy by plain SGD (lr 0.03, mini-batches of 10, 100 epochs), seed 0.

Randomness: ``--seed`` seeds one :class:`numpy.random.SeedSequence` whose three children
draw the data split, the initial weights and the per-epoch batch order, so a run is fully
reproducible and changing the batch order does not change the split.

Output (stdout): the model summary, one line per logged epoch with the training and test loss
and accuracy, and as the last line exactly ``test accuracy: 0.XXXX``. A tqdm progress bar
goes to stderr when tqdm is installed and stderr is a terminal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refcnn.datasets import load_digits, load_mnist, synthetic_digits
from refcnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from refcnn.model import Sequential, evaluate, train_step
from refcnn.optim import SGD

__all__ = ["build_parser", "classic_model", "main"]

Array = npt.NDArray[Any]

# Size of the hidden synthetic data set, about the digits' 1797.
_SYNTHETIC_POOL = 2000


class _Split(NamedTuple):
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array


class _History(NamedTuple):
    epoch: list[int]
    train_loss: list[float]
    train_accuracy: list[float]
    test_loss: list[float]
    test_accuracy: list[float]


class CommandError(Exception):
    """A problem with the command's inputs, reported as one line on stderr (exit status 2)."""


def classic_model(*, seed: int | None = 0) -> Sequential:
    """Build the default network: Conv2D(8, 3, SAME), ReLU, MaxPool2D(2), Flatten, Dense(10).

    The conv kernel is He-uniform (it feeds a ReLU), the dense kernel Glorot-uniform; biases
    start at 0. The model outputs logits (no Softmax layer: training uses
    :func:`refcnn.softmax_cross_entropy`).
    """
    return Sequential(
        [
            Conv2D(8, 3, padding="SAME", kernel_initializer="he_uniform"),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(10),
        ],
        seed=seed,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"must be >= 1, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:  # numpy.random.SeedSequence takes non-negative ints only
        msg = f"must be >= 0, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    # NaN fails the comparison; inf (also "1e999") is no step size: refused here, as a usage
    # error, rather than by SGD after the data has been loaded.
    if not 0.0 <= value < float("inf"):
        msg = f"must be finite and >= 0, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the ``refcnn`` argument parser (subcommand ``train``)."""
    parser = argparse.ArgumentParser(
        prog="refcnn", description="refcnn: NumPy reference CNN building blocks."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train the small reference CNN on handwritten digits",
        description=(
            "Train Conv2D(8,3,SAME)+ReLU+MaxPool2D(2)+Flatten+Dense(10) with SGD on "
            "softmax cross-entropy. Defaults reproduce the classic 200/40-digit experiment."
        ),
    )
    train.add_argument("--epochs", type=_positive, default=100, help="default: 100")
    train.add_argument("--lr", type=_non_negative_float, default=0.03, help="default: 0.03")
    train.add_argument(
        "--batch-size", type=_positive, default=10, help="samples per SGD step (default: 10)"
    )
    train.add_argument("--seed", type=_non_negative, default=0, help="default: 0")
    train.add_argument("--train-size", type=_positive, default=200, help="default: 200")
    train.add_argument("--test-size", type=_positive, default=40, help="default: 40")
    # "synthetic" is a hidden choice (tests, machines without scikit-learn): the metavar
    # lists only the real data sets.
    train.add_argument(
        "--data",
        choices=("digits", "mnist", "synthetic"),
        default="digits",
        metavar="{digits,mnist}",
        help="digits: scikit-learn's 8x8 digits (default); mnist: IDX files in --mnist-path",
    )
    train.add_argument(
        "--mnist-path", metavar="DIR", help="directory with the MNIST IDX files (raw or .gz)"
    )
    train.add_argument(
        "--plot", metavar="FILE", help="save loss/accuracy curves as PNG (needs matplotlib)"
    )
    train.add_argument(
        "--log-every",
        type=_positive,
        default=10,
        metavar="N",
        help="print a line every N epochs (and after the first and last); default: 10",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _take(x: Array, y: Array, order: Array, start: int, size: int) -> tuple[Array, Array]:
    picked = order[start : start + size]
    return x[picked], y[picked]


def _load(args: argparse.Namespace, rng: np.random.Generator) -> _Split:
    """Load the chosen data set and draw disjoint train/test subsets of the asked sizes."""
    train_size, test_size = args.train_size, args.test_size
    if args.data == "mnist":
        if args.mnist_path is None:
            msg = "--data mnist needs --mnist-path DIR (refcnn never downloads)"
            raise CommandError(msg)
        x_train, y_train = load_mnist(args.mnist_path, "train")
        x_test, y_test = load_mnist(args.mnist_path, "test")
        for size, name, available in (
            (train_size, "--train-size", len(x_train)),
            (test_size, "--test-size", len(x_test)),
        ):
            if size > available:
                msg = f"{name} {size} exceeds the {available} samples in {args.mnist_path}"
                raise CommandError(msg)
        train_order = rng.permutation(len(x_train))
        test_order = rng.permutation(len(x_test))
        return _Split(
            *_take(x_train, y_train, train_order, 0, train_size),
            *_take(x_test, y_test, test_order, 0, test_size),
        )
    if args.data == "synthetic":
        x, y = synthetic_digits(_SYNTHETIC_POOL, seed=args.seed)
    else:
        x, y = load_digits()
    if train_size + test_size > len(x):
        msg = (
            f"--train-size {train_size} + --test-size {test_size} exceeds the {len(x)} "
            f"{args.data} samples"
        )
        raise CommandError(msg)
    order = rng.permutation(len(x))
    return _Split(
        *_take(x, y, order, 0, train_size),
        *_take(x, y, order, train_size, test_size),
    )


def _plot_saver(path: str | None) -> Callable[[_History], None] | None:
    """Import matplotlib up front (fail before training, not after) and return a saver."""
    if path is None:
        return None
    target = Path(path)
    if target.is_dir() or not target.parent.is_dir():
        # Found now, not after the training it would have thrown away.
        msg = f"--plot {path}: not a file in an existing directory"
        raise CommandError(msg)
    try:
        # Imported by name: optional dependencies, absent from the type-checking environment.
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError as err:
        msg = "--plot needs matplotlib: pip install refcnn[plot]"
        raise CommandError(msg) from err

    def save(history: _History) -> None:
        figure = figure_module.Figure(figsize=(9, 3.5), layout="constrained")
        loss_axes, accuracy_axes = figure.subplots(1, 2)
        loss_axes.plot(history.epoch, history.train_loss, label="train")
        loss_axes.plot(history.epoch, history.test_loss, label="test")
        loss_axes.set(xlabel="epoch", ylabel="softmax cross-entropy", title="loss")
        accuracy_axes.plot(history.epoch, history.train_accuracy, label="train")
        accuracy_axes.plot(history.epoch, history.test_accuracy, label="test")
        accuracy_axes.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="accuracy")
        for axes in (loss_axes, accuracy_axes):
            axes.legend()
        figure.savefig(path, format="png", dpi=100)

    return save


def _epochs(count: int, *, progress: bool) -> tuple[Any, Callable[[str], None]]:
    """Return an iterable over epochs ``1..count`` and a line printer that spares the bar."""
    epochs = range(1, count + 1)
    if progress:
        try:
            tqdm = importlib.import_module("tqdm").tqdm
        except ImportError:
            pass
        else:
            bar = tqdm(epochs, desc="train", unit="epoch", file=sys.stderr, disable=None)

            def write(line: str) -> None:
                tqdm.write(line, file=sys.stdout)

            return bar, write
    return epochs, print


def _train(args: argparse.Namespace) -> int:
    save_plot = _plot_saver(args.plot)
    data_seq, init_seq, order_seq = np.random.SeedSequence(args.seed).spawn(3)
    data = _load(args, np.random.default_rng(data_seq))
    model = classic_model()
    model.build(data.x_train.shape[1:], np.random.default_rng(init_seq))
    order_rng = np.random.default_rng(order_seq)
    optimizer = SGD(args.lr)
    print(
        f"data: {args.data}, {len(data.x_train)} train / {len(data.x_test)} test; "
        f"SGD lr={args.lr}, batch size {args.batch_size}, {args.epochs} epochs, seed {args.seed}"
    )
    model.summary()
    history = _History([], [], [], [], [])
    started = time.perf_counter()
    epochs, write = _epochs(args.epochs, progress=not args.no_progress)
    for epoch in epochs:
        order = order_rng.permutation(len(data.x_train))
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            train_step(model, optimizer, data.x_train[batch], data.y_train[batch])
        train = evaluate(model, data.x_train, data.y_train)
        test = evaluate(model, data.x_test, data.y_test)
        history.epoch.append(epoch)
        history.train_loss.append(train.loss)
        history.train_accuracy.append(train.accuracy)
        history.test_loss.append(test.loss)
        history.test_accuracy.append(test.accuracy)
        if epoch == 1 or epoch % args.log_every == 0 or epoch == args.epochs:
            write(
                f"epoch {epoch:>{len(str(args.epochs))}}/{args.epochs}  "
                f"loss {train.loss:.4f}  accuracy {train.accuracy:.4f}  "
                f"test loss {test.loss:.4f}  test accuracy {test.accuracy:.4f}"
            )
    if hasattr(epochs, "close"):
        epochs.close()
    print(f"trained in {time.perf_counter() - started:.1f} s")
    if save_plot is not None:
        save_plot(history)
        print(f"saved plot to {args.plot}")
    print(f"test accuracy: {history.test_accuracy[-1]:.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 usage or input error).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _train(args)
    except (CommandError, ImportError, OSError, ValueError) as err:  # OSError: paths
        print(f"refcnn {args.command}: error: {err}", file=sys.stderr)
        return 2
