"""Data loaders: IDX files written here (raw and gzipped, good and broken) and the digits."""

from __future__ import annotations

import gzip
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from _budget import MIB, run_within
from _idx import idx_bytes, make_images, write, write_gzip_bomb

from refcnn.datasets import (
    load_digits,
    load_mnist,
    read_idx_images,
    read_idx_labels,
    synthetic_digits,
)


def write_mnist(directory: Path, *, n_train: int = 6, n_test: int = 4, gz: bool = False) -> None:
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = make_images(n, seed=n)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write(directory / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images))
        write(directory / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    images = make_images(5)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    got_images = read_idx_images(write(tmp_path / f"img{suffix}", idx_bytes(images)))
    got_labels = read_idx_labels(write(tmp_path / f"lab{suffix}", idx_bytes(labels)))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.shape == (5, 4, 3)


def test_header_is_big_endian(tmp_path: Path) -> None:
    # 2 images of 1 x 3 pixels, header written out byte by byte.
    data = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    got = read_idx_images(write(tmp_path / "img", data))
    np.testing.assert_array_equal(got, [[[1, 2, 3]], [[4, 5, 6]]])


MALFORMED_IMAGES = {
    "bad magic": (idx_bytes(make_images(2), magic=0x00000801), "bad magic number 0x00000801"),
    "labels file": (idx_bytes(np.zeros(3, np.uint8)), "bad magic number 0x00000801"),
    "little endian": (bytes([3, 8, 0, 0]) + bytes(12), "bad magic number 0x03080000"),
    "short header": (idx_bytes(make_images(2))[:10], "truncated header"),
    "empty": (b"", "truncated header"),
    "truncated data": (idx_bytes(make_images(2))[:-1], "truncated data"),
    # Raw files are measured (the exact count); gzip streams are read one byte past the data.
    "trailing bytes": (idx_bytes(make_images(2)) + b"\x00\x00", "unexpected trailing bytes"),
    "zero rows": (
        (0x803).to_bytes(4, "big") + bytes([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]),
        "bad dimensions (1, 0, 3)",
    ),
}


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("case", list(MALFORMED_IMAGES))
def test_malformed_image_files(tmp_path: Path, suffix: str, case: str) -> None:
    data, problem = MALFORMED_IMAGES[case]
    path = write(tmp_path / f"images{suffix}", data)
    with pytest.raises(ValueError, match=re.escape(problem)) as info:
        read_idx_images(path)
    assert str(path) in str(info.value)
    if case == "trailing bytes":
        count = "2 unexpected" if suffix == "" else "unexpected trailing bytes (at least 1)"
        assert count in str(info.value)


def test_malformed_label_file(tmp_path: Path) -> None:
    path = write(tmp_path / "labels", idx_bytes(make_images(1)))
    with pytest.raises(ValueError, match=r"labels.*bad magic number 0x00000803"):
        read_idx_labels(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    whole = gzip.compress(idx_bytes(make_images(50)))
    path = tmp_path / "images.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated gzip"):
        read_idx_images(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx_images(path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path, gz=gz)
    x, y = load_mnist(tmp_path)
    assert x.shape == (6, 4, 3, 1)
    assert x.dtype == np.float64
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x[..., 0] * 255, make_images(6, seed=6))
    np.testing.assert_array_equal(y, np.arange(6))
    x_test, y_test = load_mnist(str(tmp_path), kind="test")
    assert x_test.shape == (4, 4, 3, 1)
    assert y_test.shape == (4,)
    assert 0.0 <= x.min() <= x.max() <= 1.0


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match=r"holds 6 images but .*train-labels-idx1-ubyte holds 5"):
        load_mnist(tmp_path)


def test_load_mnist_label_range(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 10, 2], np.uint8)))
    with pytest.raises(ValueError, match=re.escape("label 10 outside 0..9")):
        load_mnist(tmp_path, kind="test")


def test_load_mnist_missing_and_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape("train-images-idx3-ubyte.gz found")):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="load_mnist: kind must be one of 'train', 'test'"):
        load_mnist(tmp_path, kind="validation")
    with pytest.raises(ValueError, match="load_mnist: kind must be one of 'train', 'test'"):
        load_mnist(tmp_path, kind=["train"])  # unhashable: once a bare "unhashable type"
    with pytest.raises(TypeError, match=r"load_mnist: path must be a str or os\.PathLike"):
        load_mnist(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"read_idx_images: path must be a str or os\.PathLike"):
        read_idx_images(3)  # type: ignore[arg-type]
    for name in ("missing", "missing.gz"):  # a missing .gz is missing, not "corrupt"
        with pytest.raises(FileNotFoundError):
            read_idx_labels(tmp_path / name)


