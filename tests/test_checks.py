"""The shared validators in ``refcnn._checks`` on hostile values (found by the bad-input fuzzer)."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refcnn import _checks

HUGE = 10**5000  # past Python's 4300-digit limit: repr() itself raises ValueError


def test_describe_survives_unprintable_ints_and_cuts_long_reprs() -> None:
    assert _checks.describe(HUGE) == "<int too large to print>"
    assert _checks.describe([1, HUGE]) == "<list too large to print>"
    text = _checks.describe(list(range(1000)))
    assert len(text) == 80
    assert text.endswith("...")
    assert _checks.describe((1, 2)) == "(1, 2)"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: _checks.as_int("op", "n", -HUGE, minimum=0), ValueError, "op: n must be >= 0"),
        (lambda: _checks.as_axis("op", "axis", HUGE, (2, 3)), ValueError, "op: axis must be in"),
        (lambda: _checks.as_tuple("op", "s", [1, -HUGE], rank=2), ValueError, "op: s must be >="),
        (lambda: _checks.as_real("op", "lr", HUGE), ValueError, "op: lr must be a finite real"),
        (lambda: _checks.as_real("op", "lr", Fraction(HUGE)), ValueError, "op: lr must be a"),
    ],
)
def test_huge_ints_get_a_message_naming_the_argument(
    call: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=re.escape(match)):
        call()


def test_as_real_finite() -> None:
    assert _checks.as_real("op", "lr", 1e308, finite=True) == 1e308
    for bad in (np.inf, -np.inf, np.nan):
        with pytest.raises(ValueError, match="op: lr must be a finite real number"):
            _checks.as_real("op", "lr", bad, finite=True)
    assert _checks.as_real("op", "lr", np.inf) == np.inf  # without finite=True, as before


def test_sequences_are_measured_before_they_are_copied() -> None:
    # list(range(10**12)) would fill the memory; len(range(10**20)) raises OverflowError.
    for value in (range(10**12), range(10**20)):
        with pytest.raises(ValueError, match=r"op: strides must be an int or a pair \(h, w\)"):
            _checks.as_tuple("op", "strides", value, rank=2)
        with pytest.raises(ValueError, match="op: input_shape must be 4 ints"):
            _checks.as_index_tuple("op", "input_shape", value, length=4)
    with pytest.raises(ValueError, match="op: input_shape must be ints"):
        _checks.as_index_tuple("op", "input_shape", range(_checks.MAX_NDIM + 1), length=None)
    assert _checks.as_index_tuple("op", "s", range(3), length=None) == (0, 1, 2)
    assert _checks.as_tuple("op", "s", range(1, 3), rank=2) == (1, 2)


def test_zero_d_arrays_are_scalars_not_sequences() -> None:
    # Iterating a 0-d array raises "iteration over a 0-d array", naming nothing.
    with pytest.raises(TypeError, match="op: strides must be an int, got array"):
        _checks.as_tuple("op", "strides", np.array(2), rank=2)
    with pytest.raises(TypeError, match="op: input_shape must be a sequence of 4 ints"):
        _checks.as_index_tuple("op", "input_shape", np.array(4), length=4)
    assert _checks.as_tuple("op", "strides", np.array([2, 3]), rank=2) == (2, 3)


@pytest.mark.parametrize("item", ["a", None, [1], True, 1j, b"1"])
def test_object_arrays_must_hold_real_numbers(item: Any) -> None:
    array = np.array([Fraction(1, 2), item, 3], dtype=object)
    with pytest.raises(TypeError, match=r"op: x is an object array, so it must hold real numbers"):
        _checks.as_array("op", "x", array)


def test_object_arrays_of_numbers_pass() -> None:
    array = np.array([Fraction(1, 3), 2, 2.5, np.int64(4)], dtype=object)
    assert _checks.as_array("op", "x", array) is array


def test_as_choice() -> None:
    assert _checks.as_choice("op", "kind", "test", ("train", "test")) == "test"
    for bad in ("TEST", "", None, ["train"], 0):
        with pytest.raises(ValueError, match="op: kind must be one of 'train', 'test', got "):
            _checks.as_choice("op", "kind", bad, ("train", "test"))


def test_as_path(tmp_path: Path) -> None:
    assert _checks.as_path("op", "path", str(tmp_path)) == tmp_path
    assert _checks.as_path("op", "path", tmp_path) == tmp_path

    class BytesPath(os.PathLike[bytes]):
        def __fspath__(self) -> bytes:
            return b"/tmp"

    for bad in (None, 3, b"/tmp", BytesPath(), [str(tmp_path)]):
        with pytest.raises(TypeError, match=r"op: path must be a str or os\.PathLike path"):
            _checks.as_path("op", "path", bad)
