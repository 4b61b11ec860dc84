"""Class representatives `Q`: momentum averages of normalised features."""

from __future__ import annotations

import numpy as np

from keras_dlpa.checks import check_number


def merge_statistics(
    representatives: np.ndarray,
    observed: np.ndarray,
    feature_sums: np.ndarray,
    feature_counts: np.ndarray,
    momentum: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Folds one interval of feature sums into the class representatives.

    `q_j <- alpha^n_j q_j + (1 - alpha^n_j) s_j / n_j`: the paper's
    per-sample momentum update (Eq. 8) averaged over every order of the
    interval's samples, so it is independent of how batches are split. A
    class seen for the first time takes its interval mean; an absent class
    keeps its representative. Derivation: `docs/matching.md`.

    Args:
        representatives: `(c, d)` current `Q`.
        observed: `(c,)` total label weight observed so far per class.
        feature_sums: `(c, d)` sums of normalised features in the interval.
        feature_counts: `(c,)` summed label weights in the interval.
        momentum: `alpha` in `[0, 1]`; 0 keeps only the latest interval.

    Returns:
        `(representatives, observed)` updated, float32.
    """
    check_number("momentum", momentum, 0.0, 1.0, closed=True)
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
