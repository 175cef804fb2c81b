"""``refcnn train`` end to end, in process (``main([...])``) and once as ``python -m refcnn``."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refcnn.cli import main

LAST_LINE = re.compile(r"test accuracy: [01]\.\d{4}")
QUICK = ["train", "--data", "synthetic", "--train-size", "30", "--test-size", "10"]
QUICK += ["--epochs", "3", "--no-progress"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def test_quick_run_prints_epochs_and_last_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, *QUICK)
    assert status == 0
    assert LAST_LINE.fullmatch(lines[-1]), lines[-1]
    epochs = [line for line in lines if line.startswith("epoch")]
    # First and last epoch are always logged; --log-every defaults to 10.
    assert [line.split()[1] for line in epochs] == ["1/3", "3/3"]
    assert re.fullmatch(
        r"epoch 3/3  loss \d+\.\d{4}  accuracy [01]\.\d{4}  "
        r"test loss \d+\.\d{4}  test accuracy [01]\.\d{4}",
        epochs[-1],
    )
    assert epochs[-1].endswith(lines[-1].split()[-1])  # the final line repeats the last epoch's
    assert "Total params: 1370" in lines


def test_log_every_and_determinism(capsys: pytest.CaptureFixture[str]) -> None:
    _, first, _ = run(capsys, *QUICK, "--log-every", "1", "--seed", "5")
    _, second, _ = run(capsys, *QUICK, "--log-every", "1", "--seed", "5")
    assert [line for line in first if line.startswith("epoch")] == [
        line for line in second if line.startswith("epoch")
    ]
    assert sum(line.startswith("epoch") for line in first) == 3
    _, other, _ = run(capsys, *QUICK, "--log-every", "1", "--seed", "6")
    assert [line for line in other if line.startswith("epoch")] != [
        line for line in first if line.startswith("epoch")
    ]


def test_synthetic_data_is_learned(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(
        capsys, "train", "--data", "synthetic", "--epochs", "15", "--no-progress"
    )
    assert status == 0
    assert float(lines[-1].split()[-1]) >= 0.9


def _idx(array: np.ndarray) -> bytes:
    header = (0x800 | array.ndim).to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_mnist_from_idx_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 12)):
        labels = np.arange(n) % 10
        # Class k lights column k (plus noise) of a 12x12 image: learnable in a few epochs.
        images = rng.integers(0, 60, size=(n, 12, 12))
        images[np.arange(n), :, labels] = 255
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(labels))
    status, lines, _ = run(
        capsys,
        "train",
        "--data",
        "mnist",
        "--mnist-path",
        str(tmp_path),
        "--train-size",
        "40",
        "--test-size",
        "12",
        "--epochs",
        "20",
        "--lr",
        "0.1",
        "--batch-size",
        "4",
        "--no-progress",
    )
    assert status == 0
    assert "conv2d (Conv2D)         (None, 12, 12, 8)       80" in lines
    assert LAST_LINE.fullmatch(lines[-1])
    assert float(lines[-1].split()[-1]) >= 0.9


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "mnist"], "--data mnist needs --mnist-path DIR"),
        (["--data", "mnist", "--mnist-path", "/nonexistent/dir"], "is not a directory"),
        (["--data", "synthetic", "--train-size", "5", "--test-size", "1000000"], "exceeds"),
        # Refused before training (the plot used to fail after it, or as a traceback).
        (["--data", "synthetic", "--plot", "/nonexistent/curves.png"], "--plot /nonexistent"),
        (["--data", "synthetic", "--plot", "."], "not a file in an existing directory"),
    ],
)
def test_input_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    status, lines, err = run(capsys, "train", *argv, "--no-progress")
    assert status == 2
    assert lines == []
    assert err.startswith("refcnn train: error: ")
    assert message in err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "train" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["train", "--epochs", "0"])
    assert info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err
    # Usage errors, not late ones: --lr inf reached SGD, --seed -1 reached SeedSequence.
    for option, value, problem in [
        ("--lr", "inf", "must be finite and >= 0"),
        ("--lr", "1e999", "must be finite and >= 0"),
        ("--seed", "-1", "must be >= 0"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(["train", option, value])
        assert info.value.code == 2
        assert f"argument {option}: {problem}" in capsys.readouterr().err


def test_missing_optional_dependencies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    status, lines, err = run(capsys, *QUICK, "--plot", "curve.png")
    assert status == 2
    assert lines == []  # refused before training
    assert "pip install refcnn[plot]" in err
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    status, _, err = run(capsys, "train", "--no-progress")
    assert status == 2
    assert "pip install refcnn[digits]" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # no progress bar: plain lines
    status, lines, _ = run(capsys, *QUICK[:-1])
    assert status == 0
    assert LAST_LINE.fullmatch(lines[-1])


def test_progress_bar_path(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    status, lines, _ = run(capsys, *QUICK[:-1])
    assert status == 0
    assert LAST_LINE.fullmatch(lines[-1])


def test_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "curves.png"
    status, lines, _ = run(capsys, *QUICK, "--plot", str(target))
    assert status == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert lines[-2] == f"saved plot to {target}"
    assert LAST_LINE.fullmatch(lines[-1])


def test_default_experiment_reaches_90_percent(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    status, lines, _ = run(capsys, "train", "--no-progress")
    assert status == 0
    assert lines[0].startswith("data: digits, 200 train / 40 test; SGD lr=0.03, batch size 10")
    assert sum(line.startswith("epoch") for line in lines) == 11  # 1, 10, 20, ..., 100
    assert LAST_LINE.fullmatch(lines[-1])
    assert float(lines[-1].split()[-1]) >= 0.9


def test_python_dash_m(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "refcnn", *QUICK[:-2], "1", "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert LAST_LINE.fullmatch(result.stdout.splitlines()[-1])
