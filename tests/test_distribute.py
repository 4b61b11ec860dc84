"""Distributed DL2PA: exact statistics and one assignment across replicas.

The strategies need their own interpreters (logical devices and collective
ops are fixed at TF start-up; the JAX run needs another backend), so the
worker scripts in `tests/distribute_workers/` run as subprocesses, all
started at once by one module fixture, and write `.npz` results that the
tests compare against numpy and against each other.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO_ROOT
from conftest import free_ports

from keras_dlpa.training import _tf_strategy
from keras_dlpa.training.distribution import check_global_batch
from keras_dlpa.training.distribution import resolve_distribution

WORKERS = os.path.join(REPO_ROOT, "tests", "distribute_workers")
TIMEOUT_S = 420


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _start(script, out, *args, **env):
    return subprocess.Popen(
        [sys.executable, os.path.join(WORKERS, script), str(out), *args],
        cwd=REPO_ROOT,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Starts every worker at once; returns {name: npz or error text}."""
    tmp = tmp_path_factory.mktemp("distribute")
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    jobs = {
        # Each also runs the one-device case (the default strategy) after
        # the two-replica one: a TF process costs about 20 s CPU.
        "mirrored2": _start(
            "mirrored.py",
            tmp / "m2.npz",
            "--devices",
            "2",
            "--backup-dir",
            str(tmp / "backup"),
            "--single-out",
            str(tmp / "m1.npz"),
        ),
        "syncbn2": _start(
            "sync_bn.py",
            tmp / "s2.npz",
            "--devices",
            "2",
            "--single-out",
            str(tmp / "s1.npz"),
        ),
    }
    for index in range(2):
        config = {
            "cluster": cluster,
            "task": {"type": "worker", "index": index},
        }
        jobs[f"worker{index}"] = _start(
            "multiworker.py",
            tmp / f"w{index}.npz",
            TF_CONFIG=json.dumps(config),
        )
    jobs["jax"] = _start(
        "jax_data_parallel.py",
        tmp / "j2.npz",
        KERAS_BACKEND="jax",  # the worker adds its device count flag
    )
    files = {  # result: (the job that writes it, its file)
        "mirrored2": ("mirrored2", "m2.npz"),
        "single": ("mirrored2", "m1.npz"),
        "worker0": ("worker0", "w0.npz"),
        "worker1": ("worker1", "w1.npz"),
        "jax": ("jax", "j2.npz"),
        "syncbn2": ("syncbn2", "s2.npz"),
        "syncbn1": ("syncbn2", "s1.npz"),
    }
    deadline = time.monotonic() + TIMEOUT_S
    ended = {}
    results = {}
    try:
        for name, proc in jobs.items():
            try:
                output, _ = proc.communicate(
                    timeout=max(deadline - time.monotonic(), 1)
                )
                ended[name] = f"exit {proc.returncode}:\n{output[-4000:]}"
            except subprocess.TimeoutExpired:
                ended[name] = f"timed out after {TIMEOUT_S} s"
        for name, (job, file) in files.items():
            path = tmp / file
            if jobs[job].returncode == 0 and path.exists():
                results[name] = dict(np.load(path))
            else:
                results[name] = ended[job]
    finally:
        for proc in jobs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def _get(runs, name):
    result = runs[name]
    if isinstance(result, str):
        pytest.fail(f"worker '{name}' failed: {result}")
    return result


def _class_means(x, y, num_classes):
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.stack([z[y == j].mean(axis=0) for j in range(num_classes)])


