"""SavedModel parity for a trained BatchNorm ResNet (TensorFlow only).

A CIFAR ResNet-8 DL2PA classifier is trained a few steps so that its
BatchNorm moving statistics are far from their initial values, exported
with `keras_dlpa.export.export_classifier`, reloaded with
`tf.saved_model.load`, and compared with the Keras model in inference mode
at two batch sizes (batch 1 is where batch statistics and moving statistics
differ most).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dlpa
from keras_dlpa import PrototypeClassifier
from keras_dlpa import export as ex
from keras_dlpa import models

SHAPE = (16, 16, 3)
NUM_CLASSES = 5


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    backbone = models.cifar_resnet(
        depth=8,
        width=4,
        input_statistics=(models.CIFAR10_MEAN, models.CIFAR10_STD),
        input_shape=SHAPE,
    )
    prototypes = np.random.default_rng(1).normal(size=(NUM_CLASSES, 16))
    model = PrototypeClassifier(backbone, NUM_CLASSES, prototypes=prototypes)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras_dlpa.IPMLoss(),
    )
    rng = np.random.default_rng(2)
    # Images with a strong per-channel offset: the moving means move.
    x = rng.uniform(0, 255, size=(64, *SHAPE)).astype("float32")
    x[..., 0] = np.clip(x[..., 0] + 60, 0, 255)
    y = rng.integers(0, NUM_CLASSES, size=64)
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[keras_dlpa.ReassignCallback()],
    )
    return model


def test_moving_statistics_are_not_trivial(trained):
    norms = [
        layer
        for layer in trained.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 8  # stem, 3 blocks x 2, features
    mean_shift = max(
        np.abs(keras.ops.convert_to_numpy(bn.moving_mean)).max() for bn in norms
    )
    var_shift = max(
        np.abs(keras.ops.convert_to_numpy(bn.moving_variance) - 1).max()
        for bn in norms
    )
    assert mean_shift > 0.1 and var_shift > 0.1, (mean_shift, var_shift)


def test_saved_model_matches_keras_inference(trained, tmp_path):
    result = ex.export_classifier(trained, tmp_path, formats="savedmodel")
    assert result.parity["passed"], result.parity
    loaded = tf.saved_model.load(str(result.paths["savedmodel"]))
    serve = loaded.signatures["serving_default"]
    serve_uint8 = loaded.signatures["serving_uint8"]
    rng = np.random.default_rng(3)
    for batch in (1, 5):
        images = rng.integers(0, 256, size=(batch, *SHAPE)).astype("float32")
        want = keras.ops.convert_to_numpy(trained(images, training=False))
        got = serve(images=tf.constant(images))
        np.testing.assert_allclose(got["logits"].numpy(), want, atol=1e-5)
        np.testing.assert_array_equal(
            got["label"].numpy().reshape(-1), want.argmax(axis=1)
        )
        got8 = serve_uint8(images=tf.constant(images.astype("uint8")))
        np.testing.assert_allclose(got8["logits"].numpy(), want, atol=1e-5)
        # The export normalises with the moving statistics, not the batch's
        # (a copy: a training-mode call updates the moving statistics).
        copy = keras.models.clone_model(trained)
        copy.set_weights(trained.get_weights())
        batch_mode = keras.ops.convert_to_numpy(copy(images, training=True))
        assert np.abs(batch_mode - want).max() > 1e-2
