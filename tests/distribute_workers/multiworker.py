"""One worker of a `MultiWorkerMirroredStrategy` run of the tiny model.

Usage: TF_CONFIG=... python multiworker.py OUT.npz

Uses `resolve_distribution("multiworker")` (first, before any TF op), the
same seeded data on every worker with tf.data's DATA auto-sharding,
and writes the final weights, statistics and per-update assignments.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]

from keras_dlpa.training.distribution import check_global_batch  # noqa
from keras_dlpa.training.distribution import resolve_distribution  # noqa

STRATEGY = resolve_distribution("multiworker").tf_strategy

import _tiny  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402


def main():
    out = sys.argv[1]
    keras.utils.set_random_seed(0)
    # Same data and training as the "train" fit of mirrored.py.
    w, perm, x, y = _tiny.planted_data(n_per_class=16, noise=0.6, seed=1)
    batch = 16
    check_global_batch(batch, STRATEGY.num_replicas_in_sync)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    dataset = dataset.with_options(options)
    with STRATEGY.scope():
        model = _tiny.build_model(w, x.shape[1], 0.5, hidden=8)
    callback = _tiny.recording_callback(updates_per_epoch=2, momentum=0.5)
    history = model.fit(
        dataset, epochs=3, shuffle=False, verbose=0, callbacks=[callback]
    )
    layer = model.get_layer("protos")
    np.savez(
        out,
        replicas=STRATEGY.num_replicas_in_sync,
        loss=np.asarray(history.history["loss"]),
        assignments=np.stack(callback.history),
        assignment=ops.convert_to_numpy(layer.assignment),
        representatives=ops.convert_to_numpy(layer.representatives),
        observed=ops.convert_to_numpy(layer.observed),
        weights=np.concatenate(
            [ops.convert_to_numpy(v).ravel() for v in model.trainable_weights]
        ),
    )


if __name__ == "__main__":
    main()
