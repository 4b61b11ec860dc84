"""Smoke test of `benchmarks/gpu_cifar10_lt.py` on CPU (JAX, no TF).

Runs the GPU script end to end on the real CIFAR-10 JPEG tarball with a
tiny configuration (ResNet-8, 1 epoch, 300 training / 200 validation
images), long-tailed mode with all methods (sequentially) and `--low-dim`
(one process per method, with a deadline that stops each after its first
of two epochs), and checks the JSON, logs and progress files it writes and
that TensorFlow was never imported. Also checks the
script's numpy copies of the split rules against `keras_dlpa.data`.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CIFAR10_JPEG

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_cifar10_lt.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_cifar10_lt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, name, extra, sequential=True):
    out = tmp_path / f"{name}.json"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--data",
        str(CIFAR10_JPEG),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--epochs",
        "1",
        "--max-train",
        "300",
        "--max-val",
        "200",
        "--depth",
        "8",
        "--workers",
        "2",
        *(["--sequential"] if sequential else []),
        "--check-no-tensorflow",
        "--out",
        str(out),
        *extra,
    ]
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["KERAS_DLPA_CACHE"] = str(tmp_path / "dlpa_cache")
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ), out


def _check_metrics(metrics):
    assert 0.0 <= metrics["top1"] <= 1.0
    assert 0.0 <= metrics["top5"] <= 1.0
    assert metrics["epoch"] == 0
    for group in ("many", "medium", "few"):
        value = metrics.get(group)
        assert value is None or 0.0 <= value <= 1.0


@pytest.mark.large
def test_gpu_script_runs_on_cpu_without_tensorflow(tmp_path):
    assert CIFAR10_JPEG.is_file(), f"shared data missing: {CIFAR10_JPEG}"
    # Decode the tarball once for both runs; they run concurrently.
    _load_script().load_cifar10_jpeg(CIFAR10_JPEG, tmp_path / "cache")
    runs = {
        "lt": (_run(tmp_path, "lt", []), ["dl2pa", "etf", "softmax"]),
        # One process per method, 2 epochs asked, a deadline already
        # passed: each method stops after its first epoch and says so.
        "low": (
            _run(
                tmp_path,
                "low",
                ["--low-dim", "--dim", "3", "--epochs", "2"]
                + ["--deadline", str(time.time())]
                + ["--log-dir", str(tmp_path / "logs")],
                sequential=False,
            ),
            ["dl2pa", "static"],
        ),
    }
    for name, ((proc, out), methods) in runs.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, log[-3000:]
        result = json.loads(out.read_text())
        assert result["tensorflow_imported"] is False
        assert result["mode"] == ("low_dim" if name == "low" else "long_tailed")
        assert sorted(result["methods"]) == sorted(methods)
        counts = np.asarray(result["train_counts"])
        assert counts.sum() == 300 and counts.shape == (10,)
        if name == "lt":
            # Long-tailed: the head class keeps more images than the tail.
            assert counts[0] > counts[-1]
            assert result["recipe"]["mixup"] == 1.0
        for method in methods:
            r = result["methods"][method]
            assert r["method"] == method
            assert r["train_images"] == 300 and r["val_images"] == 200
            assert r["steps_per_epoch"] == 300 // 128
            _check_metrics(r["last"])
            _check_metrics(r["best"])
            assert r["images_per_s"] > 0 and r["wall_s"] > 0
            assert r["epochs_run"] == 1
            assert r["completed"] is (name == "lt")
            assert len(r["val_top1_history"]) == 1
            assert np.isfinite(r["train_loss_history"][0])
            assert r["tensorflow_imported"] is False
        assert ("assignment_changed" in result["methods"]["dl2pa"]) is True
        assert "machine" in result and result["failures"] == {}
    for method in ("dl2pa", "static"):
        log = (tmp_path / "logs" / f"{method}.log").read_text()
        assert f"[{method}] epoch 1/2" in log and "deadline: stopping" in log
        progress = json.loads(
            (tmp_path / "logs" / f"{method}.progress.json").read_text()
        )
        assert len(progress["epoch_seconds"]) == 1
        assert len(progress["history"]["val_top1"]) == 1
