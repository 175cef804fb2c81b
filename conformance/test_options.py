"""Usage errors of the suite's options, for the frameworks installed in this session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.frameworks import discover

REPO = Path(__file__).resolve().parents[1]
CUDA_FRAMEWORKS = [name for name, info in discover().items() if "cuda" in info.devices]


def _cuda_visible(name: str) -> bool:
    if name == "torch":
        import torch  # noqa: PLC0415 - installed in this session, see the skip below

        return bool(torch.cuda.is_available())
    if name == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415

        return bool(tf.config.list_physical_devices("GPU"))
    import jax  # noqa: PLC0415

    return any(d.platform == "gpu" for d in jax.devices())


@pytest.mark.parametrize("name", CUDA_FRAMEWORKS)
def test_device_cuda_without_a_cuda_device_is_a_usage_error(name: str) -> None:
    if discover()[name].unavailable():
        pytest.skip(f"{name} is not installed in this session")
    if _cuda_visible(name):
        pytest.skip(f"{name} sees a CUDA device here: the error case cannot be shown")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "conformance",
            "-p",
            "no:cacheprovider",
            "--framework",
            name,
            "--device",
            "cuda",
            "-q",
            "-k",
            "relu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"--device cuda: {name} cannot use it" in result.stderr


def test_allow_tf32_needs_cuda() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "conformance",
            "-p",
            "no:cacheprovider",
            "--framework",
            "none",
            "--allow-tf32",
            "-q",
            "-k",
            "relu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 4
    assert "--allow-tf32 applies to --device cuda only" in result.stderr
