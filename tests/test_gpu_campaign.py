"""The GPU campaign (benchmarks/gpu/) rehearsed on this machine.

`prepare.sh` and `run.sh` run as on the box, in processes where
TensorFlow and matplotlib cannot be imported (the box has neither), with
JAX on CPU, `--quick`, one epoch (`REHEARSAL=1`) and two cells, on
generated images: `$OUT` must hold what a device call brings back (the
report, each run's metrics and `model.keras`, at most 8 files of 16 MB),
and every module the processes loaded must come from the box or from
`wheels.txt`. So an edit that would break the campaign fails here, not
on a GPU.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import NO_TF
from conftest import REPO_ROOT
from conftest import image_folder

GPU = Path(REPO_ROOT) / "benchmarks" / "gpu"


def _names(path: Path) -> set:
    """Normalised distribution names of a requirements-style file."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(_normal(line.split("==")[0]))
    return names


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


# Imported only where installed (`try: import ... except ImportError`):
# keras' RemoteMonitor (requests and its dependencies), grain's tree
# utilities (attrs) and JAX's compilation cache (filelock, installed here
# with torch). They need not travel.
OPTIONAL = {
    "requests", "urllib3", "idna", "certifi", "charset-normalizer", "attrs",
    "filelock",
}  # fmt: skip


def _loaded_modules(audit: Path) -> dict:
    """`{module: its distributions}` of the third-party top-level modules
    the processes loaded (a namespace such as `google` has several)."""
    owners = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    found = {}
    for path in audit.glob("*.txt"):
        for module in path.read_text().split():
            if module in stdlib or module.startswith("_"):
                continue
            dists = {_normal(d) for d in owners.get(module, [])}
            if dists:
                found[module] = dists
    return found


@pytest.mark.large
def test_campaign_rehearsal_brings_back_every_result(tmp_path):
    images = image_folder(tmp_path / "images", 10, 60, size=32)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(NO_TF), str(REPO_ROOT)]),
        KERAS_DLPA_BLOCK_IMPORTS="matplotlib",
        KERAS_DLPA_MODULE_AUDIT=str(tmp_path / "audit"),
        KERAS_DLPA_CACHE=str(tmp_path / "cache"),
        CAMPAIGN=str(tmp_path / "campaign"),
        ARCHIVE=str(images),
        PYTHON=sys.executable,
        REHEARSAL="1",
        # Two of the column's four cells: the plumbing is the same for
        # each (the methods and d < c are tested elsewhere), and every run
        # is a JAX process of about 40 s CPU.
        METHODS="softmax,dl2pa",
        DIMS="128",
    )
    prepare = subprocess.run(
        ["bash", str(GPU / "prepare.sh")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert prepare.returncode == 0, prepare.stdout + prepare.stderr
    assert "device call: run(command='bash benchmarks/gpu/run.sh" in (
        prepare.stdout
    )
    out = tmp_path / "out"
    run = subprocess.run(
        ["bash", str(GPU / "run.sh"), str(out), "400"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-5000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["campaign.log", "models-0.tar", "results.tar.gz"], files
    assert all((out / f).stat().st_size < 16 * 10**6 for f in files)
    with tarfile.open(out / "results.tar.gz") as tar:
        report = json.load(tar.extractfile("report.json"))
        names = tar.getnames()
    cells = {(r["method"], r["dim"]): r for r in report["rows"]}
    assert set(cells) == {("softmax", 128), ("dl2pa", 128)}
    for row in cells.values():
        assert row["setting"] == "0.01" and row["seeds_done"] == 1
        assert 0.0 <= row["last_top1"] <= 1.0
    for run_name in ("dl2pa-d128-0.01-s0", "softmax-d128-0.01-s0"):
        for part in ("config.json", "metrics.json", "evaluation.json"):
            assert f"runs/{run_name}/{part}" in names
    with tarfile.open(out / "models-0.tar") as tar:
        models = sorted(n for n in tar.getnames() if n.endswith(".keras"))
    assert len(models) == 2
    # The runs read the prepared splits, without matplotlib (one warning).
    assert "No plots: matplotlib is not installed" in _logs(out)
    # Every module loaded is on the box or travels as a wheel.
    allowed = _names(GPU / "wheels.txt") | _names(GPU / "box.txt")
    allowed |= OPTIONAL | {"keras-dlpa"}
    loaded = _loaded_modules(tmp_path / "audit")
    missing = {m: d for m, d in loaded.items() if not d & allowed}
    assert not missing, f"loaded but neither on the box nor carried: {missing}"
    assert {"grain", "keras", "array_record", "jax"} <= set(loaded)


def _logs(out: Path) -> str:
    with tarfile.open(out / "results.tar.gz") as tar:
        return "".join(
            tar.extractfile(n).read().decode()
            for n in tar.getnames()
            if n.startswith("logs/")
        )
