"""Hostile input (issue 13): every public entry point refuses bad arguments cleanly and cheaply.

The machinery is in :mod:`_fuzz` (targets, worlds, contracts, checks). Here:

- every target's valid call, twice: bitwise-identical results, inputs unchanged;
- a Hypothesis fuzz per target corrupting one or two arguments of its valid call, no
  exceptions allowed (the conv/pool findings once excused during their rewrite are all fixed,
  and with them the list that excused them is gone);
- the command line on bad options, and the IDX reader on mutated files (raw and gzip).

``REFCNN_FUZZ_TARGETS=conv2d,Conv2D.build pytest tests/test_fuzz_bad_input.py`` fuzzes only
the named targets (any of them, conv/pool included).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from _budget import run_within
from _fuzz import (
    BUDGET_BYTES,
    BUDGET_SECONDS,
    Target,
    bad_calls,
    check_call,
    check_valid_call,
    fuzzable,
    targets,
)
from _idx import idx_bytes, make_images, parse_idx, write_gzip_bomb
from hypothesis import given
from hypothesis import strategies as st

from refcnn.cli import main
from refcnn.datasets import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx_images, read_idx_labels

_CHOSEN = {name for name in os.environ.get("REFCNN_FUZZ_TARGETS", "").split(",") if name}
ALL = [t for t in targets() if not _CHOSEN or t.name in _CHOSEN]


FUZZED = [t for t in ALL if fuzzable(t)]


@pytest.mark.parametrize("target", ALL, ids=repr)
def test_valid_call_is_deterministic_and_leaves_inputs_alone(target: Target) -> None:
    check_valid_call(target)


@pytest.mark.parametrize("target", FUZZED, ids=repr)
@given(data=st.data())
def test_bad_input_is_refused_cleanly(target: Target, data: st.DataObject) -> None:
    check_call(data.draw(bad_calls(target), label="call"))


# --- the command line --------------------------------------------------------------------------

QUICK = ["train", "--data", "synthetic", "--train-size", "20", "--test-size", "5"]
QUICK += ["--epochs", "1", "--no-progress"]

_NOT_POSITIVE = ("0", "-1", "1.5", "abc", "", " ", "nan", "inf", "1e3", "0x10", "2**3", "1,000")
#: Values each option refuses by its contract (argparse type or choices), never a valid one:
#: int() would take " 3" or "1_000", float() "-0.0", so those are not listed.
BAD_OPTION_VALUES = {
    "--epochs": _NOT_POSITIVE,
    "--batch-size": _NOT_POSITIVE,
    "--train-size": _NOT_POSITIVE,
    "--test-size": _NOT_POSITIVE,
    "--log-every": _NOT_POSITIVE,
    "--lr": ("-0.1", "abc", "", "nan", "inf", "-inf", "1e999", "0x1", "1,5"),
    "--seed": ("-1", "abc", "1.5", "", "nan", "2**3"),
    "--data": ("mnist2", "", "DIGITS", "synthetic ", "none"),
}


class CliCase(NamedTuple):
    """An argv for ``refcnn.cli.main``; its repr is the command line."""

    argv: tuple[str, ...]
    blamed: str  # what the usage error must mention

    def __repr__(self) -> str:
        return "refcnn " + " ".join(repr(a) if not a or " " in a else a for a in self.argv)


def _with(option: str, value: str) -> tuple[str, ...]:
    argv = list(QUICK)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return tuple(argv)


@st.composite
def bad_command_lines(draw: st.DrawFn) -> CliCase:
    """QUICK with one option given a value it refuses, or a malformed command line."""
    shape = draw(st.sampled_from(["value", "value", "unknown", "missing", "command", "extra"]))
    if shape == "value":
        option = draw(st.sampled_from(sorted(BAD_OPTION_VALUES)))
        value = draw(st.sampled_from(BAD_OPTION_VALUES[option]))
        return CliCase(_with(option, value), option)
    if shape == "unknown":
        flag = draw(st.sampled_from(["--bogus", "--epoch", "-x", "--lr=0.1=2"]))
        return CliCase((*QUICK, flag), flag.split("=")[0])
    if shape == "missing":
        option = draw(st.sampled_from(sorted(BAD_OPTION_VALUES)))
        return CliCase((*QUICK, option), option)
    if shape == "command":
        command = draw(st.sampled_from(["fit", "Train", "", "--epochs"]))
        return CliCase((command, *QUICK[1:]), "COMMAND" if command else "invalid choice")
    return CliCase((*QUICK, "extra"), "extra")


def _run_cli(argv: tuple[str, ...]) -> tuple[Any, str, str]:
    out, err = io.StringIO(), io.StringIO()
    outcome: Any
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            outcome = main(list(argv))
        except SystemExit as exit_:
            outcome = exit_
    return outcome, out.getvalue(), err.getvalue()


@given(case=bad_command_lines())
def test_bad_command_lines_are_usage_errors(case: CliCase) -> None:
    cost = run_within(lambda: _run_cli(case.argv))
    assert cost.error is None, f"{case!r}: raised {cost.error!r}"  # no traceback
    outcome, out, err = cost.result
    assert isinstance(outcome, SystemExit), f"{case!r}: returned {outcome!r}, stderr {err!r}"
    assert outcome.code == 2, f"{case!r}: exit status {outcome.code}"
    assert err.startswith("usage: refcnn"), f"{case!r}: stderr {err!r}"
    assert "error: " in err, f"{case!r}: stderr {err!r}"
    assert case.blamed in err, f"{case!r}: the error does not mention {case.blamed}: {err!r}"
    assert out == "", f"{case!r}: printed {out!r}"  # nothing ran
    assert cost.seconds < BUDGET_SECONDS, f"{case!r}: took {cost.seconds:.2f} s"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--data", "mnist", "--mnist-path", "/nonexistent/mnist"], "is not a directory"),
        (["--data", "mnist", "--mnist-path", "{file}"], "is not a directory"),
        (["--data", "mnist", "--mnist-path", "{empty}"], "neither train-images-idx3-ubyte"),
        (["--data", "mnist", "--mnist-path", "{bomb}"], "unexpected trailing bytes"),
        (["--plot", "/nonexistent/curves.png"], "not a file in an existing directory"),
        (["--plot", "{empty}"], "not a file in an existing directory"),
    ],
)
def test_bad_paths_are_input_errors_before_training(
    tmp_path: Path, extra: list[str], problem: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    write_gzip_bomb(bomb / "train-images-idx3-ubyte.gz")
    (bomb / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(10, np.uint8)))
    (tmp_path / "file").write_text("")
    places = {"file": tmp_path / "file", "empty": empty, "bomb": bomb}
    argv = (*QUICK, *(a.format(**places) for a in extra))
    cost = run_within(lambda: _run_cli(argv))
    assert cost.error is None, cost
    status, out, err = cost.result
    assert status == 2, (status, err)
    assert err.startswith("refcnn train: error: "), err
    assert problem in err, err
    assert out == "", out  # refused before training
    assert cost.seconds < BUDGET_SECONDS, cost
    assert cost.peak_bytes < BUDGET_BYTES, cost


# --- the IDX reader on mutated files -----------------------------------------------------------

_VALID = {
    IDX_IMAGES_MAGIC: idx_bytes(make_images(3, 4, 5, seed=7)),
    IDX_LABELS_MAGIC: idx_bytes(np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)),
}


class IdxCase(NamedTuple):
    """A valid IDX file changed once; ``layer``: raw, its gzip payload, or the gzip bytes."""

    magic: int
    layer: str  # "raw", "payload" (mutated then gzipped), "stream" (gzipped then mutated)
    mutation: str  # "flip", "truncate", "extend"
    position: int
    data: bytes  # the new byte (flip) or the appended bytes (extend)

    def content(self) -> bytes:
        """The file's bytes on disk."""
        original = _VALID[self.magic]
        if self.layer == "stream":
            original = gzip.compress(original, mtime=0)
        changed = _mutate(original, self.mutation, self.position, self.data)
        return gzip.compress(changed, mtime=0) if self.layer == "payload" else changed

    def __repr__(self) -> str:
        what = "images" if self.magic == IDX_IMAGES_MAGIC else "labels"
        return f"IdxCase({what}, {self.layer}, {self.mutation} at {self.position}, {self.data!r})"


