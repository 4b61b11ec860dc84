"""The README's quickstart runs end to end on the real CIFAR-10 archive and
reproduces the numbers the README shows (`benchmarks/results/
quickstart.json`, rendered into the README by `make_tables.py`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

RESULTS = Path(REPO_ROOT) / "benchmarks" / "results"
sys.path.insert(0, str(Path(REPO_ROOT) / "benchmarks"))
from _common import cpu_model  # noqa: E402

# Seeded and deterministic on one machine, but another CPU model rounds
# differently and the 10 epochs amplify it: from the same commit an
# Intel Xeon gave last/best top-1 24.17/25.67 (quickstart.json) and an
# AMD EPYC 26.17/26.17 (quickstart_amd_epyc.json). Against the file
# measured on this CPU model: 6 of the 600 validation images (1 point; the
# issue's Xeon printed 23.67 against 24.17). Against another CPU's file:
# 30 images (5 points).
TOLERANCE = 6 / 600
OTHER_CPU_TOLERANCE = 30 / 600


def published_row(method: str) -> tuple[dict, str, float]:
    """The `quickstart*.json` row of `method` measured on this CPU model
    (else the README's `quickstart.json`), its file and the tolerance."""
    files = sorted(RESULTS.glob("quickstart*.json"))
    data = {f.name: json.loads(f.read_text()) for f in files}
    same = [n for n, d in data.items() if d["machine"]["cpu"] == cpu_model()]
    name = (same + ["quickstart.json"])[0]
    tolerance = TOLERANCE if same else OTHER_CPU_TOLERANCE
    (row,) = [r for r in data[name]["rows"] if r["method"] == method]
    return row, name, tolerance


@pytest.mark.large
def test_quickstart_reproduces_its_published_numbers(tmp_path, cifar10_cache):
    out = tmp_path / "quick"
    # The README's command (defaults: dl2pa, 10 epochs, 600 per class).
    result = subprocess.run(
        # The ONNX export it ends with is tests/test_export.py's.
        [
            sys.executable,
            "recipes/quickstart.py",
            "--out",
            str(out),
            "--no-export",
        ],
        cwd=REPO_ROOT,
        # The archive decoded once for the session (conftest.py).
        env=dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            KERAS_DLPA_CACHE=str(cifar10_cache),
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "top1" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["dim"] == 4 and config["model"]["method"] == "dl2pa"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics] == list(range(10))
    row, name, tolerance = published_row("dl2pa")
    evaluation = json.loads((out / "evaluation.json").read_text())
    for part in ("last", "best"):
        got, shown = evaluation[part]["top1"], row[f"{part}_top1"]
        assert abs(got - shown) <= tolerance, (
            f"{part} top-1 {got:.4f} but {name} (the README) says "
            f"{shown:.4f} (CPU {cpu_model()!r}): rerun `python "
            f"benchmarks/bench_quickstart.py --out benchmarks/results/{name}`"
            " and `python benchmarks/make_tables.py`."
        )
    assert "assignment_changed" in metrics[0]
    plots = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert plots == [
        "assignment_changes.png",
        "curves.png",
        "per_class_accuracy.png",
        "prototype_similarity.png",
    ]
