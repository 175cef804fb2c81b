"""Bad-input findings in ``refcnn/conv.py`` and ``refcnn/pool.py``, known until their rewrite.

Those modules are being rewritten elsewhere (N-d, grouped, transposed convolution; N-d
pooling), so their findings are listed here instead of fixed. Each entry says which failures
of :func:`_fuzz.check_call` it covers (only on the listed targets, and only by what the
failure says) and gives reproducers, which ``test_fuzz_bad_input.py`` runs as
``xfail(strict=True)``: once the rewrite fixes one, its reproducer passes, the strict xfail
fails, and the entry is to be deleted. Nothing here applies to any other module.

The list is empty now: the rewrite (``refcnn/convolution.py``, the N-d ``refcnn/pool.py``)
and the bad-input fixes after it cleared every entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from _fuzz import Call, Corruption, baseline, targets
from _fuzz_values import Value, lit

__all__ = ["CONV_POOL_LAYERS", "KNOWN", "Known", "known_failure", "known_slow", "reproducers"]

#: Layers that are thin wrappers of the conv/pool functions: their findings are those of
#: the functions they call (the layers' own checks are fuzzed all the same).
CONV_POOL_LAYERS = ("Conv2D", "MaxPool2D", "AvgPool2D")


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


#: Empty since the N-d rewrite and the bad-input fixes of conv and pool: every finding
#: listed here before (IEEE warnings, strides past int64, huge pads, kernel-tap loops,
#: messages naming no argument, an unhashed method) is fixed, and each entry's reproducer
#: passed. A new finding in those modules goes here with its reproducers.
KNOWN: tuple[Known, ...] = ()


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
