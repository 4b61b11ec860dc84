import csv
import math

import keras
import numpy as np
import pytest

from keras_dlpa.evaluation import EvaluationCallback
from keras_dlpa.evaluation import classification_metrics
from keras_dlpa.evaluation import format_metrics_table
from keras_dlpa.evaluation import shot_groups

pytestmark = pytest.mark.core


def _naive(labels, logits, counts, k):
    """Loop-based reference; assumes no ties in `logits`."""
    n, c = logits.shape
    top1 = topk = 0
    right = [0] * c
    seen = [0] * c
    for i in range(n):
        order = sorted(range(c), key=lambda j: -logits[i, j])
        top1 += order[0] == labels[i]
        topk += labels[i] in order[:k]
        seen[labels[i]] += 1
        right[labels[i]] += order[0] == labels[i]
    per_class = [right[j] / seen[j] if seen[j] else None for j in range(c)]

    def mean(classes):
        vals = [per_class[j] for j in classes if per_class[j] is not None]
        return sum(vals) / len(vals) if vals else None

    groups = {"many": [], "medium": [], "few": []}
    for j in range(c):
        if counts[j] > 100:
            groups["many"].append(j)
        elif counts[j] >= 20:
            groups["medium"].append(j)
        else:
            groups["few"].append(j)
    out = {
        "top1": top1 / n,
        "top5": topk / n,
        "per_class_accuracy": per_class,
        "balanced": mean(range(c)),
    }
    out.update({g: mean(v) for g, v in groups.items()})
    return out


def _assert_metrics_equal(got, want):
    for key, value in want.items():
        if key == "per_class_accuracy":
            assert len(got[key]) == len(value)
            for a, b in zip(got[key], value):
                assert (a is None) == (b is None)
                if b is not None:
                    assert a == pytest.approx(b, abs=1e-12)
        elif value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_naive_loops(seed):
    rng = np.random.default_rng(seed)
    c, n = 12, 300
    logits = rng.normal(size=(n, c))
    # Make the model good on some classes so accuracies are not all ~1/c.
    labels = rng.integers(0, c, size=n)
    logits[np.arange(n), labels] += rng.uniform(0, 2.5, size=n)
    labels[labels == 7] = 3  # class 7 absent from the evaluation data
    counts = rng.choice([5, 19, 20, 60, 100, 101, 500], size=c)
    got = classification_metrics(labels, logits, counts)
    want = _naive(labels, logits, counts, k=5)
    assert got["per_class_accuracy"][7] is None
    assert got["num_examples"] == n
    _assert_metrics_equal(got, want)


def test_top_k_is_capped_at_num_classes():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, 3))
    labels = rng.integers(0, 3, size=50)
    got = classification_metrics(labels, logits)
    assert got["top5"] == 1.0
    want = _naive(labels, logits, [1] * 3, k=3)
    assert got["top1"] == pytest.approx(want["top1"])
    assert got["many"] is None and got["few"] is None


def test_labels_as_column_and_one_hot():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(40, 6))
    labels = rng.integers(0, 6, size=40)
    want = classification_metrics(labels, logits)
    column = classification_metrics(labels[:, None].astype("float32"), logits)
    one_hot = classification_metrics(np.eye(6)[labels], logits)
    assert column == want
    assert one_hot == want


def test_ties_credit_only_the_argmax():
    logits = np.zeros((4, 3))
    labels = np.array([0, 1, 2, 2])
    got = classification_metrics(labels, logits, top_k=2)
    assert got["top1"] == 0.25  # argmax of a constant row is class 0
    assert got["top5"] == 0.5  # top-2 = classes {0, 1}
    assert got["per_class_accuracy"] == [1.0, 0.0, 0.0]


def test_nan_true_logit_is_a_miss():
    logits = np.array([[np.nan, 0.0], [1.0, np.nan]])
    got = classification_metrics([0, 0], logits, top_k=1)
    assert got["top1"] == 0.5


def test_shot_groups_at_thresholds():
    counts = [0, 1, 19, 20, 21, 99, 100, 101, 5000]
    groups = shot_groups(counts).tolist()
    assert groups == ["few"] * 3 + ["medium"] * 4 + ["many"] * 2
    groups = shot_groups([10, 50], many_threshold=40, few_threshold=11)
    assert groups.tolist() == ["few", "many"]


def test_empty_groups_are_none():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(30, 3))
    labels = np.array([0, 1, 2] * 10)
    got = classification_metrics(labels, logits, [500, 500, 500])
    assert got["medium"] is None and got["few"] is None
    assert got["many"] == pytest.approx(got["balanced"])
    # A group that exists by count but has no evaluated class is also None.
    got = classification_metrics(
        labels[labels != 2], logits[labels != 2], [500, 500, 3]
    )
    assert got["few"] is None


