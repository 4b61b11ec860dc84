"""Bad image files are named before training (issue #21).

Unreadable, truncated and unsupported files of in-memory, archived and
streamed sources are listed by path in one error, or skipped, logged and
recorded with `skip_bad_images=True`; WebP/BMP/GIF/TIFF are images; wide
grey modes (16/32-bit, float) scale to 8 bit in every decoder; streamed
decode errors name the file in one short line; `predict` keeps the good
predictions, lists the failures and runs softmax runs. References: PIL's
own 8-bit decode and `round(v / 257)` for 16-bit samples.
"""

import csv
import io
import json
import logging
import tarfile

import conftest
import keras
import numpy as np
import pytest
from PIL import Image

import keras_dlpa
from keras_dlpa.cli import main as cli_main
from keras_dlpa.data.eval_batches import EvalBatches
from keras_dlpa.data.image_folder import load_image_folder
from keras_dlpa.data.labelled_paths import load_labelled_paths
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.stream_plan import StreamAugmentation
from keras_dlpa.data.streaming import StreamBatchMaker
from keras_dlpa.data.streaming import grain_stream_dataset
from keras_dlpa.models import PerChannelNormalization
from keras_dlpa_serving import onnx_client

NAMES = ["ant", "bee", "cat"]


def image_folder(root, num_classes, per_class, size=8, ext="png"):
    return conftest.image_folder(root, num_classes, per_class, size, ext)


