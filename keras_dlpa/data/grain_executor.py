"""The grain executor of the epoch plans (any backend, no TensorFlow):
element `i` is batch `i % S` of epoch `i // S`."""

from __future__ import annotations

import functools
import logging

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import check_kind
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import BatchMaker
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import epoch_plan
from keras_dlpa.data.plan import steps_per_epoch


def import_grain():
    """`import grain`, without the warning "Failed to load jax profiler"
    that grain logs at import where JAX is not installed (torch, TF)."""
    logger = logging.getLogger("absl")
    logger.addFilter(quiet := lambda r: "jax profiler" not in r.getMessage())
    try:
        import grain
    finally:
        logger.removeFilter(quiet)
    return grain


def grain_train_dataset(
    data: ImageData,
    training_input: TrainingInput,
    one_hot: bool = False,
    num_threads: int = 2,
    prefetch: int = 8,
    shard: InputShard | None = None,
):
    """Planned training batches of epochs `initial_epoch .. epochs - 1`.

    Args:
        data: the training `ImageData`.
        training_input: the `plan.TrainingInput`.
        one_hot: one-hot labels without mixup.
        num_threads: grain read threads.
        prefetch: batches prefetched by grain.
        shard: build only this process's rows of each global batch.

    Returns:
        `(dataset, steps_per_epoch)`: a `grain.IterDataset` of `BatchMaker`
        batches (`b = B / shard.count` rows).
    """
    grain = import_grain()
    check_kind(data, ImageData)
    augmentation = training_input.augmentation_or(Augmentation)
    maker = BatchMaker(data, augmentation, one_hot, shard)
    batch_size = training_input.batch_size
    steps = steps_per_epoch(len(data), batch_size)
    # Worker threads share the plans of the epochs in flight.
    plan = functools.lru_cache(maxsize=4)(
        functools.partial(
            epoch_plan,
            data.labels,
            batch_size,
            training_input.seed,
            augmentation=augmentation,
            num_classes=data.num_classes,
        )
    )

    def batch(index):
        epoch, step = divmod(int(index), steps)
        return maker(plan(epoch), step)

    dataset = grain.MapDataset.range(
        training_input.initial_epoch * steps, training_input.epochs * steps
    ).map(batch)
    options = grain.ReadOptions(
        num_threads=int(num_threads), prefetch_buffer_size=int(prefetch)
    )
    return dataset.to_iter_dataset(options), steps
