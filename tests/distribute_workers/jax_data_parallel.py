"""The tiny DL2PA model under `keras.distribution.DataParallel` on JAX.

Usage: python jax_data_parallel.py OUT.npz [--devices 2]
Forces `--devices` host (CPU) devices, then runs a frozen-backbone fit
(statistics) and a short training fit on a planted permutation.
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--devices", type=int, default=2)
ARGS = parser.parse_args()
os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = " ".join([  # the session's flags kept
    os.environ.get("XLA_FLAGS", ""),
    f"--xla_force_host_platform_device_count={ARGS.devices}",
]).strip()  # fmt: skip
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]

import _tiny  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402


def main():
    devices = jax.devices("cpu")
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices)
    )
    keras.utils.set_random_seed(0)
    result = {"devices": len(devices)}

    w, perm, x, y = _tiny.planted_data(n_per_class=12, noise=0.3, seed=0)
    model = _tiny.build_model(w, x.shape[1], 0.0)
    callback = _tiny.recording_callback(momentum=0.0)
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    layer = model.get_layer("protos")
    result.update(
        stats_x=x,
        stats_y=y,
        stats_representatives=ops.convert_to_numpy(layer.representatives),
        stats_observed=ops.convert_to_numpy(layer.observed),
        stats_counts_after=ops.convert_to_numpy(layer.feature_counts),
        stats_perm=perm,
        stats_assignment=ops.convert_to_numpy(layer.assignment),
        variable_devices=len(layer.representatives.value.sharding.device_set),
    )

    # Planted permutation, trained: the assignment must recover it.
    w, perm, x, y = _tiny.planted_data(n_per_class=16, noise=0.3, seed=2)
    model = _tiny.build_model(w, x.shape[1], 0.1)
    callback = _tiny.recording_callback(updates_per_epoch=2, momentum=0.5)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    result.update(
        train_perm=perm,
        train_loss=np.asarray(history.history["loss"]),
        train_assignments=np.stack(callback.history),
    )
    np.savez(ARGS.out, **result)


if __name__ == "__main__":
    main()
