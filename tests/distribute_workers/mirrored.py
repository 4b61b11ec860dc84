"""Trains the tiny DL2PA model under a TF strategy on N logical CPUs.

Usage: python mirrored.py OUT.npz --devices N [--backup-dir DIR]
                          [--single-out ONE.npz]

Two fits: "stats" (frozen backbone, SGD lr 0, momentum 0, one epoch) and
"train" (a small MLP, SGD, 3 epochs, 2 reassignments per epoch). Writes the
data, per-update assignments, losses, statistics and per-replica variable
values to OUT.npz. With `--backup-dir`, the training fit is also run with
`keras.callbacks.BackupAndRestore`, interrupted after epoch 1 and resumed.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402


class Interrupt(Exception):
    pass


def fit(
    strategy,
    x,
    y,
    w,
    lr,
    hidden,
    epochs,
    updates,
    momentum,
    batch,
    backup_dir=None,
    stop_after=None,
    class_scale=False,
):
    import _tiny
    import keras

    with strategy.scope():
        model = _tiny.build_model(
            w, x.shape[1], lr, hidden=hidden, class_scale=class_scale
        )
    callback = _tiny.recording_callback(
        strategy, updates_per_epoch=updates, momentum=momentum
    )
    # ReassignCallback first: the backup must hold the new assignment.
    callbacks = [callback]
    if backup_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(backup_dir))
    if stop_after is not None:

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == stop_after:
                    raise Interrupt()

        callbacks.append(Stop())
    history = model.fit(
        x,
        y,
        batch_size=batch,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return model, callback, history.history["loss"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--backup-dir", default=None)
    parser.add_argument(
        "--single-out",
        default=None,
        help="also run on the default (one-device) strategy, into this file",
    )
    args = parser.parse_args()

    # Before any TF op: split the CPU into logical devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices
    )
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.dirname(os.path.dirname(here))]
    run(
        "mirrored" if args.devices > 1 else "default",
        args.out,
        args.batch,
        args.backup_dir,
    )
    if args.single_out:  # one process less than a second worker
        run("default", args.single_out, args.batch, None)


def run(distribution, out, batch, backup_dir):
    """Every fit under `distribution`'s strategy; the results to `out`."""
    import _tiny
    import keras
    import numpy as np
    from keras import ops

    from keras_dlpa.training.distribution import check_global_batch
    from keras_dlpa.training.distribution import resolve_distribution

    keras.utils.set_random_seed(0)
    strategy = resolve_distribution(distribution).tf_strategy
    replicas = strategy.num_replicas_in_sync
    try:
        check_global_batch(batch + 1, replicas)
        odd_batch_error = ""
    except ValueError as error:
        odd_batch_error = str(error)
    result = {
        "replicas": replicas,
        "strategy": type(strategy).__name__,
        "per_replica": check_global_batch(batch, replicas),
        "odd_batch_error": odd_batch_error,
    }

    # Frozen backbone: the statistics must be the numpy class means.
    w, perm, x, y = _tiny.planted_data(n_per_class=12, noise=0.3, seed=0)
    model, callback, _ = fit(strategy, x, y, w, 0.0, 0, 1, 1, 0.0, batch)
    layer = model.get_layer("protos")
    result.update(
        stats_x=x,
        stats_y=y,
        stats_perm=perm,
        stats_representatives=ops.convert_to_numpy(layer.representatives),
        stats_observed=ops.convert_to_numpy(layer.observed),
        stats_local_counts_before=callback.local_counts[0],
        stats_local_counts_after=_tiny.local_values(
            strategy, layer.feature_counts
        ),
        stats_assignment=ops.convert_to_numpy(layer.assignment),
    )

    # Training: compare against the 1-device run.
    w, perm, x, y = _tiny.planted_data(n_per_class=16, noise=0.6, seed=1)
    model, callback, loss = fit(strategy, x, y, w, 0.5, 8, 3, 2, 0.5, 16)
    layer = model.get_layer("protos")
    result.update(
        train_perm=perm,
        train_loss=np.asarray(loss),
        train_assignments=np.stack(callback.history),
        train_representatives=ops.convert_to_numpy(layer.representatives),
        train_observed=ops.convert_to_numpy(layer.observed),
        train_weights=np.concatenate(
            [ops.convert_to_numpy(v).ravel() for v in model.trainable_weights]
        ),
        train_local_assignment=_tiny.local_values(strategy, layer.assignment),
        train_local_representatives=_tiny.local_values(
            strategy, layer.representatives
        ),
        train_local_kernel=_tiny.local_values(
            strategy, model.trainable_weights[0]
        ),
    )

    # The class-scaled loss (s_c^2 = gamma / n_c) with the global batch's
    # class counts: each replica's half has other counts.
    model, _, loss = fit(
        strategy, x, y, w, 0.5, 8, 2, 1, 0.5, 16, class_scale=True
    )
    result.update(
        scaled_loss=np.asarray(loss),
        scaled_weights=np.concatenate(
            [ops.convert_to_numpy(v).ravel() for v in model.trainable_weights]
        ),
    )

    if backup_dir:
        # Same training, killed after epoch 1 and resumed from the backup.
        try:
            fit(strategy, x, y, w, 0.5, 8, 3, 2, 0.5, 16, backup_dir, 1)
        except Interrupt:
            pass
        model, callback, loss = fit(
            strategy, x, y, w, 0.5, 8, 3, 2, 0.5, 16, backup_dir
        )
        result.update(
            resumed_assignments=np.stack(callback.history),
            resumed_weights=np.concatenate(
                [
                    ops.convert_to_numpy(v).ravel()
                    for v in model.trainable_weights
                ]
            ),
            resumed_representatives=ops.convert_to_numpy(
                model.get_layer("protos").representatives
            ),
        )
    np.savez(out, **result)


if __name__ == "__main__":
    main()
