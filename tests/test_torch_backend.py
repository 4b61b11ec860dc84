"""Runs the core objects' tests on the PyTorch backend, in a process where
TensorFlow and JAX cannot be imported.

Keras fixes its backend at import, so the torch run needs its own
interpreter. The recipe runs on torch (resume, `.keras` round trips across
backends, export) are in tests/test_backends.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from conftest import backend_env

# The core objects' files (`-m core`): the layer, the loss, the statistics,
# the callback, the classifier, mixed precision, the argument checks, the
# evaluation callback, the Table 8 methods, the applications table, the
# multi-host shards and the deadline callback; about 30 s here. Left out
# for time: test_models.py (the ResNets, ~35 s on torch, where its numpy
# reads of tensors that require grad fail); the recipe runs of
# test_backends.py build and train the ResNet on torch.
CORE_FILES = (
    "test_prototype_layer.py",
    "test_ipm_loss.py",
    "test_class_statistics.py",
    "test_reassign_callback.py",
    "test_prototype_classifier.py",
    "test_precision.py",
    "test_checks.py",
    "test_evaluation.py",
    "test_table8_methods.py",
    "test_applications.py",
    "test_multihost.py",
    "test_run_safety.py",
)
# `jit_compile=True` on torch is torch.compile: over a minute per model on
# this CPU, too slow for the suite. Those cases were run by hand (the label
# checks raise under it too); recipes leave it off on torch ("auto").
DESELECT = "not xla"


# Run first in the pytest process: TensorFlow and JAX are refused (as if
# not installed, also to importlib.util.find_spec) and Keras is on torch.
_CHECK_THEN_PYTEST = """
import importlib.util, sys
for name in ("tensorflow", "jax"):
    try:
        __import__(name)
    except ModuleNotFoundError as error:
        assert "blocked" in str(error), error
    else:
        raise AssertionError(name + " was importable")
    assert importlib.util.find_spec(name) is None, name
import keras, pytest
assert keras.backend.backend() == "torch", keras.backend.backend()
code = pytest.main(sys.argv[1:])
assert "tensorflow" not in sys.modules and "jax" not in sys.modules
sys.exit(code)
"""


@pytest.mark.large
def test_core_objects_pass_on_torch_without_tensorflow_and_jax():
    pytest.importorskip("torch")
    files = [str(Path("tests") / name) for name in CORE_FILES]
    options = ["-q", "-rs", "-n", "0", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-c", _CHECK_THEN_PYTEST, *options]
        + ["-m", "core", "-k", DESELECT, *files],
        cwd=REPO_ROOT,
        env=backend_env("torch"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary, summary
    # The only skips: tf.data cases, which need TensorFlow.
    skips = [line for line in output.splitlines() if line.startswith("SKIP")]
    assert all("tensorflow" in line for line in skips), skips
