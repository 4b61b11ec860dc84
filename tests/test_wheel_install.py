"""keras-dlpa installed from its wheel, away from this checkout.

The wheel is built from a copy of the packages and `pyproject.toml` and
installed with `pip install --target`; from a folder outside the checkout,
with only that folder on `PYTHONPATH`, `keras-dlpa reproduce` shows its
help and runs one `--quick` table-4 cell on generated images passed with
`--data`. So the paper harness (`keras_dlpa_paper`) ships in the wheel and
finds no data of this checkout by itself.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from conftest import image_folder


def _run(command, cwd, env, timeout):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result.stdout


def _wheel(tmp_path) -> Path:
    """Builds the wheel from a copy of what it is made of."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(Path(REPO_ROOT) / name, source)
    for init in Path(REPO_ROOT).glob("keras_dlpa*/__init__.py"):
        shutil.copytree(
            init.parent,
            source / init.parent.name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps"]
        + ["-w", str(wheels), str(source)],
        cwd=tmp_path, env=dict(os.environ), timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("keras_dlpa-*.whl")
    return wheel


@pytest.mark.large
def test_the_installed_wheel_reproduces_a_quick_cell(tmp_path):
    wheel = _wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"keras_dlpa_paper/cli.py", "keras_dlpa_paper/grids.py"} <= names
    site = tmp_path / "site"
    _run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
        + ["--target", str(site), str(wheel)],
        cwd=tmp_path, env=dict(os.environ), timeout=300,
    )  # fmt: skip
    work = tmp_path / "elsewhere"
    images = image_folder(work / "images", 10, 60, size=32)
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("KERAS_DLPA_DATA", None)
    env.update(KERAS_DLPA_CACHE=str(tmp_path / "cache"))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Where the packages are found (without importing Keras).
    where = _run(
        [sys.executable, "-c", "import importlib.util as u; print(*(u."
         "find_spec(m).origin for m in ('keras_dlpa', 'keras_dlpa_paper')))"],
        cwd=work, env=env, timeout=120,
    )  # fmt: skip
    assert len(where.split()) == 2
    for path in where.split():
        assert Path(path).is_relative_to(site), where
    help_text = _run(
        [sys.executable, "-m", "keras_dlpa_cli", "reproduce", "--help"],
        cwd=work, env=env, timeout=120,
    )  # fmt: skip
    assert "--data" in help_text and "KERAS_DLPA_DATA" in help_text
    _run(
        [sys.executable, "-m", "keras_dlpa_cli", "reproduce", "--grid",
         "table4", "--quick", "--methods", "dl2pa", "--dims", "50",
         "--epochs", "1", "--data", str(images), "--out", "sweep"],
        cwd=work, env=env, timeout=300,
    )  # fmt: skip
    report = json.loads((work / "sweep" / "report.json").read_text())
    (row,) = report["rows"]
    assert (row["method"], row["dim"], row["seeds_done"]) == ("dl2pa", 50, 1)
    config = json.loads(
        (
            work / "sweep" / "runs" / "dl2pa-d50-0.01-s0" / "config.json"
        ).read_text()
    )
    assert config["num_classes"] == 10
