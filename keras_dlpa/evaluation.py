"""Classification metrics: top-k, per-class and many/medium/few-shot.

Shot groups come from each class's real training count, not from index
ranges of the label space.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import keras
import numpy as np

from keras_dlpa.checks import check_int

GROUPS = ("many", "medium", "few")
_CHUNK = 4096


def shot_groups(
    train_counts, many_threshold: int = 100, few_threshold: int = 20
) -> np.ndarray:
    """Assigns every class to the "many", "medium" or "few"-shot group.

    Args:
        train_counts: `(c,)` number of training examples of each class.
        many_threshold: counts strictly above this are "many"-shot.
        few_threshold: counts strictly below this are "few"-shot; the rest
            (`20..100` inclusive by default) are "medium".

    Returns:
        `(c,)` array of strings, one of `"many"`, `"medium"`, `"few"`.
    """
    counts = _check_counts(train_counts)
    if few_threshold > many_threshold + 1:
        raise ValueError(
            "Expected `few_threshold <= many_threshold + 1`. Received: "
            f"few_threshold={few_threshold}, many_threshold={many_threshold}"
        )
    groups = np.full(counts.shape, "medium", dtype="<U6")
    groups[counts > many_threshold] = "many"
    groups[counts < few_threshold] = "few"
    return groups


def classification_metrics(
    labels, logits, train_counts=None, top_k: int = 5
) -> dict:
    """Top-1/top-k, per-class, balanced and many/medium/few-shot accuracy.

    Logit ties rank the lower class index first (as `argmax`); a NaN logit
    of the true class is a miss. Classes without examples get per-class
    accuracy `None` and are left out of the means: "balanced" over all
    classes, "many"/"medium"/"few" over each shot group (`None` when the
    group is empty or `train_counts` is `None`).

    Args:
        labels: `(N,)` or `(N, 1)` integer labels in `[0, c)`, or `(N, c)`
            one-hot labels (reduced with `argmax`).
        logits: `(N, c)` scores (logits, cosines or probabilities).
        train_counts: optional `(c,)` training count of each class.
        top_k: `k` of the top-k accuracy, capped at `c`; reported as "top5".

    Returns:
        A dict with "top1", "top5", "balanced", "many", "medium", "few"
        (floats in `[0, 1]` or `None`), "per_class_accuracy" (list of `c`
        floats or `None`) and "num_examples".
    """
    logits = np.asarray(logits)
    numeric = np.issubdtype(logits.dtype, np.number)
    if not (numeric and logits.ndim == 2 and logits.shape[1] >= 1):
        raise ValueError(
            "Expected numeric `logits` of shape (num_examples, num_classes). "
            f"Received: shape={logits.shape}, dtype={logits.dtype}"
        )
    num_examples, num_classes = logits.shape
    if num_examples == 0:
        raise ValueError("Received empty `logits` (0 examples).")
    labels = _sparse_labels(labels, num_examples, num_classes)
    k = min(check_int("top_k", top_k), num_classes)
    groups = None
    if train_counts is not None:
        counts = _check_counts(train_counts)
        if counts.shape[0] != num_classes:
            raise ValueError(
                f"Expected `train_counts` of length {num_classes} (the "
                f"number of classes in `logits`). Received length "
                f"{counts.shape[0]}."
            )
        groups = shot_groups(counts)

    rank = _true_class_rank(labels, logits)
    top1, topk = rank == 0, rank < k
    seen = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels, top1.astype("float64"), num_classes)
    present = seen > 0
    per_class = np.where(present, hits / np.maximum(seen, 1), np.nan)

    def mean_of(mask):
        mask = mask & present
        return float(np.mean(per_class[mask])) if mask.any() else None

    result = {
        "top1": float(np.mean(top1)),
        "top5": float(np.mean(topk)),
        "balanced": mean_of(np.ones(num_classes, bool)),
    }
    for name in GROUPS:
        result[name] = None if groups is None else mean_of(groups == name)
    result["per_class_accuracy"] = [
        float(a) if p else None for a, p in zip(per_class, present)
    ]
    result["num_examples"] = int(num_examples)
    return result


def _true_class_rank(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """`(N,)` rank of the true class by (-logit, index), in row chunks."""
    num_examples, num_classes = logits.shape
    index = np.arange(num_classes)
    rank = np.empty(num_examples, dtype="int64")
    for start in range(0, num_examples, _CHUNK):
        stop = min(start + _CHUNK, num_examples)
        block, y = logits[start:stop], labels[start:stop]
        true = block[np.arange(stop - start), y][:, None]
        before = (block > true) | ((block == true) & (index < y[:, None]))
        r = np.sum(before, axis=1)
        rank[start:stop] = np.where(np.isnan(true[:, 0]), num_classes, r)
    return rank


def _sparse_labels(labels, num_examples: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape == (num_examples, num_classes) and num_classes > 1:
        labels = np.argmax(labels, axis=1)
    elif labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != num_examples:
        raise ValueError(
            f"Expected `labels` of shape ({num_examples},), "
            f"({num_examples}, 1) or one-hot ({num_examples}, {num_classes}) "
            f"to match `logits`. Received shape: {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.number):
        raise ValueError(
            f"Expected integer `labels`. Received dtype: {labels.dtype}"
        )
    if np.issubdtype(labels.dtype, np.floating):
        fractional = labels != np.round(labels)
        if not np.all(np.isfinite(labels)) or np.any(fractional):
            raise ValueError(
                "Expected integer-valued `labels`. Received non-integer "
                f"values, e.g. {labels[fractional][:3]}"
            )
    labels = labels.astype("int64")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"Expected `labels` in [0, {num_classes}) (the number of "
            f"classes in `logits`). Received out-of-range values: "
            f"{np.unique(labels[bad])[:10].tolist()}"
        )
    return labels


def _check_counts(train_counts) -> np.ndarray:
    counts = np.asarray(train_counts)
    if counts.ndim != 1 or counts.shape[0] == 0:
        raise ValueError(
            f"Expected `train_counts` as a non-empty 1-D sequence of per-class "
            f"counts. Received shape: {counts.shape}"
        )
    numeric = np.issubdtype(counts.dtype, np.number)
    if not numeric or np.any(counts != np.round(counts)) or np.any(counts < 0):
        raise ValueError(
            "Expected non-negative integer `train_counts`. Received: "
            f"{counts[:10].tolist()}"
        )
    return counts.astype("int64")


class EvaluationCallback(keras.callbacks.Callback):
    """Adds top-1/top-5 and many/medium/few-shot accuracy to the epoch logs.

    Every `every`-th epoch and the last, writes `{prefix}top1`, `top5`,
    `balanced`, `many`, `medium` and `few` of `classification_metrics` into
    `logs`; place it before checkpoint and logging callbacks. Keys are
    written every epoch (NaN when skipped or the group has no evaluated
    class), except shot groups empty by `train_counts`. The last full
    metrics dict is `self.last_metrics` (its epoch `self.last_epoch`).

    Args:
        x: inputs as an array (or a structure `model.predict` accepts) with
            labels `y`; or, with `y=None`, an iterable (e.g. a
            `tf.data.Dataset`) of `(x, y)` or `(x, y, sample_weight)`
            batches, iterated once per evaluation.
        y: `(N,)` integer labels (or one-hot) when `x` is an array.
        train_counts: optional `(c,)` training count of each class, for the
            shot groups.
        prefix: prefix of the log keys; default `"val_"`.
        batch_size: prediction batch size for array inputs.
        every: evaluate every `every` epochs; default 1.

    Example:

    ```python
    callback = keras_dlpa.EvaluationCallback(x_val, y_val, train_counts)
    model.fit(x, y, epochs=10, callbacks=[callback])
    print(callback.last_metrics["few"])
    ```
    """

    def __init__(
        self,
        x,
        y=None,
        train_counts=None,
        prefix: str = "val_",
        batch_size: int = 256,
        every: int = 1,
    ):
        super().__init__()
        self.every = check_int("every", every)
        self.batch_size = check_int("batch_size", batch_size)
        if y is None and not isinstance(x, Iterable):
            raise ValueError(
                "With `y=None`, `x` must be an iterable of (x, y) batches "
                f"(e.g. a tf.data.Dataset). Received: {type(x).__name__}"
            )
        if isinstance(x, np.ndarray) and y is None:
            raise ValueError(
                "Received a numpy array `x` without labels: pass `y`."
            )
        self.x = x
        self.y = None if y is None else np.asarray(y)
        self.train_counts = (
            None if train_counts is None else _check_counts(train_counts)
        )
        self.prefix = str(prefix)
        self.last_metrics = self.last_epoch = None
        keys = ["top1", "top5", "balanced"]
        if self.train_counts is not None:
            groups = shot_groups(self.train_counts)
            if self.y is not None:
                # Only the groups of classes that are evaluated (a class
                # with no validation image has no accuracy).
                seen = np.unique(self.y.astype(np.int64))
                groups = groups[seen[seen < groups.size]]
            present = set(groups.tolist())
            keys += [g for g in GROUPS if g in present]
        self.log_keys = tuple(keys)

    def on_epoch_end(self, epoch, logs=None):
        epochs = (self.params or {}).get("epochs")
        last = epochs is not None and epoch + 1 >= epochs
        metrics = {}
        if (epoch + 1) % self.every == 0 or last:
            self.last_metrics = metrics = self.evaluate()
            self.last_epoch = int(epoch)
        if logs is not None:
            for key in self.log_keys:
                value = metrics.get(key)
                logs[self.prefix + key] = math.nan if value is None else value

    def evaluate(self) -> dict:
        """Predicts on the data and returns `classification_metrics`."""
        labels, logits = self.predict()
        return classification_metrics(labels, logits, self.train_counts)

    def predict(self) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(labels, logits)` of the model on the data, as numpy."""
        if self.y is not None:
            return self.y, predict_logits(self.model, self.x, self.batch_size)
        all_labels, all_logits = [], []
        for batch in self.x:
            if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                raise ValueError(
                    "EvaluationCallback expects batches `(x, y)` or "
                    "`(x, y, sample_weight)` from the iterable `x`. Received "
                    f"a batch of type {type(batch).__name__}."
                )
            if _jax_multi_process():
                logits = _global_predict(self.model, [batch[0]])
            else:
                outputs = self.model.predict_on_batch(_backend_inputs(batch[0]))
                logits = _as_logits(outputs)
            all_logits.append(logits)
            all_labels.append(keras.ops.convert_to_numpy(batch[1]))
        if not all_logits:
            raise ValueError("The evaluation data `x` yielded no batches.")
        return np.concatenate(all_labels), np.concatenate(all_logits)