def test_statistics_exact_under_mirrored_strategy(runs):
    run = _get(runs, "mirrored2")
    assert str(run["strategy"]) == "MirroredStrategy"
    assert int(run["replicas"]) == 2
    x, y = run["stats_x"], run["stats_y"]
    num_classes = run["stats_representatives"].shape[0]
    np.testing.assert_allclose(
        run["stats_representatives"],
        _class_means(x, y, num_classes),
        atol=1e-6,
    )
    bincount = np.bincount(y, minlength=num_classes)
    np.testing.assert_array_equal(run["stats_observed"], bincount)
    # Each replica saw half of every global batch; summed, they are exact.
    local = run["stats_local_counts_before"]
    assert local.shape == (2, num_classes)
    np.testing.assert_array_equal(local.sum(axis=1), [len(y) // 2] * 2)
    np.testing.assert_array_equal(local.sum(axis=0), bincount)
    # The update zeroed the interval sums on every replica.
    assert not np.any(run["stats_local_counts_after"])
    # Frozen features around planted prototypes: the matching finds them.
    np.testing.assert_array_equal(run["stats_assignment"], run["stats_perm"])


def test_two_replicas_match_one_device(runs):
    one, two = _get(runs, "single"), _get(runs, "mirrored2")
    assert int(one["replicas"]) == 1
    # 3 epochs x 2 updates; the assignment changes along the way.
    assert one["train_assignments"].shape == (6, 6)
    assert len({tuple(a) for a in one["train_assignments"]}) > 2
    np.testing.assert_array_equal(
        two["train_assignments"], one["train_assignments"]
    )
    np.testing.assert_allclose(
        two["train_representatives"], one["train_representatives"], atol=1e-5
    )
    np.testing.assert_array_equal(two["train_observed"], one["train_observed"])
    np.testing.assert_allclose(
        two["train_weights"], one["train_weights"], atol=1e-5
    )
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-4)


def test_class_scaled_loss_uses_the_global_batch_counts(runs):
    # IPMLoss(class_scale=True) under 2 replicas: the class counts of the
    # global batch, not each replica's half, so training matches 1 device.
    one, two = _get(runs, "single"), _get(runs, "mirrored2")
    np.testing.assert_allclose(
        two["scaled_loss"], one["scaled_loss"], rtol=1e-5
    )
    np.testing.assert_allclose(
        two["scaled_weights"], one["scaled_weights"], atol=1e-5
    )


def test_synchronized_batch_norm_matches_one_device(runs):
    # A ResNet-8 + projection classifier (9 BatchNorms) trained 4 steps of
    # a global batch of 8 on 2 replicas vs 1 device.
    one, two = _get(runs, "syncbn1"), _get(runs, "syncbn2")
    assert int(one["replicas"]) == 1 and int(two["replicas"]) == 2
    assert int(two["sync_bn_layers"]) == 9
    assert int(two["sync_bn_synchronized"]) == 9
    assert int(two["local_bn_synchronized"]) == 0
    # Synchronised BatchNorm: the 1-device trajectory, to float tolerance.
    for part in ("weights", "moving"):
        np.testing.assert_allclose(
            two[f"sync_{part}"], one[f"sync_{part}"], atol=1e-5, err_msg=part
        )
    np.testing.assert_allclose(two["sync_loss"], one["sync_loss"], rtol=1e-5)
    # Per-replica BatchNorm (the default) normalises each half batch by its
    # own statistics: another trajectory.
    moving = np.abs(two["local_moving"] - one["local_moving"]).max()
    weights = np.abs(two["local_weights"] - one["local_weights"]).max()
    assert moving > 1e-3 and weights > 1e-3, (moving, weights)
    # On one device the option changes nothing.
    np.testing.assert_allclose(
        one["sync_weights"], one["local_weights"], atol=1e-5
    )


def test_assignment_identical_on_every_replica(runs):
    run = _get(runs, "mirrored2")
    local = run["train_local_assignment"]
    assert local.shape == (2, 6)
    np.testing.assert_array_equal(local[0], local[1])
    np.testing.assert_array_equal(local[0], run["train_assignments"][-1])
    reps = run["train_local_representatives"]
    np.testing.assert_array_equal(reps[0], reps[1])
    kernels = run["train_local_kernel"]
    np.testing.assert_array_equal(kernels[0], kernels[1])


def test_backup_and_restore_resumes_exactly(runs):
    # Killed after epoch 1 of 3 and resumed from BackupAndRestore (placed
    # after ReassignCallback): the same run as without the interruption.
    run = _get(runs, "mirrored2")
    np.testing.assert_array_equal(
        run["resumed_assignments"], run["train_assignments"][-2:]
    )
    np.testing.assert_allclose(
        run["resumed_weights"], run["train_weights"], atol=1e-6
    )
    np.testing.assert_allclose(
        run["resumed_representatives"],
        run["train_representatives"],
        atol=1e-6,
    )


def test_multiworker_from_tf_config(runs):
    w0, w1 = _get(runs, "worker0"), _get(runs, "worker1")
    assert int(w0["replicas"]) == 2
    for key in ("weights", "assignment", "assignments", "representatives"):
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
    # DATA sharding keeps the global batches of a single-process run.
    one = _get(runs, "single")
    np.testing.assert_array_equal(w0["assignments"], one["train_assignments"])
    np.testing.assert_allclose(w0["weights"], one["train_weights"], atol=1e-5)
    np.testing.assert_allclose(w0["loss"], one["train_loss"], rtol=1e-4)


def test_jax_data_parallel(runs):
    pytest.importorskip("jax")
    run = _get(runs, "jax")
    assert int(run["devices"]) == 2
    assert int(run["variable_devices"]) == 2
    x, y = run["stats_x"], run["stats_y"]
    num_classes = run["stats_representatives"].shape[0]
    np.testing.assert_allclose(
        run["stats_representatives"],
        _class_means(x, y, num_classes),
        atol=1e-6,
    )
    np.testing.assert_array_equal(
        run["stats_observed"], np.bincount(y, minlength=num_classes)
    )
    assert not np.any(run["stats_counts_after"])
    np.testing.assert_array_equal(run["stats_assignment"], run["stats_perm"])
    np.testing.assert_array_equal(
        run["train_assignments"][-1], run["train_perm"]
    )


def test_batch_size_not_divisible_by_replicas(runs):
    error = str(_get(runs, "mirrored2")["odd_batch_error"])
    assert "(17)" in error and "replicas (2)" in error
    assert int(_get(runs, "mirrored2")["per_replica"]) == 8


def test_check_global_batch():
    with pytest.raises(ValueError, match=r"\(10\).*\(4\).* 8 or 12"):
        check_global_batch(10, 4)
    assert check_global_batch(12, 4) == 3
    for bad in (0, True, 8.0):
        with pytest.raises(ValueError, match="positive integer"):
            check_global_batch(bad, 1)


@pytest.mark.parametrize(
    "config, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "missing the 'cluster'"),
        ('{"cluster": {"worker": ["a:1"]}}', "missing the 'task'"),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
            '"index": 1}}',
            "index 1 is out of range",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", '
            '"index": 0}}',
            "'chief' is not a job",
        ),
        (
            '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": '
            '{"type": "worker", "index": 0}}',
            "ParameterServerStrategy",
        ),
        (
            '{"cluster": {"worker": ["a"]}, "task": {"type": "worker", '
            '"index": 0}}',
            "'host:port'",
        ),
        (
            '{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": '
            '"worker", "index": 0}}',
            "appears twice",
        ),
        (
            '{"cluster": {"worker": []}, "task": {"type": "worker", '
            '"index": 0}}',
            "non-empty list",
        ),
        (
            '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
            '"index": "0"}}',
            "must be an integer",
        ),
    ],
)
def test_malformed_tf_config(monkeypatch, config, match):
    with pytest.raises(ValueError, match=match):
        _tf_strategy.validate_tf_config(config)
    # `resolve_distribution` validates before creating the strategy.
    monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(ValueError, match=match):
        resolve_distribution("multiworker")


