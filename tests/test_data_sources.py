"""Tests for the TFDS, image-folder and archive sources."""

import os
import sys
import tarfile

import numpy as np
import pytest
from conftest import CIFAR10_JPEG
from PIL import Image

from keras_dlpa.data import load_image_folder
from keras_dlpa.data import load_tfds

CIFAR10_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


@pytest.mark.parametrize(
    "name, num_classes, size",
    [
        ("cifar10", 10, 32),
        ("cifar100", 100, 32),
        ("svhn_cropped", 10, 32),
        ("stl10", 10, 96),
    ],
)
def test_tfds_mock_data(name, num_classes, size, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        data = load_tfds(name, split="train", data_dir=tmp_path)
        again = load_tfds(name, split="test", data_dir=tmp_path, download=False)
    assert data.images.shape == (6, size, size, 3)
    assert data.images.dtype == np.uint8 and data.labels.dtype == np.int64
    assert len(data.class_names) == num_classes
    assert 0 <= data.labels.min() and data.labels.max() < num_classes
    assert again.images.shape == data.images.shape


def test_tfds_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"keras-dlpa\[datasets\]"):
        load_tfds("cifar10")


def _write(path, array, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, quality=95)


def _make_folder(root, size=6):
    """3 classes (created out of order), PNG and JPEG files, one extra file."""
    rng = np.random.default_rng(0)
    layout = {"cat": 2, "airplane": 3, "bird": 1}
    arrays = {}
    for name, count in layout.items():
        for i in range(count):
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            ext, fmt = ("png", "PNG") if i % 2 == 0 else ("jpg", "JPEG")
            path = root / name / f"{i:04d}.{ext}"
            _write(path, array, fmt)
            with Image.open(path) as image:  # independent decode
                arrays[(name, i)] = np.asarray(image.convert("RGB"))
    (root / "cat" / "notes.txt").write_text("not an image")
    return arrays


def _check_folder(data, arrays):
    assert data.class_names == ["airplane", "bird", "cat"]
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 2, 2])
    order = [("airplane", 0), ("airplane", 1), ("airplane", 2), ("bird", 0),
             ("cat", 0), ("cat", 1)]  # fmt: skip
    np.testing.assert_array_equal(data.images, [arrays[k] for k in order])


def test_image_folder(tmp_path):
    arrays = _make_folder(tmp_path / "data")
    _check_folder(load_image_folder(tmp_path / "data"), arrays)


def test_image_folder_archive_and_cache(tmp_path):
    arrays = _make_folder(tmp_path / "src" / "train")
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "train", arcname="train")
    cache = tmp_path / "cache"
    _check_folder(load_image_folder(archive, cache_dir=cache), arrays)
    cached = sorted(cache.iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".npz"
    _check_folder(load_image_folder(archive, cache_dir=cache), arrays)
    os.utime(archive, ns=(1, 1))  # a changed archive gets a new cache key
    _check_folder(load_image_folder(archive, cache_dir=cache), arrays)
    assert len(list(cache.iterdir())) == 2
    # The wrapper directory is also descended for plain folders.
    _check_folder(load_image_folder(tmp_path / "src"), arrays)


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_image_folder_archive_long_names(tmp_path, fmt):
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 256, (3, 3, 3), dtype=np.uint8) for _ in "ab"]
    root = tmp_path / "src"
    _write(root / "a" / ("x" * 150 + ".png"), arrays[0], "PNG")
    _write(root / ("b" * 120) / "0.png", arrays[1], "PNG")
    archive = tmp_path / "long.tgz"
    with tarfile.open(archive, "w:gz", format=fmt) as tar:
        tar.add(root, arcname=".")
    data = load_image_folder(archive, use_cache=False)
    assert data.class_names == ["a", "b" * 120]
    np.testing.assert_array_equal(data.images, arrays)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-directories"):
        load_image_folder(tmp_path / "empty")
    pixels = np.zeros((4, 4, 3), np.uint8)
    _write(tmp_path / "holes" / "a" / "0.png", pixels, "PNG")
    (tmp_path / "holes" / "b").mkdir()
    with pytest.raises(ValueError, match="'b'.*contains no images"):
        load_image_folder(tmp_path / "holes")
    _write(tmp_path / "sizes" / "a" / "0.png", pixels, "PNG")
    _write(tmp_path / "sizes" / "b" / "1.png", np.zeros((5, 4, 3), "u1"), "PNG")
    with pytest.raises(ValueError, match=r"same size.*1\.png.*\(5, 4, 3\)"):
        load_image_folder(tmp_path / "sizes")
    (tmp_path / "file.zip").write_bytes(b"x")
    with pytest.raises(ValueError, match="directory or a .tar.gz"):
        load_image_folder(tmp_path / "file.zip")


