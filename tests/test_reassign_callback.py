import threading

import keras
import numpy as np
import pytest
from conftest import unit_rows
from keras import ops

import keras_dlpa

pytestmark = pytest.mark.core


def _model(prototypes, in_dim, lr=0.0, name="protos", **layer_kwargs):
    d = prototypes.shape[1]
    model = keras.Sequential(
        [
            keras.Input((in_dim,)),
            keras.layers.Dense(
                d, use_bias=False, kernel_initializer="identity", name="proj"
            ),
            keras_dlpa.PrototypeLayer(prototypes, name=name, **layer_kwargs),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr),
        loss=keras_dlpa.IPMLoss(),
        metrics=["accuracy"],
    )
    return model


def _planted(num_classes, dim, n_per_class, noise, seed):
    rng = np.random.default_rng(seed)
    prototypes = unit_rows(num_classes, dim, seed=seed)
    perm = rng.permutation(num_classes)
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = prototypes[perm[y]] + noise * rng.normal(size=(len(y), dim))
    return prototypes, perm, x.astype("float32"), y


def test_statistics_are_exact_class_means():
    rng = np.random.default_rng(0)
    w = unit_rows(5, 3)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = rng.integers(0, 5, size=40)
    model = _model(w, 3)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[keras_dlpa.ReassignCallback(momentum=0.0)],
    )
    layer = model.get_layer("protos")
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.stack([z[y == j].mean(axis=0) for j in range(5)])
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.representatives), expected, atol=1e-5
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.observed), np.bincount(y, minlength=5)
    )
    # The interval sums were consumed by the update.
    assert not np.any(ops.convert_to_numpy(layer.feature_counts))


def _statistics(layer):
    names = ("representatives", "observed", "feature_sums", "feature_counts")
    return {n: ops.convert_to_numpy(getattr(layer, n)).copy() for n in names}


def test_validation_evaluate_predict_do_not_feed_statistics():
    # fit(validation_data=...), evaluate and predict call the layer with
    # training=False: only the training batches reach the class statistics.
    rng = np.random.default_rng(2)
    w = unit_rows(5, 3)
    x = rng.normal(size=(40, 3)).astype("float32")
    y = rng.integers(0, 5, size=40)
    # Validation features far from the training ones, all of class 0.
    x_val = np.repeat(10.0 * unit_rows(1, 3, seed=9), 24, axis=0)
    y_val = np.zeros(24, "int64")
    model = _model(w, 3)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        validation_data=(x_val, y_val),
        callbacks=[keras_dlpa.ReassignCallback(momentum=0.0)],
    )
    layer = model.get_layer("protos")
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.stack([z[y == j].mean(axis=0) for j in range(5)])
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.representatives), expected, atol=1e-5
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer.observed), np.bincount(y, minlength=5)
    )
    # evaluate / predict leave every statistic as it was ...
    before = _statistics(layer)
    model.evaluate(x_val, y_val, batch_size=8, verbose=0)
    model.predict(x_val, batch_size=8, verbose=0)
    model.test_on_batch(x_val[:8], y_val[:8])
    for name, value in _statistics(layer).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    # ... and a training step changes the interval sums.
    model.train_on_batch(x_val[:8], y_val[:8])
    after = _statistics(layer)
    assert after["feature_counts"][0] == before["feature_counts"][0] + 8
    assert not np.array_equal(after["feature_sums"], before["feature_sums"])


def test_soft_labels_weight_their_classes():
    rng = np.random.default_rng(1)
    w = unit_rows(4, 3)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.dirichlet(np.ones(4), size=16).astype("float32")
    model = _model(w, 3)
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[keras_dlpa.ReassignCallback(momentum=0.0)],
    )
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = (y.T @ z) / y.sum(axis=0)[:, None]
    layer = model.get_layer("protos")
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer.representatives), expected, atol=1e-5
    )


