"""One process of a streamed multi-host fit of a tiny DL2PA model.

Usage: python multihost_stream.py SETTINGS_JSON STRATEGY OUT.npz

SETTINGS_JSON: `{"image_dir": ..., "batch_size": B, "seed": s,
"augmentation": {StreamAugmentation fields}}`.

The backend comes from `KERAS_BACKEND`, the cluster from `TF_CONFIG`
(TensorFlow) or the `KERAS_DISTRIBUTION_*` variables (JAX).
`keras_dlpa.training.distribution.resolve_distribution(STRATEGY)` comes
first, then the library's streamed input (`stream_train_dataset` with the
grain executor, decoding in this process) through
`Distribution.training_input`, a tiny conv net + `PrototypeLayer` trained
1 epoch with `ReassignCallback`, and `predict_logits` on the images.
Writes the weights, the DL2PA state, the logits, the input shard and every
image this process read.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]

from keras_dlpa.training.distribution import resolve_distribution  # noqa

SETTINGS, STRATEGY, OUT = sys.argv[1:4]
# First: multi-worker collectives are set up before any other op.
DISTRIBUTION = resolve_distribution(STRATEGY)

import json  # noqa: E402

import _tiny  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import keras_dlpa  # noqa: E402
from keras_dlpa.data import EvalBatches  # noqa: E402
from keras_dlpa.data import StreamAugmentation  # noqa: E402
from keras_dlpa.data import TrainingInput  # noqa: E402
from keras_dlpa.data import load_labelled_paths  # noqa: E402
from keras_dlpa.data import steps_per_epoch  # noqa: E402
from keras_dlpa.data import stream_train_dataset  # noqa: E402
from keras_dlpa.evaluation import predict_logits  # noqa: E402

SETTINGS = json.loads(SETTINGS)
BATCH, SEED = SETTINGS["batch_size"], SETTINGS["seed"]
AUGMENTATION = StreamAugmentation(**SETTINGS["augmentation"])
SIZE = AUGMENTATION.image_size


def build_model(num_classes):
    init = keras.initializers.GlorotUniform(seed=0)
    prototypes = _tiny.planted_data(num_classes=num_classes, dim=6)[0]
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(
                8, 3, strides=2, activation="relu", kernel_initializer=init
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(6, kernel_initializer=init),
            keras_dlpa.PrototypeLayer(prototypes, name="protos"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.5, momentum=0.9),
        loss=keras_dlpa.IPMLoss(),
    )
    return model


def main():
    reads = _tiny.count_reads()
    keras.utils.set_random_seed(0)
    data = load_labelled_paths(SETTINGS["image_dir"])
    shard = DISTRIBUTION.input_shard
    local = shard.local_batch_size(BATCH)
    element_spec = None  # (images, soft labels) of a local batch
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        element_spec = (
            tf.TensorSpec((local, SIZE, SIZE, 3), tf.float32),
            tf.TensorSpec((local, data.num_classes), tf.float32),
        )

    def make_dataset(shard):
        dataset, _ = stream_train_dataset(
            data,
            TrainingInput(BATCH, SEED, 0, 1, AUGMENTATION),
            workers=0,
            shard=shard,
        )
        return dataset

    train = DISTRIBUTION.training_input(make_dataset, BATCH, element_spec)
    with DISTRIBUTION.scope():
        model = build_model(data.num_classes)
    model.fit(
        train,
        epochs=1,
        steps_per_epoch=steps_per_epoch(len(data), BATCH),
        shuffle=False,
        verbose=0,
        callbacks=[keras_dlpa.ReassignCallback(momentum=0.5)],
    )
    train_reads = list(reads)
    logits = predict_logits(model, EvalBatches(data, 16, SIZE))
    layer = model.get_layer("protos")
    np.savez(
        OUT,
        reads=np.asarray(train_reads, dtype=str),
        input_shard=np.asarray([shard.index, shard.count]),
        num_replicas=DISTRIBUTION.num_replicas,
        logits=logits,
        assignment=ops.convert_to_numpy(layer.assignment),
        representatives=ops.convert_to_numpy(layer.representatives),
        observed=ops.convert_to_numpy(layer.observed),
        weights=np.concatenate(
            [ops.convert_to_numpy(v).ravel() for v in model.trainable_weights]
        ),
    )


if __name__ == "__main__":
    main()
