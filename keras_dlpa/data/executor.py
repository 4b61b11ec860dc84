"""Choosing the executor that runs the epoch plans."""

from __future__ import annotations

import keras

from keras_dlpa.checks import check_choice
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.plan import TrainingInput

EXECUTORS = ("auto", "tf", "grain", "device")


def resolve_executor(
    executor: str = "auto", in_memory: bool = True, whole_batches: bool = True
) -> str:
    """The executor that runs the plans.

    `"auto"`: `"device"` on JAX with an accelerator, in-memory data and
    whole batches; `"grain"` for streamed data (JPEG decoding scales with
    processes); else `"tf"` on TensorFlow and `"grain"` elsewhere.

    Args:
        executor: one of `EXECUTORS`.
        in_memory: the training data is an `ImageData` (not streamed).
        whole_batches: this process builds whole batches (one replica,
            or one process's replicas without an input shard).
    """
    check_choice("executor", executor, EXECUTORS)
    backend = keras.backend.backend()
    if executor == "device":
        needs = {
            f"the JAX backend (this is {backend})": backend == "jax",
            "in-memory data (these are streamed)": in_memory,
            "one replica on one process": whole_batches,
        }
        missing = [what for what, ok in needs.items() if not ok]
        if missing:
            raise ValueError(
                "executor='device' needs " + " and ".join(missing) + "; "
                "use executor='auto', 'grain' or 'tf'."
            )
        return executor
    if executor == "auto":
        if not in_memory:
            return "grain"
        if backend == "jax" and whole_batches:
            import jax

            if jax.default_backend() != "cpu":
                return "device"
        return "tf" if backend == "tensorflow" else "grain"
    return executor


def train_dataset(
    data: ImageData,
    training_input: TrainingInput,
    executor: str = "auto",
    shard: InputShard | None = None,
):
    """`(dataset, steps_per_epoch)` of the planned training batches of
    `training_input` (this process's rows with a `shard`), bit for bit the
    same on every executor."""
    executor = resolve_executor(executor)
    if executor == "device":
        from keras_dlpa.data.device_executor import device_train_dataset

        return device_train_dataset(data, training_input, shard=shard)
    if executor == "tf":
        from keras_dlpa.data.pipeline import epoch_keyed_pipeline

        return epoch_keyed_pipeline(data, training_input, shard=shard)
    from keras_dlpa.data.grain_executor import grain_train_dataset

    return grain_train_dataset(data, training_input, shard=shard)
