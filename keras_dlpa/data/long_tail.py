"""Exponential long-tailed subsampling (CIFAR-LT protocol)."""

from __future__ import annotations

import numpy as np

from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.data.image_data import ImageData
from keras_dlpa.data.splits import split_train_val


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
    check_number("imbalance_factor", imbalance_factor, 0, 1)
    check_int("n_max", n_max)
    check_int("num_classes", num_classes)
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

    The CIFAR-LT reference rule (LDAM-DRW): `rng = RandomState(seed)`; per
    class `k` in order, `rng.shuffle` its ascending indices, keep `n_k`.

    Args:
        labels: integer array `(N,)`.
        imbalance_factor: `n_min / n_max` in `(0, 1]`.
        seed: seed of the `RandomState`.
        num_classes: defaults to `max(labels) + 1`.
        n_max: head-class size. Defaults to the largest class count.

    Returns:
        Sorted int64 indices (original order of `labels`).
    """
    check_number("imbalance_factor", imbalance_factor, 0, 1)
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
    """`data` subsampled by `long_tailed_indices`, in the original order
    (CIFAR-10 train at imbalance 0.01: 12,406 images; CIFAR-100: 10,847)."""
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

    The library's one split rule: `split_train_val(data, val_fraction,
    seed)` (unless `val` is given), then `make_long_tailed` of the rest
    with `n_max` its smallest class count (so every class fills its quota;
    smaller than the published CIFAR-LT sizes); `imbalance_factor=None`
    keeps the training part.

    Returns:
        `(train_long_tailed, val_balanced)`.
    """
    if imbalance_factor is not None:
        check_number("imbalance_factor", imbalance_factor, 0, 1)
    if val is None:
        data, val = split_train_val(data, val_fraction, seed)
    if imbalance_factor is not None:
        n_max = int(data.class_counts().min())
        data = make_long_tailed(data, imbalance_factor, seed, n_max=n_max)
    return data, val
