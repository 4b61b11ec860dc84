"""Serving layouts (TF Serving, Triton) and the int8 ONNX export.

The Triton `config.pbtxt` is parsed with Triton's own `ModelConfig` schema
(`tritonclient`, a dependency of the `onnx` extra); the TF-Serving folder
is loaded with `tf.saved_model.load`; the int8 model is run with
onnxruntime against the float32 one.
"""

import json

import keras
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

import keras_dlpa
from keras_dlpa import export as ex
from keras_dlpa.cli import main as cli_main
from keras_dlpa.export.serving_layout import read_triton_config
from keras_dlpa.models import PerChannelNormalization

SHAPE = (16, 16, 3)


def _classifier(seed=0, c=5, d=8):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(size=(c, d))
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    inputs = keras.Input(SHAPE, name="images")
    x = PerChannelNormalization(mean=127.5, std=64.0)(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(d)(x)
    layer = keras_dlpa.PrototypeLayer(prototypes.astype("float32"))
    model = keras.Model(inputs, layer(x))
    layer.set_assignment(rng.permutation(c))
    return model


def _smooth_images(n, seed):
    """Low-frequency random images (closer to photos than pixel noise)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n, 4, 4, 3))
    return np.clip(small.repeat(4, 1).repeat(4, 2), 0, 255).astype("uint8")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def model():
    return _classifier()


def test_tf_serving_layout(model, tmp_path):
    options = ex.ExportOptions(layout="tf-serving", name="flowers", version=3)
    result = ex.export_classifier(model, tmp_path, options=options)
    version = tmp_path / "flowers" / "3"
    assert result.paths["savedmodel"] == version
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    assert sorted(p.name for p in (tmp_path / "flowers").iterdir()) == [
        "3",
        "export.json",
    ]
    loaded = tf.saved_model.load(str(version))
    images = _smooth_images(3, 1)
    out = loaded.signatures["serving_uint8"](images=tf.constant(images))
    ref = np.asarray(model(images.astype("float32")))
    np.testing.assert_allclose(out["logits"].numpy(), ref, atol=1e-5)
    np.testing.assert_array_equal(out["label"].numpy(), ref.argmax(axis=1))
    with pytest.raises(ValueError, match="tf-serving.*savedmodel only"):
        ex.export_classifier(
            model, tmp_path / "x", formats="onnx", options=options
        )


def test_triton_layout_parses_with_triton_schema(model, tmp_path):
    names = ["ant", "bee", "cat", "dog", "eel"]
    ex.export_classifier(
        model,
        tmp_path,
        top_k=2,
        class_names=names,
        options=ex.ExportOptions(
            layout="triton", name="pets", version=2, max_batch_size=128
        ),
    )
    folder = tmp_path / "pets"
    assert (folder / "2" / "model.onnx").is_file()
    text = (folder / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert config.name == "pets"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 128
    assert config.HasField("dynamic_batching")
    assert max(config.dynamic_batching.preferred_batch_size) <= 128
    session = _session(folder / "2" / "model.onnx")
    dtype = model_config_pb2.DataType
    triton_type = {
        "tensor(float)": dtype.Value("TYPE_FP32"),
        "tensor(int32)": dtype.Value("TYPE_INT32"),
    }
    # Every ONNX input/output, by name, dtype and per-image dims.
    for declared, actual in (
        (config.input, session.get_inputs()),
        (config.output, session.get_outputs()),
    ):
        assert len(declared) == len(actual)
        by_name = {t.name: t for t in declared}
        for tensor in actual:
            entry = by_name[tensor.name]
            assert entry.data_type == triton_type[tensor.type]
            assert tensor.shape[0] == "batch"
            dims = list(
                entry.reshape.shape if entry.HasField("reshape") else entry.dims
            )
            assert dims == list(tensor.shape[1:])
    logits = {t.name: t for t in config.output}["logits"]
    assert logits.label_filename == "labels.txt"
    assert (folder / "labels.txt").read_text().split() == names
    out = session.run(["logits"], {"images": np.zeros((3, *SHAPE), "f4")})
    assert out[0].shape == (3, 5)
    # The schema check itself rejects a broken config.
    (folder / "config.pbtxt").write_text(text.replace("max_batch_size", "x"))
    with pytest.raises(ValueError, match="not a valid Triton model"):
        read_triton_config(folder / "config.pbtxt")


def test_onnx_batch_axis_and_names_match_saved_model(model, tmp_path):
    result = ex.export_classifier(model, tmp_path, top_k=2)
    proto = onnx.load(str(result.paths["onnx"]))
    values = [*proto.graph.input, *proto.graph.output]
    assert {v.type.tensor_type.shape.dim[0].dim_param for v in values} == {
        "batch"
    }
    loaded = tf.saved_model.load(str(result.paths["savedmodel"]))
    signature = loaded.signatures["serving_default"]
    assert [v.name for v in proto.graph.input] == list(
        signature.structured_input_signature[1]
    )
    assert {v.name for v in proto.graph.output} == set(
        signature.structured_outputs
    )


@pytest.fixture(scope="module")
def int8_export(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    calibration = _smooth_images(96, 2)
    result = ex.export_classifier(
        model,
        out,
        formats="onnx",
        calibration_images=calibration,
        options=ex.ExportOptions(int8=True, calibration_size=32),
    )
    return result


def test_int8_model_is_quantised_and_agrees(int8_export):
    path = int8_export.paths["onnx_int8"]
    proto = onnx.load(str(path))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [
        t
        for t in proto.graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert len(int8_weights) >= 3  # two convs and the dense layer
    head = [n for n in proto.graph.node if "baked_prototype_head" in n.name]
    assert head and all(
        n.op_type not in ("QuantizeLinear", "DequantizeLinear") for n in head
    )
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["quantization"])["calibration_images"] == 32
    assert json.loads(meta["class_names"]) == [str(j) for j in range(5)]
    report = int8_export.parity["backends"]["onnx_int8"]
    assert report["passed"] and report["batch_size"] == 64
    assert report["label_agreement"] >= 0.9
    # Independent check on fresh images against the float32 ONNX model.
    images = _smooth_images(32, 9).astype("float32")
    ref = _session(int8_export.paths["onnx"]).run(None, {"images": images})
    got = _session(path).run(None, {"images": images})
    names = [o.name for o in _session(path).get_outputs()]
    ref, got = dict(zip(names, ref)), dict(zip(names, got))
    assert np.mean(ref["label"] == got["label"]) >= 0.9
    assert np.mean(np.abs(ref["logits"] - got["logits"])) < 0.05
    assert np.max(np.abs(ref["logits"] - got["logits"])) > 0  # quantised


def test_int8_parity_fails_on_bad_calibration(model, int8_export, tmp_path):
    # Calibrated on black images, every activation range collapses.
    bad = tmp_path / "bad.onnx"
    ex.quantize_onnx(
        int8_export.paths["onnx"], bad, np.zeros((8, *SHAPE), "uint8")
    )
    images = _smooth_images(64, 5)
    with pytest.raises(ex.ParityError, match="int8 model disagrees"):
        ex.check_int8_parity(int8_export.paths["onnx"], bad, images)


def test_cli_int8_triton_from_image_folder(model, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "calib"
    folder.mkdir()
    for i, image in enumerate(_smooth_images(80, 3)):
        Image.fromarray(image).save(folder / f"{i}.png")
    source = tmp_path / "m.keras"
    model.save(source)
    out = tmp_path / "repo"
    args = ["export", str(source), "--out", str(out), "--layout", "triton"]
    assert cli_main([*args, "--int8"]) == 2
    assert "--calibration-images" in capsys.readouterr().err
    rc = cli_main(
        [
            *args,
            "--int8",
            "--calibration-images",
            str(folder),
            "--calibration-size",
            "40",
        ]
    )
    assert rc == 2 and "Need 104 calibration images" in capsys.readouterr().err
    rc = cli_main(
        [
            *args,
            "--int8",
            "--calibration-images",
            str(folder),
            "--calibration-size",
            "8",
            "--int8-min-agreement",
            "0.5",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "onnx_int8" in printed and "labels agree" in printed
    config = read_triton_config(out / "dl2pa_int8" / "config.pbtxt")
    assert config.name == "dl2pa_int8"
    assert (out / "dl2pa_int8" / "1" / "model.onnx").is_file()
