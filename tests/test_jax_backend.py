"""Runs the backend-agnostic core tests (`-m core`) on the JAX backend.

The main suite runs on the TensorFlow backend; Keras fixes its backend at
import, so the JAX run needs its own interpreter. Core tests that can fail
only on JAX (the async dispatch of batch hooks in
tests/test_reassign_callback.py) fail here.
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
