"""Label checks shared by `IPMLoss` and the class statistics."""

from __future__ import annotations

import keras
from keras import ops


def _range_message(num_classes: int) -> str:
    return (
        f"Labels must be integers in [0, {num_classes}) for a model with "
        f"{num_classes} classes"
    )


def bad_labels_error(num_classes: int) -> ValueError:
    """The error for out-of-range labels seen as NaN class counts."""
    return ValueError(
        f"{_range_message(num_classes)}: IPMLoss saw out-of-range labels "
        "during the last interval, so its class statistics are NaN. Check "
        "the dataset's labels and the prototypes' num_classes."
    )


def out_of_range(labels, num_classes: int):
    """A scalar bool tensor: whether some integer label is outside
    `[0, num_classes)`."""
    return (ops.min(labels) < 0) | (ops.max(labels) >= num_classes)


def check_label_range(labels, num_classes: int):
    """Checks that integer `labels` lie in `[0, num_classes)`.

    Eagerly a violation raises `ValueError`; in a `tf.function` an
    assertion fails the step. XLA drops assertions and a host callback in
    `jax.jit` would stall every step, so in a graph the check is also
    returned as a traced flag that callers turn into NaN losses and
    statistics (`ReassignCallback` then raises).

    Returns:
        `(labels, invalid)`: `invalid` is `None` when checked eagerly, else
        a scalar bool tensor, true when some label is out of range.
    """
    message = _range_message(num_classes)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            low, high = ops.min(labels), ops.max(labels)
            checks = [
                tf.debugging.assert_greater_equal(low, 0, message=message),
                tf.debugging.assert_less(high, num_classes, message=message),
            ]
            with tf.control_dependencies(checks):
                labels = tf.identity(labels)
            return labels, (low < 0) | (high >= num_classes)
    elif backend == "jax":
        import jax

        if isinstance(labels, jax.core.Tracer):
            return labels, out_of_range(labels, num_classes)
    low = int(ops.convert_to_numpy(ops.min(labels)))
    high = int(ops.convert_to_numpy(ops.max(labels)))
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{message}. Received labels with min={low}, max={high}. Check "
            "the dataset's labels and the prototypes' num_classes."
        )
    return labels, None


def parse_labels(y_true, num_classes: int, validate: bool = True):
    """Splits labels into the sparse or the dense form.

    Returns:
        `(labels, weights, invalid)`: int32 `labels` `(B,)` and `weights`
        `None` for sparse labels `(B,)`/`(B, 1)`; `labels` `None` and
        float32 `weights` `(B, c)` for dense (one-hot, soft) labels;
        `invalid` as in `check_label_range`.
    """
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 2 and y_true.shape[-1] == num_classes:
        return None, ops.cast(y_true, "float32"), None
    if len(y_true.shape) == 2 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != 1:
        raise ValueError(
            "Argument `y_true` (the labels) must be sparse integer labels "
            "of shape (B,) or (B, 1), or dense/soft label weights (one-hot, "
            f"mixup) of shape (B, {num_classes}): one column per class of "
            f"the {num_classes} logits. Received: y_true.shape="
            f"{tuple(y_true.shape)}. Check the dataset's number of classes."
        )
    labels = ops.cast(y_true, "int32")
    invalid = None
    if validate:
        labels, invalid = check_label_range(labels, num_classes)
    return labels, None, invalid
