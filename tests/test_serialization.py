"""`import keras_dlpa` alone registers everything a saved model needs."""

import importlib
import json
import os
import pkgutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT
from conftest import unit_rows

import keras_dlpa
from keras_dlpa import PrototypeClassifier
from keras_dlpa import models
from keras_dlpa.methods import METHODS
from keras_dlpa.methods import get_method
from keras_dlpa.schedules import WarmupCosine
from keras_dlpa.schedules import WarmupMultiStep

# Runs in a fresh interpreter: only `keras` and `keras_dlpa` are imported
# before `load_model`, as in a user's serving or evaluation script.
_LOADER = """
import json, sys
import keras
import numpy as np
import keras_dlpa

result = {}
result["registered"] = sorted(
    k for k in keras.saving.get_custom_objects() if k.startswith("keras_dlpa>")
)
for entry in json.loads(sys.argv[1]):
    model = keras.saving.load_model(entry["path"])
    schedule = keras.saving.deserialize_keras_object(
        model.optimizer.get_config()["learning_rate"]
    )
    logits = keras.ops.convert_to_numpy(
        model(np.load(entry["images"]), training=False)
    )
    result[entry["path"]] = {
        "schedule": type(schedule).__name__,
        "schedule_config": schedule.get_config(),
        "loss": type(model.loss).__name__,
        "max_diff": float(np.max(np.abs(logits - np.load(entry["logits"])))),
        "regularizer": [
            keras.saving.serialize_keras_object(layer.kernel_regularizer)
            for layer in model.layers
            if layer.name == "logits"
        ],
    }
print("RESULT" + json.dumps(result))
"""


def _all_registered_names():
    """Names registered once every keras_dlpa module has been imported."""
    for module in pkgutil.walk_packages(keras_dlpa.__path__, "keras_dlpa."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return sorted(
        k
        for k in keras.saving.get_custom_objects()
        if k.startswith("keras_dlpa>")
    )


def _kernel_regularizer(model) -> list:
    """The serialised kernel regulariser of the `"logits"` head, if any."""
    return [
        json.loads(
            json.dumps(
                keras.saving.serialize_keras_object(layer.kernel_regularizer)
            )
        )
        for layer in model.layers
        if layer.name == "logits"
    ]


def _schedule(kind):
    if kind == "WarmupMultiStep":
        return WarmupMultiStep(0.1, 5, warmup_epochs=1, milestones=(2, 3))
    return WarmupCosine(0.1, 5, epochs=4, warmup_epochs=1)


@pytest.fixture(autouse=True)
def _prototype_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))


def test_saved_classifiers_load_after_import_keras_dlpa_only(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(3, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    entries, expected, regularizers = [], {}, {}
    for method in METHODS:
        for kind in ("WarmupMultiStep", "WarmupCosine"):
            backbone = models.cifar_resnet(
                depth=8,
                width=2,
                input_statistics=(models.CIFAR10_MEAN, models.CIFAR10_STD),
                input_shape=(8, 8, 3),
            )
            prototypes = None
            if get_method(method).from_softmax:  # ours_star: given (c, d)
                prototypes = unit_rows(4, int(backbone.outputs[0].shape[-1]))
            model = PrototypeClassifier(
                backbone, 4, method=method, prototypes=prototypes
            )
            schedule = _schedule(kind)
            model.compile(
                optimizer=keras.optimizers.SGD(schedule, momentum=0.9)
            )
            path = str(tmp_path / f"{method}_{kind}.keras")
            model.optimizer.build(model.trainable_variables)
            model.save(path)
            logits_path = tmp_path / f"{method}_{kind}.npy"
            np.save(logits_path, keras.ops.convert_to_numpy(model(images)))
            entries.append(
                {
                    "path": path,
                    "images": str(tmp_path / "images.npy"),
                    "logits": str(logits_path),
                }
            )
            expected[path] = (kind, schedule.get_config(), method)
            regularizers[path] = _kernel_regularizer(model)
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::UserWarning",
            "-c",
            _LOADER,
            json.dumps(entries),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    loaded = json.loads(line[-1][len("RESULT") :])
    # `import keras_dlpa` alone registered what importing every module does.
    registered = _all_registered_names()
    assert "keras_dlpa>WarmupMultiStep" in registered
    assert loaded.pop("registered") == registered
    assert sorted(loaded) == sorted(expected)
    for path, (kind, config, method) in expected.items():
        got = loaded[path]
        assert got["schedule"] == kind, path
        assert got["schedule_config"] == json.loads(json.dumps(config)), path
        uses_prototypes = get_method(method).uses_prototypes
        want_loss = "IPMLoss" if uses_prototypes else "Sparse"
        assert got["loss"].startswith(want_loss), (path, got["loss"])
        assert got["max_diff"] <= 1e-6, (path, got["max_diff"])
        # psc_star's UniformityRegularizer comes back with its config.
        assert got["regularizer"] == regularizers[path], path
    psc_star = [p for p, e in expected.items() if e[2] == "psc_star"]
    assert psc_star and all(
        loaded[p]["regularizer"][0]["config"]["strength"] == 1e-2
        for p in psc_star
    )