def test_synthetic_digits_deterministic() -> None:
    x, y = synthetic_digits(30, seed=4)
    x2, y2 = synthetic_digits(30, seed=4)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (30, 8, 8, 1)
    assert sorted(np.bincount(y)) == [3] * 10
    assert 0.0 <= x.min() <= x.max() <= 1.0


def test_load_digits_without_sklearn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ImportError, match=re.escape("pip install refcnn[digits]")):
        load_digits()


def test_load_digits() -> None:
    pytest.importorskip("sklearn")
    x, y = load_digits()
    assert x.shape == (1797, 8, 8, 1)
    assert x.dtype == np.float64
    assert y.dtype == np.int64
    assert x.min() == 0.0
    assert x.max() == 1.0
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    # Every pixel is one of the 17 gray levels 0/16 .. 16/16.
    np.testing.assert_array_equal(np.unique(x * 16), np.arange(17))


# --- hostile files: the reader streams, so its cost is the declared data, not the file's ---

BUDGET_SECONDS = 1.0
BUDGET_BYTES = 200 * MIB


@pytest.mark.parametrize("trace", [True, False], ids=["tracemalloc", "rss"])
def test_gzip_bomb_is_refused_fast_and_small(tmp_path: Path, trace: bool) -> None:
    path = write_gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz")
    assert path.stat().st_size < 4 * MIB
    cost = run_within(lambda: read_idx_images(path), trace=trace)
    assert isinstance(cost.error, ValueError), cost
    assert str(path) in str(cost.error)
    assert "unexpected trailing bytes (at least 1) after (10, 28, 28) = 7840 bytes" in str(
        cost.error
    )
    assert cost.seconds < BUDGET_SECONDS, cost
    assert cost.peak_bytes < BUDGET_BYTES, cost


def test_gzip_bomb_in_load_mnist(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", n=6)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    cost = run_within(lambda: load_mnist(tmp_path))
    assert isinstance(cost.error, ValueError), cost
    assert "train-images-idx3-ubyte.gz: unexpected trailing bytes" in str(cost.error)
    assert cost.seconds < BUDGET_SECONDS, cost
    assert cost.peak_bytes < BUDGET_BYTES, cost


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_header_declaring_too_much_is_refused_before_allocating(
    tmp_path: Path, suffix: str
) -> None:
    # 2**32 - 1 images of 28 x 28 is 3 TB; the file holds one image.
    header = (0x803).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (2**32 - 1, 28, 28)
    )
    path = write(tmp_path / f"images{suffix}", header + bytes(784))
    cost = run_within(lambda: read_idx_images(path), trace=True)
    assert isinstance(cost.error, ValueError), cost
    expected = "truncated data: header says (4294967295, 28, 28) = 3367254359280 bytes"
    assert expected in str(cost.error)
    if suffix:
        assert "deflate expands at most 1032:1" in str(cost.error)
    else:
        assert str(cost.error).endswith("file holds 784")
    assert cost.peak_bytes < MIB, cost


def test_gzip_declared_size_within_deflate_ratio_is_read(tmp_path: Path) -> None:
    # All zeros compress about as well as deflate can (about 1000:1), still within the bound.
    images = np.zeros((64, 256, 256), dtype=np.uint8)
    path = write(tmp_path / "images.gz", idx_bytes(images))
    assert path.stat().st_size * 900 < images.nbytes
    np.testing.assert_array_equal(read_idx_images(path), images)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_reading_costs_the_declared_data(tmp_path: Path, suffix: str) -> None:
    images = make_images(40, 200, 250)  # 2 MB of data
    path = write(tmp_path / f"images{suffix}", idx_bytes(images))
    cost = run_within(lambda: read_idx_images(path), trace=True)
    assert cost.error is None, cost
    np.testing.assert_array_equal(cost.result, images)
    assert cost.result.flags.writeable
    # The result itself, plus at most one read chunk (256 KiB) and gzip's buffers.
    assert cost.peak_bytes < images.nbytes + 2 * MIB, cost
