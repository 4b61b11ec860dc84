"""Tests for ImageData, long-tailed subsets, splits and channel stats."""

import numpy as np
import pytest

from keras_dlpa.data import ImageData
from keras_dlpa.data import channel_stats
from keras_dlpa.data import from_arrays
from keras_dlpa.data import long_tailed_counts
from keras_dlpa.data import long_tailed_indices
from keras_dlpa.data import long_tailed_train_val
from keras_dlpa.data import make_long_tailed
from keras_dlpa.data import split_train_val
from keras_dlpa.data import stratified_split


def _id_images(n, size=2):
    """Images whose first two channels encode their index (id up to 65535)."""
    images = np.zeros((n, size, size, 3), np.uint8)
    images[..., 0] = (np.arange(n) // 256)[:, None, None]
    images[..., 1] = (np.arange(n) % 256)[:, None, None]
    return images


def _ids(images):
    return images[:, 0, 0, 0].astype(np.int64) * 256 + images[:, 0, 0, 1]


def _balanced(num_classes, per_class, seed=0):
    labels = np.repeat(np.arange(num_classes), per_class)
    labels = np.random.default_rng(seed).permutation(labels)
    return from_arrays(_id_images(labels.size), labels, num_classes=num_classes)


# Published CIFAR-LT train sizes (Cao et al. 2019; DL2PA paper).
@pytest.mark.parametrize(
    "num_classes, n_max, imbalance, expected",
    [
        (100, 500, 0.005, 9502),
        (100, 500, 0.01, 10847),
        (100, 500, 0.02, 12608),
        (10, 5000, 0.005, 11203),
        (10, 5000, 0.01, 12406),
        (10, 5000, 0.02, 13996),
    ],
)
def test_long_tailed_counts_published_sizes(
    num_classes, n_max, imbalance, expected
):
    counts = long_tailed_counts(n_max, num_classes, imbalance)
    assert counts.shape == (num_classes,)
    assert int(counts.sum()) == expected
    assert counts[0] == n_max
    assert counts[-1] == int(n_max * imbalance)
    assert np.all(np.diff(counts) <= 0)
    k = np.arange(num_classes)
    naive = np.floor(n_max * np.exp(np.log(imbalance) * k / (num_classes - 1)))
    assert np.abs(counts - naive).max() <= 1  # float rounding at integers


def test_long_tailed_counts_balanced():
    np.testing.assert_array_equal(long_tailed_counts(7, 4, 1.0), [7] * 4)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan")])
def test_imbalance_factor_errors(bad):
    for fn in (
        lambda: long_tailed_counts(500, 100, bad),
        lambda: make_long_tailed(_balanced(3, 4), bad),
    ):
        with pytest.raises(ValueError, match="imbalance_factor") as info:
            fn()
        assert "(0, 1]" in str(info.value)
        assert str(bad) in str(info.value)


def test_make_long_tailed_matches_reference_rule():
    data = _balanced(100, 500)
    subset = make_long_tailed(data, 0.01, seed=0)
    assert len(subset) == 10847
    expected_counts = long_tailed_counts(500, 100, 0.01)
    np.testing.assert_array_equal(subset.class_counts(), expected_counts)
    # Reference rule (LDAM-DRW IMBALANCECIFAR): np.random.seed(0), then per
    # class in label order shuffle that class's indices and keep the head.
    state = np.random.get_state()
    try:
        np.random.seed(0)
        kept = []
        for k in range(100):
            idx = np.where(data.labels == k)[0]
            np.random.shuffle(idx)
            kept.extend(idx[: expected_counts[k]].tolist())
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(np.sort(_ids(subset.images)), sorted(kept))
    np.testing.assert_array_equal(subset.labels, data.labels[sorted(kept)])
    assert subset.class_names == data.class_names


def test_long_tailed_seed_and_errors():
    data = _balanced(10, 50)
    a = long_tailed_indices(data.labels, 0.1, seed=1)
    b = long_tailed_indices(data.labels, 0.1, seed=1)
    c = long_tailed_indices(data.labels, 0.1, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(
        long_tailed_indices(data.labels, 1.0), np.arange(500)
    )
    with pytest.raises(ValueError, match="Class 0 has 50 samples"):
        long_tailed_indices(data.labels, 0.1, n_max=60)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5])
