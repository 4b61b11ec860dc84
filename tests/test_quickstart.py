"""The README's quickstart runs end to end on the real CIFAR-10 archive."""

import json
import os
import subprocess
import sys

import onnx
import pytest
from conftest import CIFAR10_JPEG
from conftest import REPO_ROOT


@pytest.mark.large
def test_quickstart_trains_reports_and_exports(tmp_path):
    archive = str(CIFAR10_JPEG)
    assert os.path.isfile(archive), f"shared data missing: {archive}"
    out = tmp_path / "quick"
    result = subprocess.run(
        [
            sys.executable,
            "recipes/quickstart.py",
            "--epochs",
            "2",
            "--train-per-class",
            "40",
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "top1" in result.stdout and "parity with Keras checked" in (
        result.stdout
    )
    config = json.loads((out / "config.json").read_text())
    assert config["dim"] == 4 and config["method"] == "dl2pa"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics] == [0, 1]
    assert "assignment_changed" in metrics[0]
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == [
        "assignment_changes.png",
        "curves.png",
        "per_class_accuracy.png",
        "prototype_similarity.png",
    ]
    model = onnx.load(str(out / "export" / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["class_names"])[0] == "airplane"
