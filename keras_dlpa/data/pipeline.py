"""`tf.data` training and evaluation pipelines over in-memory images."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from keras_dlpa.data.augment import mixup
from keras_dlpa.data.augment import random_crop_flip
from keras_dlpa.data.image_data import ImageData

_AUTOTUNE = tf.data.AUTOTUNE


def _check_common(data: ImageData, batch_size: int) -> None:
    if not isinstance(data, ImageData):
        raise TypeError(
            "`data` must be a `keras_dlpa.data.ImageData` (see `from_arrays`)."
            f" Received: {type(data).__name__}."
        )
    if len(data) == 0:
        raise ValueError("`data` is empty; there is nothing to iterate.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: {batch_size!r}."
        )


def _seed_stream(seed: int) -> tf.data.Dataset:
    """Infinite stream of `(2,)` int64 seeds, new values every epoch."""
    return tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    ).batch(2)


def _balanced_batches(
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    num_batches: int,
    seed: int,
) -> tf.data.Dataset:
    """Index batches where each draw picks a class uniformly, then a sample.

    Only classes with at least one sample are drawn.
    """
    counts = np.bincount(labels, minlength=num_classes)
    present = np.flatnonzero(counts > 0)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order_t = tf.constant(order, tf.int64)
    present_t = tf.constant(present, tf.int64)
    starts_t = tf.constant(starts, tf.int64)
    counts_t = tf.constant(counts, tf.float64)

    def draw(seed_pair):
        class_seed, item_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed_pair, num=2)
        )
        which = tf.random.stateless_uniform(
            [batch_size],
            class_seed,
            minval=0,
            maxval=present.size,
            dtype=tf.int64,
        )
        classes = tf.gather(present_t, which)
        count = tf.gather(counts_t, classes)
        u = tf.random.stateless_uniform(
            [batch_size], item_seed, dtype=tf.float64
        )
        offset = tf.minimum(
            tf.cast(tf.floor(u * count), tf.int64), tf.cast(count, tf.int64) - 1
        )
        return tf.gather(order_t, tf.gather(starts_t, classes) + offset)

    return (
        _seed_stream(seed + 7919)
        .take(num_batches)
        .map(draw, num_parallel_calls=_AUTOTUNE)
    )


def train_pipeline(
    data: ImageData,
    batch_size: int = 128,
    seed: int = 0,
    crop_padding: int = 4,
    flip: bool = True,
    mixup_alpha: float | None = None,
    class_balanced: bool = False,
    one_hot: bool = False,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """Shuffled, augmented, batched training batches `(images, labels)`.

    Images are float32 `(B, H, W, 3)` in the raw 0-255 range (the model
    normalises them). Each epoch (each new iteration) reshuffles and draws
    new augmentations; two pipelines built with the same `seed` yield
    identical batches (for a fixed TF global seed).
    Augmentation is vectorised per batch: zero-padded random crop (as
    torchvision `RandomCrop(size, padding=crop_padding)`), horizontal flip
    with probability 0.5, then mixup if `mixup_alpha` is set.

    Args:
        data: the training `ImageData`.
        batch_size: images per batch.
        seed: seeds the shuffle, the augmentation and the resampling.
        crop_padding: zero padding of the random crop; 0 disables cropping.
        flip: random horizontal flips.
        mixup_alpha: if > 0, mixup with one `lam ~ Beta(alpha, alpha)` per
            batch and a random pairing permutation; labels are then soft
            float32 `(B, num_classes)` rows summing to 1.
        class_balanced: resample so that each draw picks a class uniformly
            (among classes present), then an image of it uniformly, with
            replacement. An epoch has as many batches as a plain one.
        one_hot: without mixup, yield float32 one-hot labels instead of
            int32 sparse labels `(B,)`.
        drop_remainder: drop the last partial batch of each epoch.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` with known cardinality.
    """
    _check_common(data, batch_size)
    if mixup_alpha is not None and mixup_alpha < 0:
        raise ValueError(
            "`mixup_alpha` must be > 0 (or None/0 to disable mixup). "
            f"Received: mixup_alpha={mixup_alpha}."
        )
    if crop_padding < 0:
        raise ValueError(
            f"`crop_padding` must be >= 0. Received: {crop_padding}."
        )
    num = len(data)
    num_classes = data.num_classes
    if drop_remainder and num < batch_size:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the {num} training "
            "images, so `drop_remainder=True` would yield no batch. Lower "
            "`batch_size` or pass `drop_remainder=False`."
        )
    if class_balanced:
        num_batches = (
            num // batch_size if drop_remainder else math.ceil(num / batch_size)
        )
        batches = _balanced_batches(
            data.labels, num_classes, batch_size, num_batches, seed
        )
    else:
        batches = (
            tf.data.Dataset.range(num)
            .shuffle(num, seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size, drop_remainder=drop_remainder)
        )
    batches = tf.data.Dataset.zip(batches, _seed_stream(seed + 104729))
    load = _batch_loader(data, crop_padding, flip, mixup_alpha, one_hot)
    return batches.map(load, num_parallel_calls=_AUTOTUNE).prefetch(_AUTOTUNE)


def _batch_loader(data, crop_padding, flip, mixup_alpha, one_hot):
    """`load(indices, seed_pair) -> (images, labels)` for one batch.

    Gathers the images `(B, H, W, 3)` and labels, applies the stateless
    random crop/flip and mixup seeded by `seed_pair`, and casts the images
    to float32 0-255.
    """
    images_t = tf.constant(data.images)
    labels_t = tf.constant(data.labels.astype(np.int32))
    num_classes = data.num_classes
    use_mixup = bool(mixup_alpha)

    def load(indices, seed_pair):
        aug_seed, mix_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed_pair, num=2)
        )
        images = tf.gather(images_t, indices)
        labels = tf.gather(labels_t, indices)
        if crop_padding > 0 or flip:
            images = random_crop_flip(images, aug_seed, crop_padding, flip)
        images = tf.cast(images, tf.float32)
        if use_mixup:
            onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
            return mixup(images, onehot, mix_seed, float(mixup_alpha))
        if one_hot:
            return images, tf.one_hot(labels, num_classes, dtype=tf.float32)
        return images, labels

    return load


def epoch_keyed_pipeline(
    data: ImageData,
    batch_size: int,
    seed: int,
    initial_epoch: int,
    epochs: int,
    crop_padding: int = 4,
    flip: bool = True,
    mixup_alpha: float | None = None,
    one_hot: bool = False,
) -> tuple[tf.data.Dataset, int]:
    """Training batches of epochs `initial_epoch .. epochs - 1`, resumable.

    Like `train_pipeline`, but epoch `e` is a pure function of `(seed, e)`:
    a stateless random permutation of the images cut into
    `len(data) // batch_size` full batches, each augmented (crop/flip,
    mixup) with seeds derived from `(seed, e, batch)`. A run resumed at
    epoch `e` therefore sees exactly the batches an uninterrupted run
    sees. Pass `steps_per_epoch` to `fit`.

    Returns:
        `(dataset, steps_per_epoch)`; images float32 0-255 `(B, H, W, 3)`,
        labels int32 `(B,)` or float32 `(B, c)` (mixup or `one_hot`).
    """
    _check_common(data, batch_size)
    num = len(data)
    if num < batch_size:
        raise ValueError(
            f"`batch_size` ({batch_size}) is larger than the {num} training "
            "images; lower it."
        )
    steps = num // batch_size
    base = tf.constant([int(seed), 0], tf.int64)

    def one_epoch(epoch):
        epoch_seed = base + tf.stack([tf.constant(0, tf.int64), epoch + 1])
        perm_seed, aug_seed = tf.unstack(
            tf.random.experimental.stateless_split(epoch_seed, num=2)
        )
        keys = tf.random.stateless_uniform([num], perm_seed)
        order = tf.argsort(keys)[: steps * batch_size]
        batches = tf.reshape(order, [steps, batch_size])
        seeds = tf.random.experimental.stateless_split(aug_seed, num=steps)
        return tf.data.Dataset.from_tensor_slices((batches, seeds))

    load = _batch_loader(data, crop_padding, flip, mixup_alpha, one_hot)
    dataset = (
        tf.data.Dataset.range(initial_epoch, epochs)
        .flat_map(one_epoch)
        .map(load, num_parallel_calls=_AUTOTUNE, deterministic=True)
        .prefetch(_AUTOTUNE)
    )
    return dataset, steps


def eval_pipeline(
    data: ImageData, batch_size: int = 256, one_hot: bool = False
) -> tf.data.Dataset:
    """Evaluation batches `(images, labels)`: no augmentation, in order.

    Keeps the last partial batch. Images are float32 0-255
    `(B, H, W, 3)`; labels int32 `(B,)`, or float32 `(B, num_classes)`
    with `one_hot=True`.
    """
    _check_common(data, batch_size)
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
