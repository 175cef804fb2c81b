"""Bad-input findings in ``refcnn/conv.py`` and ``refcnn/pool.py``, known until their rewrite.

Those modules are being rewritten elsewhere (N-d, grouped, transposed convolution; N-d
pooling), so their findings are listed here instead of fixed. Each entry says which failures
of :func:`_fuzz.check_call` it covers (only on the listed targets, and only by what the
failure says) and gives reproducers, which ``test_fuzz_bad_input.py`` runs as
``xfail(strict=True)``: once the rewrite fixes one, its reproducer passes, the strict xfail
fails, and the entry is to be deleted. Nothing here applies to any other module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from _fuzz import Call, Corruption, baseline, targets
from _fuzz_values import Value, arr, lit

__all__ = ["CONV_POOL_LAYERS", "KNOWN", "Known", "known_failure", "known_slow", "reproducers"]

#: Layers that are thin wrappers of the conv/pool functions: their findings are those of
#: the functions they call (the layers' own checks are fuzzed all the same).
CONV_POOL_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D")

_CONV = ("conv2d", "conv2d_backward", "conv2d_backward_input", "conv2d_backward_filter")
_CONV_ALL = (*_CONV, "conv2d_backward_bias", "Conv2D.forward", "Conv2D.backward")
_POOL = ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")
_POOL_LAYERS = ("MaxPool2D.build", "MaxPool2D.forward", "AvgPool2D.build", "AvgPool2D.forward")


class Known(NamedTuple):
    """A finding: where, what a failure says when it is this one, why, and reproducers."""

    name: str
    targets: tuple[str, ...]
    says: tuple[str, ...]  # the failure text holds one of these
    reason: str
    examples: tuple[tuple[str, dict[str, Corruption]], ...]
    #: Calls not even run: this finding would make each take seconds (or forever).
    slow: Callable[[Call], bool] | None = None


def _bad(value: object, what: str) -> Corruption:
    return Corruption(value if isinstance(value, Value) else lit(value), True, what)


def _maybe(value: object, what: str) -> Corruption:
    return Corruption(value if isinstance(value, Value) else lit(value), False, what)


KNOWN = (
    Known(
        "special values warn",
        (*_CONV_ALL, "avg_pool2d", "AvgPool2D.forward", "AvgPool2D.backward"),
        ("raised RuntimeWarning",),
        "matmul and the pooling sums warn on inf and the largest floats ('invalid value "
        "encountered in matmul', 'overflow encountered in add'), where the IEEE result is the "
        "answer (dense, softmax and the losses return it silently); the suite makes it an error",
        (
            ("conv2d", {"x": _maybe(Value(arr, (2, 5, 5, 3), fill="inf"), "all inf")}),
            ("conv2d_backward_bias", {"dy": _maybe(Value(arr, (2, 3, 3, 4), fill="max"), "max")}),
            ("avg_pool2d", {"x": _maybe(Value(arr, (2, 5, 5, 3), fill="max"), "all max")}),
        ),
    ),
    Known(
        "strides past int64",
        (*_CONV, *_POOL, "Conv2D.build", *_POOL_LAYERS),
        ("raised OverflowError",),
        "strides >= 2**63 pass as_pair and reach slicing: OverflowError 'Python int too large "
        "to convert to C long' (any stride >= the padded input gives one window)",
        (
            ("conv2d", {"strides": _maybe(2**63, "huge 2**63")}),
            ("max_pool2d", {"strides": _maybe(2**63, "huge 2**63")}),
        ),
    ),
    Known(
        "huge pads are allocated",
        (*_CONV, "Conv2D.forward"),
        ("raised MemoryError", "array is too big", "Maximum allowed dimension exceeded"),
        "explicit pads (and SAME with a huge dilation) are materialized by _pad_or_crop with "
        "no check_addressable: MemoryError, or NumPy's own 'array is too big' / 'Maximum "
        "allowed dimension exceeded', naming neither conv2d nor padding/dilations",
        (
            ("conv2d", {"padding": _maybe(((2**40, 0), (0, 0)), "pad 2**40")}),
            ("conv2d", {"padding": _maybe(((0, 2**63), (0, 2**63)), "pad 2**63 after")}),
            (
                "conv2d",
                {
                    "padding": _maybe("SAME", "SAME"),
                    "dilations": _maybe(2**40, "huge 2**40"),
                },
            ),
        ),
    ),
    Known(
        "pool loops over every kernel tap",
        ("avg_pool2d", "avg_pool2d_backward", "max_pool2d", "max_pool2d_backward", *_POOL_LAYERS),
        ("took ", "peak "),
        "the pools loop over all KH*KW kernel taps even where the output is empty (VALID) or "
        "the window is mostly padding (SAME): ksize=2**40 never finishes, ksize=2000 with "
        "SAME takes seconds and ~400 MB; only taps that meet the input need a pass",
        (
            # Sizes that finish in about 4 s (4x the budget, so no flaky pass); 2**40 never would.
            ("avg_pool2d", {"ksize": _maybe(600, "ksize 600")}),
            ("max_pool2d", {"ksize": _maybe(800, "ksize 800"), "padding": _maybe("SAME", "SAME")}),
        ),
        slow=lambda call: _largest_int(call.values.get("ksize")) >= 256,
    ),
    Known(
        "channel check names no argument",
        _CONV,
        ("input channels C=",),
        "'input channels C=3 (input shape ...) must equal filter in-channels 4 (filter shape "
        "...)' names neither x and w nor input_shape and filter_shape",
        (
            ("conv2d", {"x": _maybe(Value(arr, (2, 5, 5, 4)), "axis 3 one longer")}),
            ("conv2d_backward_filter", {"filter_shape": _maybe((3, 3, 4, 4), "C + 1")}),
        ),
    ),
    Known(
        "zero kernel names no argument",
        (*_CONV, "conv2d_backward_filter"),
        ("filter spatial size must be >= 1",),
        "'filter spatial size must be >= 1, got filter shape (0, 3, 3, 4)' names neither w "
        "nor filter_shape",
        (("conv2d", {"w": _maybe(Value(arr, (0, 3, 3, 4)), "an empty first axis")}),),
    ),
    Known(
        "conv2d_backward speaks for its helpers",
        ("conv2d_backward",),
        ("conv2d_backward_input:", "conv2d_backward_filter:"),
        "conv2d_backward validates only the ranks itself; every other refusal is worded by "
        "conv2d_backward_input or _filter (and names input_shape/filter_shape, which "
        "conv2d_backward does not have)",
        (("conv2d_backward", {"dy": _maybe(Value(arr, (3, 3, 3, 4)), "axis 0 one longer")}),),
    ),
    Known(
        "method is hashed unchecked",
        ("conv2d_backward_input",),
        ("unhashable type",),
        "method=['auto'] (or a dict) escapes as a bare \"TypeError: unhashable type: 'list'\" "
        "(a dict lookup before any check)",
        (("conv2d_backward_input", {"method": _bad(["auto"], "a list")}),),
    ),
)


def _largest_int(value: Value | None) -> int:
    """The largest int in a ksize-like argument (0 for anything else)."""
    if value is None:
        return 0
    built = value.build()
    items = built if isinstance(built, tuple | list) else [built]
    return max((v for v in items if isinstance(v, int) and not isinstance(v, bool)), default=0)


def known_slow(call: Call) -> Known | None:
    """The entry saying this call is not to be run (it would take seconds, or never end)."""
    for entry in KNOWN:
        if call.target.name in entry.targets and entry.slow is not None and entry.slow(call):
            return entry
    return None


def known_failure(call: Call, failure: str) -> Known | None:
    """The entry covering this failure of this call, if any."""
    for entry in KNOWN:
        if call.target.name in entry.targets and any(text in failure for text in entry.says):
            return entry
    return None


def reproducers() -> list[tuple[Known, Call]]:
    """Every entry's examples as calls: the target's valid call with those arguments."""
    by_name = {target.name: target for target in targets()}
    out = []
    for entry in KNOWN:
        for name, corrupted in entry.examples:
            target = by_name[name]
            values = dict(baseline(target).prepared.values)
            values |= {param: c.value for param, c in corrupted.items()}
            out.append((entry, Call(target, values, corrupted)))
    return out
