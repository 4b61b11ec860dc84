"""Tests for the tf.data training and evaluation pipelines."""

import numpy as np
import pytest

from keras_dlpa.data import from_arrays
from keras_dlpa.data.pipeline import epoch_keyed_pipeline
from keras_dlpa.data.pipeline import eval_pipeline
from keras_dlpa.data.pipeline import train_pipeline
from keras_dlpa.data.plan import Augmentation
from keras_dlpa.data.plan import TrainingInput


def _unique_class_data(n, size=8, seed=0):
    """n random images, image i has class i (so labels identify sources)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(1, 256, (n, size, size, 3), dtype=np.uint8)
    return from_arrays(images, np.arange(n), num_classes=n)


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _crops(image, padding):
    """All zero-padded crops and their flips of one image (numpy)."""
    h, w = image.shape[:2]
    padded = np.pad(image, [(padding, padding), (padding, padding), (0, 0)])
    out = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            out.append(((dy, dx, False), crop))
            out.append(((dy, dx, True), crop[:, ::-1]))
    return out


def test_determinism_and_reshuffle():
    data = _unique_class_data(40)
    kwargs = dict(batch_size=8, seed=3, mixup_alpha=1.0)
    a, b = train_pipeline(data, **kwargs), train_pipeline(data, **kwargs)
    a1, a2 = _batches(a), _batches(a)  # two epochs each
    b1, b2 = _batches(b), _batches(b)
    for first, second in ((a1, b1), (a2, b2)):
        assert len(first) == len(second) == 5
        for (xa, ya), (xb, yb) in zip(first, second):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a1[0][0], a2[0][0])  # new epoch, new batches
    c1 = _batches(train_pipeline(data, batch_size=8, seed=4, mixup_alpha=1.0))
    assert not np.array_equal(a1[0][0], c1[0][0])
    assert int(a.cardinality()) == 5


def test_crop_flip_matches_numpy_crops():
    data = _unique_class_data(16)
    dataset = train_pipeline(data, batch_size=16, seed=0, crop_padding=2)
    seen = set()
    for epoch in range(4):
        ((images, labels),) = _batches(dataset)
        assert images.dtype == np.float32 and images.shape == (16, 8, 8, 3)
        assert labels.dtype == np.int32
        assert sorted(labels.tolist()) == list(range(16))  # a permutation
        for image, label in zip(images, labels):
            matches = [
                key
                for key, crop in _crops(data.images[label], 2)
                if np.array_equal(crop.astype(np.float32), image)
            ]
            assert matches, f"epoch {epoch}: no crop matches image {label}"
            seen.update(matches)
    assert {key[2] for key in seen} == {False, True}
    assert len({key[:2] for key in seen}) > 10


def test_no_augmentation_is_shuffled_identity():
    data = _unique_class_data(10)
    dataset = train_pipeline(data, batch_size=4, crop_padding=0, flip=False)
    batches = _batches(dataset)
    assert [len(y) for _, y in batches] == [4, 4]  # the remainder is dropped
    labels = np.concatenate([y for _, y in batches])
    assert len(set(labels.tolist())) == 8
    images = np.concatenate([x for x, _ in batches])
    np.testing.assert_array_equal(images, data.images[labels].astype("f4"))


def test_one_hot_labels():
    data = _unique_class_data(6)
    ((x, y),) = _batches(train_pipeline(data, batch_size=6, one_hot=True))
    assert y.dtype == np.float32 and y.shape == (6, 6)
    np.testing.assert_array_equal(y.sum(axis=1), np.ones(6))
    np.testing.assert_array_equal(y.max(axis=1), np.ones(6))


def test_mixup_convex_combination():
    data = _unique_class_data(32)
    dataset = train_pipeline(
        data,
        batch_size=32,
        seed=1,
        crop_padding=0,
        flip=False,
        mixup_alpha=1.0,
    )
    source = data.images.astype(np.float64)
    for _ in range(3):
        ((images, labels),) = _batches(dataset)
        assert labels.dtype == np.float32 and labels.shape == (32, 32)
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-6)
        assert labels.min() >= 0.0
        pairs = set()
        for image, row in zip(images, labels):
            classes = np.flatnonzero(row)
            assert 1 <= classes.size <= 2
            expected = (row[classes, None, None, None] * source[classes]).sum(0)
            np.testing.assert_allclose(image, expected, rtol=1e-5, atol=1e-3)
            if classes.size == 2:
                pairs.add(tuple(np.round(np.sort(row[classes]), 5)))
        assert len(pairs) == 1  # one lambda per batch
        # The heavier class of each row is a distinct example: a permutation.
        assert sorted(labels.argmax(axis=1).tolist()) == list(range(32))


def test_mixup_lambda_is_beta():
    data = _unique_class_data(1200, size=1)
    dataset = train_pipeline(
        data,
        batch_size=2,
        seed=0,
        crop_padding=0,
        flip=False,
        mixup_alpha=1.0,
    )
    heavier = np.array(
        [y.max() for _, y in _batches(dataset) if np.count_nonzero(y) == 4]
    )
    assert heavier.size > 200
    # max(lam, 1 - lam) with lam ~ Beta(1, 1) is uniform on [0.5, 1].
    assert abs(heavier.mean() - 0.75) < 0.03
    assert abs(np.mean(heavier < 0.625) - 0.25) < 0.06


def test_class_balanced_frequencies():
    counts = [40, 10, 5, 2]
    labels = np.repeat(np.arange(4), counts)
    rng = np.random.default_rng(0)
    images = np.zeros((labels.size, 2, 2, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(labels.size)
    data = from_arrays(images, labels)
    dataset = train_pipeline(
        data,
        batch_size=19,
        seed=0,
        crop_padding=0,
        flip=False,
        class_balanced=True,
    )
    assert int(dataset.cardinality()) == 3
    drawn_labels, drawn_ids = [], []
    for _ in range(60):
        for x, y in _batches(dataset):
            drawn_labels.append(y)
            drawn_ids.append(x[:, 0, 0, 0].astype(int))
    drawn_labels = np.concatenate(drawn_labels)
    drawn_ids = np.concatenate(drawn_ids)
    np.testing.assert_array_equal(labels[drawn_ids], drawn_labels)
    frequencies = np.bincount(drawn_labels, minlength=4) / drawn_labels.size
    np.testing.assert_allclose(frequencies, 0.25, atol=0.03)
    assert set(drawn_ids[drawn_labels == 3].tolist()) == {55, 56}
    del rng


def test_eval_pipeline_order_and_partial_batch():
    data = _unique_class_data(10)
    batches = _batches(eval_pipeline(data, batch_size=4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    np.testing.assert_array_equal(
        np.concatenate([y for _, y in batches]), np.arange(10)
    )
    np.testing.assert_array_equal(
        np.concatenate([x for x, _ in batches]), data.images.astype("f4")
    )
    (_, y), *_ = _batches(eval_pipeline(data, batch_size=4, one_hot=True))
    np.testing.assert_array_equal(y, np.eye(10, dtype="f4")[:4])


def test_pipeline_argument_errors():
    data = _unique_class_data(6)
    with pytest.raises(ValueError, match="batch_size"):
        train_pipeline(data, batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_pipeline(data, batch_size=7)
    with pytest.raises(ValueError, match="mixup_alpha"):
        train_pipeline(data, batch_size=2, mixup_alpha=-1.0)
    with pytest.raises(ValueError, match="crop_padding"):
        train_pipeline(data, batch_size=2, crop_padding=-1)
    with pytest.raises(TypeError, match="ImageData"):
        eval_pipeline((data.images, data.labels))


def test_epoch_keyed_pipeline_resumes_with_the_same_batches():
    data = _unique_class_data(40)
    mixup = Augmentation(mixup_alpha=0.5)
    full, steps = epoch_keyed_pipeline(data, TrainingInput(8, 3, 0, 3, mixup))
    resumed, same_steps = epoch_keyed_pipeline(
        data, TrainingInput(8, 3, 2, 3, mixup)
    )
    assert steps == same_steps == 5
    full_batches = _batches(full)
    resumed_batches = _batches(resumed)
    assert len(full_batches) == 3 * steps
    assert len(resumed_batches) == steps
    for (xa, ya), (xb, yb) in zip(full_batches[2 * steps :], resumed_batches):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # Different epochs draw different orders.
    assert not np.array_equal(full_batches[0][1], full_batches[steps][1])