@pytest.mark.parametrize(
    "labels, match",
    [
        ([0, 1, 3], r"\[0, 3\).*\[3\]"),
        ([0, -1, 2], r"out-of-range values: \[-1\]"),
        ([0, 1.5, 2], "integer-valued"),
        ([0, 1], r"shape \(3,\)"),
    ],
)
def test_label_errors(labels, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(np.array(labels), np.zeros((3, 3)))


def test_input_errors():
    with pytest.raises(ValueError, match="logits"):
        classification_metrics([0], np.zeros(3))
    with pytest.raises(ValueError, match="train_counts.*length 3"):
        classification_metrics([0], np.zeros((1, 3)), [1, 2])
    with pytest.raises(ValueError, match="non-negative"):
        shot_groups([1, -2])
    with pytest.raises(ValueError, match="top_k"):
        classification_metrics([0], np.zeros((1, 3)), top_k=0)


def _tiny_model(c, in_dim):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((in_dim,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(c),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _data(c=6, n=120, in_dim=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, in_dim)).astype("float32")
    y = rng.integers(0, c, size=n)
    return x, y


def test_callback_in_fit_writes_history(tmp_path):
    c = 6
    x, y = _data(c)
    xv, yv = _data(c, n=90, seed=1)
    counts = [150, 150, 50, 50, 5, 5]
    model = _tiny_model(c, x.shape[1])
    callback = EvaluationCallback(xv, yv, train_counts=counts, batch_size=32)
    csv_path = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        epochs=3,
        batch_size=32,
        verbose=0,
        callbacks=[callback, keras.callbacks.CSVLogger(str(csv_path))],
    )
    want = classification_metrics(yv, model.predict(xv, verbose=0), counts)
    for key in ("top1", "top5", "many", "medium", "few", "balanced"):
        values = history.history["val_" + key]
        assert len(values) == 3
        assert values[-1] == pytest.approx(want[key], abs=1e-12)
    _assert_metrics_equal(callback.last_metrics, want)
    assert callback.last_epoch == 2
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["val_few"]) == pytest.approx(want["few"])


@pytest.mark.parametrize("source", ["list", "tf.data"])
def test_callback_on_batches_every_and_empty_groups(source):
    c = 4
    x, y = _data(c, in_dim=5)
    xv, yv = _data(c, n=70, in_dim=5, seed=2)
    if source == "list":
        batches = [(xv[i : i + 32], yv[i : i + 32]) for i in range(0, 70, 32)]
    else:
        tf = pytest.importorskip("tensorflow")
        batches = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(32)
    model = _tiny_model(c, x.shape[1])
    callback = EvaluationCallback(
        batches, train_counts=[500] * c, prefix="test_", every=2
    )
    history = model.fit(
        x, y, epochs=3, batch_size=32, verbose=0, callbacks=[callback]
    ).history
    assert "test_medium" not in history and "test_few" not in history
    top1 = history["test_top1"]
    assert math.isnan(top1[0]) and not math.isnan(top1[1])
    assert not math.isnan(top1[2])  # the last epoch is always evaluated
    want = classification_metrics(yv, model.predict(xv, verbose=0))
    assert top1[2] == pytest.approx(want["top1"], abs=1e-12)
    assert history["test_many"][2] == pytest.approx(want["balanced"])


def test_callback_argument_errors():
    with pytest.raises(ValueError, match="every"):
        EvaluationCallback(np.zeros((2, 2)), [0, 1], every=0)
    with pytest.raises(ValueError, match="without labels"):
        EvaluationCallback(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="iterable"):
        EvaluationCallback(3)


def test_format_metrics_table():
    entry = dict(top1=0.5, top5=0.9, many=0.7, medium=None, few=0.123456)
    evaluation = {
        "last": dict(entry, epoch=9),
        "best": dict(entry, epoch=7, top1=0.55),
        "test": {"last": entry, "best": dict(entry, top1=0.6)},
    }
    lines = format_metrics_table(evaluation).splitlines()
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["last", "best", "test-last", "test-best"]
    assert lines[0].split() == "epoch top1 top5 many medium few".split()
    assert lines[2].split() == "best 7 55.00 90.00 70.00 - 12.35".split()
    assert lines[4].split()[1:3] == ["7", "60.00"]
    assert "last" in format_metrics_table({"last": entry})


def test_no_validation_images_no_group_metric():
    # Class 2 trains on one image and so has none for validation
    # (`stratified_split`): its "few" group must not be logged as NaN.
    callback = EvaluationCallback(
        np.zeros((4, 2), "float32"),
        np.array([0, 0, 1, 1]),
        train_counts=[150, 50, 1],
    )
    assert callback.log_keys == ("top1", "top5", "balanced", "many", "medium")
    everything = EvaluationCallback(
        np.zeros((3, 2), "float32"),
        np.array([0, 1, 2]),
        train_counts=[150, 50, 1],
    )
    assert everything.log_keys[-1] == "few"
