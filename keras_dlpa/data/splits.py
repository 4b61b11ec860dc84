"""Seeded, stratified train/validation splits."""

from __future__ import annotations

import numpy as np

from keras_dlpa.data.image_data import ImageData


def stratified_split(
    labels: np.ndarray,
    val_fraction: float = 0.1,
    seed: int = 0,
    num_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Splits indices into train and validation parts, class by class.

    Class `k` with `n_k >= 2` samples gives `round_half_up(n_k *
    val_fraction)`, clipped to `[1, n_k - 1]`, to validation: the first of
    `rng.permutation` of its indices, `rng = RandomState(seed)`, classes in
    label order. A single sample stays in training.

    Args:
        labels: integer array of shape `(N,)`.
        val_fraction: fraction of each class to hold out, in `(0, 1)`.
        seed: seed of the `RandomState` that picks the samples.
        num_classes: number of classes. Defaults to `max(labels) + 1`.

    Returns:
        `(train_idx, val_idx)`: disjoint, sorted int64 index arrays whose
        union is `range(N)`.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            "`val_fraction` must be in the open interval (0, 1). "
            f"Received: val_fraction={val_fraction}."
        )
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"`labels` must be 1-D. Received shape {labels.shape}."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"`labels` must be >= 0. Received min {labels.min()}.")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    rng = np.random.RandomState(seed)
    train_parts, val_parts = [], []
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        n = members.size
        if n < 2:
            train_parts.append(members)
            continue
        n_val = int(np.floor(n * val_fraction + 0.5))
        n_val = min(max(n_val, 1), n - 1)
        shuffled = rng.permutation(members)
        val_parts.append(shuffled[:n_val])
        train_parts.append(shuffled[n_val:])
    empty = np.zeros((0,), np.int64)
    train_idx = np.sort(np.concatenate(train_parts or [empty]))
    val_idx = np.sort(np.concatenate(val_parts or [empty]))
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


def split_train_val(
    data: ImageData, val_fraction: float = 0.1, seed: int = 0
) -> tuple[ImageData, ImageData]:
    """`(train, val)` of `stratified_split`, each in the original order."""
    train_idx, val_idx = stratified_split(
        data.labels, val_fraction, seed, num_classes=data.num_classes
    )
    return data.subset(train_idx), data.subset(val_idx)