def _png_bytes(size=8, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _bad_folder(root):
    """3 classes x 4 PNGs plus a corrupt JPEG, a truncated PNG and a HEIC
    file (the 3 bad files); a text side-car and hidden files are ignored."""
    image_folder(root, 3, 4, size=8)
    bad = [
        root / "class00" / "corrupt.jpg",
        root / "class01" / "truncated.png",
        root / "class02" / "photo.heic",
    ]
    bad[0].write_bytes(b"not a jpeg")
    bad[1].write_bytes(_png_bytes()[:60])
    bad[2].write_bytes(b"\0\0\0\x18ftypheic")
    (root / "class02" / "notes.txt").write_text("labels from the camera")
    (root / "class02" / ".DS_Store").write_bytes(b"\0")
    (root / ".hidden").mkdir()
    return [str(p) for p in bad]


def test_image_folder_lists_every_bad_file_before_training(tmp_path):
    bad = _bad_folder(tmp_path / "data")
    with pytest.raises(ValueError) as info:
        load_image_folder(tmp_path / "data")
    message = str(info.value)
    assert message.startswith(f"3 of 15 files in {tmp_path / 'data'} ")
    assert all(path in message for path in bad), message
    assert "truncated" in message and "unsupported file type .heic" in message
    assert "--skip-bad-images" in message and "\n" not in message
    assert "BytesIO" not in message
    # Many bad files: the first 10 and a count.
    many = tmp_path / "many"
    image_folder(many, 2, 2, size=8)
    for i in range(12):
        (many / "class00" / f"bad{i:02d}.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"12 of 16 .* and 2 more\. Fix"):
        load_image_folder(many)


def test_skip_bad_images_drops_logs_and_records_them(tmp_path, caplog):
    bad = _bad_folder(tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        data = load_image_folder(tmp_path / "data", skip_bad_images=True)
    assert len(data) == 12 and data.class_counts().tolist() == [4, 4, 4]
    assert data.skipped_files == tuple(sorted(bad))
    assert data.subset([0, 5]).skipped_files == data.skipped_files
    assert "Skipped 3 of 15 files" in caplog.text
    assert all(path in caplog.text for path in bad)
    # A class left without a readable image is an error naming it.
    (tmp_path / "data" / "class03").mkdir()
    (tmp_path / "data" / "class03" / "x.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="'class03'"):
        load_image_folder(tmp_path / "data", skip_bad_images=True)


def test_archive_cache_never_serves_a_skip_run_to_a_strict_load(tmp_path):
    _bad_folder(tmp_path / "src")
    archive = tmp_path / "train.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="train")
    cache = tmp_path / "cache"
    members = [
        "train/class00/corrupt.jpg",
        "train/class01/truncated.png",
        "train/class02/photo.heic",
    ]
    skipped = load_image_folder(archive, cache, skip_bad_images=True)
    assert skipped.skipped_files == tuple(members) and len(skipped) == 12
    for _ in range(2):  # the skip run's cache must not hide the error
        with pytest.raises(ValueError, match="train/class00/corrupt.jpg"):
            load_image_folder(archive, cache)
    cached = load_image_folder(archive, cache, skip_bad_images=True)
    assert [p.name.endswith("-skip.npz") for p in cache.iterdir()] == [True]
    assert cached.skipped_files == tuple(members)
    np.testing.assert_array_equal(cached.images, skipped.images)


def test_webp_bmp_gif_and_tiff_are_images(tmp_path):
    from PIL import features

    assert features.check("webp"), "this Pillow cannot read WebP"
    rng = np.random.default_rng(1)
    formats = {"webp": {"lossless": True}, "bmp": {}, "gif": {}, "tif": {}}
    formats.update({"TIFF": {}, "JPEG": {}, "png": {}})
    expected = []
    for name in ("a", "b"):
        for ext, options in formats.items():
            pixels = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            path = tmp_path / "data" / name / f"{name}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, **options)
            with Image.open(path) as image:
                expected.append((str(path), np.asarray(image.convert("RGB"))))
    expected.sort()
    data = load_image_folder(tmp_path / "data")
    assert len(data) == 14 and data.class_counts().tolist() == [7, 7]
    np.testing.assert_array_equal(data.images, [e[1] for e in expected])
    streamed = load_labelled_paths(tmp_path / "data")
    assert sorted(streamed.items.tolist()) == [e[0] for e in expected]


def test_streamed_folders_name_unsupported_files(tmp_path):
    bad = _bad_folder(tmp_path / "data")
    with pytest.raises(ValueError) as info:
        load_labelled_paths(tmp_path / "data")
    assert str(info.value).startswith("1 of 15 files in")
    assert bad[2] in str(info.value)  # only listing: nothing is decoded


def _wide_images():
    """`(mode, PIL image, expected 8-bit grey)`, references by hand."""
    u16 = np.array([[0, 128, 129, 257], [32768, 65534, 65535, 1000]])
    expected16 = np.array([[0, 0, 1, 1], [128, 255, 255, 4]])
    i32 = np.array([[0, -5, 2**31 - 1, 2**30]], np.int32)
    floats = np.array([[0.0, 0.5, 1.0, 0.25]], np.float32)
    wide = np.array([[-3.0, 12.4, 300.0, np.nan]], np.float32)
    big = u16.astype(">u2").tobytes()
    return [
        ("I;16", Image.fromarray(u16.astype(np.uint16)), expected16),
        ("I;16B", Image.frombytes("I;16B", (4, 2), big), expected16),
        ("I", Image.fromarray(u16.astype(np.int32)), expected16),
        ("I", Image.fromarray(i32), np.array([[0, 0, 255, 128]])),
        ("F", Image.fromarray(floats), np.array([[0, 128, 255, 64]])),
        ("F", Image.fromarray(wide), np.array([[0, 12, 255, 0]])),
    ]


def test_wide_grey_modes_scale_to_8_bit_in_every_decoder(tmp_path):
    from keras_dlpa.data.image_ops import open_image

    for i, (mode, image, expected) in enumerate(_wide_images()):
        assert image.mode == mode
        buffer = io.BytesIO()
        image.save(buffer, "PNG" if mode == "I;16" else "TIFF")
        blob = buffer.getvalue()
        ext = "png" if mode == "I;16" else "tif"
        path = tmp_path / f"set{i}" / "grey" / f"0.{ext}"
        path.parent.mkdir(parents=True)
        path.write_bytes(blob)
        rgb = np.repeat(expected[..., None], 3, axis=-1).astype(np.uint8)
        in_memory = load_image_folder(path.parent.parent).images[0]
        streamed = np.asarray(open_image(blob))
        client = onnx_client.load_image(path, (None, None, 3))
        for decoded in (in_memory, streamed, client):
            assert decoded.dtype == np.uint8, mode
            np.testing.assert_array_equal(decoded, rgb, err_msg=mode)


def test_every_pil_mode_decodes_to_uint8_rgb():
    from keras_dlpa_serving.image_decode import to_8bit

    modes = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"]
    modes += ["LAB", "HSV", "I", "I;16", "I;16B", "I;16L", "F", "La"]
    modes += ["RGBa", "RGBX"]
    for mode in modes:
        pixels = np.asarray(to_8bit(Image.new(mode, (3, 2))).convert("RGB"))
        assert pixels.dtype == np.uint8 and pixels.shape == (2, 3, 3), mode


def _streamed(root, per_class=4):
    """2 classes of JPEGs, `class01/002.jpg` corrupt; (listing, its path)."""
    image_folder(root, 2, per_class, size=20, ext="jpg")
    bad = root / "class01" / "002.jpg"
    bad.write_bytes(b"garbage")
    return load_labelled_paths(root), str(bad.absolute())


def test_streamed_decode_errors_name_the_file_in_one_line(tmp_path):
    data, bad = _streamed(tmp_path / "s")
    expected = f"Cannot decode image {bad}: unknown image format"
    maker = StreamBatchMaker(data, 4, 0, StreamAugmentation(16))
    with pytest.raises(ValueError, match=expected) as info:
        for i in range(maker.steps):
            maker(i)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)
    dataset, _ = grain_stream_dataset(
        data, TrainingInput(4, 0, 0, 1, StreamAugmentation(16)), workers=0
    )
    with pytest.raises(ValueError, match=expected):
        list(dataset)
    with pytest.raises(ValueError, match=expected):
        EvalBatches(data, 8, 16)[0]


def test_streamed_skip_checks_every_image_up_front(tmp_path, capsys, caplog):
    data, bad = _streamed(tmp_path / "s")
    truncated = tmp_path / "s" / "class00" / "001.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with caplog.at_level(logging.WARNING):
        checked = load_labelled_paths(tmp_path / "s", skip_bad_images=True)
    assert len(checked) == 6
    assert checked.skipped_files == tuple(sorted([str(truncated), bad]))
    assert "Checking images of" in capsys.readouterr().err
    assert "Skipped 2 of 8 files" in caplog.text
    # A list file: a missing entry is skipped too.
    listing = tmp_path / "train.txt"
    lines = [f"{p} {k}" for p, k in zip(checked.items, checked.labels)]
    listing.write_text("\n".join(lines + ["missing.jpg 1"]) + "\n")
    listed = load_labelled_paths(listing, skip_bad_images=True)
    assert listed.skipped_files == (str(tmp_path / "missing.jpg"),)
    assert len(listed) == 6 and listed.subset([0]).skipped_files


def test_train_cli_names_bad_files_in_one_line(tmp_path, capsys, monkeypatch):
    from keras_dlpa.cli.train import build_parser
    from keras_dlpa.cli.train import config_from_args
    from keras_dlpa.cli.train import main
    from keras_dlpa.training.sources import load_data

    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))
    bad = _bad_folder(tmp_path / "data")
    argv = ["--image-dir", str(tmp_path / "data"), "--epochs", "1"]
    argv += ["--depth", "8", "--verbose", "0", "--out", str(tmp_path / "r")]
    assert main(argv, recipe="cifar10_lt") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(path in err[0] for path in bad), err
    args = build_parser("cifar10_lt").parse_args([*argv, "--skip-bad-images"])
    config = config_from_args("cifar10_lt", args)
    train, _, _ = load_data(config)
    assert config.data.skip_bad_images
    assert train.skipped_files == tuple(sorted(bad))
    # A streamed run stops at the first batch with one line naming the file.
    _, bad_jpg = _streamed(tmp_path / "s", per_class=10)
    argv = ["--quick", "--epochs", "1", "--no-report", "--weights", "none"]
    argv += ["--image-dir", str(tmp_path / "s"), "--image-size", "32"]
    argv += ["--batch-size", "8", "--workers", "0", "--verbose", "0"]
    assert main([*argv, "--out", str(tmp_path / "f")], recipe="finetune") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "recipes/finetune.py: error: BadImageError: Cannot decode image "
        f"{bad_jpg}: unknown image format or corrupt header"
    )


