import os

import keras
import numpy as np
import pytest
from conftest import unit_rows
from keras import ops
from testing import run_serialization_test

import keras_dlpa

pytestmark = pytest.mark.core


def _cosines(z, w, assignment):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    return z @ w[assignment].T


def test_logits_are_cosines_in_label_order():
    w = unit_rows(7, 4, seed=1)
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    layer = keras_dlpa.PrototypeLayer(w, initial_assignment=perm)
    z = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    out = ops.convert_to_numpy(layer(z))
    np.testing.assert_allclose(out, _cosines(z, w, perm), atol=1e-6)
    assert out.shape == (5, 7)


def test_prototypes_are_normalised_and_fixed():
    w = 3.0 * unit_rows(5, 3)
    layer = keras_dlpa.PrototypeLayer(w)
    layer.build((None, 3))
    stored = ops.convert_to_numpy(layer.prototypes)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6)
    assert layer.trainable_weights == []


def test_dimension_mismatch_names_both_numbers():
    layer = keras_dlpa.PrototypeLayer(unit_rows(10, 4))
    with pytest.raises(ValueError, match=r"d=4.*feature size 6"):
        layer(np.zeros((2, 6), "float32"))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((5,)), "2-D array"),
        (np.zeros((1, 3)), "at least 2 rows"),
        (np.array([[1.0, 0.0], [0.0, 0.0]]), "all-zero rows"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    ],
)
def test_bad_prototypes(bad, message):
    with pytest.raises(ValueError, match=message):
        keras_dlpa.PrototypeLayer(bad)


def test_initial_assignment_options():
    w = unit_rows(6, 3)
    a = keras_dlpa.PrototypeLayer(w, initial_assignment="random", seed=3)
    b = keras_dlpa.PrototypeLayer(w, initial_assignment="random", seed=3)
    a.build((None, 3))
    b.build((None, 3))
    pa = ops.convert_to_numpy(a.assignment)
    np.testing.assert_array_equal(pa, ops.convert_to_numpy(b.assignment))
    assert sorted(pa.tolist()) == list(range(6))
    with pytest.raises(ValueError, match="permutation"):
        keras_dlpa.PrototypeLayer(w, initial_assignment=[0, 0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="'identity', 'random'"):
        keras_dlpa.PrototypeLayer(w, initial_assignment="sorted")


def test_set_assignment_validates():
    layer = keras_dlpa.PrototypeLayer(unit_rows(4, 2))
    layer.build((None, 2))
    layer.set_assignment([1, 0, 3, 2])
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer.assignment), [1, 0, 3, 2]
    )
    with pytest.raises(ValueError, match="permutation of range\\(4\\)"):
        layer.set_assignment([1, 0, 3])


def test_only_the_output_of_a_training_call_adds_statistics():
    layer = keras_dlpa.PrototypeLayer(unit_rows(4, 2))
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], "float32")
    labels = np.array([0, 1, 1])
    logits = layer(x, training=True)
    same_size = layer(x, training=False)
    assert not layer.update_statistics(labels, same_size)
    assert not layer.update_statistics(labels, ops.convert_to_numpy(logits))
    assert layer.update_statistics(labels, logits)
    assert not layer.update_statistics(labels, logits)  # taken once
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.feature_sums),
        [[1.0, 0.0], [0.6, 1.8], [0.0, 0.0], [0.0, 0.0]],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.feature_counts), [1, 2, 0, 0]
    )
    untracked = keras_dlpa.PrototypeLayer(
        unit_rows(4, 2), track_statistics=False
    )
    assert not untracked.update_statistics(labels, untracked(x, training=True))


def test_update_statistics_refuses_other_logits_and_poisons_bad_labels():
    layer = keras_dlpa.PrototypeLayer(unit_rows(4, 2))
    x = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    with pytest.raises(ValueError, match=r"4 classes.*shape \(2, 3\)"):
        layer.update_statistics(np.array([0, 1]), np.zeros((2, 3)))
    # Labels are the loss's to check; a bad batch marks the sums NaN.
    assert layer.update_statistics(np.array([0, 4]), layer(x, training=True))
    assert np.isnan(ops.convert_to_numpy(layer.feature_counts)).all()
    assert np.isnan(ops.convert_to_numpy(layer.feature_sums)[0]).all()


def test_config_and_keras_round_trips(tmp_path):
    layer = keras_dlpa.PrototypeLayer(
        unit_rows(5, 3), initial_assignment="random", seed=7, name="protos"
    )
    z = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    run_serialization_test(layer, z, tmp_path, config_determines_weights=True)


def test_keras_round_trip_restores_prototypes_assignment_statistics(tmp_path):
    w = unit_rows(6, 3, seed=2)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(3),
            keras_dlpa.PrototypeLayer(w, name="protos"),
        ]
    )
    layer = model.get_layer("protos")
    perm = np.array([5, 3, 1, 0, 2, 4])
    layer.set_assignment(perm)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 3)).astype("float32")
    layer.representatives.assign(q)
    layer.feature_sums.assign(q * 2)
    layer.feature_counts.assign(np.arange(6, dtype="float32"))
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.get_layer("protos")
    for name in (
        "prototypes",
        "assignment",
        "representatives",
        "feature_sums",
        "feature_counts",
    ):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(getattr(restored, name)),
            ops.convert_to_numpy(getattr(layer, name)),
        )
    x = rng.normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
