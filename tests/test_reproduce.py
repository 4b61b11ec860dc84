"""`keras-dlpa reproduce`: a tiny table-4 sweep on the real CIFAR-100 archive,
stopped by a deadline, resumed, skipped once complete, and its report."""

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT

from keras_dlpa.reproduce import CIFAR100_ARCHIVE
from keras_dlpa.reproduce import GRIDS
from keras_dlpa.reproduce import grid_jobs


def _reproduce(tmp_path, *extra):
    env = dict(os.environ)
    env["KERAS_DLPA_CACHE"] = str(tmp_path / "cache")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), env.get("PYTHONPATH", "")]
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [
        sys.executable, "-m", "keras_dlpa", "reproduce", "--grid", "table4",
        "--quick", "--parallel", "2", "--epochs", "2",
        "--out", str(tmp_path / "sweep"), *extra,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    report = json.loads((tmp_path / "sweep" / "report.json").read_text())
    return report, result.stdout


def test_grids_have_the_paper_cells():
    table4 = GRIDS["table4"]
    assert len(table4.runs) == 12
    assert table4.paper[("0.01", "dl2pa", 50)] == 45.2
    jobs = grid_jobs(table4, "out", seeds=(0, 1), data="a.tar.gz")
    assert len(jobs) == 24 and len({j.name for j in jobs}) == 24
    assert all(j.recipe == "cifar100_lt" for j in jobs)
    fig4a = GRIDS["fig4a"]
    dims = sorted({r.dim for r in fig4a.runs if r.method == "static"})
    assert dims == [3, 10, 25, 50, 100]
    assert [(r.method, r.dim) for r in fig4a.runs if r.method == "etf"] == [
        ("etf", 100)
    ]
    quick = grid_jobs(table4, "out", seeds=(0,), quick=True)
    assert len(quick) == 4 and all("--quick" in j.args for j in quick)


@pytest.mark.large
def test_quick_table4_stops_resumes_skips_and_reports(tmp_path):
    assert CIFAR100_ARCHIVE.is_file(), f"shared data: {CIFAR100_ARCHIVE}"
    # Decode the archive once into the cache the runs share.
    env_cache = tmp_path / "cache"
    os.environ["KERAS_DLPA_CACHE"] = str(env_cache)
    from keras_dlpa.data import load_image_folder

    assert len(load_image_folder(CIFAR100_ARCHIVE)) == 50_000

    # A deadline already passed: every run stops after its first epoch.
    first, _ = _reproduce(tmp_path, "--deadline", str(time.time()))
    rows = first["rows"]
    assert [(r["method"], r["dim"]) for r in rows] == [
        ("softmax", 128),
        ("etf", 128),
        ("dl2pa", 128),
        ("dl2pa", 50),
    ]
    assert all(r["seeds_done"] == 0 and r["seeds"] == 1 for r in rows)
    assert all(r["epochs_done"] == [1] for r in rows)
    # Again without a deadline: the runs resume and complete.
    second, log = _reproduce(tmp_path)
    assert log.count("started (partial)") == 4
    for row in second["rows"]:
        assert row["seeds_done"] == 1 and row["epochs_done"] == [2]
        assert 0.0 <= row["last_top1"] <= 1.0
        assert row["paper_top1"] is not None
    third, log = _reproduce(tmp_path)
    assert log.count("complete, skipped") == 4
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "| 0.01 | dl2pa | 50 | 1/1 |" in report and "45.20" in report
    assert "best TEST epoch" in report
    metrics = json.loads(
        (
            tmp_path / "sweep" / "runs" / "dl2pa-d50-0.01-s0" / "metrics.json"
        ).read_text()
    )
    assert [m["epoch"] for m in metrics] == [0, 1]


def test_table7_report(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))
    from keras_dlpa.reproduce import reproduce

    report = reproduce("table7", tmp_path / "t7")
    rows = {r["dim"]: r for r in report["rows"]}
    assert rows[100]["max_cosine"] == pytest.approx(-1 / 99, abs=1e-5)
    assert rows[50]["max_cosine"] < 0.02
    assert "Table 7" in (tmp_path / "t7" / "report.md").read_text()
