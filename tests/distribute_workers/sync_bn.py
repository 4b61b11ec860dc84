"""Trains a small BatchNorm ResNet classifier on N logical CPUs.

Usage: python sync_bn.py OUT.npz --devices N [--single-out ONE.npz]

Two fits of the same seeded model and data under the strategy: with
per-replica BatchNorm (`synchronized_batch_norm=False`) and with
synchronised BatchNorm. The classifier is a CIFAR ResNet-8 (stem, block and
feature BatchNorms) + `project_features` (its BatchNorm) + `PrototypeLayer`,
trained with `IPMLoss`, SGD and `ReassignCallback` for 4 steps of a global
batch of 8. Writes every weight (trainable and BatchNorm moving statistics)
and the losses of both fits to OUT.npz.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

NUM_CLASSES = 4


def build(sync):
    import keras
    import numpy as np

    import keras_dlpa
    from keras_dlpa import models
    from keras_dlpa.models import project_features

    keras.utils.set_random_seed(0)
    backbone = models.cifar_resnet(
        depth=8,
        width=4,
        input_statistics=(models.CIFAR10_MEAN, models.CIFAR10_STD),
        input_shape=(8, 8, 3),
        synchronized_batch_norm=sync,
    )
    features = project_features(
        backbone.outputs[0], 6, synchronized_batch_norm=sync
    )
    backbone = keras.Model(backbone.inputs, features)
    prototypes = np.random.default_rng(1).normal(size=(NUM_CLASSES, 6))
    model = keras_dlpa.PrototypeClassifier(
        backbone, NUM_CLASSES, prototypes=prototypes
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras_dlpa.IPMLoss(),
    )
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument(
        "--single-out",
        default=None,
        help="also run on the default (one-device) strategy, into this file",
    )
    args = parser.parse_args()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices
    )
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [os.path.dirname(os.path.dirname(here))]
    run("mirrored" if args.devices > 1 else "default", args.out)
    if args.single_out:  # one process less than a second worker
        run("default", args.single_out)


def run(distribution, out):
    """Both fits under `distribution`'s strategy; the results to `out`."""
    import keras
    import numpy as np

    import keras_dlpa
    from keras_dlpa.training.distribution import resolve_distribution

    strategy = resolve_distribution(distribution).tf_strategy
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=32).astype("int32")
    result = {"replicas": strategy.num_replicas_in_sync}
    for sync in (False, True):
        with strategy.scope():
            model = build(sync)
        history = model.fit(
            x,
            y,
            batch_size=8,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[keras_dlpa.ReassignCallback()],
        )
        key = "sync" if sync else "local"
        bn = [
            layer
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        result[f"{key}_bn_layers"] = len(bn)
        result[f"{key}_bn_synchronized"] = sum(b.synchronized for b in bn)
        result[f"{key}_loss"] = np.asarray(history.history["loss"])
        result[f"{key}_weights"] = np.concatenate(
            [keras.ops.convert_to_numpy(v).ravel() for v in model.weights]
        )
        result[f"{key}_moving"] = np.concatenate(
            [
                keras.ops.convert_to_numpy(v).ravel()
                for b in bn
                for v in (b.moving_mean, b.moving_variance)
            ]
        )
    np.savez(out, **result)


if __name__ == "__main__":
    main()
