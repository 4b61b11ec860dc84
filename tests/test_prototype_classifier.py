"""`PrototypeClassifier` (the Task) and the method registry it is built
from; the explicit statistics step, on TF, TF + MirroredStrategy and JAX."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import REPO_ROOT
from conftest import unit_rows
from keras import ops
from testing import run_serialization_test

import keras_dlpa
from keras_dlpa import IPMLoss
from keras_dlpa import PrototypeClassifier
from keras_dlpa import PrototypeLayer
from keras_dlpa import ReassignCallback
from keras_dlpa.methods import METHODS
from keras_dlpa.methods import get_method


def _backbone(dim=12):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(dim)(x)
    return keras.Model(inputs, x)


def _layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.fixture(autouse=True)
def _prototype_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DLPA_CACHE", str(tmp_path / "cache"))


@pytest.mark.core
def test_softmax_has_dense_head_and_no_prototype_layer():
    model = PrototypeClassifier(
        _backbone(), 5, method="softmax", weight_decay=1e-4
    )
    assert not _layers_of(model, PrototypeLayer)
    assert model.prototype_layer is None
    head = model.get_layer("logits")
    assert head.units == 5
    # Coupled L2 like PyTorch SGD: Keras factor wd / 2.
    assert head.kernel_regularizer.l2 == pytest.approx(5e-5)
    assert model.output_shape == (None, 5)
    softmax = get_method("softmax")
    assert softmax.callbacks() == []
    assert isinstance(
        softmax.loss(), keras.losses.SparseCategoricalCrossentropy
    )
    assert isinstance(
        softmax.loss(soft_labels=True), keras.losses.CategoricalCrossentropy
    )
    model.compile()
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)


def test_softmax_soft_label_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype("float32")
    soft = rng.dirichlet(np.ones(3), size=4).astype("float32")
    loss = get_method("softmax").loss(soft_labels=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = np.mean(-np.sum(soft * log_p, axis=1))
    np.testing.assert_allclose(float(loss(soft, logits)), expected, rtol=1e-5)


@pytest.mark.core
@pytest.mark.parametrize("method", ["dl2pa", "static"])
def test_prototype_methods_share_prototypes(method):
    model = PrototypeClassifier(_backbone(dim=3), 6, method=method)
    (layer,) = _layers_of(model, PrototypeLayer)
    assert model.prototype_layer is layer
    expected = get_method(method).prototypes(6, 3)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.prototypes), expected, atol=1e-6
    )
    loss = get_method(method).loss(class_scale=True)
    assert isinstance(loss, IPMLoss) and loss.class_scale
    callbacks = get_method(method).callbacks(updates_per_epoch=2)
    if method == "dl2pa":
        (callback,) = callbacks
        assert isinstance(callback, ReassignCallback)
        assert callback.updates_per_epoch == 2
    else:
        assert callbacks == []  # static: assignment frozen


@pytest.mark.core
def test_etf_prototypes_are_a_simplex():
    c = 7
    model = PrototypeClassifier(_backbone(dim=c - 1), c, method="etf")
    w = ops.convert_to_numpy(model.prototype_layer.prototypes).astype("float64")
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-6)
    off = (w @ w.T)[~np.eye(c, dtype=bool)]
    np.testing.assert_allclose(off, -1.0 / (c - 1), atol=1e-5)
    assert get_method("etf").callbacks() == []


def test_etf_needs_dim_at_least_c_minus_1():
    with pytest.raises(ValueError, match=r"d=5 and c=10"):
        get_method("etf").prototypes(10, 5)
    with pytest.raises(ValueError, match=r"d=5 and c=10"):
        PrototypeClassifier(_backbone(dim=5), 10, method="etf")


@pytest.mark.core
def test_bad_arguments_name_the_argument_and_value():
    with pytest.raises(ValueError, match="method='cosface'"):
        PrototypeClassifier(_backbone(), 4, method="cosface")
    with pytest.raises(ValueError, match=r"\(4, 12\)"):
        PrototypeClassifier(
            _backbone(), 4, method="static", prototypes=np.eye(4)
        )
    with pytest.raises(ValueError, match="Argument `backbone`"):
        PrototypeClassifier(keras.layers.Dense(3), 4)
    with pytest.raises(ValueError, match="softmax_run"):
        PrototypeClassifier(_backbone(), 4, method="ours_star")


@pytest.mark.core
def test_logits_are_label_ordered_cosines():
    backbone = _backbone(dim=4)
    prototypes = get_method("dl2pa").prototypes(5, 4)
    model = PrototypeClassifier(
        backbone, 5, method="static", prototypes=prototypes
    )
    x = np.random.default_rng(1).uniform(0, 255, (3, 8, 8, 3))
    z = backbone.predict(x, verbose=0)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), z @ prototypes.T, atol=1e-5
    )
    assert model.backbone is backbone


@pytest.mark.core
def test_dim_adds_the_projection():
    model = PrototypeClassifier(_backbone(dim=12), 6, dim=5, weight_decay=2e-4)
    assert model.output_shape == (None, 6)
    assert model.prototype_layer.dim == 5
    assert model.get_layer("feature_projection").use_bias is False
    same = PrototypeClassifier(_backbone(dim=5), 6, dim=5)
    assert "feature_projection" not in [x.name for x in same.layers]


@pytest.mark.core
@pytest.mark.parametrize("method", METHODS)
def test_every_method_compiles_with_defaults_fits_and_round_trips(
    method, tmp_path
):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 4
    prototypes = unit_rows(4, 6) if get_method(method).from_softmax else None
    model = PrototypeClassifier(
        _backbone(dim=6), 4, method=method, prototypes=prototypes
    )
    model.compile()
    callbacks = get_method(method).callbacks()
    history = model.fit(
        x, y, batch_size=8, epochs=1, verbose=0, callbacks=callbacks
    )
    assert np.isfinite(history.history["loss"][0])
    assert "top5" in history.history
    loaded = run_serialization_test(model, x, tmp_path)
    assert isinstance(loaded, PrototypeClassifier)
    assert type(loaded.loss) is type(model.loss)


@pytest.mark.core
def test_task_gathers_statistics_without_a_compiled_ipm_loss():
    """The Task's `compute_loss` adds each training batch, whatever the
    loss; evaluation and inference add nothing."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (12, 8, 8, 3)).astype("float32")
    y = np.arange(12) % 3
    model = PrototypeClassifier(_backbone(dim=4), 3, method="static")
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss=keras.losses.MeanSquaredError(),
        metrics=[],
    )
    model.fit(x, keras.ops.one_hot(y, 3), batch_size=4, epochs=1, verbose=0)
    layer = model.prototype_layer
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.feature_counts), [4, 4, 4]
    )
    model.evaluate(x, keras.ops.one_hot(y, 3), verbose=0)
    model.predict(x, verbose=0)
    model(x, training=True)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.feature_counts), [4, 4, 4]
    )


