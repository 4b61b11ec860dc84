"""Multi-host input: each worker builds only its rows of every global batch.

In process: the shards of a planned batch, put together, are that batch bit
for bit (streamed and in-memory makers, grain and tf.data executors), and a
shard decodes only its rows (and the mixup/cutmix partners they need).

Across processes (`large`): two workers on 127.0.0.1 (TensorFlow
`MultiWorkerMirroredStrategy` from `TF_CONFIG`; JAX
`jax.distributed.initialize` on CPU with gloo collectives, via the
`KERAS_DISTRIBUTION_*` variables) train on streamed JPEGs and end with the
weights, class statistics and logits of one process with the same global
batch, each having decoded only its share; the worker scripts are in
`tests/distribute_workers/`.
"""

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from conftest import backend_env
from conftest import free_ports
from test_streaming import FULL
from test_streaming import _jpegs

from keras_dlpa.data import Augmentation
from keras_dlpa.data import BatchMaker
from keras_dlpa.data import InputShard
from keras_dlpa.data import StreamAugmentation
from keras_dlpa.data import StreamBatchMaker
from keras_dlpa.data import TrainingInput
from keras_dlpa.data import epoch_plan
from keras_dlpa.data import from_arrays
from keras_dlpa.data import grain_train_dataset
from keras_dlpa.data import load_labelled_paths
from keras_dlpa.data import stream_epoch_plan
from keras_dlpa.data import stream_train_dataset
from keras_dlpa.data.labelled_paths import LabelledPaths

WORKERS = Path(REPO_ROOT) / "tests" / "distribute_workers"
TIMEOUT_S = 300
BATCH, SEED = 8, 5
PLAIN = StreamAugmentation(32, flip=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _jpegs(tmp_path_factory.mktemp("multihost") / "train")


def _needed(plan, step, shard):
    """Positions a shard decodes: its rows and their mixing partners."""
    own = shard.positions(plan.indices.shape[1])
    if (plan.partners[step] == np.arange(plan.indices.shape[1])).all():
        return own
    return np.union1d(own, plan.partners[step][own])


@pytest.mark.core
def test_input_shard_rows_and_errors():
    assert InputShard().rows(8) == slice(0, 8)
    assert InputShard(1, 2).rows(8) == slice(4, 8)
    np.testing.assert_array_equal(InputShard(2, 4).positions(8), [4, 5])
    with pytest.raises(ValueError, match=r"batch size \(6\) must be divis"):
        InputShard(0, 4).local_batch_size(6)
    for index, count in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="0 <= `index` < `count`"):
            InputShard(index, count)
    with pytest.raises(ValueError, match="must be an integer"):
        InputShard(0.5, 2)


@pytest.mark.core
def test_one_host_training_input_is_the_whole_batch():
    from keras_dlpa.training.distribution import Distribution

    distribution = Distribution("default", 1)
    assert distribution.is_chief
    assert distribution.training_input(lambda shard: shard, 8) == InputShard()