def test_planted_permutation_is_recovered():
    prototypes, perm, x, y = _planted(12, 4, 10, noise=0.1, seed=3)
    model = _model(prototypes, 4)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[keras_dlpa.ReassignCallback()],
    )
    layer = model.get_layer("protos")
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.assignment), perm)
    assert history.history["assignment_changed"][0] == pytest.approx(
        np.mean(perm != np.arange(12))
    )
    assert history.history["assignment_cost"][0] < -0.9
    logits = model.predict(x, verbose=0)
    assert np.mean(logits.argmax(axis=1) == y) == 1.0


class _BatchHookThreads(keras.callbacks.Callback):
    """Records whether `on_train_batch_end` ran on the calling thread."""

    async_safe = True  # Never itself the reason for synchronous hooks.

    def __init__(self):
        super().__init__()
        self.caller = threading.get_ident()
        self.on_caller_thread = []

    def on_train_batch_end(self, batch, logs=None):
        self.on_caller_thread.append(threading.get_ident() == self.caller)


def test_one_update_per_epoch_keeps_async_dispatch():
    # A batch hook makes Keras run the batch hooks synchronously, fetching
    # every step's logs from the device (a host sync per step); only
    # mid-epoch updates may add one. Keras dispatches batch hooks to a
    # worker thread on JAX and torch; on TensorFlow never (not thread safe),
    # so there only the absence of the hook can be checked, and the JAX and
    # torch runs (tests/test_jax_backend.py, test_torch_backend.py) are the
    # ones that can fail.
    default_hook = keras.callbacks.Callback.on_train_batch_end
    prototypes, _, x, y = _planted(4, 3, 8, noise=0.1, seed=5)
    on_caller = {}
    for updates in (1, 2):
        callback = keras_dlpa.ReassignCallback(updates_per_epoch=updates)
        has_hook = callback.on_train_batch_end.__func__ is not default_hook
        assert has_hook == (updates > 1)
        threads = _BatchHookThreads()
        _model(prototypes, 3, name=f"p{updates}").fit(
            x,
            y,
            batch_size=8,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[callback, threads],
        )
        assert len(threads.on_caller_thread) == 4
        on_caller[updates] = set(threads.on_caller_thread)
    # Mid-epoch updates: synchronous hooks on every backend.
    assert on_caller[2] == {True}
    if keras.backend.backend() in ("jax", "torch"):  # IS_THREAD_SAFE
        assert on_caller[1] == {False}, "batch hooks were not asynchronous"
    else:
        assert on_caller[1] == {True}


def test_updates_per_epoch_and_warmup_and_freeze():
    class Counting(keras_dlpa.ReassignCallback):
        calls = []

        def update(self, epoch):
            Counting.calls.append(epoch)
            return super().update(epoch)

    prototypes, perm, x, y = _planted(6, 3, 8, noise=0.05, seed=4)
    model = _model(prototypes, 3)
    callback = Counting(updates_per_epoch=3, warmup_epochs=1)
    history = model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback]
    )
    assert Counting.calls == [0, 0, 0, 1, 1, 1]
    changed = history.history["assignment_changed"]
    assert changed[0] == 0.0 and changed[1] > 0.0
    assignment = ops.convert_to_numpy(model.get_layer("protos").assignment)
    np.testing.assert_array_equal(assignment, perm)

    frozen = _model(prototypes, 3, name="frozen")
    frozen.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[keras_dlpa.ReassignCallback(freeze_after=0)],
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(frozen.get_layer("frozen").assignment),
        np.arange(6),
    )


def test_missing_prototype_layer_stops_training():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile("sgd", loss=keras_dlpa.IPMLoss())
    with pytest.raises(ValueError, match="PrototypeLayer"):
        model.fit(
            np.ones((4, 3)),
            np.zeros(4),
            epochs=1,
            verbose=0,
            callbacks=[keras_dlpa.ReassignCallback()],
        )