def _run_dir(root, softmax=False):
    """A tiny trained-looking run directory (12x12 RGB, 3 classes)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 3), name="images")
    x = PerChannelNormalization(mean=127.5, std=64.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if softmax:
        outputs = keras.layers.Dense(3, name="logits")(x)
    else:
        rng = np.random.default_rng(3)
        prototypes = rng.normal(size=(3, 5)).astype("float32")
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        x = keras.layers.Dense(5)(x)
        outputs = keras_dlpa.PrototypeLayer(prototypes)(x)
    model = keras.Model(inputs, outputs)
    root.mkdir(parents=True)
    model.save(root / "model.keras")
    (root / "config.json").write_text(json.dumps({"class_names": NAMES}))
    return model


def _predict_folder(root):
    """Three PNGs and a WebP (12x12) that predict; four files that fail."""
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)
    good = [root / f"img{i}.png" for i in range(3)] + [root / "sub" / "w.webp"]
    (root / "sub").mkdir(parents=True)
    for path, image in zip(good, pixels):
        Image.fromarray(image).save(path, lossless=True)
    bad = [root / "corrupt.jpg", root / "sub" / "truncated.png"]
    bad += [root / "photo.heic", root / "big.png"]
    bad[0].write_bytes(b"not a jpeg")
    bad[1].write_bytes(_png_bytes(12)[:70])
    bad[2].write_bytes(b"\0\0\0\x18ftypheic")
    Image.new("RGB", (40, 40)).save(bad[3])  # > 2 x MAX_IMAGE_PIXELS
    (root / "notes.txt").write_text("side-car, ignored")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.jpg").write_bytes(b"hidden, ignored")
    return {str(p): image for p, image in zip(good, pixels)}, bad


def test_predict_keeps_good_predictions_and_lists_failures(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)
    model = _run_dir(tmp_path / "run")
    good, bad = _predict_folder(tmp_path / "images")
    out = tmp_path / "p.csv"
    argv = ["predict", str(tmp_path / "run"), str(tmp_path / "images")]
    assert cli_main([*argv, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("error: ") for line in err)
    for path, line in zip(sorted(map(str, bad)), sorted(err)):
        assert f"Cannot read {path!r} as an image: " in line, line
    assert "decompression bomb" in " ".join(err)
    assert "unsupported file type .heic" in " ".join(err)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows[:4]] == sorted(good)
    for row in rows[:4]:
        logits = np.asarray(model(good[row["path"]][None].astype("float32")))
        assert (
            int(row["label_1"]) == int(np.argmax(logits)) and not row["error"]
        )
    assert sorted(r["path"] for r in rows[4:]) == sorted(map(str, bad))
    assert all(r["error"] and not r["label_1"] for r in rows[4:])
    # Printed to stdout: the four predictions; still exit code 1.
    assert cli_main([*argv, "--quiet"]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 4
    assert len(captured.err.strip().splitlines()) == 4


def test_predict_runs_a_softmax_run(tmp_path, capsys):
    model = _run_dir(tmp_path / "run", softmax=True)
    good, _ = _predict_folder(tmp_path / "images")
    for path in _:
        path.unlink()
    argv = ["predict", str(tmp_path / "run"), str(tmp_path / "images")]
    assert cli_main([*argv, "--json", "--quiet", "--top-k", "3"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in records] == sorted(good)
    for r in records:
        logits = np.asarray(model(good[r["path"]][None].astype("float32")))
        probabilities = np.exp(logits[0]) / np.exp(logits[0]).sum()
        assert r["label"] == int(np.argmax(logits))
        assert r["class_name"] == NAMES[r["label"]]
        scores = [score for _, _, score in r["top_k"]]
        np.testing.assert_allclose(
            scores, np.sort(probabilities)[::-1], atol=1e-5
        )


def test_a_bad_image_wrapped_by_a_tf_op_error_is_one_short_line():
    from keras_dlpa_cli.errors import one_line

    # What the tf.data executor raises for a bad streamed image.
    wrapped = RuntimeError(
        "Graph execution error:\n\nDetected at node PyFunc\n"
        "BadImageError: Cannot decode image /d/c1/002.jpg: unknown image "
        "format\nTraceback (most recent call last):\n  File ...\n"
    )
    assert one_line(wrapped) == (
        "BadImageError: Cannot decode image /d/c1/002.jpg: unknown image format"
    )
    assert one_line(ValueError("a\nb")) == "ValueError: a b"
