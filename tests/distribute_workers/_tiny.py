"""A tiny DL2PA problem shared by the distributed worker scripts."""

import numpy as np


def planted_data(num_classes=6, dim=4, n_per_class=12, noise=0.3, seed=0):
    """Features near `prototypes[perm[y]]`, shuffled with a fixed seed.

    Returns `(prototypes (c, d), perm (c,), x (N, d) f32, y (N,) int32)`.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(num_classes, dim))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    perm = rng.permutation(num_classes)
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = w[perm[y]] + noise * rng.normal(size=(len(y), dim))
    order = rng.permutation(len(y))
    return (
        w.astype("float32"),
        perm,
        x[order].astype("float32"),
        y[order].astype("int32"),
    )


def build_model(prototypes, in_dim, lr, hidden=0, seed=0, class_scale=False):
    """Dense projection (identity, or a seeded hidden layer) + prototypes,
    trained with `IPMLoss(class_scale=class_scale)`."""
    import keras

    import keras_dlpa

    d = prototypes.shape[1]
    layers = [keras.Input((in_dim,))]
    if hidden:
        init = keras.initializers.GlorotUniform(seed=seed)
        layers.append(
            keras.layers.Dense(
                hidden, activation="tanh", kernel_initializer=init
            )
        )
        layers.append(keras.layers.Dense(d, kernel_initializer=init))
    else:
        layers.append(
            keras.layers.Dense(d, use_bias=False, kernel_initializer="identity")
        )
    layers.append(
        keras_dlpa.PrototypeLayer(
            prototypes, initial_assignment="identity", name="protos"
        )
    )
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr),
        loss=keras_dlpa.IPMLoss(class_scale=class_scale),
    )
    return model


def recording_callback(strategy=None, **kwargs):
    """A `ReassignCallback` recording the assignment after each update.

    With a `tf.distribute` strategy it also records the per-replica interval
    counts just before each update (`local_counts`).
    """
    from keras import ops

    import keras_dlpa

    class Recording(keras_dlpa.ReassignCallback):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            self.history = []
            self.local_counts = []

        def update(self, epoch):
            if strategy is not None:
                self.local_counts.append(
                    local_values(strategy, self._layer.feature_counts)
                )
            cost = super().update(epoch)
            self.history.append(ops.convert_to_numpy(self._layer.assignment))
            return cost

    return Recording(**kwargs)


def local_values(strategy, variable):
    """Per-replica numpy values of a Keras variable under `strategy`."""
    value = getattr(variable, "value", variable)
    return np.stack(
        [np.asarray(v) for v in strategy.experimental_local_results(value)]
    )


def count_reads():
    """Records every image `LabelledPaths.read` reads, in this process.

    Returns the list the paths are appended to (decode in this process,
    `workers=0`, to see them all).
    """
    from keras_dlpa.data import labelled_paths

    reads = []
    read = labelled_paths.LabelledPaths.read

    def counting_read(self, index):
        reads.append(str(self.items[int(index)]))
        return read(self, index)

    labelled_paths.LabelledPaths.read = counting_read
    return reads


def process_index():
    """This process's index from TF_CONFIG or KERAS_DISTRIBUTION_PROCESS_ID."""
    import json
    import os

    if os.environ.get("TF_CONFIG"):
        return int(json.loads(os.environ["TF_CONFIG"])["task"]["index"])
    return int(os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", 0))
