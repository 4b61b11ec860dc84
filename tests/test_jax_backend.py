"""Runs the backend-agnostic core tests (`-m core`) on the JAX backend.

The main suite runs on the TensorFlow backend; Keras fixes its backend at
import, so the JAX run needs its own interpreter.
"""

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def _pytest_on_jax(*args, timeout):
    """`python -m pytest ARGS` in one process on the JAX backend."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0"]
    return subprocess.run(
        [*command, "-p", "no:cacheprovider", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.large
def test_core_suite_passes_on_jax():
    result = _pytest_on_jax("-m", "core", "tests", timeout=1200)
    summary = result.stdout.strip().splitlines()[-1:] or ["<no output>"]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary[0], summary


def test_reassign_callback_async_dispatch_on_jax():
    # The async-dispatch check can only fail on JAX, where Keras runs batch
    # hooks in a worker thread; a cheap run of that one test on JAX.
    result = _pytest_on_jax(
        "tests/test_reassign_callback.py", "-k", "keeps_async_dispatch",
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout, result.stdout[-2000:]