def test_missing_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable"):
        resolve_distribution("multiworker")


def test_multiworker_after_tf_started(monkeypatch):
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow has started in this process.
    (port,) = free_ports(1)
    config = {
        "cluster": {"worker": [f"127.0.0.1:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(RuntimeError, match="before any other TensorFlow op"):
        resolve_distribution("multiworker")


@pytest.mark.parametrize("version", ["3.16.0", "3.14.2", "4.0.0"])
def test_multiworker_patch_refuses_other_keras_versions(monkeypatch, version):
    import keras

    (port,) = free_ports(1)
    config = {
        "cluster": {"worker": [f"127.0.0.1:{port}"]},
        "task": {"type": "worker", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    monkeypatch.setattr(keras, "__version__", version)
    # Refused before the strategy is created (and before the patch).
    with pytest.raises(RuntimeError) as info:
        resolve_distribution("multiworker")
    message = str(info.value)
    assert f"Keras {version} is installed" in message
    assert "Keras 3.15.x" in message and "keras#20585" in message
    with pytest.raises(RuntimeError, match=f"Keras {version} is installed"):
        _tf_strategy._patch_multiworker_reduce(None)
    monkeypatch.setattr(keras, "__version__", "3.15.1")
    _tf_strategy.check_multiworker_patch_version()


def test_valid_tf_config_is_returned():
    config = {
        "cluster": {"chief": ["h0:2222"], "worker": ["h1:2222", "h2:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    assert _tf_strategy.validate_tf_config(json.dumps(config)) == config


def test_unknown_strategy_name():
    with pytest.raises(ValueError, match="`strategy` must be one of"):
        resolve_distribution("horovod")


def test_default_and_auto_strategies_without_gpus():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("auto picks MirroredStrategy when GPUs are visible")
    for name in ("default", "auto"):
        distribution = resolve_distribution(name)
        assert distribution.tf_strategy is tf.distribute.get_strategy()
        assert distribution.num_replicas == 1