def _mutate(data: bytes, mutation: str, position: int, new: bytes) -> bytes:
    where = position % max(len(data), 1)
    if mutation == "flip":
        return data[:where] + new[:1] + data[where + 1 :]
    if mutation == "truncate":
        return data[:where]
    return data + new


@st.composite
def idx_mutations(draw: st.DrawFn) -> IdxCase:
    """One flip (header bytes drawn as often as data bytes), truncation or extension."""
    magic = draw(st.sampled_from(sorted(_VALID)))
    layer = draw(st.sampled_from(["raw", "payload", "stream"]))
    mutation = draw(st.sampled_from(["flip", "truncate", "extend"]))
    header = 4 + 4 * (magic & 0xFF)
    position = draw(st.one_of(st.integers(0, header - 1), st.integers(0, 10**6)))
    if mutation == "flip":
        data = draw(st.binary(min_size=1, max_size=1))
    else:
        data = draw(st.binary(min_size=1, max_size=8))
    return IdxCase(magic, layer, mutation, position, data)


def _expected(case: IdxCase, content: bytes) -> np.ndarray | None:
    """What the file holds by the format's definition (None: it is malformed)."""
    payload = content
    if case.layer != "raw":
        try:
            payload = gzip.GzipFile(fileobj=io.BytesIO(content)).read()
        except (OSError, EOFError, zlib.error):
            return None
    return parse_idx(payload, case.magic)


@given(case=idx_mutations())
def test_mutated_idx_files(case: IdxCase, tmp_path_factory: pytest.TempPathFactory) -> None:
    content = case.content()
    suffix = "" if case.layer == "raw" else ".gz"
    path = tmp_path_factory.mktemp("idx") / f"mutated{suffix}"
    path.write_bytes(content)
    reader = read_idx_images if case.magic == IDX_IMAGES_MAGIC else read_idx_labels
    expected = _expected(case, content)
    cost = run_within(lambda: reader(path))
    assert cost.seconds < BUDGET_SECONDS, f"{case!r}: took {cost.seconds:.2f} s"
    assert cost.peak_bytes < BUDGET_BYTES, f"{case!r}: peak {cost.peak_bytes} bytes"
    if expected is None:
        assert isinstance(cost.error, ValueError), f"{case!r}: {cost.error!r} {cost.result!r}"
        assert str(path) in str(cost.error), f"{case!r}: the file is not named: {cost.error}"
    else:
        assert cost.error is None, f"{case!r}: refused a valid file: {cost.error!r}"
        assert cost.result.dtype == np.uint8
        np.testing.assert_array_equal(cost.result, expected, err_msg=repr(case))
