"""Class representatives `Q`: momentum averages of normalised features."""

from __future__ import annotations

import numpy as np


def merge_statistics(
    representatives: np.ndarray,
    observed: np.ndarray,
    feature_sums: np.ndarray,
    feature_counts: np.ndarray,
    momentum: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Folds one interval of feature sums into the class representatives.

    The paper (Eq. 8) updates each class representative per sample,
    `q_y <- alpha q_y + (1 - alpha) z`. Over the `n_j` samples `z_1..z_n`
    of class `j` in an interval, in that order, the recursion gives

        q_j <- alpha^n q_j + (1 - alpha) sum_k alpha^(n - k) z_k,

    weighting later samples more. We fold the interval at once instead:

        q_j <- alpha^n_j q_j + (1 - alpha^n_j) (s_j / n_j)

    with `s_j / n_j` the interval mean. The old `q_j` keeps the same weight
    `alpha^n_j`; the new samples share `1 - alpha^n_j` equally. This is
    exactly the per-sample recursion **averaged over every order** of each
    class's samples inside the interval (each position is equally likely
    for every sample, and the recursion is affine in `q`, so the average
    composes over intervals). It equals the recursion in batch order when
    the features of a class in the interval are equal (or `n_j = 1`), and
    differs otherwise (at `momentum = 0` the recursion keeps the last
    sample, this the interval mean). We use it because it does not depend
    on the order of samples, so it is identical however a batch is split
    across replicas and needs only per-class sums, which are exact under
    `tf.distribute` (sync-on-read SUM). Soft labels count fractionally in
    `s_j` and `n_j`.

    A class seen for the first time (`observed <= 0`) takes its interval
    mean: the order-averaged recursion started at its first sample (no pull
    towards the zero initialisation). A class absent from the interval keeps
    its previous representative exactly.

    Args:
        representatives: `(c, d)` current `Q`.
        observed: `(c,)` total label weight observed so far per class.
        feature_sums: `(c, d)` sums of normalised features in the interval.
        feature_counts: `(c,)` summed label weights in the interval.
        momentum: `alpha` in `[0, 1]`; 0 keeps only the latest interval.

    Returns:
        `(representatives, observed)` updated, float32.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(
            f"Argument `momentum` must be in [0, 1]. Received: {momentum}"
        )
    q = np.asarray(representatives, dtype="float64")
    sums = np.asarray(feature_sums, dtype="float64")
    counts = np.asarray(feature_counts, dtype="float64")
    seen_before = np.asarray(observed, dtype="float64")
    present = counts > 0
    mean = np.zeros_like(q)
    mean[present] = sums[present] / counts[present, None]
    keep = np.where(present, momentum**counts, 1.0)
    keep = np.where(present & (seen_before <= 0), 0.0, keep)
    q = keep[:, None] * q + (1.0 - keep[:, None]) * mean
    return q.astype("float32"), (seen_before + counts).astype("float32")


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalises the rows of `matrix` `(c, d)`; zero rows stay zero."""
    matrix = np.asarray(matrix, dtype="float64")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
