"""Shared test helpers for serialisable objects (the pattern of Keras'
`run_layer_test` and keras-hub's `run_serialization_test`)."""

from __future__ import annotations

import json
import os

import keras
import numpy as np


def _canonical(config) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _assert_same_config(got, expected) -> None:
    got, expected = _canonical(got), _canonical(expected)
    if got != expected:
        at = next(
            (i for i, (a, b) in enumerate(zip(got, expected)) if a != b),
            min(len(got), len(expected)),
        )
        raise AssertionError(
            "Configs differ at character "
            f"{at}:\n{got[max(0, at - 150) : at + 150]}\n!=\n"
            f"{expected[max(0, at - 150) : at + 150]}"
        )


def run_serialization_test(
    obj, inputs=None, tmp_path=None, config_determines_weights=False
):
    """Round-trips `obj` through its config, Keras serialisation and (for
    layers and models, given `inputs` and `tmp_path`) a `.keras` file.

    Checks that `from_config(get_config())` and
    `deserialize_keras_object(serialize_keras_object(...))` give an object
    of the same class with the same config (compared as JSON), and that a
    `.keras` save and load (a layer is wrapped in a functional model)
    restores every variable and gives the same outputs on `inputs`. With
    `config_determines_weights` (a layer whose variables all follow from its
    config), the object made from the config alone must give the same
    outputs too.

    Returns:
        The object loaded from the `.keras` file, or the deserialised one.
    """
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert type(clone) is type(obj)
    _assert_same_config(clone.get_config(), config)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(obj)
    )
    assert type(restored) is type(obj)
    _assert_same_config(restored.get_config(), config)
    if config_determines_weights:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(clone(inputs)),
            keras.ops.convert_to_numpy(obj(inputs)),
        )
    if inputs is None or tmp_path is None:
        return restored
    model = obj
    if not isinstance(obj, keras.Model):
        tensor = keras.Input(np.shape(inputs)[1:])
        model = keras.Model(tensor, obj(tensor))
    path = os.path.join(tmp_path, "round_trip.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.weights) == len(model.weights)
    for saved, again in zip(model.weights, loaded.weights):
        assert saved.path == again.path
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(again), keras.ops.convert_to_numpy(saved)
        )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(inputs, training=False)),
        keras.ops.convert_to_numpy(model(inputs, training=False)),
        atol=1e-6,
    )
    return loaded
