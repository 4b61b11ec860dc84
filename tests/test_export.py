"""Tests for keras_dlpa.export (SavedModel / ONNX serving exports).

References are independent numpy computations (cosines of the backbone
features against the prototypes gathered by the assignment) and the Keras
model itself; exports are reloaded with `tf.saved_model.load` and
onnxruntime.
"""

import hashlib
import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import keras
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf
from conftest import CIFAR10_JPEG
from PIL import Image

import keras_dlpa
from keras_dlpa import export as ex
from keras_dlpa.cli import main as cli_main
from keras_dlpa.models import PerChannelNormalization

REPO_ROOT = Path(__file__).resolve().parents[1]
PREDICT_SCRIPT = REPO_ROOT / "export" / "onnx_predict.py"


def _unit_rows(c, d, seed):
    x = np.random.default_rng(seed).normal(size=(c, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


def _classifier(seed, c=5, d=8, shape=(16, 16, 3), sequential=False):
    """Small conv classifier; returns (model, feature_model, layer, W)."""
    keras.utils.set_random_seed(seed)
    prototypes = _unit_rows(c, d, seed)
    layers = [
        PerChannelNormalization(mean=127.5, std=64.0),
        keras.layers.Conv2D(6, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(d),
    ]
    layer = keras_dlpa.PrototypeLayer(prototypes, name="prototypes")
    inputs = keras.Input(shape, name="images")
    if sequential:
        model = keras.Sequential([inputs, *layers, layer])
        features = keras.Model(inputs, model.layers[-2].output)
    else:
        x = inputs
        for lyr in layers:
            x = lyr(x)
        model = keras.Model(inputs, layer(x))
        features = keras.Model(inputs, x)
    return model, features, layer, prototypes


def _np_logits(features, prototypes, assignment):
    z = features / np.linalg.norm(features, axis=1, keepdims=True)
    return z @ prototypes[assignment].T


def _images(n, shape, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape)).astype("uint8")


def _onnx(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_onnx(path, images):
    session = _onnx(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"images": images})))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A permuted-assignment model exported twice (permuted, identity)."""
    out = tmp_path_factory.mktemp("export")
    model, features, layer, prototypes = _classifier(seed=3, c=6, d=8)
    perm = np.array([4, 2, 5, 0, 3, 1])
    layer.set_assignment(perm)
    images = _images(7, (16, 16, 3))
    result = ex.export_classifier(
        model, out / "perm", top_k=3, class_names=list("abcdef")
    )
    feats = np.asarray(features(images.astype("float32")))
    data = {
        "result": result,
        "images": images,
        "perm": perm,
        "prototypes": prototypes,
        "keras_logits": np.asarray(model(images.astype("float32"))),
        "np_logits": _np_logits(feats, prototypes, perm),
        "np_identity": _np_logits(feats, prototypes, np.arange(6)),
    }
    layer.set_assignment(np.arange(6))
    data["identity"] = ex.export_classifier(
        model, out / "identity", formats="onnx"
    )
    return data


def test_keras_logits_follow_assignment(exported):
    # Sanity of the reference itself: Keras == independent numpy.
    np.testing.assert_allclose(
        exported["keras_logits"], exported["np_logits"], atol=1e-5
    )


def test_onnx_logits_follow_assignment_not_identity(exported):
    images = exported["images"].astype("float32")
    perm = _run_onnx(exported["result"].paths["onnx"], images)
    ident = _run_onnx(exported["identity"].paths["onnx"], images)
    np.testing.assert_allclose(perm["logits"], exported["np_logits"], atol=1e-5)
    np.testing.assert_allclose(
        perm["logits"], exported["keras_logits"], atol=1e-5
    )
    np.testing.assert_array_equal(
        perm["label"], np.argmax(exported["np_logits"], axis=1)
    )
    np.testing.assert_allclose(
        ident["logits"], exported["np_identity"], atol=1e-5
    )
    assert np.max(np.abs(ident["logits"] - perm["logits"])) > 1e-2
    # Identity and permuted heads are the same cosines in another order.
    inverse = np.argsort(exported["perm"])
    np.testing.assert_allclose(
        perm["logits"][:, inverse], ident["logits"], atol=1e-5
    )


def test_onnx_metadata_and_top_k(exported):
    session = _onnx(exported["result"].paths["onnx"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == list("abcdef")
    assert json.loads(meta["assignment"]) == exported["perm"].tolist()
    assert meta["num_classes"] == "6" and meta["dim"] == "8"
    digest = hashlib.sha256(
        exported["prototypes"].astype("<f4").tobytes()
    ).hexdigest()
    assert meta["prototypes_sha256"] == digest
    assert meta["keras_dlpa_version"] == keras_dlpa.__version__
    assert session.get_inputs()[0].name == "images"
    assert session.get_inputs()[0].type == "tensor(float)"
    images = exported["images"].astype("float32")
    top_labels, top_scores = session.run(
        ["top_k_labels", "top_k_scores"], {"images": images}
    )
    ref = exported["np_logits"]
    order = np.argsort(-ref, axis=1)[:, :3]
    np.testing.assert_array_equal(top_labels, order)
    np.testing.assert_allclose(
        top_scores, np.take_along_axis(ref, order, axis=1), atol=1e-5
    )


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch_onnx_and_saved_model(exported, batch):
    images = exported["images"][:batch]
    ref = exported["np_logits"][:batch]
    session = _onnx(exported["result"].paths["onnx"])
    logits, label = session.run(
        ["logits", "label"], {"images": images.astype("float32")}
    )
    np.testing.assert_allclose(logits, ref, atol=1e-5)
    np.testing.assert_array_equal(label, np.argmax(ref, axis=1))
    loaded = tf.saved_model.load(str(exported["result"].paths["savedmodel"]))
    for name, x in (
        ("serving_default", images.astype("float32")),
        ("serving_uint8", images),
    ):
        out = loaded.signatures[name](images=tf.constant(x))
        np.testing.assert_allclose(out["logits"].numpy(), ref, atol=1e-5)
        np.testing.assert_array_equal(
            out["label"].numpy(), np.argmax(ref, axis=1)
        )
        np.testing.assert_allclose(
            out["score"].numpy(), ref.max(axis=1), atol=1e-5
        )


def test_saved_model_signatures(exported):
    loaded = tf.saved_model.load(str(exported["result"].paths["savedmodel"]))
    default = loaded.signatures["serving_default"]
    spec = default.structured_input_signature[1]["images"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [
        None,
        16,
        16,
        3,
    ]
    assert set(default.structured_outputs) == {
        "logits",
        "label",
        "score",
        "top_k_labels",
        "top_k_scores",
    }
    uint8 = loaded.signatures["serving_uint8"]
    assert uint8.structured_input_signature[1]["images"].dtype == tf.uint8
    extra = Path(exported["result"].paths["savedmodel"]) / "assets.extra"
    meta = json.loads((extra / "keras_dlpa.json").read_text())
    assert json.loads(meta["assignment"]) == exported["perm"].tolist()


def test_parity_report(exported):
    parity = exported["result"].parity
    assert parity["passed"] and parity["tolerance"] == 1e-5
    assert set(parity["backends"]) == {
        "keras_serving",
        "savedmodel",
        "savedmodel_uint8",
        "onnx",
    }
    report = json.loads(exported["result"].paths["report"].read_text())
    assert report["parity"]["passed"]


@pytest.mark.parametrize(
    "seed,c,d,shape,sequential",
    [(11, 4, 3, (12, 10, 1), True), (12, 9, 5, (8, 8, 3), False)],
)
def test_parity_on_random_models(tmp_path, seed, c, d, shape, sequential):
    model, features, layer, prototypes = _classifier(
        seed, c, d, shape, sequential
    )
    perm = np.random.default_rng(seed).permutation(c)
    layer.set_assignment(perm)
    images = _images(5, shape, seed)
    result = ex.export_classifier(model, tmp_path, images=images)
    assert result.parity["passed"]
    ref = _np_logits(
        np.asarray(features(images.astype("float32"))), prototypes, perm
    )
    logits = _onnx(result.paths["onnx"]).run(
        ["logits"], {"images": images.astype("float32")}
    )[0]
    np.testing.assert_allclose(logits, ref, atol=1e-5)


def test_parity_failure_raises(exported):
    # A model whose assignment differs from the exported one must fail.
    model, _, layer, _ = _classifier(seed=3, c=6, d=8)
    layer.set_assignment(np.arange(6)[::-1])
    with pytest.raises(ex.ParityError, match="disagrees"):
        ex.check_parity(
            model,
            exported["images"].astype("float32"),
            onnx_path=exported["result"].paths["onnx"],
        )


def test_wrong_input_size_to_exports(exported):
    bad = np.zeros((2, 15, 16, 3), "float32")
    with pytest.raises(Exception, match="invalid dimensions"):
        _onnx(exported["result"].paths["onnx"]).run(None, {"images": bad})
    loaded = tf.saved_model.load(str(exported["result"].paths["savedmodel"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        loaded.signatures["serving_default"](images=tf.constant(bad))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shape"):
        loaded.signatures["serving_default"](
            images=tf.zeros((2, 16, 16, 1), tf.float32)
        )
    client = _load_client()
    with pytest.raises(ValueError, match=r"\(B, H, W, C\) = \(B, 16, 16, 3\)"):
        client.classify(
            client.load_model(exported["result"].paths["onnx"])[0], bad
        )


def test_no_prototype_layer(tmp_path):
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match="PrototypeLayer"):
        ex.export_classifier(model, tmp_path)


def test_corrupt_keras_file(tmp_path):
    model, *_ = _classifier(seed=0)
    good = tmp_path / "good.keras"
    model.save(good)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        ex.export_classifier(bad, tmp_path / "out")


def test_unknown_format_and_bad_parity_images(tmp_path):
    model, *_ = _classifier(seed=0)
    with pytest.raises(ValueError, match="tflite.*savedmodel, onnx"):
        ex.export_classifier(model, tmp_path, formats="savedmodel,tflite")
    with pytest.raises(ValueError, match=r"shape \(2, 8, 8, 3\) do not fit"):
        ex.export_classifier(
            model, tmp_path, images=np.zeros((2, 8, 8, 3), "float32")
        )
    with pytest.raises(TypeError, match="ExportOptions"):
        ex.export_classifier(model, tmp_path, options={"layout": "triton"})


def test_cli_run_dir(tmp_path, capsys):
    model, features, layer, prototypes = _classifier(seed=5, c=3, d=4)
    layer.set_assignment([2, 0, 1])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    names = ["cat", "dog", "emu"]
    (run_dir / "config.json").write_text(json.dumps({"class_names": names}))
    out = tmp_path / "out"
    rc = cli_main(["export", str(run_dir), "--out", str(out), "--top-k", "2"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "parity: PASSED" in printed and "model.onnx" in printed
    meta = _onnx(out / "model.onnx").get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == names
    assert json.loads(meta["assignment"]) == [2, 0, 1]
    rc = cli_main(
        ["export", str(run_dir), "--out", str(out), "--format", "tflite"]
    )
    assert rc == 2 and "tflite" in capsys.readouterr().err


def _load_client():
    spec = importlib.util.spec_from_file_location(
        "onnx_predict", PREDICT_SCRIPT
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extract_cifar(folder, count=6):
    folder.mkdir(parents=True)
    paths = []
    with tarfile.open(CIFAR10_JPEG) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                target = folder / f"{len(paths)}_{Path(member.name).name}"
                target.write_bytes(tar.extractfile(member).read())
                paths.append(target)
                if len(paths) == count:
                    break
    return paths


@pytest.mark.large
def test_onnx_predict_client_on_real_images(tmp_path):
    if not CIFAR10_JPEG.is_file():
        pytest.fail(f"shared data missing: {CIFAR10_JPEG}")
    model, _, layer, _ = _classifier(seed=7, c=10, d=6, shape=(32, 32, 3))
    layer.set_assignment(np.random.default_rng(7).permutation(10))
    names = [f"class{j}" for j in range(10)]
    result = ex.export_classifier(
        model, tmp_path / "out", formats="onnx", class_names=names
    )
    folder = tmp_path / "images"
    paths = _extract_cifar(folder / "nested")
    decoded = np.stack(
        [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    ).astype("float32")
    logits = np.asarray(model(decoded))
    expected = {str(p): int(j) for p, j in zip(paths, logits.argmax(axis=1))}
    cmd = [sys.executable, str(PREDICT_SCRIPT), str(result.paths["onnx"])]
    proc = subprocess.run(
        [*cmd, str(folder)], capture_output=True, text=True, check=True
    )
    lines = [line.split("  ") for line in proc.stdout.strip().splitlines()]
    assert len(lines) == len(paths)
    got = {path: int(label) for path, label, _, _ in lines}
    assert got == expected
    for path, label, name, score in lines:
        assert name == names[int(label)]
        row = paths.index(Path(path))
        np.testing.assert_allclose(float(score), logits[row].max(), atol=1e-5)
    # JSON output, and the client never imports TensorFlow or keras_dlpa.
    wrapper = (
        "import runpy, sys; sys.argv = sys.argv[1:]; "
        "code = 0\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "bad = [m for m in ('tensorflow', 'keras', 'keras_dlpa') "
        "if m in sys.modules]\n"
        "sys.exit(3 if bad else code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd[1:], str(paths[0]), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert records[0]["label"] == expected[str(paths[0])]
    # A wrong-size image: resized by default, a clear error on --no-resize.
    Image.fromarray(np.zeros((20, 24, 3), "uint8")).save(folder / "odd.png")
    proc = subprocess.run(
        [*cmd, str(folder / "odd.png"), "--no-resize"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1  # a runtime error, not a usage error
    assert "24x20" in proc.stderr and "32x32" in proc.stderr
    proc = subprocess.run(
        [*cmd, str(folder / "odd.png")], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "odd.png" in proc.stdout