@pytest.mark.large
def test_real_cifar10_jpeg_archive(cifar10_cache, monkeypatch):
    # Decoded by the fixture (shared with the quickstart test); read back
    # here from its cache.
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(cifar10_cache))
    data = load_image_folder(CIFAR10_JPEG)
    assert data.images.shape == (50000, 32, 32, 3)
    assert data.class_names == CIFAR10_NAMES
    np.testing.assert_array_equal(data.class_counts(), [5000] * 10)
    assert 100 < data.images.mean() < 150  # real photos, not blank


def test_prepared_splits_are_the_runs_splits_and_refuse_others(tmp_path):
    """`--npz` of a prepared file gives the run the arrays a run from the
    images gets (same order, so the same batches), without the source."""
    from conftest import image_folder

    from keras_dlpa.cli.train import build_parser
    from keras_dlpa.cli.train import config_from_args
    from keras_dlpa.training.sources import load_data
    from keras_dlpa.training.sources import splits_with_report
    from keras_dlpa.training.sources import write_prepared_splits

    images = image_folder(tmp_path / "images", 5, 20, size=8)
    common = ["--imbalance", "0.2", "--seed", "3", "--out", "unused"]

    def config(*flags):
        args = build_parser("cifar10_lt").parse_args([*common, *flags])
        return config_from_args("cifar10_lt", args)

    npz = tmp_path / "prepared.npz"
    record = write_prepared_splits(config("--image-dir", str(images)), npz)
    direct = config("--image-dir", str(images))
    full, given_val, _ = load_data(direct)
    expected = splits_with_report(full, direct, given_val)
    from_npz = config("--npz", str(npz))
    train_full, val, test = load_data(from_npz)
    train, val, report = splits_with_report(train_full, from_npz, val)
    assert test is None and record["settings"]["imbalance"] == 0.2
    for got, want in ((train, expected[0]), (val, expected[1])):
        np.testing.assert_array_equal(got.images, want.images)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.class_names == want.class_names
    assert report["after_profile"] == expected[2]["after_profile"]
    assert report["prepared_from"] == str(images)
    assert len(train) < 80 and len(val) == 10
    other = config("--npz", str(npz), "--imbalance", "0.5")
    with pytest.raises(ValueError, match="holds the splits of .*'imbalance"):
        full, given_val, _ = load_data(other)
        splits_with_report(full, other, given_val)
    with pytest.raises(ValueError, match="--image-dir or --npz, not both"):
        config("--npz", str(npz), "--image-dir", str(images))


def test_every_source_kind_has_one_loader():
    from keras_dlpa.training.config import SOURCES
    from keras_dlpa.training.sources import LOADERS

    assert set(LOADERS) == set(SOURCES)


def test_in_memory_and_streamed_data_share_one_interface(tmp_path):
    from keras_dlpa.data.eval_batches import EvalBatches
    from keras_dlpa.data.image_data import from_arrays
    from keras_dlpa.data.labelled_paths import LabelledPaths
    from keras_dlpa.data.plan import Augmentation
    from keras_dlpa.data.source import DataSource
    from keras_dlpa.data.stream_plan import StreamAugmentation
    from keras_dlpa.training.config import ExperimentConfig

    images = np.arange(5 * 12 * 12 * 3).reshape(5, 12, 12, 3) % 251
    in_memory = from_arrays(images.astype("uint8"), [0, 1, 0, 1, 0])
    paths = []
    for i, image in enumerate(in_memory.images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    streamed = LabelledPaths(paths, in_memory.labels, ["0", "1"])
    config = ExperimentConfig.from_dict(dict(mixup_alpha=0.0, image_size=12))
    settings = config.flat()  # fields by name
    from keras_dlpa.data.image_ops import eval_image

    expected = {
        "memory": in_memory.images.astype("float32"),
        # Resize to 12 / 0.875, then the centre 12 x 12 crop.
        "streamed": np.stack(
            [eval_image(streamed.read(i), 12) for i in range(5)]
        ).astype("float32"),
    }
    for name, data, kind in (
        ("memory", in_memory, Augmentation),
        ("streamed", streamed, StreamAugmentation),
    ):
        assert isinstance(data, DataSource)
        assert isinstance(data.augmentation(settings), kind)
        batches = EvalBatches(data, batch_size=2, image_size=12)
        assert len(batches) == 3
        got = np.concatenate([batches[i][0] for i in range(3)])
        np.testing.assert_array_equal(got, expected[name])
    mean, _, shape = streamed.input_statistics(12)
    assert shape == (12, 12, 3) and mean.shape == (3,)
    assert in_memory.input_statistics()[2] == (12, 12, 3)
    with pytest.raises(TypeError, match="ImageData"):
        EvalBatches(in_memory.images)