def test_jax_multiworker_without_a_cluster_is_a_clear_error(tmp_path):
    env = backend_env("jax", tmp_path / "cache")
    for name in list(env):
        if name.startswith(("KERAS_DISTRIBUTION_", "JAX_COORDINATOR")):
            del env[name]
    code = (
        "from keras_dlpa.training.distribution import resolve_distribution\n"
        "resolve_distribution('multiworker')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "KERAS_DISTRIBUTION_NUM_PROCESSES=N" in result.stderr
    assert "coordinator_address should be defined" in result.stderr


def _count_reads(monkeypatch):
    reads = []
    read = LabelledPaths.read

    def counting_read(self, index):
        reads.append(int(index))
        return read(self, index)

    monkeypatch.setattr(LabelledPaths, "read", counting_read)
    return reads


@pytest.mark.core
@pytest.mark.parametrize("augmentation", [FULL, PLAIN], ids=["mixed", "plain"])
def test_stream_shards_rebuild_the_global_batch(
    images, monkeypatch, augmentation
):
    data = load_labelled_paths(images)
    reads = _count_reads(monkeypatch)
    whole = StreamBatchMaker(data, BATCH, SEED, augmentation)
    plan = whole.plan(0)
    assert set(plan.mix) != {0} or augmentation is PLAIN
    for count in (2, 4):
        makers = [
            StreamBatchMaker(
                data, BATCH, SEED, augmentation, InputShard(k, count)
            )
            for k in range(count)
        ]
        for step in range(whole.steps):
            x, y = whole(step)
            parts = []
            for k, maker in enumerate(makers):
                del reads[:]
                parts.append(maker(step))
                needed = _needed(plan, step, InputShard(k, count))
                # Only its rows (and their partners), each decoded once.
                assert sorted(reads) == sorted(plan.indices[step][needed])
                assert parts[-1][0].shape[0] == BATCH // count
            np.testing.assert_array_equal(
                np.concatenate([p[0] for p in parts]), x
            )
            np.testing.assert_array_equal(
                np.concatenate([p[1] for p in parts]), y
            )


@pytest.mark.core
def test_in_memory_shards_rebuild_the_global_batch():
    rng = np.random.default_rng(0)
    data = from_arrays(
        rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8),
        np.arange(40) % 4,
    )
    augmentation = Augmentation(crop_padding=2, flip=True, mixup_alpha=0.4)
    plan = epoch_plan(data.labels, BATCH, SEED, 0, augmentation, 4)
    whole = BatchMaker(data, augmentation)
    halves = [
        BatchMaker(data, augmentation, shard=InputShard(k, 2)) for k in (0, 1)
    ]
    for step in range(len(plan.indices)):
        x, y = whole(plan, step)
        parts = [maker(plan, step) for maker in halves]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    # grain executor: element i of shard k is rows k of batch i.
    training_input = TrainingInput(BATCH, SEED, 0, 1, augmentation)
    full, steps = grain_train_dataset(data, training_input)
    shard, _ = grain_train_dataset(data, training_input, shard=InputShard(1, 2))
    for (xa, ya), (xb, yb) in zip(full, shard):
        np.testing.assert_array_equal(xa[4:], xb)
        np.testing.assert_array_equal(ya[4:], yb)


