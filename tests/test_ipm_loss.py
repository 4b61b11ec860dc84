import keras
import numpy as np
import pytest
from conftest import gradient
from conftest import unit_rows
from keras import ops
from testing import run_serialization_test

import keras_dlpa
from keras_dlpa.ipm_loss import batch_class_scale

pytestmark = pytest.mark.core


def _numpy_ipm(weights, logits):
    return (weights * 0.5 * (logits - 1.0) ** 2).sum(axis=1)


def _random_logits(batch, classes, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(batch, classes)).astype("float32")


def test_sparse_labels_match_eq6():
    logits = _random_logits(8, 5)
    labels = np.array([0, 4, 2, 2, 1, 3, 0, 4])
    expected = 0.5 * (logits[np.arange(8), labels] - 1.0) ** 2
    per_sample = keras_dlpa.ipm_loss(labels, logits)
    np.testing.assert_allclose(
        ops.convert_to_numpy(per_sample), expected, rtol=1e-6
    )
    loss = keras_dlpa.IPMLoss()(labels[:, None], logits)
    np.testing.assert_allclose(float(loss), expected.mean(), rtol=1e-6)


def test_dense_and_soft_labels():
    logits = _random_logits(6, 4, seed=1)
    labels = np.array([0, 1, 2, 3, 1, 0])
    one_hot = np.eye(4, dtype="float32")[labels]
    np.testing.assert_allclose(
        float(keras_dlpa.IPMLoss()(one_hot, logits)),
        float(keras_dlpa.IPMLoss()(labels, logits)),
        rtol=1e-6,
    )
    lam = 0.3
    soft = lam * one_hot + (1 - lam) * one_hot[::-1]
    expected = _numpy_ipm(soft, logits).mean()
    np.testing.assert_allclose(
        float(keras_dlpa.IPMLoss()(soft, logits)), expected, rtol=1e-6
    )


def test_class_scale_matches_reference_formula():
    logits = _random_logits(8, 5, seed=2)
    labels = np.array([0, 0, 0, 0, 1, 1, 3, 3])
    counts = np.bincount(labels, minlength=5)
    gamma = 8 / 3
    scale = gamma / counts[labels]
    expected = (scale * 0.5 * (logits[np.arange(8), labels] - 1) ** 2).mean()
    loss = keras_dlpa.IPMLoss(class_scale=True)(labels, logits)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
    s2 = ops.convert_to_numpy(batch_class_scale(np.eye(5)[labels]))
    np.testing.assert_allclose(s2[[2, 4]], 0.0)


def test_class_scale_with_mixup_equals_pairwise_reference():
    # Reference: lam * L(y_a) + (1 - lam) * L(y_b), y_b a batch permutation.
    logits = _random_logits(6, 4, seed=3)
    y_a = np.array([0, 0, 1, 2, 2, 2])
    perm = np.array([3, 5, 0, 1, 4, 2])
    y_b = y_a[perm]
    lam = 0.7

    def scaled(labels):
        counts = np.bincount(labels, minlength=4)
        gamma = 6 / np.count_nonzero(counts)
        s2 = gamma / counts[labels]
        return s2 * 0.5 * (logits[np.arange(6), labels] - 1) ** 2

    expected = (lam * scaled(y_a) + (1 - lam) * scaled(y_b)).mean()
    soft = lam * np.eye(4)[y_a] + (1 - lam) * np.eye(4)[y_b]
    loss = keras_dlpa.IPMLoss(class_scale=True)(soft, logits)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_gradient_matches_eq7():
    # dL/du for u the un-normalised feature: (s - 1) (I - z z^T) w / |u|.
    w = unit_rows(5, 3, seed=4)
    layer = keras_dlpa.PrototypeLayer(w)
    rng = np.random.default_rng(5)
    u = rng.normal(size=(4, 3)).astype("float32")
    labels = np.array([1, 4, 0, 2])
    grad = gradient(lambda x: keras_dlpa.ipm_loss(labels, layer(x)), u)
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    z = u / norm
    wy = w[labels]
    s = (z * wy).sum(axis=1, keepdims=True)
    expected = (s - 1) * (wy - s * z) / norm
    np.testing.assert_allclose(grad, expected, atol=1e-5)
    # With respect to the cosine itself Eq. 6 gives -(1 - s).
    logits = _random_logits(4, 5, seed=6)
    grad_s = gradient(lambda x: keras_dlpa.ipm_loss(labels, x), logits)
    expected_s = np.zeros_like(logits)
    expected_s[np.arange(4), labels] = logits[np.arange(4), labels] - 1
    np.testing.assert_allclose(grad_s, expected_s, atol=1e-6)


def test_out_of_range_labels_raise_eagerly():
    logits = _random_logits(3, 4)
    with pytest.raises(ValueError, match=r"\[0, 4\).*max=4"):
        keras_dlpa.IPMLoss()(np.array([0, 1, 4]), logits)
    with pytest.raises(ValueError, match="min=-1"):
        keras_dlpa.ipm_loss(np.array([0, -1, 2]), logits)