def _assert_only_the_first_view_counts(errors):
    for name in ("task", "plain"):
        assert errors[name] < 1e-5, errors
        assert errors[name + "_counts"] == [8.0, 8.0, 8.0, 8.0]


@pytest.mark.core
def test_second_training_pass_of_the_same_batch_size_never_counts():
    """A training-mode forward pass inside the train step whose output is
    not the loss's `y_pred` (a second view `-x`, same batch size) adds
    nothing: the sums are those of `x` alone, for the Task and for a plain
    Keras model with `IPMLoss` (tests/workers/two_views.py). Runs on
    TensorFlow here and on JAX in the core suite's JAX run."""
    from workers.two_views import feature_sum_errors

    _assert_only_the_first_view_counts(feature_sum_errors())


def test_second_training_pass_never_counts_under_mirrored_strategy():
    """The same under `MirroredStrategy` on two logical CPUs (a process of
    its own: logical devices are set before TensorFlow starts)."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    script = os.path.join(REPO_ROOT, "tests", "workers", "two_views.py")
    proc = subprocess.run(
        [sys.executable, script, "mirrored"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = json.loads(proc.stdout.strip().splitlines()[-1])
    _assert_only_the_first_view_counts(errors)


def test_exported_at_the_package_root():
    assert keras_dlpa.PrototypeClassifier is PrototypeClassifier
    assert "PrototypeClassifier" in keras_dlpa.__all__


@pytest.mark.core
def test_a_train_step_without_the_statistics_step_is_reported():
    class NoStatistics(PrototypeClassifier):
        def compute_loss(self, *args, **kwargs):
            return keras.Model.compute_loss(self, *args, **kwargs)

    x = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3))
    model = NoStatistics(_backbone(dim=4), 4, method="static")
    model.compile()
    with pytest.raises(RuntimeError, match="found no class statistics"):
        model.fit(
            x,
            np.arange(8) % 4,
            epochs=1,
            verbose=0,
            callbacks=[ReassignCallback()],
        )


@pytest.mark.large
def test_readme_usage_example_runs(tmp_path, monkeypatch):
    """The README's first usage example, on 8 random images for 1 epoch."""
    import re

    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        readme = f.read()
    usage = readme[readme.index("## Usage") :]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    assert "PrototypeClassifier(" in code and "ReassignCallback()" in code
    code = code.replace("epochs=200", "epochs=1").replace(
        '"dl2pa.keras"', repr(str(tmp_path / "dl2pa.keras"))
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    train_ds = (images, np.arange(8) % 100)
    monkeypatch.chdir(tmp_path)
    namespace = {"train_ds": None}
    code = code.replace("fit(train_ds,", "fit(*train_ds, batch_size=4,")
    namespace["train_ds"] = train_ds
    exec(code, namespace)
    loaded = keras.saving.load_model(str(tmp_path / "dl2pa.keras"))
    assert isinstance(loaded, PrototypeClassifier)
    assert loaded.prototype_layer.dim == 50
