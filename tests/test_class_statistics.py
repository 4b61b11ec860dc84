"""Class representatives against the paper's per-sample momentum (Eq. 8).

The reference is the paper's recursion `q_y <- alpha q_y + (1 - alpha) z`
run per sample in plain numpy. `merge_statistics` folds a whole interval at
once and does not see the order of the samples: it equals the recursion
averaged over every order of each class's samples inside the interval (see
its docstring), which is what the reference below computes by enumerating
the orders.
"""

import itertools

import keras
import numpy as np
import pytest
from conftest import unit_rows
from keras import ops

import keras_dlpa
from keras_dlpa.class_statistics import normalize_rows

pytestmark = pytest.mark.core

ALPHA = 0.8  # momentum, != 0


def _recursion(q, samples, first):
    """Paper Eq. 8 over `samples` `(n, d)` in order, starting from `q`.

    `first`: the class has no representative yet; it starts at its first
    sample (the momentum average of a single sample).
    """
    for k, z in enumerate(samples):
        q = z if first and k == 0 else ALPHA * q + (1.0 - ALPHA) * z
    return q


def _order_averaged_recursion(q, samples, first):
    """`_recursion` averaged over every order of `samples`."""
    results = [
        _recursion(q, samples[list(order)], first)
        for order in itertools.permutations(range(len(samples)))
    ]
    return np.mean(results, axis=0)


def _reference(intervals, num_classes, dim, order_averaged=True):
    """Representatives after each interval of `(z (n, d), y (n,))`."""
    fold = _order_averaged_recursion if order_averaged else _recursion
    q = np.zeros((num_classes, dim))
    seen = np.zeros(num_classes, bool)
    history = []
    for z, y in intervals:
        q = q.copy()
        for j in range(num_classes):
            if np.any(y == j):  # Absent classes keep their representative.
                q[j] = fold(q[j], z[y == j], first=not seen[j])
                seen[j] = True
        history.append(q)
    return history


def _planted_intervals():
    """48 samples, 5 classes; class 4 absent from the first half, class 0
    from the second half; 6 samples of each present class per half."""
    rng = np.random.default_rng(0)
    halves = []
    for present in ([0, 1, 2, 3], [1, 2, 3, 4]):
        y = rng.permutation(np.repeat(present, 6))
        halves.append((rng.normal(size=(24, 3)).astype("float32"), y))
    x = np.concatenate([h[0] for h in halves])
    y = np.concatenate([h[1] for h in halves])
    return x, y


class _Recording(keras_dlpa.ReassignCallback):
    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.history = []

    def update(self, epoch):
        cost = super().update(epoch)
        self.history.append(ops.convert_to_numpy(self._layer.representatives))
        return cost


def test_representatives_inside_fit_match_per_sample_recursion():
    # Frozen identity backbone (lr 0): the features are normalise(x). Two
    # updates per epoch over 6 batches of 8: intervals are the two halves of
    # the data, 4 intervals in 2 epochs, with absent classes in each.
    x, y = _planted_intervals()
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                3, use_bias=False, kernel_initializer="identity"
            ),
            keras_dlpa.PrototypeLayer(unit_rows(5, 3), name="protos"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.0), loss=keras_dlpa.IPMLoss())
    callback = _Recording(momentum=ALPHA, updates_per_epoch=2)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    z = normalize_rows(x)
    intervals = [(z[:24], y[:24]), (z[24:], y[24:])] * 2
    expected = _reference(intervals, 5, 3)
    assert len(callback.history) == 4
    for got, want in zip(callback.history, expected):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # Class 4 appears only in the second interval: zero before it.
    assert not np.any(callback.history[0][4])
    np.testing.assert_array_equal(
        callback.history[1][0], callback.history[0][0]
    )
    layer = model.get_layer("protos")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer.observed), 2 * np.bincount(y, minlength=5)
    )
    # The recursion in batch order weights later samples more
    # ((1 - alpha) alpha^(n - k) for the k-th of n): another result.
    in_order = _reference(intervals, 5, 3, order_averaged=False)
    gap = np.abs(in_order[-1] - callback.history[-1]).max()
    assert gap > 1e-2, gap


def test_merge_equals_per_sample_recursion_for_equal_features():
    # All samples of a class equal within the interval: order cannot
    # matter, so the batch-order recursion itself is the reference.
    rng = np.random.default_rng(1)
    q0 = rng.normal(size=(3, 4))
    z = rng.normal(size=(3, 4))
    counts = np.array([7.0, 0.0, 3.0])
    expected = [
        _recursion(q0[j], np.repeat(z[j : j + 1], n, axis=0), first=False)
        if n
        else q0[j]
        for j, n in enumerate(counts.astype(int))
    ]
    merged, observed = keras_dlpa.merge_statistics(
        q0, np.ones(3), counts[:, None] * z, counts, ALPHA
    )
    np.testing.assert_allclose(merged, np.stack(expected), rtol=1e-6)
    np.testing.assert_array_equal(observed, 1.0 + counts)


def test_merge_rejects_bad_momentum():
    with pytest.raises(ValueError, match="momentum"):
        keras_dlpa.merge_statistics(
            np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2)), np.zeros(2), 1.5
        )


def test_normalize_rows_keeps_zero_rows():
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
