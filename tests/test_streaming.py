"""Streamed (ImageNet-style) input: sources, plans, executors, recipes."""

import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT
from conftest import backend_env
from PIL import Image

from keras_dlpa.data.eval_batches import EvalBatches
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.labelled_paths import LabelledPaths
from keras_dlpa.data.labelled_paths import load_labelled_paths
from keras_dlpa.data.labelled_paths import select_classes
from keras_dlpa.data.long_tail import long_tailed_train_val
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.stream_plan import CUTMIX
from keras_dlpa.data.stream_plan import StreamAugmentation
from keras_dlpa.data.stream_plan import box_from_draw
from keras_dlpa.data.stream_plan import stream_epoch_plan
from keras_dlpa.data.streaming import StreamBatchMaker
from keras_dlpa.data.streaming import grain_stream_dataset
from keras_dlpa.training.config import flat_config

RECIPES = Path(REPO_ROOT) / "recipes"
FULL = StreamAugmentation(
    32,
    auto_augment="trivial",
    random_erasing=0.5,
    mixup_alpha=0.2,
    cutmix_alpha=1.0,
)


def _jpegs(root, classes=4, per_class=10, size=40, seed=0, vary=True):
    """`root/nXXXX/NNN.JPEG`: colour-coded classes, varying heights."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        folder = root / f"n{k:04d}"
        folder.mkdir(parents=True)
        colour = rng.uniform(30, 220, size=3)
        for i in range(per_class):
            height = size + (int(rng.integers(0, size // 2)) if vary else 0)
            pixels = colour + rng.normal(0, 25, size=(height, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(
                folder / f"{i:03d}.JPEG", quality=90
            )
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _jpegs(tmp_path_factory.mktemp("stream") / "train")


def test_plan_is_pure_in_seed_and_epoch():
    labels = np.arange(40) % 4
    a = stream_epoch_plan(labels, 8, 3, 1, FULL)
    b = stream_epoch_plan(labels, 8, 3, 1, FULL)
    c = stream_epoch_plan(labels, 8, 3, 2, FULL)
    d = stream_epoch_plan(labels, 8, 4, 1, FULL)
    fields = a.__dataclass_fields__
    for name in fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for other in (c, d):
        assert not np.array_equal(a.indices, other.indices)
        assert not np.array_equal(a.crops, other.crops)
    assert a.indices.shape == (5, 8) and sorted(a.indices.ravel()) == list(
        range(40)
    )
    area, log_ratio = a.crops[..., 0], a.crops[..., 1]
    assert area.min() >= 0.08 and area.max() <= 1.0
    assert np.abs(log_ratio).max() <= np.log(4 / 3) + 1e-6
    assert a.ops.min() >= 0 and np.abs(a.magnitudes).max() <= 1.0
    for step in np.flatnonzero(a.mix == CUTMIX):
        top, left, bottom, right = a.boxes[step]
        area = (bottom - top) * (right - left) / 32**2
        assert a.lam[step] == pytest.approx(1.0 - area)
    # Disabled augmentations draw nothing: their arrays are constants.
    plain = stream_epoch_plan(labels, 8, 3, 1, StreamAugmentation(32))
    assert (plain.ops == -1).all() and not plain.erase.any()
    assert (plain.lam == 1).all()


def test_boxes_fit_any_image():
    rng = np.random.default_rng(0)
    for _ in range(500):
        draw = [rng.uniform(0.01, 1), rng.uniform(-1.2, 1.2), *rng.random(2)]
        height, width = rng.integers(1, 300, size=2)
        top, left, h, w = box_from_draw(draw, height, width)
        assert 0 <= top and top + h <= height and h >= 1
        assert 0 <= left and left + w <= width and w >= 1


def test_sources_share_the_image_folder_rules(tmp_path):
    images = _jpegs(tmp_path / "top" / "train", vary=False)
    (images / ".hidden").mkdir()
    (images / "n0000" / "notes.txt").write_text("x")
    (images / "n0000" / ".DS_Store").write_text("x")
    streamed = load_labelled_paths(images.parent)  # wrapper dir descended
    in_memory = load_image_folder(images)
    assert streamed.class_names == in_memory.class_names
    np.testing.assert_array_equal(streamed.labels, in_memory.labels)
    assert all(Path(p).suffix == ".JPEG" for p in streamed.items)
    archive = tmp_path / "train.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(images, arcname="train")
    cache = tmp_path / "cache"
    from_tar = load_labelled_paths(archive, cache_dir=cache)
    assert from_tar.class_names == streamed.class_names
    np.testing.assert_array_equal(from_tar.labels, streamed.labels)
    assert from_tar.read(5) == streamed.read(5)
    list_file = tmp_path / "train.txt"
    root = images.parent
    lines = [
        f"{Path(p).relative_to(root)} {k}"
        for p, k in zip(streamed.items, streamed.labels)
    ]
    list_file.write_text("\n".join(lines) + "\n")
    listed = load_labelled_paths(list_file, root)
    np.testing.assert_array_equal(listed.items, streamed.items)
    list_file.write_text("a.jpg x\n")
    with pytest.raises(ValueError, match="line 1"):
        load_labelled_paths(list_file, root)


def test_splits_and_class_subsets_work_on_labels():
    labels = np.repeat(np.arange(5), 20)
    items = np.array([f"img{i}.jpg" for i in range(100)])
    data = LabelledPaths(items, labels, list("abcde"))
    train, val = long_tailed_train_val(data, 0.25, 0.1, seed=0)
    assert isinstance(train, LabelledPaths)
    assert val.class_counts().tolist() == [2] * 5
    assert train.class_counts()[0] == 18 and train.class_counts()[-1] < 18
    assert not set(train.items) & set(val.items)
    first = select_classes(data, 2)
    assert first.class_names == ["a", "b"] and len(first) == 40
    named = select_classes(data, ["d", "b"])
    assert named.class_names == ["d", "b"]
    assert named.labels[named.items == "img60.jpg"].tolist() == [0]
    with pytest.raises(ValueError, match="Unknown"):
        select_classes(data, ["z"])


def test_executors_and_resume_slices_give_identical_batches(images):
    data = load_labelled_paths(images)
    maker = StreamBatchMaker(data, 8, 1, FULL)
    steps = maker.steps
    dataset, _ = grain_stream_dataset(
        data, TrainingInput(8, 1, 0, 2, FULL), workers=0
    )
    batches = list(dataset)
    assert len(batches) == 2 * steps
    x, y = batches[0]
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (8, 4)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    resumed, _ = grain_stream_dataset(
        data, TrainingInput(8, 1, 1, 2, FULL), workers=0
    )
    for (xa, ya), (xb, yb) in zip(batches[steps:], resumed):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(batches[0][0], batches[steps][0])
    from keras_dlpa.data.streaming import tf_stream_dataset

    tf_batches, _ = tf_stream_dataset(data, TrainingInput(8, 1, 0, 2, FULL))
    for (xa, ya), (xb, yb) in zip(batches, tf_batches.as_numpy_iterator()):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    evaluation = EvalBatches(data, 16, 32)
    assert len(evaluation) == 3 and evaluation[2][0].shape == (8, 32, 32, 3)


def _recipe(name, args, env, timeout=300):
    result = subprocess.run(
        [sys.executable, str(RECIPES / f"{name}.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


QUICK = ["--quick", "--epochs", "1", "--no-report", "--seed", "1"]


def _done(out, classes):
    config = flat_config(json.loads((out / "config.json").read_text()))
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert config["streaming"] is True
    assert config["num_classes"] == classes
    assert evaluation["completed"] is True
    assert len(evaluation["last"]["per_class_accuracy"]) == classes
    return config, evaluation


def test_imagenet_lt_quick_list_file_with_worker_processes(images, tmp_path):
    root = images.parent
    data = load_labelled_paths(images)
    lines = [
        f"{Path(p).relative_to(root)} {k}"
        for p, k in zip(data.items, data.labels)
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    args = QUICK + [
        "--root", str(root), "--train-list", str(tmp_path / "train.txt"),
        "--image-size", "32", "--batch-size", "8", "--workers", "2",
        "--val-fraction", "0.25", "--verbose", "1", "--out", str(out),
        "--test-list", str(tmp_path / "train.txt"),
    ]  # fmt: skip
    result = _recipe("imagenet_lt", args, backend_env(cache=tmp_path / "cache"))
    assert "1/3" in result.stdout  # progress from the first batch
    config, evaluation = _done(out, 4)
    assert len(evaluation["test"]["last"]["per_class_accuracy"]) == 4
    assert config["lr_decay"] == "cosine"
    assert config["auto_augment"] == "trivial"
    assert config["executor"] == "grain"  # decode worker processes
    assert config["cutmix_alpha"] == 1.0 and config["mixup_alpha"] == 0.2
    assert config["backbone"] == "resnet8_tiny" and config["dim"] == 512
    assert config["train_size"] == 28 and config["val_size"] == 12


def test_imagenet200_option_on_jax_without_tensorflow(images, tmp_path):
    out = tmp_path / "run"
    args = QUICK + [
        "--image-dir", str(images), "--classes", "3", "--image-size", "32",
        "--batch-size", "8", "--workers", "0", "--verbose", "0",
        "--out", str(out), "--test-dir", str(images),
    ]  # fmt: skip
    _recipe("imagenet", args, backend_env("jax", tmp_path / "cache"))
    config, evaluation = _done(out, 3)
    assert config["class_names"] == ["n0000", "n0001", "n0002"]
    assert config["backend"] == "jax" and "tensorflow_version" not in config
    assert len(evaluation["test"]["last"]["per_class_accuracy"]) == 3


def test_finetune_quick_pretrained_backbone(images, tmp_path):
    out = tmp_path / "run"
    args = QUICK + [
        "--epochs", "2", "--image-dir", str(images), "--weights", "none",
        "--image-size", "32", "--batch-size", "8", "--workers", "0",
        "--verbose", "0", "--out", str(out),
    ]  # fmt: skip
    _recipe("finetune", args, backend_env(cache=tmp_path / "cache"))
    config, _ = _done(out, 4)
    assert config["backbone"] == "mobilenetv3small"
    assert config["freeze_epochs"] == 1 and config["trunk_lr_scale"] == 0.1
    assert config["val_size"] == 4  # one image per class


def _final(out):
    import keras

    model = keras.saving.load_model(out / "model.keras", compile=False)
    return model.get_weights(), dict(np.load(out / "final_state.npz"))


def test_killed_streaming_run_resumes_exactly(images, tmp_path):
    env = backend_env(cache=tmp_path / "cache")

    def args(out):
        return [
            "--quick", "--epochs", "3", "--image-dir", str(images),
            "--image-size", "32", "--batch-size", "8", "--workers", "0",
            "--verbose", "0", "--no-report", "--seed", "2", "--out", str(out),
            "--deterministic", "--cutmix", "0",
        ]  # fmt: skip

    reference = tmp_path / "reference"
    _recipe("imagenet_lt", args(reference), env)
    resumed = tmp_path / "resumed"
    process = subprocess.Popen(
        [sys.executable, str(RECIPES / "imagenet_lt.py"), *args(resumed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    manifest = resumed / "checkpoints" / "epoch-000001.json"
    deadline = time.monotonic() + 300
    while not manifest.is_file():
        assert process.poll() is None, "the run ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (resumed / "model.keras").exists()
    _recipe("imagenet_lt", args(resumed) + ["--resume"], env)
    weights_a, state_a = _final(reference)
    weights_b, state_b = _final(resumed)
    for key in ("assignment", "representatives", "observed"):
        np.testing.assert_array_equal(state_a[key], state_b[key], key)
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)


def test_tfds_records_stream_without_decoding_up_front():
    import tensorflow_datasets as tfds

    from keras_dlpa.data.labelled_paths import load_tfds_records

    with tfds.testing.mock_data(num_examples=24):
        data = load_tfds_records("cifar10", "train")
        assert len(data) == 24 and data.num_classes == 10
        assert data.items.tolist() == list(range(24))  # indices, no pixels
        x, y = StreamBatchMaker(data, 8, 0, StreamAugmentation(16))(0)
    assert x.shape == (8, 16, 16, 3) and y.shape == (8,)
    np.testing.assert_array_equal(y, data.labels[_first(data)])


def _first(data):
    plan = stream_epoch_plan(data.labels, 8, 0, 0, StreamAugmentation(16))
    return plan.indices[0]
