"""The epoch plan and its executors (tf.data, grain and device)."""

import json

import keras
import numpy as np
import pytest

from keras_dlpa.data import from_arrays
from keras_dlpa.data.grain_executor import grain_train_dataset
from keras_dlpa.data.pipeline import epoch_keyed_pipeline
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import BatchMaker
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import epoch_plan
from keras_dlpa.training.config import flat_config

AUGMENTATIONS = [
    Augmentation(4, True, 1.0),
    Augmentation(0, False, 0.0),
    Augmentation(2, True, 0.0, class_balanced=True),
    Augmentation(3, False, 0.4, class_balanced=True),
]


def _data(n=150, size=12, classes=7, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return from_arrays(images, rng.integers(0, classes, n), num_classes=classes)


def test_plan_is_a_pure_function_of_seed_and_epoch():
    labels = _data().labels
    aug = Augmentation(4, True, 1.0)
    a = epoch_plan(labels, 32, seed=3, epoch=5, augmentation=aug)
    b = epoch_plan(labels, 32, seed=3, epoch=5, augmentation=aug)
    for x, y in zip(a.arrays(), b.arrays()):
        np.testing.assert_array_equal(x, y)
    other_epoch = epoch_plan(labels, 32, seed=3, epoch=6, augmentation=aug)
    other_seed = epoch_plan(labels, 32, seed=4, epoch=5, augmentation=aug)
    assert not np.array_equal(a.indices, other_epoch.indices)
    assert not np.array_equal(a.indices, other_seed.indices)
    assert a.indices.shape == (150 // 32, 32)
    assert len(set(a.indices.ravel().tolist())) == a.indices.size
    assert a.offsets.min() >= 0 and a.offsets.max() <= 8
    assert 0 < a.lam.min() and a.lam.max() < 1
    for row in a.partners:
        assert sorted(row.tolist()) == list(range(32))


@pytest.mark.parametrize("augmentation", AUGMENTATIONS, ids=str)
def test_both_executors_yield_bit_identical_batches(augmentation):
    data = _data()
    training_input = TrainingInput(32, 9, 1, 3, augmentation)
    tf_ds, steps = epoch_keyed_pipeline(data, training_input)
    grain_ds, grain_steps = grain_train_dataset(data, training_input)
    tf_batches = [(x.numpy(), y.numpy()) for x, y in tf_ds]
    grain_batches = list(grain_ds)
    assert steps == grain_steps == 4
    assert len(tf_batches) == len(grain_batches) == 2 * steps
    for (xa, ya), (xb, yb) in zip(tf_batches, grain_batches):
        assert xa.dtype == xb.dtype == np.float32
        assert ya.dtype == yb.dtype
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_batch_maker_matches_a_naive_crop_flip_mixup():
    data = _data(n=40, size=6)
    aug = Augmentation(2, True, 1.0)
    plan = epoch_plan(data.labels, 8, seed=1, epoch=0, augmentation=aug)
    images, labels = BatchMaker(data, aug)(plan, 2)
    expected = []
    for i, (dy, dx), flip in zip(
        plan.indices[2], plan.offsets[2], plan.flips[2]
    ):
        padded = np.pad(data.images[i], ((2, 2), (2, 2), (0, 0)))
        crop = padded[dy : dy + 6, dx : dx + 6]
        expected.append(crop[:, ::-1] if flip else crop)
    expected = np.stack(expected).astype(np.float64)
    lam = float(plan.lam[2])
    partners = plan.partners[2]
    mixed = lam * expected + (1 - lam) * expected[partners]
    np.testing.assert_allclose(images, mixed, rtol=1e-6, atol=1e-4)
    onehot = np.eye(7)[data.labels[plan.indices[2]]]
    np.testing.assert_allclose(
        labels, lam * onehot + (1 - lam) * onehot[partners], atol=1e-6
    )


def test_grain_resume_is_a_slice():
    data = _data()
    aug = Augmentation(4, True, 0.5)
    full, steps = grain_train_dataset(data, TrainingInput(32, 2, 0, 3, aug))
    resumed, _ = grain_train_dataset(data, TrainingInput(32, 2, 2, 3, aug))
    full_batches = list(full)[2 * steps :]
    for (xa, ya), (xb, yb) in zip(full_batches, list(resumed)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_plan_argument_errors():
    labels = _data().labels
    with pytest.raises(ValueError, match="batch_size"):
        epoch_plan(labels, 0, 0, 0)
    with pytest.raises(ValueError, match="batch_size"):
        epoch_plan(labels, 151, 0, 0)
    with pytest.raises(ValueError, match="epoch"):
        epoch_plan(labels, 8, 0, -1)
    with pytest.raises(ValueError, match="mixup_alpha"):
        Augmentation(mixup_alpha=-1.0)
    with pytest.raises(ValueError, match="crop_padding"):
        Augmentation(crop_padding=-2)
    with pytest.raises(ValueError, match="initial_epoch=4, epochs=3"):
        TrainingInput(8, 0, 4, 3)


def test_training_input_names_the_bad_argument():
    for args, message in (
        ((0, 0, 0, 1), "batch_size=0"),
        ((8.5, 0, 0, 1), "batch_size=8.5"),
        ((8, -1, 0, 1), "seed=-1"),
        ((8, 0, 1.5, 2), "initial_epoch=1.5"),
        ((8, 0, 0, -1), "epochs=-1"),
    ):
        with pytest.raises(ValueError, match=message):
            TrainingInput(*args)
    with pytest.raises(TypeError, match="augmentation='crop'"):
        TrainingInput(8, 0, 0, 1, "crop")
    same = TrainingInput(np.int64(8), 0, 0, 1)
    assert type(same.batch_size) is int and same.augmentation is None
    # An executor of in-memory data wants an in-memory augmentation.
    from keras_dlpa.data import StreamAugmentation

    streamed = TrainingInput(8, 0, 0, 1, StreamAugmentation(image_size=12))
    with pytest.raises(TypeError, match="must be of type `Augmentation`"):
        grain_train_dataset(_data(), streamed)


@pytest.mark.parametrize("augmentation", AUGMENTATIONS, ids=str)
def test_device_executor_equals_the_numpy_plan_bit_for_bit(augmentation):
    from keras_dlpa.data.device_executor import device_train_dataset

    data = _data()
    training_input = TrainingInput(32, 9, 1, 3, augmentation)
    batches, steps = device_train_dataset(data, training_input)
    maker = BatchMaker(data, augmentation)
    expected = [
        maker(epoch_plan(data.labels, 32, 9, e, augmentation, 7), s)
        for e in (1, 2)
        for s in range(steps)
    ]
    got = [(np.asarray(x), np.asarray(y)) for x, y in batches]
    assert steps == 4 and len(got) == len(expected) == 8
    for (xa, ya), (xb, yb) in zip(got, expected):
        assert xa.dtype == xb.dtype == np.float32 and ya.dtype == yb.dtype
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_device_executor_refuses_what_it_cannot_run():
    from keras_dlpa.data.device_executor import device_train_dataset
    from keras_dlpa.data.executor import resolve_executor
    from keras_dlpa.data.input_shard import InputShard

    one_epoch = TrainingInput(32, 0, 0, 1)
    with pytest.raises(ValueError, match="one process's whole batches|whole"):
        device_train_dataset(_data(), one_epoch, shard=InputShard(0, 2))
    with pytest.raises(TypeError, match="in-memory data"):
        device_train_dataset(_data().labels, one_epoch)
    with pytest.raises(ValueError, match="in-memory data"):
        resolve_executor("device", in_memory=False)
    with pytest.raises(ValueError, match="executor"):
        resolve_executor("gpu")
    # On CPU, auto never picks the device executor.
    assert resolve_executor("auto") in ("tf", "grain")
    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match="needs the JAX backend"):
            resolve_executor("device")


def test_device_executor_trains_as_grain_does_on_jax(tmp_path):
    """A recipe run on JAX (no TensorFlow) with the device executor ends
    with the grain run's weights, assignment, statistics and metrics."""
    from conftest import backend_env
    from test_resume import _args
    from test_resume import _assert_same_run
    from test_resume import _images
    from test_resume import _run

    images = _images(tmp_path / "images")
    env = backend_env("jax", tmp_path / "cache")
    for executor in ("grain", "device"):
        out = tmp_path / executor
        args = _args(images, out, "--executor", executor, "--verbose", "2")
        result = _run(args, env)
        config = flat_config(json.loads((out / "config.json").read_text()))
        assert config["executor"] == executor and config["backend"] == "jax"
    assert "Input: the device executor" in result.stdout
    _assert_same_run(tmp_path / "grain", tmp_path / "device")
