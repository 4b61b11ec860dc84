"""`keras-dlpa reproduce`: a tiny table-4 sweep on the real CIFAR-100 archive,
stopped by a deadline, resumed, skipped once complete, and its report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA
from conftest import backend_env

from keras_dlpa.training.config import flat_config
from keras_dlpa_paper.grids import GRIDS
from keras_dlpa_paper.grids import Selection
from keras_dlpa_paper.reproduce import DATA_ENV
from keras_dlpa_paper.reproduce import grid_jobs
from keras_dlpa_paper.reproduce import resolve_data
from keras_dlpa_paper.sweep import SweepOptions


def _reproduce(tmp_path, *extra, epochs=2, cache):
    # On JAX, as on the GPU box: the resumed run reuses the first run's
    # compiled steps (the session's JAX compilation cache, conftest.py).
    # The harness on TensorFlow: the table8 and wheel-install tests.
    # `cache` holds the decoded archive, named through the environment.
    env = backend_env("jax", cache, **{DATA_ENV: SHARED_DATA})
    command = [
        sys.executable, "-m", "keras_dlpa", "reproduce", "--grid", "table4",
        "--quick", "--parallel", "2", "--epochs", str(epochs),
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
    assert table4.methods() == ("softmax", "etf", "dl2pa")
    some = grid_jobs(
        table4, "out", seeds=(0,), select=Selection(methods=("etf", "dl2pa"))
    )
    assert {j.args[1] for j in some} == {"etf", "dl2pa"} and len(some) == 9
    with pytest.raises(ValueError, match="methods=\\('psc',\\)"):
        table4.cells(select=Selection(methods=("psc",)))


def test_table4_runs_the_headline_column_first_and_selects_cells():
    table4 = GRIDS["table4"]
    jobs = grid_jobs(table4, "out", seeds=(0,))
    assert [j.name for j in jobs[:4]] == [
        "softmax-d128-0.01-s0",
        "etf-d128-0.01-s0",
        "dl2pa-d128-0.01-s0",
        "dl2pa-d50-0.01-s0",
    ]
    assert {j.name.split("-")[2] for j in jobs[4:]} == {"0.005", "0.02"}
    picked = grid_jobs(
        table4,
        "out",
        seeds=(0, 1),
        select=Selection(imbalances=("0.010", "0.02"), dims=(50,)),
    )
    assert [j.name for j in picked] == [
        "dl2pa-d50-0.01-s0",
        "dl2pa-d50-0.01-s1",
        "dl2pa-d50-0.02-s0",
        "dl2pa-d50-0.02-s1",
    ]
    for select in (Selection(imbalances=("0.5",)), Selection(dims=(64,))):
        with pytest.raises(ValueError, match="Grid 'table4' has the"):
            table4.cells(select=select)


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--methods", "psc"], "has the methods softmax, etf, dl2pa."),
        (["--imbalance", "0.3"], "Received: --imbalance ('0.3',)"),
        (["--dims", "64"], "has the dims 128, 50. Received: --dims (64,)"),
        (["--dims", "x"], "--dims must be comma-separated integers"),
    ],
)
def test_selection_flags_name_the_grid_cells(capsys, flags, expected):
    from keras_dlpa.cli import main

    assert main(["reproduce", "--grid", "table4", *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


@pytest.mark.large
def test_quick_table4_stops_resumes_skips_and_reports(tmp_path, cifar100_cache):
    # One epoch: complete for `--epochs 1`. One cell (`--methods dl2pa
    # --dims 50`): the other cells' runs go the same way (the GPU campaign
    # rehearsal runs two more cells, tests/test_gpu_campaign.py).
    # (A passed deadline starts no run: test_run_safety.py.)
    cell = ("--methods", "dl2pa", "--dims", "50")
    one, _ = _reproduce(tmp_path, *cell, epochs=1, cache=cifar100_cache)
    rows = one["rows"]
    assert [(r["method"], r["dim"]) for r in rows] == [("dl2pa", 50)]
    assert all(r["epochs_done"] == [1] for r in rows)
    # Asked for 2 epochs: the run is resumed and completes.
    second, log = _reproduce(tmp_path, *cell, cache=cifar100_cache)
    assert log.count("started (partial)") == 1
    for row in second["rows"]:
        assert row["seeds_done"] == 1 and row["epochs_done"] == [2]
        assert 0.0 <= row["last_top1"] <= 1.0
        assert row["paper_top1"] is not None
    third, log = _reproduce(tmp_path, *cell, cache=cifar100_cache)
    assert log.count("complete, skipped") == 1
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
    from keras_dlpa_paper.reproduce import reproduce

    report = reproduce("table7", tmp_path / "t7")
    rows = {r["dim"]: r for r in report["rows"]}
    assert rows[100]["max_cosine"] == pytest.approx(-1 / 99, abs=1e-5)
    assert rows[50]["max_cosine"] < 0.02
    assert "Table 7" in (tmp_path / "t7" / "report.md").read_text()


def test_table8_grid_runs_ours_star_after_its_softmax_run():
    table8 = GRIDS["table8"]
    assert [(r.method, r.dim) for r in table8.runs[:4]] == [
        ("softmax", 16),
        ("psc_star", 16),
        ("ours_star", 16),
        ("dl2pa", 16),
    ]
    assert len(table8.runs) == 12 and table8.recipe == "cifar100"
    assert {r.setting for r in table8.runs} == {"balanced"}
    assert table8.paper[("balanced", "psc_star", 32)] == 64.18
    assert table8.paper[("balanced", "ours_star", 64)] == 64.71
    assert table8.paper[("balanced", "softmax", 16)] == 62.62
    jobs = grid_jobs(table8, "out", seeds=(0, 1), data="a.tar.gz")
    assert len(jobs) == 24
    names = [j.name for j in jobs]
    for job in jobs:
        args = job.args
        if "ours_star" in job.name:
            softmax = job.name.replace("ours_star", "softmax")
            assert job.after == (softmax,)
            assert names.index(softmax) < names.index(job.name)
            run_dir = args[args.index("--softmax-run") + 1]
            assert run_dir == jobs[names.index(softmax)].out
        else:
            assert job.after == () and "--softmax-run" not in args
    quick = grid_jobs(table8, "out", seeds=(0,), quick=True)
    assert [j.name for j in quick] == [
        "softmax-d16-balanced-s0",
        "psc_star-d16-balanced-s0",
        "ours_star-d16-balanced-s0",
        "dl2pa-d16-balanced-s0",
    ]
    assert all("--quick" in j.args for j in quick)


def test_table6_has_cifar10_svhn_and_stl10_cells():
    table6 = GRIDS["table6"]
    assert table6.datasets() == ("cifar10", "svhn_cropped", "stl10")
    assert len(table6.runs) == 27
    assert table6.paper[("0.01", "dl2pa", 64)] == 76.9
    assert table6.paper[("svhn_cropped", "0.01", "dl2pa", 64)] == 47.0
    assert table6.paper[("stl10", "0.005", "softmax", 64)] == 33.1
    assert table6.paper[("stl10", "0.02", "etf", 64)] == 37.9
    assert all(r.key() in table6.paper for r in table6.runs)
    jobs = {j.name: j for j in grid_jobs(table6, "o", (0,), data="c.tar.gz")}
    cifar = jobs["dl2pa-d64-0.01-s0"]  # unchanged name: old runs resume
    assert "--image-dir" in cifar.args and "--dataset" not in cifar.args
    svhn = jobs["svhn_cropped-dl2pa-d64-0.01-s0"]
    assert "--image-dir" not in svhn.args
    assert svhn.args[svhn.args.index("--dataset") + 1] == "svhn_cropped"
    only = grid_jobs(
        table6,
        "o",
        (0,),
        quick=True,
        select=Selection(datasets=("stl10",)),
        tfds_data_dir="T",
    )
    assert [j.name for j in only] == [
        "stl10-softmax-d64-0.01-s0",
        "stl10-etf-d64-0.01-s0",
        "stl10-dl2pa-d64-0.01-s0",
    ]
    assert all(j.args[j.args.index("--data-dir") + 1] == "T" for j in only)
    with pytest.raises(ValueError, match="datasets"):
        table6.cells(select=Selection(datasets=("mnist",)))


def test_table6_svhn_cell_trains_from_tfds(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from keras_dlpa.cli.train import main
    from keras_dlpa_paper.reproduce import write_report

    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))
    sweep = tmp_path / "sweep"
    (job,) = [
        j
        for j in grid_jobs(GRIDS["table6"], sweep, (0,), quick=True)
        if j.name == "svhn_cropped-dl2pa-d64-0.01-s0"
    ]
    tiny = [
        "--epochs", "1", "--width", "2", "--train-per-class", "20",
        "--batch-size", "16", "--imbalance", "0.5", "--verbose", "0",
        "--no-report",
    ]  # fmt: skip
    with tfds.testing.mock_data(num_examples=200):
        code = main(job.args + tiny + ["--out", job.out], recipe=job.recipe)
    assert code == 0
    config = flat_config(
        json.loads((Path(job.out) / "config.json").read_text())
    )
    assert config["dataset"] == "svhn_cropped"
    assert config["source"] == "tfds" and config["test_size"] == 200
    assert config["num_classes"] == 10 and config["dim"] == 64
    report = write_report("table6", sweep, (0,), quick=True)
    (row,) = [r for r in report["rows"] if r["seeds"]]
    assert (row["dataset"], row["method"], row["paper_top1"]) == (
        "svhn_cropped",
        "dl2pa",
        47.0,
    )
    text = (sweep / "report.md").read_text()
    assert "| dataset | setting |" in text
    assert "| svhn_cropped | 0.01 | dl2pa | 64 | 1/1 |" in text


@pytest.mark.large
def test_quick_table8_end_to_end(tmp_path, monkeypatch, capsys):
    """Two Table 8 runs as processes (about 40 s on 2 cores)."""
    import numpy as np
    from PIL import Image

    from keras_dlpa.softmax_prototypes import softmax_prototypes
    from keras_dlpa_paper.reproduce import reproduce

    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for k in range(4):
        folder = tmp_path / "train" / f"class{k}"
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = rng.uniform(30, 220, 3) + rng.normal(0, 25, (16, 16, 3))
            image = np.clip(pixels, 0, 255).astype("uint8")
            Image.fromarray(image).save(folder / f"{i}.png")
    sweep = tmp_path / "sweep"
    tiny = ("--epochs", "1", "--width", "2", "--batch-size", "16")
    report = reproduce(
        "table8",
        sweep,
        data=tmp_path / "train",
        select=Selection(methods=("softmax", "ours_star")),
        # Two slots for two runs: without `Job.after`, ours_star would
        # start at once with its softmax run (and fail). psc_star's and
        # dl2pa's recipe runs go the softmax way (psc_star's loss and
        # regulariser: tests/test_table8_methods.py).
        options=SweepOptions(
            quick=True, parallel=2, extra_args=tiny + ("--no-report",)
        ),
    )
    log = capsys.readouterr().out
    assert log.index("softmax-d16-balanced-s0: exit 0") < log.index(
        "ours_star-d16-balanced-s0: started"
    )
    rows = report["rows"]
    assert [r["method"] for r in rows] == ["softmax", "ours_star"]
    assert all(r["seeds_done"] == 1 for r in rows)
    runs = sweep / "runs"
    state = np.load(runs / "ours_star-d16-balanced-s0" / "final_state.npz")
    np.testing.assert_allclose(
        state["prototypes"],
        softmax_prototypes(runs / "softmax-d16-balanced-s0", 4, 16),
        atol=1e-6,
    )
    text = (sweep / "report.md").read_text()
    assert "| balanced | ours_star | 16 | 1/1 |" in text and "60.51" in text


def test_data_comes_from_the_flag_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(ValueError, match="pass --data .* or set KERAS_DLPA"):
        resolve_data("table4")
    assert resolve_data("table4", "x.npz") == "x.npz"
    assert resolve_data("table7") is None
    tfds_only = Selection(datasets=("svhn_cropped", "stl10"))
    assert resolve_data("table6", select=tfds_only) is None
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="holding cifar10-jpeg-train.tar.gz"):
        resolve_data("table6")
    (tmp_path / "cifar100-png-train.tar.gz").touch()
    assert resolve_data("table8") == tmp_path / "cifar100-png-train.tar.gz"
    assert resolve_data("budget_cpu") == tmp_path / "cifar100-png-train.tar.gz"
    # `--data tfds`: the recipes read TensorFlow Datasets.
    for job in grid_jobs(GRIDS["table4"], "o", (0,), data="tfds"):
        assert "--image-dir" not in job.args and "--npz" not in job.args


def test_reproduce_without_data_is_one_line_naming_both_sources(
    tmp_path, capsys, monkeypatch
):
    from keras_dlpa.cli import main

    monkeypatch.delenv(DATA_ENV, raising=False)
    # A passed deadline: should data be found after all, no run starts.
    argv = ["--time-limit", "0", "--out", str(tmp_path)]
    assert main(["reproduce", "--grid", "fig4a_cpu", *argv]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "--data" in err and "KERAS_DLPA_DATA unset" in err
