"""A train step with a second training-mode forward pass of the same batch
size (a second view, `-x`) before the loss: only the features of the pass
whose output reaches the loss may enter the class statistics.

`feature_sum_errors()` runs the check on the current backend (the test
suite calls it in-process on TensorFlow and in the JAX core run). As a
script, `python two_views.py mirrored` runs it under a `MirroredStrategy`
on two logical CPUs and prints the result as one JSON line.
"""

import contextlib
import json
import os
import sys

if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_dlpa  # noqa: E402

C, D, BATCH = 4, 3, 8


class _SecondView:
    """Runs the model on `-x` in training mode inside the train step."""

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        # Kept alive through the loss, as a real second view would be.
        second_view = self(-x, training=True) if training else None
        loss = super().compute_loss(x, y, y_pred, sample_weight, training)
        del second_view
        return loss


class TaskTwoViews(_SecondView, keras_dlpa.PrototypeClassifier):
    pass


class PlainTwoViews(_SecondView, keras.Sequential):
    pass


def _frozen_identity():
    # Trains at learning rate 0: the features stay the inputs.
    return keras.layers.Dense(D, use_bias=False, kernel_initializer="identity")


def feature_sum_errors(scope=None) -> dict:
    """The largest error of the feature sums after one epoch, for the
    `PrototypeClassifier` and for a plain Keras model with `IPMLoss`, and
    their class counts; built and compiled under `scope`."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * BATCH, D)).astype("float32")
    y = np.arange(len(x)) % C
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.stack([unit[y == k].sum(0) for k in range(C)])
    prototypes = rng.normal(size=(C, D))
    errors = {}
    with scope or contextlib.nullcontext():
        inputs = keras.Input((D,))
        backbone = keras.Model(inputs, _frozen_identity()(inputs))
        task = TaskTwoViews(backbone, C, method="static", prototypes=prototypes)
        task.compile(optimizer=keras.optimizers.SGD(0.0))
        plain = PlainTwoViews(
            [
                keras.Input((D,)),
                _frozen_identity(),
                keras_dlpa.PrototypeLayer(prototypes),
            ]
        )
        loss = keras_dlpa.IPMLoss()
        loss.statistics_layer = plain.layers[-1]
        plain.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
    for name, model, layer in [
        ("task", task, task.prototype_layer),
        ("plain", plain, plain.layers[-1]),
    ]:
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        sums = ops.convert_to_numpy(layer.feature_sums)
        counts = ops.convert_to_numpy(layer.feature_counts)
        errors[name] = float(np.abs(sums - expected).max())
        errors[name + "_counts"] = counts.tolist()
    return errors


if __name__ == "__main__":
    assert sys.argv[1:] == ["mirrored"], sys.argv
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps(feature_sum_errors(strategy.scope())))
