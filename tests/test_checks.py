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
        with pytest.raises(ValueError, match="op: input_shape must be 4 non-negative ints"):
            _checks.as_index_tuple("op", "input_shape", value, length=4)
    with pytest.raises(ValueError, match="op: input_shape must be non-negative ints"):
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


def test_as_array_names_what_numpy_cannot_read() -> None:
    # np.asarray raises "setting an array element with a sequence ... inhomogeneous shape".
    with pytest.raises(ValueError, match=r"op: x cannot be read as an array \(setting an"):
        _checks.as_array("op", "x", [[1.0, 2.0], [3.0]])


def test_as_array_refuses_views_past_the_size_limit() -> None:
    # Zero strides: no memory at all, but 2**40 * 8 bytes as a dense array.
    view = np.broadcast_to(np.zeros(()), (2**40, 1))
    message = r"op: x would need an array of shape \(1099511627776, 1\)"
    with pytest.raises(ValueError, match=message):
        _checks.as_array("op", "x", view)
    small = np.broadcast_to(np.zeros(()), (2**20, 4))
    assert _checks.as_array("op", "x", small) is small


def test_check_addressable_prints_unprintable_sizes() -> None:
    with pytest.raises(ValueError, match=r"op: n would need an array of shape \(<int too large"):
        _checks.check_addressable("op", "n", (HUGE, 3), 8)


def test_as_float_dtype() -> None:
    assert _checks.as_float_dtype("op", "dtype", "float32") == np.float32
    assert _checks.as_float_dtype("op", "dtype", None) == np.float64  # NumPy's default
    for bad in ("bogus", 5, [1], object()):
        with pytest.raises(TypeError, match="op: dtype must be a floating dtype, got "):
            _checks.as_float_dtype("op", "dtype", bad)
    for bad in ("int32", np.int64, "complex128", object, "U3"):
        with pytest.raises(TypeError, match="op: dtype must be a floating dtype"):
            _checks.as_float_dtype("op", "dtype", bad)


def test_as_generator_as_str_and_as_array_mapping() -> None:
    rng = np.random.default_rng(0)
    assert _checks.as_generator("op", "rng", rng) is rng
    assert _checks.as_generator("op", "rng", None) is None
    with pytest.raises(TypeError, match=r"op: rng must be None or a numpy\.random\.Generator"):
        _checks.as_generator("op", "rng", np.random.RandomState(0))
    assert _checks.as_str("op", "name", None, optional=True) is None
    with pytest.raises(TypeError, match="op: name must be None or a str, got 5 of type int"):
        _checks.as_str("op", "name", 5, optional=True)
    arrays = {"a": np.zeros(2)}
    assert _checks.as_array_mapping("op", "p", arrays) is arrays
    with pytest.raises(TypeError, match="op: p must be a mapping of str to ndarray, got list"):
        _checks.as_array_mapping("op", "p", [])
    with pytest.raises(TypeError, match=r"op: p\['a'\] must be an ndarray, got \[1\.0\]"):
        _checks.as_array_mapping("op", "p", {"a": [1.0]})


def test_batch_checks_name_the_argument() -> None:
    x = np.zeros((2, 3))
    assert _checks.check_batch("op", "x", x, (3,), x.dtype, "the layer") is x
    with pytest.raises(TypeError, match="op: x must be a numpy array, got list"):
        _checks.check_batch("op", "x", [[0.0] * 3], (3,), x.dtype, "the layer")
    with pytest.raises(ValueError, match=r"op: x must have shape \(N, 4\) \(fixed when the layer"):
        _checks.check_batch("op", "x", x, (4,), x.dtype, "the layer")
    with pytest.raises(TypeError, match=r"op: x must have dtype float32 \(the model was built"):
        _checks.check_batch("op", "x", x, (3,), np.dtype(np.float32), "the model")
    with pytest.raises(ValueError, match="op: x must have a batch axis"):
        _checks.check_floating_batch("op", np.zeros(()))
    with pytest.raises(TypeError, match="op: x must have a floating dtype to build on, got int64"):
        _checks.check_floating_batch("op", np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"op: dy must have shape \(2, 3\) \(the last forward"):
        _checks.check_upstream("op", np.zeros((3, 2)), (2, 3), x.dtype)
    with pytest.raises(TypeError, match="op: dy must be a numpy array, got list"):
        _checks.check_upstream("op", [1.0], (1,), x.dtype)


def test_ieee_arithmetic_silences_only_what_it_says() -> None:
    big = np.array([np.finfo(np.float64).max, np.inf])
    with _checks.ieee_arithmetic():
        result = big * np.array([2.0, 0.0])
    np.testing.assert_array_equal(result, [np.inf, np.nan])
    with pytest.raises(RuntimeWarning, match="overflow"):
        _ = big * 2.0  # outside it, the suite's "warnings are errors" still holds