# Every way Keras runs the train step; on JAX `jit_compile=False` runs the
# step unjitted (eagerly), `jit_compile=True` under `jax.jit`; on torch
# `jit_compile=True` is torch.compile (tests/test_torch_backend.py leaves
# it out: over a minute per model here).
COMPILE_MODES = {
    "eager": {"run_eagerly": True},
    "graph": {"jit_compile": False},
    "xla": {"jit_compile": True},
}


def _label_check_model(mode):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(3),
            keras_dlpa.PrototypeLayer(unit_rows(4, 3)),
        ]
    )
    loss = keras_dlpa.IPMLoss()
    # What ReassignCallback does when training begins.
    loss.statistics_layer = model.layers[-1]
    model.compile("sgd", loss=loss, **COMPILE_MODES[mode])
    return model


@pytest.mark.parametrize("mode", COMPILE_MODES)
@pytest.mark.parametrize(
    "bad_batch", [[0, 1, 2, 9], [9, 9, 9, 9], [-1, -1, -1, -1]]
)
def test_out_of_range_labels_stop_fit_in_every_compile_mode(mode, bad_batch):
    # Eager and TF graph steps raise at once. XLA drops assertion ops (TF
    # jit_compile=True) and jax.jit cannot raise: the loss and the class
    # statistics turn NaN, and ReassignCallback raises at its update, even
    # when every label of the batch is invalid.
    model = _label_check_model(mode)
    x = np.ones((8, 3), "float32")
    y = np.array([0, 1, 2, 3, *bad_batch])
    with pytest.raises(Exception, match=r"Labels must be integers in \[0, 4\)"):
        model.fit(
            x,
            y,
            batch_size=4,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[keras_dlpa.ReassignCallback()],
        )


@pytest.mark.parametrize("mode", COMPILE_MODES)
def test_out_of_range_labels_fail_the_step_or_make_its_loss_nan(mode):
    model = _label_check_model(mode)
    x = np.ones((4, 3), "float32")
    y = np.array([0, 1, 2, 9])
    # torch.compile breaks its graph at the check's host read and raises.
    if mode == "xla" and keras.backend.backend() != "torch":
        logs = model.train_on_batch(x, y, return_dict=True)
        assert np.isnan(logs["loss"])
        layer = model.layers[-1]
        assert np.isnan(ops.convert_to_numpy(layer.feature_sums)).any()
    else:
        with pytest.raises(Exception, match=r"Labels must be integers in"):
            model.train_on_batch(x, y)


def test_bad_label_shape():
    with pytest.raises(ValueError, match="shape"):
        keras_dlpa.ipm_loss(np.zeros((2, 3, 1)), _random_logits(2, 4))


def test_config_round_trip():
    loss = keras_dlpa.IPMLoss(class_scale=True, scale=128.0, name="lt")
    restored = run_serialization_test(loss)
    assert restored.class_scale and restored.name == "lt"
    assert restored.scale == 128.0


def test_loss_adds_only_the_batch_behind_its_own_y_pred():
    """A `layer(x, training=True)` whose output never reaches the loss adds
    nothing, even for a batch of the same size; the loss's own `y_pred`
    adds its batch once."""
    from keras_dlpa import PrototypeLayer

    layer = PrototypeLayer(np.eye(5, 16, dtype="float32"))
    loss = keras_dlpa.IPMLoss()
    loss.statistics_layer = layer
    probe = layer(np.ones((5, 16), "float32"), training=True)
    logits = _random_logits(5, 5)
    labels = np.array([0, 1, 2, 3, 4])
    value = loss(labels, logits)
    expected = 0.5 * (logits[np.arange(5), labels] - 1.0) ** 2
    np.testing.assert_allclose(float(value), expected.mean(), rtol=1e-6)
    counts = keras.ops.convert_to_numpy(layer.feature_counts)
    np.testing.assert_array_equal(counts, np.zeros(5))
    loss(labels, probe)
    counts = keras.ops.convert_to_numpy(layer.feature_counts)
    np.testing.assert_array_equal(counts, np.ones(5))


def test_scale_is_the_reference_batch_sum():
    # The reference's balanced loss: sum over the batch of (1 - cos)^2,
    # which is scale = 2 B times the default batch mean of 1/2 (cos - 1)^2.
    logits = _random_logits(8, 5, seed=3)
    labels = np.array([0, 4, 2, 2, 1, 3, 0, 4])
    reference = ((1.0 - logits[np.arange(8), labels]) ** 2).sum()
    loss = keras_dlpa.IPMLoss(scale=2 * 8)(labels, logits)
    np.testing.assert_allclose(float(loss), reference, rtol=1e-5)
    plain = keras_dlpa.IPMLoss()(labels, logits)
    np.testing.assert_allclose(float(loss), 16 * float(plain), rtol=1e-5)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale_names_the_argument(scale):
    with pytest.raises(ValueError, match="`scale` must be a finite number"):
        keras_dlpa.IPMLoss(scale=scale)