def test_wrong_loss_stops_training():
    model = _model(unit_rows(4, 3), 3)
    model.compile("sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"loss=keras_dlpa.IPMLoss\(\)"):
        model.fit(
            np.ones((4, 3)),
            np.zeros(4),
            epochs=1,
            verbose=0,
            callbacks=[keras_dlpa.ReassignCallback()],
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"updates_per_epoch": 0}, "updates_per_epoch"),
        ({"momentum": -0.1}, "momentum"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"method": "greedy"}, "method"),
        ({"freeze_after": -1}, "freeze_after"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_dlpa.ReassignCallback(**kwargs)


def test_dynamic_assignment_beats_frozen_assignment():
    # d = 3 < c - 1 = 15: classes form clusters laid out on the sphere in a
    # permuted order; a linear backbone cannot undo the permutation, so only
    # a model that re-assigns labels to prototypes fits the data.
    c, d = 16, 3
    prototypes = keras_dlpa.estimate_prototypes(c, d, seed=0)
    rng = np.random.default_rng(0)
    layout = rng.permutation(c)
    mixing = rng.normal(size=(d, 8))
    y = np.repeat(np.arange(c), 30)
    means = prototypes[layout[y]] + 0.05 * rng.normal(size=(len(y), d))
    x = (means @ mixing).astype("float32")
    results = {}
    for name, callbacks in (
        ("dynamic", [keras_dlpa.ReassignCallback()]),
        ("static", []),
    ):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(d),
                keras_dlpa.PrototypeLayer(prototypes),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.Adam(0.05),
            loss=keras_dlpa.IPMLoss(),
            metrics=["accuracy"],
        )
        model.fit(
            x, y, batch_size=32, epochs=15, verbose=0, callbacks=callbacks
        )
        results[name] = model.evaluate(x, y, verbose=0, return_dict=True)[
            "accuracy"
        ]
    assert results["dynamic"] >= 0.9, results
    assert results["dynamic"] - results["static"] >= 0.2, results


def _fit_one_epoch(model, x, y, **kwargs):
    kwargs.setdefault("callbacks", [keras_dlpa.ReassignCallback()])
    return model.fit(x, y, batch_size=4, epochs=1, verbose=0, **kwargs)


@pytest.mark.parametrize("width", [3, 5])
def test_soft_labels_of_the_wrong_width(width):
    model = _model(unit_rows(4, 3), 3)
    y = np.random.default_rng(0).dirichlet(np.ones(width), size=8)
    with pytest.raises(ValueError) as info:
        _fit_one_epoch(model, np.ones((8, 3), "float32"), y)
    message = str(info.value)
    assert "`y_true`" in message and "(B, 4)" in message
    assert f"y_true.shape=(4, {width})" in message


def test_loss_on_logits_of_another_class_count():
    # A layer after the PrototypeLayer: IPMLoss no longer sees its logits.
    inputs = keras.Input((3,))
    cosines = keras_dlpa.PrototypeLayer(unit_rows(4, 3), name="protos")(inputs)
    outputs = keras.layers.Dense(5)(cosines)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", loss=keras_dlpa.IPMLoss())
    x, y = np.ones((8, 3), "float32"), np.zeros(8)
    # Detected when training begins, by the callback.
    with pytest.raises(ValueError, match="output of 5 classes") as info:
        _fit_one_epoch(model, x, y)
    assert "PrototypeLayer 'protos' has 4 classes" in str(info.value)


def test_callback_needs_tracked_statistics():
    model = _model(unit_rows(4, 3), 3, track_statistics=False)
    with pytest.raises(ValueError, match="`track_statistics=False`") as info:
        _fit_one_epoch(model, np.ones((8, 3), "float32"), np.zeros(8))
    assert "needs `track_statistics=True`" in str(info.value)


def test_mid_epoch_updates_need_the_steps_per_epoch():
    def batches():
        for _ in range(2):
            yield np.ones((4, 3), "float32"), np.zeros(4)

    model = _model(unit_rows(4, 3), 3)
    callback = keras_dlpa.ReassignCallback(updates_per_epoch=2)
    with pytest.raises(ValueError, match="updates_per_epoch=2") as info:
        model.fit(
            batches(), epochs=1, shuffle=False, verbose=0, callbacks=[callback]
        )
    message = str(info.value)
    assert "steps per epoch=None" in message and "steps_per_epoch" in message
    # With the steps given, the same data trains.
    model.fit(
        batches(),
        steps_per_epoch=2,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
