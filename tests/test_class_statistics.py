import numpy as np
import pytest

import keras_dlpa
from keras_dlpa.class_statistics import normalize_rows

pytestmark = pytest.mark.core


def _naive_merge(q, observed, sums, counts, momentum):
    q = q.astype("float64").copy()
    observed = observed.astype("float64").copy()
    for j in range(len(q)):
        n = counts[j]
        if n <= 0:
            continue
        mean = sums[j] / n
        if observed[j] <= 0:
            q[j] = mean
        else:
            keep = momentum**n
            q[j] = keep * q[j] + (1 - keep) * mean
        observed[j] += n
    return q, observed


def test_merge_matches_naive_loop():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 4))
    observed = np.array([0, 3, 5, 0, 2, 1.5])
    sums = rng.normal(size=(6, 4))
    counts = np.array([2, 0, 4, 0, 1, 0.5])
    got_q, got_obs = keras_dlpa.merge_statistics(q, observed, sums, counts, 0.8)
    want_q, want_obs = _naive_merge(q, observed, sums, counts, 0.8)
    np.testing.assert_allclose(got_q, want_q, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_obs, want_obs)
    # Absent classes keep their representative exactly.
    np.testing.assert_array_equal(got_q[[1, 3, 5]][:2], q[[1, 3]].astype("f4"))


def test_merge_equals_per_sample_momentum_for_equal_features():
    rng = np.random.default_rng(1)
    alpha = 0.9
    q0 = rng.normal(size=(1, 3))
    z = rng.normal(size=(3,))
    n = 7
    recursion = q0[0].copy()
    for _ in range(n):
        recursion = alpha * recursion + (1 - alpha) * z
    merged, _ = keras_dlpa.merge_statistics(
        q0, np.array([1.0]), n * z[None], np.array([float(n)]), alpha
    )
    np.testing.assert_allclose(merged[0], recursion, rtol=1e-6)


def test_merge_rejects_bad_momentum():
    with pytest.raises(ValueError, match="momentum"):
        keras_dlpa.merge_statistics(
            np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.zeros(2), 1.5
        )


def test_normalize_rows_keeps_zero_rows():
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
