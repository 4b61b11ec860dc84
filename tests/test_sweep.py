"""`keras_dlpa_paper.sweep`: recipe runs as processes, resumably.

A passed deadline starts no job, a run directory holding a run with
other settings is refused, a job waits for its `after` jobs and is
blocked when they did not complete, a complete run asked for more epochs
is resumed, and concurrent JAX jobs do not preallocate the accelerator.
"""

import dataclasses
import json
import time

import pytest

from keras_dlpa.cli.train import build_parser
from keras_dlpa.cli.train import config_from_args
from keras_dlpa_paper.sweep import Job
from keras_dlpa_paper.sweep import _requested_epochs
from keras_dlpa_paper.sweep import job_environment
from keras_dlpa_paper.sweep import job_status
from keras_dlpa_paper.sweep import run_jobs
from keras_dlpa_paper.sweep import settings_conflict


def test_the_sweep_starts_no_job_after_its_deadline(tmp_path, capsys):
    job = Job("a", "cifar10_lt", ["--quick"], str(tmp_path / "a"))
    results = run_jobs([job], tmp_path / "logs", deadline=time.time() - 1)
    assert results["a"]["status"] == "not started"
    assert results["a"]["returncode"] is None
    assert "a: not started, the deadline has passed" in capsys.readouterr().out
    assert not (tmp_path / "a").exists()


def test_the_sweep_refuses_a_run_directory_with_other_settings(
    tmp_path, capsys
):
    """A finished `--quick --epochs 2` smoke run is not taken as the full
    run of the same directory, nor resumed with the full run's settings."""
    out = tmp_path / "a"
    out.mkdir()
    smoke = config_from_args(
        "cifar10_lt",
        build_parser("cifar10_lt").parse_args(
            ["--quick", "--epochs", "2", "--out", str(out)]
        ),
    )
    settings = json.loads(json.dumps(dataclasses.asdict(smoke), default=str))
    (out / "config.json").write_text(json.dumps({"settings": settings}))
    (out / "evaluation.json").write_text(
        '{"completed": true, "epochs_done": 2}'
    )
    full = Job("full", "cifar10_lt", ["--epochs", "2"], str(out))
    assert "train_per_class" in settings_conflict(full)
    same = Job("same", "cifar10_lt", ["--quick", "--epochs", "5"], str(out))
    assert settings_conflict(same) is None  # only --epochs differs
    results = run_jobs([full], tmp_path / "logs", poll_s=0.1)
    assert results["full"]["status"] == "refused"
    assert results["full"]["returncode"] is None
    assert results["full"]["evaluation"] is None
    log = capsys.readouterr().out
    assert f"full: refused, {out} holds a run with other settings (" in log


def test_sweep_blocks_a_job_whose_dependency_is_not_complete(tmp_path, capsys):
    done = tmp_path / "done"
    done.mkdir()
    (done / "evaluation.json").write_text('{"completed": true}')
    jobs = [
        # Exits at once with a usage error: not complete.
        Job("softmax", "cifar100", ["--method", "nope"], str(tmp_path / "a")),
        Job(
            "ours",
            "cifar100",
            ["--method", "nope"],  # would fail at once if it were started
            str(tmp_path / "b"),
            after=("softmax",),
        ),
        Job("other", "cifar100", [], str(done)),
    ]
    results = run_jobs(jobs, tmp_path / "logs", parallel=2, poll_s=0.1)
    assert results["softmax"]["returncode"] == 2
    assert results["ours"]["status"] == "blocked"
    assert results["ours"]["returncode"] is None
    assert not (tmp_path / "logs" / "ours.log").exists()
    assert results["other"]["status"] == "skipped"
    log = capsys.readouterr().out
    # The free slot went to the later job while `ours` waited.
    assert log.index("other: complete") < log.index("ours: blocked")
    with pytest.raises(ValueError, match="earlier jobs"):
        run_jobs(jobs[1:], tmp_path / "logs")


def test_a_complete_run_asked_for_more_epochs_is_resumed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "evaluation.json").write_text(
        json.dumps({"completed": True, "epochs_done": 1})
    )
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "epoch-000001.json").write_text("{}")
    assert job_status(run) == job_status(run, epochs=1) == "complete"
    assert job_status(run, epochs=2) == "partial"
    assert _requested_epochs(["--epochs", "3", "--quick", "--epochs", "2"]) == 2
    assert _requested_epochs(["--quick"]) is None


def test_concurrent_jax_jobs_do_not_preallocate_the_accelerator():
    key = "XLA_PYTHON_CLIENT_PREALLOCATE"
    assert job_environment({}, parallel=4)[key] == "false"
    assert key not in job_environment({}, parallel=1)
    assert job_environment({key: "true"}, parallel=4)[key] == "true"