def test_stratified_split(fraction):
    counts = [1, 2, 3, 7, 10, 25, 40]
    labels = np.repeat(np.arange(len(counts)), counts)
    labels = np.random.default_rng(3).permutation(labels)
    train, val = stratified_split(labels, val_fraction=fraction, seed=5)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(
        np.sort(np.concatenate([train, val])), np.arange(labels.size)
    )
    for k, n in enumerate(counts):
        n_val = int((labels[val] == k).sum())
        n_train = int((labels[train] == k).sum())
        if n == 1:
            assert (n_train, n_val) == (1, 0)
            continue
        expected = min(max(int(np.floor(n * fraction + 0.5)), 1), n - 1)
        assert n_val == expected
        assert n_train == n - expected >= 1
    again = stratified_split(labels, val_fraction=fraction, seed=5)
    np.testing.assert_array_equal(again[1], val)
    other = stratified_split(labels, val_fraction=fraction, seed=6)
    assert not np.array_equal(other[1], val)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 2])
def test_stratified_split_fraction_error(bad):
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(np.zeros(10, int), val_fraction=bad)


def test_long_tailed_train_val_composition():
    data = _balanced(10, 100)
    train, val = long_tailed_train_val(data, 0.1, val_fraction=0.2, seed=0)
    np.testing.assert_array_equal(val.class_counts(), [20] * 10)
    np.testing.assert_array_equal(
        train.class_counts(), long_tailed_counts(80, 10, 0.1)
    )
    assert np.intersect1d(_ids(train.images), _ids(val.images)).size == 0
    np.testing.assert_array_equal(train.labels, data.labels[_ids(train.images)])
    plain_train, plain_val = split_train_val(data, 0.2, seed=0)
    np.testing.assert_array_equal(_ids(plain_val.images), _ids(val.images))


def test_channel_stats_matches_numpy():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (11, 5, 4, 3), dtype=np.uint8)
    images[..., 2] //= 4
    mean, std = channel_stats(images, chunk_size=3)
    flat = images.astype(np.float64).reshape(-1, 3)
    np.testing.assert_allclose(mean, flat.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, flat.std(axis=0), rtol=1e-12)
    assert mean.shape == std.shape == (3,)
    with pytest.raises(ValueError, match="images"):
        channel_stats(np.zeros((0, 2, 2, 3), np.uint8))


def test_image_data_validation():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    data = ImageData(images, np.array([0, 1, 2, 1], np.int32), ["a", "b", "c"])
    assert data.labels.dtype == np.int64
    assert data.num_classes == 3 and len(data) == 4
    np.testing.assert_array_equal(data.class_counts(), [1, 2, 1])
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[0, 3\]"):
        ImageData(images, np.array([0, 1, 3, 1]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="uint8"):
        ImageData(images.astype("float32"), np.zeros(4, int), ["a"])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        ImageData(np.zeros((4, 2, 2, 4), np.uint8), np.zeros(4, int), ["a"])
    with pytest.raises(ValueError, match="same length"):
        ImageData(images, np.zeros(3, int), ["a"])
    with pytest.raises(ValueError, match="integer"):
        ImageData(images, np.zeros(4, float), ["a"])
    gray = from_arrays(np.arange(16, dtype=np.uint8).reshape(4, 2, 2), [0] * 4)
    assert gray.images.shape == (4, 2, 2, 3)
    np.testing.assert_array_equal(gray.images[..., 0], gray.images[..., 2])
    assert from_arrays(images, [[0], [1], [1], [4]]).num_classes == 5
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        from_arrays(images, [0, 1, 1, 4], num_classes=2)
