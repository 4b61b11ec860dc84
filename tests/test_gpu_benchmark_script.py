"""The GPU driver (`benchmarks/gpu_cifar10_lt.py`) over `keras_dlpa.sweep`.

Runs the driver on CPU with JAX in a process where TensorFlow cannot be
imported: a recipe process on generated images, with the driver's deadline
passed to it. Resuming, skipping complete
runs and several processes side by side are the sweep's, tested through
`keras-dlpa reproduce` in tests/test_reproduce.py.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from test_backends import NO_TF
from test_resume import _images

SCRIPT = Path(REPO_ROOT) / "benchmarks" / "gpu_cifar10_lt.py"


def _driver(tmp_path, images, *extra):
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["KERAS_DLPA_CACHE"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join([str(NO_TF), str(REPO_ROOT)])
    out = tmp_path / "summary.json"
    command = [
        sys.executable, str(SCRIPT), "--data", str(images),
        "--runs-dir", str(tmp_path / "runs"), "--low-dim", "--dim", "3",
        "--quick", "--epochs", "1", "--methods", "dl2pa",
        "--out", str(out), *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    return json.loads(out.read_text()), result.stdout


@pytest.mark.large
def test_driver_runs_a_recipe_on_jax_and_stops_at_the_deadline(tmp_path):
    images = _images(tmp_path / "images", classes=10, per_class=24)
    # Every job gets the driver's deadline (not binding here; a deadline
    # that stops a run is `DeadlineCallback`'s, tests/test_run_safety.py).
    deadline = time.time() + 3600
    first, log = _driver(tmp_path, images, "--deadline", repr(deadline))
    assert sorted(first["runs"]) == ["lowdim-d3-dl2pa"]
    for run in first["runs"].values():
        assert run["returncode"] == 0 and run["status"] == "new"
        assert run["completed"] is True and run["epochs_done"] == 1
        assert run["backend"] == "jax"
        assert 0.0 <= run["last"]["top1"] <= 1.0
        config = json.loads((Path(run["out"]) / "config.json").read_text())
        assert config["deadline"] == deadline
