"""Vectorised batch-level augmentation with stateless random ops.

Every function takes a whole batch and a `(2,)` integer seed, so a
`tf.data` pipeline that feeds it a seeded stream of seeds is deterministic.
"""

from __future__ import annotations

import tensorflow as tf


def random_crop_flip(
    images: tf.Tensor, seed: tf.Tensor, padding: int = 4, flip: bool = True
) -> tf.Tensor:
    """Random crop after zero padding, then random horizontal flip.

    Equivalent to torchvision `RandomCrop((H, W), padding=padding)` (zero
    fill) followed by `RandomHorizontalFlip(0.5)`, per image: the crop
    offsets are uniform in `[0, 2 * padding]` on each axis. Implemented as
    two batched gathers, so it keeps the input dtype (e.g. uint8).

    Args:
        images: `(B, H, W, C)` tensor.
        seed: `(2,)` int32/int64 stateless seed.
        padding: zero padding on each side; 0 disables the crop.
        flip: whether to flip half of the images left-right.

    Returns:
        `(B, H, W, C)` tensor of the same dtype.
    """
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    if padding > 0:
        images = tf.pad(
            images, [[0, 0], [padding, padding], [padding, padding], [0, 0]]
        )
        offsets = tf.random.stateless_uniform(
            [2, batch],
            crop_seed,
            minval=0,
            maxval=2 * padding + 1,
            dtype=tf.int32,
        )
    else:
        offsets = tf.zeros([2, batch], tf.int32)
    rows = offsets[0][:, None] + tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    if flip:
        flipped = tf.random.stateless_uniform([batch], flip_seed) < 0.5
        cols = tf.where(flipped[:, None], width - 1 - cols, cols)
    cols = offsets[1][:, None] + cols
    images = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(images, cols, axis=2, batch_dims=1)


def sample_beta(seed: tf.Tensor, alpha: float) -> tf.Tensor:
    """One draw from `Beta(alpha, alpha)` as a float32 scalar."""
    gammas = tf.random.stateless_gamma([2], seed, alpha, dtype=tf.float32)
    total = gammas[0] + gammas[1]
    # Both gammas underflow to 0 only for tiny alpha; fall back to 0.5.
    return tf.where(total > 0, gammas[0] / tf.maximum(total, 1e-30), 0.5)


def mixup(
    images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, alpha: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup with one `lam ~ Beta(alpha, alpha)` per batch.

    `x = lam * x + (1 - lam) * x[perm]` and the same for the one-hot labels,
    with `perm` a random permutation of the batch (Zhang et al., 2018).

    Args:
        images: float32 `(B, H, W, C)`.
        labels: float32 one-hot `(B, num_classes)`.
        seed: `(2,)` stateless seed.
        alpha: Beta concentration, > 0.

    Returns:
        `(mixed_images, soft_labels)`; each soft label row sums to 1.
    """
    lam_seed, perm_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2)
    )
    lam = sample_beta(lam_seed, alpha)
    keys = tf.random.stateless_uniform([tf.shape(images)[0]], perm_seed)
    perm = tf.argsort(keys)
    images = lam * images + (1.0 - lam) * tf.gather(images, perm)
    labels = lam * labels + (1.0 - lam) * tf.gather(labels, perm)
    return images, labels
