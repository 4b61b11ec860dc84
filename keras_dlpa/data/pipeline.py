"""The tf.data executor of the epoch plans (TensorFlow backend): the
batches of `plan.BatchMaker`, bit for bit, with TensorFlow ops."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_dlpa.checks import check_int
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.image_data import check_kind
from keras_dlpa.data.input_shard import WHOLE_BATCH
from keras_dlpa.data.input_shard import InputShard
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import TrainingInput
from keras_dlpa.data.plan import epoch_plan
from keras_dlpa.data.plan import steps_per_epoch

_AUTOTUNE = tf.data.AUTOTUNE
_PLAN_TYPES = (tf.int64, tf.int32, tf.bool, tf.int64, tf.float32)


def _check_data(data: ImageData) -> None:
    check_kind(data, ImageData, " (see `from_arrays`)")
    if len(data) == 0:
        raise ValueError("`data` is empty; there is nothing to iterate.")


def _planned_batches(
    data, batch_size, seed, augmentation, epochs, one_hot, shard=None
):
    """`(batches, steps)` of `epochs`, a dataset of int64 epoch keys."""
    steps = steps_per_epoch(len(data), batch_size)
    labels = data.labels
    num_classes = data.num_classes

    def plan_arrays(epoch):
        plan = epoch_plan(
            labels, batch_size, seed, int(epoch), augmentation, num_classes
        )
        return plan.arrays()

    def one_epoch(epoch):
        arrays = tf.numpy_function(plan_arrays, [epoch], _PLAN_TYPES)
        b = [steps, batch_size]
        for array, shape in zip(arrays, (b, b + [2], b, b, [steps])):
            array.set_shape(shape)
        return tf.data.Dataset.from_tensor_slices(tuple(arrays))

    load = _batch_loader(data, augmentation, one_hot, shard)
    batches = epochs.flat_map(one_epoch)
    mapped = batches.map(load, num_parallel_calls=_AUTOTUNE, deterministic=True)
    return mapped, steps


def _batch_loader(data, augmentation, one_hot, shard=None):
    """`load(*plan_slice) -> (images, labels)`: `plan.BatchMaker` in TF."""
    images_t = tf.constant(data.images)
    labels_t = tf.constant(data.labels.astype(np.int32))
    num_classes = data.num_classes
    pad = augmentation.crop_padding
    augment = pad > 0 or augmentation.flip
    soft = augmentation.soft_labels
    one_hot = bool(one_hot) or soft
    height, width = data.image_shape[:2]
    shard = shard or WHOLE_BATCH

    def crops(indices, offsets, flips):
        images = tf.gather(images_t, indices)
        if augment:
            if pad > 0:
                pads = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
                images = tf.pad(images, pads)
            rows = offsets[:, 0, None] + tf.range(height)[None, :]
            cols = tf.broadcast_to(tf.range(width)[None, :], tf.shape(rows))
            cols = tf.where(flips[:, None], width - 1 - cols, cols)
            cols = offsets[:, 1, None] + cols
            images = tf.gather(images, rows, axis=1, batch_dims=1)
            images = tf.gather(images, cols, axis=2, batch_dims=1)
        return tf.cast(images, tf.float32)

    def load(indices, offsets, flips, partners, lam):
        rows = shard.rows(int(indices.shape[0]))
        images = crops(indices[rows], offsets[rows], flips[rows])
        labels = tf.gather(labels_t, indices[rows])
        if not one_hot:
            return images, labels
        onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
        if not soft:
            return images, onehot
        rest = tf.constant(1.0, tf.float32) - lam
        partners = partners[rows]
        if shard.is_whole:
            other = tf.gather(images, partners)
        else:  # partners anywhere in the global batch
            other = crops(
                tf.gather(indices, partners),
                tf.gather(offsets, partners),
                tf.gather(flips, partners),
            )
        other_labels = tf.gather(labels_t, tf.gather(indices, partners))
        other_onehot = tf.one_hot(other_labels, num_classes, dtype=tf.float32)
        images = lam * images + rest * other
        onehot = lam * onehot + rest * other_onehot
        return images, onehot

    return load


def epoch_keyed_pipeline(
    data: ImageData,
    training_input: TrainingInput,
    one_hot: bool = False,
    shard: InputShard | None = None,
) -> tuple[tf.data.Dataset, int]:
    """Training batches of epochs `initial_epoch .. epochs - 1` of
    `training_input`, resumable; with a `shard` only this process's
    `b = B / shard.count` rows of each.

    Returns:
        `(dataset, steps_per_epoch)`; images float32 0-255 `(b, H, W, 3)`,
        labels int32 `(b,)`, or float32 `(b, c)` (mixup or `one_hot`).
    """
    _check_data(data)
    augmentation = training_input.augmentation_or(Augmentation)
    keys = tf.data.Dataset.range(
        training_input.initial_epoch, training_input.epochs
    )
    batch_size, seed = training_input.batch_size, training_input.seed
    batches, steps = _planned_batches(
        data, batch_size, seed, augmentation, keys, one_hot, shard
    )
    return batches.prefetch(_AUTOTUNE), steps


def train_pipeline(
    data: ImageData,
    batch_size: int = 128,
    seed: int = 0,
    crop_padding: int = 4,
    flip: bool = True,
    mixup_alpha: float | None = None,
    class_balanced: bool = False,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """One epoch of planned training batches per iteration of the dataset.

    Each iteration runs the plan of a new epoch key from a stream seeded
    by `seed` (for exact resume use `epoch_keyed_pipeline`); the
    augmentation is `plan.Augmentation`'s; partial batches are dropped.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` with known cardinality.
    """
    _check_data(data)
    augmentation = Augmentation(
        crop_padding, flip, mixup_alpha or 0.0, class_balanced
    )
    keys = (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        .take(1)
        .map(lambda key: tf.math.floormod(key, 2**31))
    )
    batches, steps = _planned_batches(
        data, batch_size, seed, augmentation, keys, one_hot
    )
    cardinality = tf.data.experimental.assert_cardinality(steps)
    return batches.apply(cardinality).prefetch(_AUTOTUNE)


def eval_pipeline(
    data: ImageData, batch_size: int = 256, one_hot: bool = False
) -> tf.data.Dataset:
    """In-order evaluation batches `(images, labels)`, the last partial:
    float32 0-255 `(B, H, W, 3)`; int32 `(B,)` or float32 `(B, c)`."""
    _check_data(data)
    check_int("batch_size", batch_size)
    images_t = tf.constant(data.images)
    labels_t = tf.constant(data.labels.astype(np.int32))
    num_classes = data.num_classes

    def load(indices):
        images = tf.cast(tf.gather(images_t, indices), tf.float32)
        labels = tf.gather(labels_t, indices)
        if one_hot:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return images, labels

    return (
        tf.data.Dataset.range(len(data))
        .batch(batch_size)
        .map(load, num_parallel_calls=_AUTOTUNE)
        .prefetch(_AUTOTUNE)
    )
