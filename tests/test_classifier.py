"""Classifier assembly per method and the learning-rate schedules."""

import keras
import numpy as np
import pytest

from keras_dlpa import IPMLoss
from keras_dlpa import PrototypeLayer
from keras_dlpa import ReassignCallback
from keras_dlpa.classifier import build_classifier
from keras_dlpa.classifier import classifier_loss
from keras_dlpa.classifier import method_callbacks
from keras_dlpa.classifier import method_prototypes
from keras_dlpa.classifier import project_features
from keras_dlpa.schedules import WarmupCosine
from keras_dlpa.schedules import WarmupMultiStep


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


def test_softmax_has_dense_head_and_no_prototype_layer():
    model = build_classifier(_backbone(), 5, "softmax", weight_decay=1e-4)
    assert not _layers_of(model, PrototypeLayer)
    head = model.get_layer("logits")
    assert head.units == 5
    # Coupled L2 like PyTorch SGD: Keras factor wd / 2.
    assert head.kernel_regularizer.l2 == pytest.approx(5e-5)
    assert model.output_shape == (None, 5)
    assert method_callbacks("softmax") == []
    assert isinstance(
        classifier_loss("softmax"), keras.losses.SparseCategoricalCrossentropy
    )
    assert isinstance(
        classifier_loss("softmax", soft_labels=True),
        keras.losses.CategoricalCrossentropy,
    )


def test_softmax_soft_label_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 3)).astype("float32")
    soft = rng.dirichlet(np.ones(3), size=4).astype("float32")
    loss = classifier_loss("softmax", soft_labels=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = np.mean(-np.sum(soft * log_p, axis=1))
    np.testing.assert_allclose(float(loss(soft, logits)), expected, rtol=1e-5)


@pytest.mark.parametrize("method", ["dl2pa", "static"])
def test_prototype_methods_share_prototypes(method):
    model = build_classifier(_backbone(dim=3), 6, method)
    (layer,) = _layers_of(model, PrototypeLayer)
    expected = method_prototypes(method, 6, 3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer.prototypes), expected, atol=1e-6
    )
    loss = classifier_loss(method, class_scale=True)
    assert isinstance(loss, IPMLoss) and loss.class_scale
    callbacks = method_callbacks(method, updates_per_epoch=2)
    if method == "dl2pa":
        (callback,) = callbacks
        assert isinstance(callback, ReassignCallback)
        assert callback.updates_per_epoch == 2
    else:
        assert callbacks == []  # static: assignment frozen


def test_etf_prototypes_are_a_simplex():
    c = 7
    model = build_classifier(_backbone(dim=c - 1), c, "etf")
    (layer,) = _layers_of(model, PrototypeLayer)
    w = keras.ops.convert_to_numpy(layer.prototypes).astype("float64")
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-6)
    cos = w @ w.T
    off = cos[~np.eye(c, dtype=bool)]
    np.testing.assert_allclose(off, -1.0 / (c - 1), atol=1e-5)
    assert method_callbacks("etf") == []


def test_etf_needs_dim_at_least_c_minus_1():
    with pytest.raises(ValueError, match=r"d=5 and c=10"):
        method_prototypes("etf", 10, 5)
    with pytest.raises(ValueError, match=r"d=5 and c=10"):
        build_classifier(_backbone(dim=5), 10, "etf")


def test_unknown_method_and_bad_prototype_shape():
    with pytest.raises(ValueError, match="method"):
        build_classifier(_backbone(), 4, "cosface")
    with pytest.raises(ValueError, match=r"\(4, 12\)"):
        build_classifier(_backbone(), 4, "static", prototypes=np.eye(4))


def test_prototype_classifier_logits_are_label_ordered_cosines():
    backbone = _backbone(dim=4)
    prototypes = method_prototypes("dl2pa", 5, 4)
    model = build_classifier(backbone, 5, "static", prototypes=prototypes)
    x = np.random.default_rng(1).uniform(0, 255, (3, 8, 8, 3))
    z = backbone.predict(x, verbose=0)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), z @ prototypes.T, atol=1e-5
    )


def test_projection_changes_dim():
    backbone = _backbone(dim=12)
    features = project_features(backbone.outputs[0], 5, weight_decay=2e-4)
    model = keras.Model(backbone.inputs, features)
    assert model.output_shape == (None, 5)
    assert model.get_layer("feature_projection").use_bias is False


def _multistep_numpy(step, base, spe, warmup, milestones, gamma):
    if step < warmup * spe:
        return base * (step + 1) / (warmup * spe)
    epoch = step // spe
    return base * gamma ** sum(epoch >= m for m in milestones)


def test_warmup_multistep_matches_numpy_formula():
    schedule = WarmupMultiStep(0.1, 7, warmup_epochs=5, milestones=(16, 18))
    steps = np.arange(0, 7 * 20)
    got = np.array([float(schedule(s)) for s in steps])
    expected = [_multistep_numpy(s, 0.1, 7, 5, (16, 18), 0.1) for s in steps]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[0] == pytest.approx(0.1 / 35)
    assert got[34] == pytest.approx(0.1)
    assert got[16 * 7] == pytest.approx(0.01)
    assert got[18 * 7] == pytest.approx(0.001)


def test_warmup_cosine_matches_numpy_formula():
    schedule = WarmupCosine(0.5, 4, epochs=10, warmup_epochs=2)
    for step in range(0, 45):
        if step < 8:
            expected = 0.5 * (step + 1) / 8
        else:
            t = min((step - 8) / 32, 1.0)
            expected = 0.25 * (1 + np.cos(np.pi * t))
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-6)


def test_schedule_serialises_and_drives_the_optimizer():
    schedule = WarmupMultiStep(0.2, 3, warmup_epochs=1, milestones=(2,))
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert restored.get_config() == schedule.get_config()
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    optimizer.iterations.assign(7)
    assert float(optimizer.learning_rate) == pytest.approx(0.02)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="milestones"):
        WarmupMultiStep(0.1, 10, milestones=(5, 3))
    with pytest.raises(ValueError, match="steps_per_epoch"):
        WarmupMultiStep(0.1, 0)
    with pytest.raises(ValueError, match="warmup_epochs"):
        WarmupCosine(0.1, 10, epochs=3, warmup_epochs=4)
