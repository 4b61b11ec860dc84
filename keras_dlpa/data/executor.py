"""Choosing the executor that runs the epoch plans."""

from __future__ import annotations

import keras

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.plan import Augmentation

EXECUTORS = ("auto", "tf", "grain")


def resolve_executor(executor: str = "auto") -> str:
    """`"tf"` on the TensorFlow backend and `"grain"` elsewhere for `"auto"`.

    `"tf"` needs TensorFlow installed; `"grain"` works on every backend.
    """
    if executor not in EXECUTORS:
        raise ValueError(
            f"`executor` must be one of {EXECUTORS}. Received: "
            f"executor={executor!r}"
        )
    if executor == "auto":
        return "tf" if keras.backend.backend() == "tensorflow" else "grain"
    return executor


def train_dataset(
    data: ImageData,
    batch_size: int,
    seed: int,
    initial_epoch: int,
    epochs: int,
    augmentation: Augmentation,
    executor: str = "auto",
    shard: InputShard | None = None,
):
    """Planned training batches of epochs `initial_epoch .. epochs - 1`.

    Both executors yield the same batches bit for bit (see
    `keras_dlpa.data.plan`). With a `shard` (multi-host input) each batch
    holds only this process's rows `shard.rows(batch_size)` of the global
    batch. Returns `(dataset, steps_per_epoch)`.
    """
    if resolve_executor(executor) == "tf":
        from keras_dlpa.data.pipeline import epoch_keyed_pipeline

        return epoch_keyed_pipeline(
            data,
            batch_size,
            seed,
            initial_epoch,
            epochs,
            crop_padding=augmentation.crop_padding,
            flip=augmentation.flip,
            mixup_alpha=augmentation.mixup_alpha,
            class_balanced=augmentation.class_balanced,
            shard=shard,
        )
    from keras_dlpa.data.grain_executor import grain_train_dataset

    return grain_train_dataset(
        data, batch_size, seed, initial_epoch, epochs, augmentation, shard=shard
    )