def _jax_multi_process() -> bool:
    """Whether this is one of several JAX processes under a distribution."""
    if keras.backend.backend() != "jax":
        return False
    import jax

    return (
        jax.process_count() > 1
        and keras.distribution.distribution() is not None
    )


def _input_batches(x, batch_size: int):
    """Numpy input batches of an array or a `PyDataset` of `(x, ...)`."""
    if isinstance(x, keras.utils.PyDataset):
        for index in range(len(x)):
            batch = x[index]
            yield batch[0] if isinstance(batch, (tuple, list)) else batch
        return
    x = np.asarray(x)
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def _global_predict(model, batches) -> np.ndarray:
    """Logits under multi-process `DataParallel`, replicated to every process
    (collective: all call it with the same batches; docs/distributed.md)."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec

    distribution = keras.distribution.distribution()
    mesh = distribution.device_mesh.backend_mesh
    rows = NamedSharding(mesh, PartitionSpec(distribution.batch_dim_name))
    replicated = NamedSharding(mesh, PartitionSpec())
    count, index = jax.process_count(), jax.process_index()
    devices = mesh.devices.size

    # Compiled once per model (and input shape), not per evaluation; kept
    # on the model, outside Keras' tracking.
    forward = getattr(model, "_keras_dlpa_forward", None)
    if forward is None:

        def forward(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x)[0]

        forward = jax.jit(forward, out_shardings=replicated)
        object.__setattr__(model, "_keras_dlpa_forward", forward)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    logits = []
    for x in batches:
        x = np.asarray(keras.ops.convert_to_numpy(x))
        size = x.shape[0]
        pad = -size % devices
        if pad:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
        local = x.shape[0] // count
        part = x[index * local : (index + 1) * local]
        inputs = jax.make_array_from_process_local_data(rows, part, x.shape)
        out = forward(trainable, non_trainable, inputs)
        logits.append(_as_logits(out)[:size])
    if not logits:
        raise ValueError("The evaluation data yielded no batches.")
    return np.concatenate(logits)


def predict_logits(model, x, batch_size: int = 256) -> np.ndarray:
    """`model.predict(x)` as numpy `(N, c)`, also on multi-host JAX.

    Args:
        model: a model with one `(batch, classes)` output.
        x: an array of inputs, or a `keras.utils.PyDataset` of `(x,)`
            batches (e.g. `keras_dlpa.data.EvalBatches`).
        batch_size: batch size for array inputs.

    Returns:
        `(N, c)` float logits of every input, in order.
    """
    if _jax_multi_process():
        return _global_predict(model, _input_batches(x, int(batch_size)))
    return _as_logits(model.predict(x, batch_size=batch_size, verbose=0))


def _backend_inputs(x):
    """Batches from tf.data feed the TF backend as is, others as numpy."""
    if keras.backend.backend() == "tensorflow":
        return x
    return keras.tree.map_structure(keras.ops.convert_to_numpy, x)


def _as_logits(outputs) -> np.ndarray:
    if isinstance(outputs, (dict, list, tuple)):
        raise ValueError(
            "EvaluationCallback needs a model with one `(batch, classes)` "
            f"output. Received outputs of type {type(outputs).__name__}."
        )
    return np.asarray(keras.ops.convert_to_numpy(outputs))


def format_metrics_table(evaluation: dict) -> str:
    """Plain-text table of an `evaluation.json` dict, in percent.

    Rows "last", "best", "test-last", "test-best" (those present); columns
    epoch, top1, top5, many, medium, few. Missing values print as "-".
    """
    if not isinstance(evaluation, dict):
        raise ValueError(
            "Expected `evaluation` as a dict (the content of "
            f"evaluation.json). Received: {type(evaluation).__name__}"
        )
    header = ["", "epoch", "top1", "top5", "many", "medium", "few"]
    rows = []
    test = evaluation.get("test") or {}
    for name, entry, fallback in (
        ("last", evaluation.get("last"), None),
        ("best", evaluation.get("best"), None),
        ("test-last", test.get("last"), evaluation.get("last")),
        ("test-best", test.get("best"), evaluation.get("best")),
    ):
        if not isinstance(entry, dict):
            continue
        epoch = entry.get("epoch")
        if epoch is None and isinstance(fallback, dict):
            epoch = fallback.get("epoch")
        cells = [name, "-" if epoch is None else str(epoch)]
        rows.append(cells + [_percent(entry.get(k)) for k in header[2:]])
    if not rows:
        return "(no evaluation results)"
    table = [header] + rows
    widths = [max(map(len, column)) for column in zip(*table)]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        )
        for row in table
    )


def _percent(value) -> str:
    value = math.nan if value is None else float(value)
    return "-" if math.isnan(value) else f"{100.0 * value:.2f}"
