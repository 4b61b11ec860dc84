"""`keras-dlpa predict` and export/onnx_predict.py on image files.

References: the Keras model itself (cosine logits, top-k by numpy sort);
the three model kinds (.keras run directory, SavedModel, ONNX) must give
the same CSV. The ONNX client runs in a subprocess in which importing
TensorFlow or Keras raises.
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import NO_TF
from conftest import backend_env
from PIL import Image

import keras_dlpa
from keras_dlpa import export as ex
from keras_dlpa.cli import main as cli_main
from keras_dlpa.models import PerChannelNormalization

REPO_ROOT = Path(__file__).resolve().parents[1]
PREDICT_SCRIPT = REPO_ROOT / "export" / "onnx_predict.py"
NAMES = ["ant", "bee", "cat", "dog"]
BLOCKER = """
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError(f"blocked import of {name}")
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _classifier():
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    prototypes = rng.normal(size=(4, 6))
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    inputs = keras.Input((12, 12, 3), name="images")
    x = PerChannelNormalization(mean=127.5, std=64.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6)(x)
    layer = keras_dlpa.PrototypeLayer(prototypes.astype("float32"))
    model = keras.Model(inputs, layer(x))
    layer.set_assignment([2, 0, 3, 1])
    return model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model = _classifier()
    run_dir = root / "run"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps({"class_names": NAMES}))
    result = ex.export_classifier(run_dir, root / "export")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 12, 12, 3)).astype("uint8")
    folder = root / "images"
    paths = []
    for i, image in enumerate(images):
        sub = folder / ("nested" if i % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        paths.append(sub / f"img{i}.png")
        Image.fromarray(image).save(paths[-1])
    logits = np.asarray(model(images.astype("float32")))
    return {
        "root": root,
        "run_dir": run_dir,
        "result": result,
        "folder": folder,
        "paths": paths,
        "logits": {str(p): row for p, row in zip(paths, logits)},
    }


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_rows(rows, setup, k):
    assert len(rows) == len(setup["paths"])
    for row in rows:
        ref = setup["logits"][row["path"]]
        order = np.argsort(-ref)[:k]
        for i, j in enumerate(order, start=1):
            assert int(row[f"label_{i}"]) == j
            assert row[f"class_name_{i}"] == NAMES[j]
            np.testing.assert_allclose(
                float(row[f"score_{i}"]), ref[j], atol=2e-5
            )


@pytest.mark.parametrize("kind", ["keras", "savedmodel", "onnx"])
def test_predict_every_model_kind(setup, kind, tmp_path, capsys):
    model = {
        "keras": setup["run_dir"],
        "savedmodel": setup["result"].paths["savedmodel"],
        "onnx": setup["result"].paths["onnx"],
    }[kind]
    out = tmp_path / "predictions.csv"
    argv = ["predict", str(model), str(setup["folder"]), "--out", str(out)]
    rc = cli_main([*argv, "--top-k", "3", "--batch-size", "3"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "predict: 7/7 images (100%)" in err
    _check_rows(_read_csv(out), setup, 3)


def test_list_file_and_single_image(setup, tmp_path, capsys):
    # Entries are relative to the list file; comments and blanks skipped.
    rel = [p.relative_to(setup["folder"]) for p in setup["paths"][:3]]
    listing = tmp_path / "list.txt"
    lines = ["# three images", *(f"images/{r}" for r in rel), ""]
    listing.write_text("\n".join(lines) + "\n")
    (tmp_path / "images").symlink_to(setup["folder"])
    onnx_path = str(setup["result"].paths["onnx"])
    rc = cli_main(["predict", onnx_path, str(listing), "--json", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == ""
    records = json.loads(captured.out)
    assert [r["path"] for r in records] == [
        str(tmp_path / "images" / r) for r in rel
    ]
    for r in records:
        ref = setup["logits"][
            str(
                setup["folder"]
                / Path(r["path"]).relative_to(tmp_path / "images")
            )
        ]
        assert (
            r["label"] == ref.argmax() and r["class_name"] == NAMES[r["label"]]
        )
    one = str(setup["paths"][0])
    rc = cli_main(["predict", onnx_path, one, "--quiet"])
    line = capsys.readouterr().out.strip().split("  ")
    ref = setup["logits"][one]
    assert rc == 0 and line[:3] == [one, str(ref.argmax()), NAMES[ref.argmax()]]


def test_predict_errors(setup, tmp_path, capsys):
    onnx_path = str(setup["result"].paths["onnx"])
    image = str(setup["paths"][0])

    def run(*argv):
        rc = cli_main(["predict", *argv, "--quiet"])
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        return rc, err

    rc, err = run(str(tmp_path / "none.onnx"), image)
    assert rc == 2 and "No such model file" in err
    rc, err = run(onnx_path, str(tmp_path / "none.jpg"))
    assert rc == 2 and "none.jpg" in err
    rc, err = run(onnx_path, image, "--top-k", "0")
    assert rc == 2 and "--top-k must be >= 1" in err
    rc, err = run(onnx_path, image, "--top-k", "9")
    assert rc == 2 and "[1, 4]" in err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    rc, err = run(str(broken), image)
    assert rc == 1 and "Cannot load" in err
    bad_image = tmp_path / "bad.jpg"
    bad_image.write_bytes(b"not a jpeg")
    rc, err = run(onnx_path, str(bad_image))
    assert rc == 1 and "Cannot read" in err and "bad.jpg" in err


def test_onnx_client_runs_without_tensorflow_or_keras(setup, tmp_path):
    onnx_path = str(setup["result"].paths["onnx"])
    out = tmp_path / "p.csv"
    base = [sys.executable, "-c", BLOCKER, str(PREDICT_SCRIPT), onnx_path]
    proc = subprocess.run(
        [*base, str(setup["folder"]), "--out", str(out), "--top-k", "2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    _check_rows(_read_csv(out), setup, 2)
    # The blocker works: the Keras path of the CLI cannot run under it.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER,
            str(REPO_ROOT / "keras_dlpa" / "__main__.py"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode != 0 and "blocked import" in proc.stderr


def _console_script(*args, cwd=None):
    """Runs `keras-dlpa ARGS` as pip installs it (pyproject's entry point)
    in a subprocess where importing keras, tensorflow or jax raises."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    entry = re.search(r'^keras-dlpa = "([\w.]+):(\w+)"$', text, re.M)
    module, func = entry.groups()
    code = f"import sys; from {module} import {func}; sys.exit({func}())"
    env = dict(os.environ, KERAS_DLPA_BLOCK_IMPORTS="keras,jax")
    env["PYTHONPATH"] = os.pathsep.join([str(NO_TF), str(REPO_ROOT)])
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


def test_console_script_predicts_onnx_without_keras(setup, tmp_path):
    # `keras-dlpa predict model.onnx` needs numpy, pillow and onnxruntime
    # only: the console script must not import keras_dlpa (whose
    # __init__ imports Keras) on that path.
    onnx_path = setup["result"].paths["onnx"]
    out = tmp_path / "p.csv"
    proc = _console_script(
        "predict", onnx_path, setup["folder"], "--out", out, "--top-k", "2"
    )
    assert proc.returncode == 0, proc.stderr
    assert "predict: 7/7 images (100%)" in proc.stderr
    _check_rows(_read_csv(out), setup, 2)
    # A Triton model folder (highest version) takes the same path.
    triton = tmp_path / "repo" / "dl2pa"
    (triton / "3").mkdir(parents=True)
    (triton / "config.pbtxt").write_text('name: "dl2pa"\n')
    (triton / "3" / "model.onnx").write_bytes(onnx_path.read_bytes())
    proc = _console_script(
        "predict", triton, setup["folder"], "--out", out, "--quiet"
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    _check_rows(_read_csv(out), setup, 1)
    # The same errors as the full CLI (one line, exit code 2 or 1).
    proc = _console_script("predict", onnx_path, tmp_path / "none.jpg")
    assert proc.returncode == 2 and "none.jpg" in proc.stderr
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    proc = _console_script("predict", broken, setup["paths"][0], "--quiet")
    assert proc.returncode == 1 and "Cannot load" in proc.stderr
    # The blocker works: a .keras model needs Keras, and fails here.
    proc = _console_script("predict", setup["run_dir"], setup["paths"][0])
    assert proc.returncode != 0
    assert "blocked: KERAS_DLPA_BLOCK_IMPORTS" in proc.stderr


def test_predict_keras_model_on_jax_without_tensorflow(setup, tmp_path):
    # A `.keras` model needs Keras, not TensorFlow: `keras-dlpa predict`
    # must not import the TensorFlow exporters on that path.
    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    backbone = keras.Model(inputs, keras.layers.Dense(6)(x))
    prototypes = np.random.default_rng(1).normal(size=(4, 6))
    model = keras_dlpa.PrototypeClassifier(
        backbone, 4, method="static", prototypes=prototypes
    )
    model.save(tmp_path / "static.keras")
    env = backend_env("jax")
    image = setup["paths"][0]
    proc = subprocess.run(
        [sys.executable, "-m", "keras_dlpa_cli", "predict"]
        + [str(tmp_path / "static.keras"), str(image), "--top-k", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    logits = np.asarray(model(np.asarray(Image.open(image))[None] * 1.0))[0]
    cells = proc.stdout.split()
    assert cells[0] == str(image)
    assert [int(cells[1]), int(cells[4])] == list(np.argsort(-logits)[:2])
    np.testing.assert_allclose(float(cells[3]), logits.max(), atol=1e-5)
