"""Exponential long-tailed subsampling (CIFAR-LT protocol)."""

from __future__ import annotations

import numpy as np

from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.splits import split_train_val


def _check_imbalance(imbalance_factor: float) -> None:
    if not 0.0 < imbalance_factor <= 1.0:
        raise ValueError(
            "`imbalance_factor` must be in (0, 1] (n_min / n_max; 1.0 is "
            f"balanced, 0.01 is CIFAR-LT 'ratio 100'). Received: "
            f"imbalance_factor={imbalance_factor}."
        )


def long_tailed_counts(
    n_max: int, num_classes: int, imbalance_factor: float
) -> np.ndarray:
    """Per-class sizes of the exponential long-tailed profile.

    `n_k = int(n_max * imbalance_factor ** (k / (num_classes - 1)))` for
    `k = 0 .. num_classes - 1`: class 0 is the head with `n_max` samples
    and the last class has `int(n_max * imbalance_factor)`.

    Args:
        n_max: size of the head class (per-class size of the balanced set).
        num_classes: number of classes `c`.
        imbalance_factor: `n_min / n_max` in `(0, 1]`; 1.0 is balanced.

    Returns:
        int64 array of shape `(num_classes,)`.

    Example:

    >>> int(long_tailed_counts(500, 100, 0.01).sum())  # CIFAR-100-LT
    10847
    """
    _check_imbalance(imbalance_factor)
    if n_max < 1 or num_classes < 1:
        raise ValueError(
            "`n_max` and `num_classes` must be >= 1. Received: "
            f"n_max={n_max}, num_classes={num_classes}."
        )
    if num_classes == 1:
        return np.array([int(n_max)], np.int64)
    exponents = np.arange(num_classes) / (num_classes - 1.0)
    return np.array(
        [int(n_max * imbalance_factor**e) for e in exponents], np.int64
    )


def long_tailed_indices(
    labels: np.ndarray,
    imbalance_factor: float,
    seed: int = 0,
    num_classes: int | None = None,
    n_max: int | None = None,
) -> np.ndarray:
    """Indices of the samples kept by the long-tailed profile.

    Selection rule (the one of the CIFAR-LT reference code, LDAM-DRW):
    `rng = np.random.RandomState(seed)`; for each class `k` in label order,
    `idx = np.flatnonzero(labels == k)` (ascending), `rng.shuffle(idx)` and
    keep `idx[:n_k]`, with `n_k` from `long_tailed_counts`. This equals
    `np.random.seed(seed)` followed by `np.random.shuffle` per class.

    Args:
        labels: integer array `(N,)`.
        imbalance_factor: `n_min / n_max` in `(0, 1]`.
        seed: seed of the `RandomState`.
        num_classes: defaults to `max(labels) + 1`.
        n_max: head-class size. Defaults to the largest class count.

    Returns:
        Sorted int64 indices (original order of `labels`).
    """
    _check_imbalance(imbalance_factor)
    labels = np.asarray(labels)
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    available = np.bincount(labels, minlength=num_classes)
    if n_max is None:
        n_max = int(available.max())
    counts = long_tailed_counts(n_max, num_classes, imbalance_factor)
    short = np.flatnonzero(counts > available)
    if short.size:
        k = int(short[0])
        raise ValueError(
            f"Class {k} has {available[k]} samples but the long-tailed "
            f"profile (n_max={n_max}, imbalance_factor={imbalance_factor}) "
            f"needs {counts[k]}. Pass a smaller `n_max` or a balanced set."
        )
    rng = np.random.RandomState(seed)
    kept = []
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)
        rng.shuffle(idx)
        kept.append(idx[: counts[k]])
    return np.sort(np.concatenate(kept)).astype(np.int64)


def make_long_tailed(
    data: ImageData,
    imbalance_factor: float,
    seed: int = 0,
    n_max: int | None = None,
) -> ImageData:
    """Subsamples `data` to the exponential long-tailed profile.

    See `long_tailed_indices` for the selection rule. With the full
    CIFAR-10 train split (5,000 per class) this gives 11,203 / 12,406 /
    13,996 images at imbalance 0.005 / 0.01 / 0.02; with CIFAR-100 (500
    per class) 9,502 / 10,847 / 12,608.

    Returns:
        The long-tailed `ImageData`, in the original order.
    """
    indices = long_tailed_indices(
        data.labels, imbalance_factor, seed, data.num_classes, n_max
    )
    return data.subset(indices)


def long_tailed_train_val(
    data: ImageData,
    imbalance_factor: float | None,
    val_fraction: float = 0.1,
    seed: int = 0,
    val: ImageData | None = None,
) -> tuple[ImageData, ImageData]:
    """Balanced validation split, then a long-tailed training set.

    The one split rule of the library (the runner and every recipe use
    it). Order: carve a stratified validation set from the full (balanced)
    training split with `split_train_val(data, val_fraction, seed)` (unless
    `val` is given), then apply `make_long_tailed(train, imbalance_factor,
    seed, n_max)` to the rest, with `n_max` the SMALLEST remaining class
    count (equal to every class for the balanced CIFAR splits, so every
    class can fill its quota). `n_max` is then `(1 - val_fraction)` times
    the full per-class size, so the training set is smaller than the
    published CIFAR-LT sizes. `imbalance_factor=None` keeps the training
    part as it is.

    Returns:
        `(train_long_tailed, val_balanced)`.
    """
    if imbalance_factor is not None:
        _check_imbalance(imbalance_factor)
    if val is None:
        data, val = split_train_val(data, val_fraction, seed)
    if imbalance_factor is not None:
        n_max = int(data.class_counts().min())
        data = make_long_tailed(data, imbalance_factor, seed, n_max=n_max)
    return data, val