def test_tf_executors_build_the_same_shards(images):
    pytest.importorskip("tensorflow")
    from keras_dlpa.data.pipeline import epoch_keyed_pipeline

    rng = np.random.default_rng(1)
    data = from_arrays(
        rng.integers(0, 256, size=(24, 8, 8, 3), dtype=np.uint8),
        np.arange(24) % 3,
    )
    augmentation = Augmentation(crop_padding=2, flip=True, mixup_alpha=0.4)
    training_input = TrainingInput(BATCH, SEED, 0, 1, augmentation)
    for k in (0, 1):
        shard = InputShard(k, 2)
        tf_ds, _ = epoch_keyed_pipeline(data, training_input, shard=shard)
        grain_ds, _ = grain_train_dataset(data, training_input, shard=shard)
        pairs = list(zip(tf_ds.as_numpy_iterator(), grain_ds))
        assert len(pairs) == 3
        for (xa, ya), (xb, yb) in pairs:
            assert xa.shape == (BATCH // 2, 8, 8, 3)
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    streamed = load_labelled_paths(images)
    shard = InputShard(1, 2)
    streamed_input = TrainingInput(BATCH, SEED, 0, 1, FULL)
    tf_ds, _ = stream_train_dataset(
        streamed, streamed_input, executor="tf", shard=shard
    )
    grain_ds, _ = stream_train_dataset(
        streamed, streamed_input, workers=0, shard=shard
    )
    for (xa, ya), (xb, yb) in zip(tf_ds.as_numpy_iterator(), grain_ds):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def _cluster_env(backend, ports, index):
    if backend == "tensorflow":
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        config = {
            "cluster": cluster,
            "task": {"type": "worker", "index": index},
        }
        return {"TF_CONFIG": json.dumps(config)}
    return {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{ports[0]}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
    }


def _launch(tmp_path, backend, script, args):
    """Runs `args("ref")` alone and `args("w0")`, `args("w1")` as a cluster.

    All three start at once; returns `{name: dict of the .npz}` and fails
    with the output of any process that did not write its result.
    """
    ports = free_ports(2)
    base = backend_env(backend, tmp_path / "cache")
    jobs = {}
    for name in ("ref", "w0", "w1"):
        env = dict(base)
        if name != "ref":
            env.update(_cluster_env(backend, ports, int(name[1])))
        jobs[name] = subprocess.Popen(
            [sys.executable, str(WORKERS / script), *args(name)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    deadline = time.monotonic() + TIMEOUT_S
    results, failures = {}, []
    try:
        for name, proc in jobs.items():
            try:
                output, _ = proc.communicate(
                    timeout=max(deadline - time.monotonic(), 1)
                )
            except subprocess.TimeoutExpired:
                failures.append(f"{name}: timed out after {TIMEOUT_S} s")
                continue
            path = tmp_path / f"{name}.npz"
            if proc.returncode == 0 and path.exists():
                results[name] = dict(np.load(path))
            else:
                failures.append(
                    f"{name}: exit {proc.returncode}\n{output[-3000:]}"
                )
    finally:
        for proc in jobs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    if failures:
        pytest.fail("\n".join(failures))
    return results


def _check_same_training(ref, workers, keys):
    for k, worker in enumerate(workers):
        np.testing.assert_array_equal(worker["input_shard"], [k, 2])
        assert int(worker["num_replicas"]) == 2
        np.testing.assert_array_equal(worker["assignment"], ref["assignment"])
        np.testing.assert_array_equal(worker["observed"], ref["observed"])
        for key in keys:
            np.testing.assert_allclose(
                worker[key], ref[key], atol=1e-5, err_msg=key
            )
    np.testing.assert_array_equal(ref["input_shard"], [0, 1])


def _check_reads(data, plan, ref, workers):
    """Each worker decoded exactly its rows + partners of every batch."""
    everything = set(data.items[plan.indices.ravel()])
    assert set(ref["reads"]) & set(data.items) == everything
    for k, worker in enumerate(workers):
        shard = InputShard(k, 2)
        expected = {
            path
            for step in range(len(plan.indices))
            for path in data.items[
                plan.indices[step][_needed(plan, step, shard)]
            ]
        }
        assert set(worker["reads"]) & set(data.items) == expected
        assert len(expected) < len(everything)


@pytest.mark.large
def test_streamed_multiworker_matches_one_process_on_jax(images, tmp_path):
    """Two JAX processes (no TensorFlow) against one; the TensorFlow
    workers run the whole runner (the next test), with the same checks."""
    backend = "jax"
    settings = json.dumps(
        {
            "image_dir": str(images),
            "batch_size": BATCH,
            "seed": SEED,
            "augmentation": dataclasses.asdict(FULL),
        }
    )

    def args(name):
        strategy = "default" if name == "ref" else "multiworker"
        return [settings, strategy, str(tmp_path / f"{name}.npz")]

    runs = _launch(tmp_path, backend, "multihost_stream.py", args)
    ref, workers = runs["ref"], [runs["w0"], runs["w1"]]
    _check_same_training(ref, workers, ("weights", "representatives", "logits"))
    for worker in workers:  # every process has all the logits
        assert worker["logits"].shape == (40, 4)
    data = load_labelled_paths(images)
    plan = stream_epoch_plan(data.labels, BATCH, SEED, 0, FULL)
    assert set(plan.mix) == {1, 2}  # mixup and cutmix batches
    _check_reads(data, plan, ref, workers)


@pytest.mark.large
def test_run_experiment_streams_on_two_tensorflow_workers(images, tmp_path):
    """The runner (`--strategy multiworker`): same run as one process,
    with the class-scaled IPM loss (global batch counts) and synchronised
    BatchNorm."""
    from keras_dlpa.training import ExperimentConfig
    from keras_dlpa.training.sources import load_data
    from keras_dlpa.training.sources import make_splits

    fields = dict(
        dataset="tiny", source="image_dir", image_dir=str(images),
        streaming=True, image_size=32, backbone="resnet8_tiny", epochs=1,
        batch_size=BATCH, warmup_epochs=0, imbalance=None, val_fraction=0.25,
        test_split=None, data_workers=0, auto_augment="trivial",
        random_erasing=0.5, mixup_alpha=0.2, cutmix_alpha=1.0,
        class_scale=True, sync_batch_norm=True, seed=3, verbose=0,
        report=False, eval_batch_size=16,
    )  # fmt: skip

    def args(name):
        one = name == "ref"
        config = dict(
            fields,
            strategy="default" if one else "multiworker",
            out=str(tmp_path / ("one" if one else "cluster")),
        )
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        return [str(path), str(tmp_path / f"{name}.npz")]

    runs = _launch(tmp_path, "tensorflow", "multihost_runner.py", args)
    ref, workers = runs["ref"], [runs["w0"], runs["w1"]]
    _check_same_training(ref, workers, ("weights", "representatives"))
    # One `out` for both: the chief writes it, worker 1 a subdirectory.
    cluster = tmp_path / "cluster"
    assert (cluster / "model.keras").is_file()
    assert (cluster / "worker-1" / "model.keras").is_file()
    config = ExperimentConfig.from_dict(dict(fields, out=str(cluster)))
    settings = config.flat()  # fields by name
    train, _ = make_splits(load_data(config)[0], config)
    plan = stream_epoch_plan(
        train.labels, BATCH, config.run.seed, 0, train.augmentation(settings)
    )
    _check_reads(train, plan, ref, workers)
