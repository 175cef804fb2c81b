"""nox sessions: lint, typecheck, tests (Pythons x NumPy), conformance (per framework), bench.

``nox -s lint typecheck tests`` is the test command; ``nox -s conformance`` is the main job
(every framework session, quick profile unless ``HYPOTHESIS_PROFILE`` says otherwise).
Arguments after ``--`` are forwarded to pytest.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
MAIN_PYTHON = "3.11"

# Oldest NumPy with wheels for each Python (requires-python allows numpy>=1.25) and newest.
NUMPY_OLDEST = {"3.10": "1.25.2", "3.11": "1.25.2", "3.12": "1.26.4", "3.13": "2.1.3"}
TEST_MATRIX = [
    (python, numpy)
    for python in ("3.10", "3.11", "3.12", "3.13")
    for numpy in (NUMPY_OLDEST[python], "latest")
]

# The nox pins of each framework adapter in conformance/frameworks, and the Pythons its
# conformance session runs on. torch: only the local CPU wheel of 2.13.0 for CPython 3.11
# is allowed (any other wheel is a multi-GB CUDA download); tensorflow-cpu installs from the
# registry on 3.10-3.13; jax (CPU wheels) and onnxruntime (with onnx, which builds the
# one-node models) next to NumPy 2.4 on 3.11.
FRAMEWORK_PINS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "torch": (("torch==2.13.0",), ("3.11",)),
    "tensorflow": (("tensorflow-cpu>=2.16,<2.22",), ("3.11", "3.12")),
    "jax": (("jax==0.10.2", "jaxlib==0.10.2"), ("3.11",)),
    "onnxruntime": (
        # The session that has onnx also installs the other third-party NumPy
        # implementations of conformance/peers, so their pinned findings run (numpy-ml
        # imports matplotlib at its top level).
        ("onnxruntime==1.32.0", "onnx==1.23.2", "numpy-ml==0.1.2", "matplotlib", "mygrad==2.5.0"),
        ("3.11",),
    ),
}
CONFORMANCE_MATRIX = [
    (python, framework) for framework, (_, pythons) in FRAMEWORK_PINS.items() for python in pythons
]


@nox.session(python=MAIN_PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole tree."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=MAIN_PYTHON)
def typecheck(session: nox.Session) -> None:
    """Mypy --strict over refcnn and conformance."""
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy")


@nox.session
@nox.parametrize(
    ("python", "numpy"),
    TEST_MATRIX,
    ids=[f"{python}-numpy{numpy}" for python, numpy in TEST_MATRIX],
)
def tests(session: nox.Session, numpy: str) -> None:
    """Refcnn's own tests (NumPy only) on one Python and one NumPy."""
    # One resolver run, so every test dependency is chosen to work with the pinned NumPy.
    numpy_spec = "numpy" if numpy == "latest" else f"numpy=={numpy}"
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"), numpy_spec)
    session.run("python", "-c", "import numpy; print('numpy', numpy.__version__)")
    # The mutant zoo judges the harness, not NumPy or Python: once, on the main Python.
    zoo = [] if (session.python, numpy) == (MAIN_PYTHON, "latest") else ["-m", "not zoo"]
    session.run("pytest", "-n", "auto", *zoo, *session.posargs)


@nox.session
@nox.parametrize(
    ("python", "framework"),
    CONFORMANCE_MATRIX,
    ids=[f"{framework}-{python}" for python, framework in CONFORMANCE_MATRIX],
)
def conformance(session: nox.Session, framework: str) -> None:
    """Hypothesis conformance of refcnn against one framework; writes the report."""
    session.install("-e", ".[conformance]", *FRAMEWORK_PINS[framework][0])
    report_dir = os.path.join("conformance-report", f"{framework}-{session.python}")
    session.run(
        "python",
        "-m",
        "pytest",
        "conformance",
        "--framework",
        framework,
        "--report-dir",
        report_dir,
        "-n",
        "auto",
        *session.posargs,
        env={
            "HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "quick"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        },
    )


@nox.session(python=MAIN_PYTHON)
def bench(session: nox.Session) -> None:
    """Time refcnn against PyTorch and TensorFlow (see benchmarks/README.md)."""
    session.install("-e", ".", *FRAMEWORK_PINS["torch"][0], *FRAMEWORK_PINS["tensorflow"][0])
    session.install("threadpoolctl")
    session.run(
        "python", "benchmarks/bench.py", *session.posargs, env={"TF_CPP_MIN_LOG_LEVEL": "2"}
    )
