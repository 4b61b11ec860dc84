"""Label checks shared by `IPMLoss` and the class statistics."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def bad_labels_error(num_classes: int) -> ValueError:
    """The error for labels outside `[0, c)` found after the fact (NaN
    class counts from a compiled step, `check_label_range`)."""
    return ValueError(
        f"Labels must be integers in [0, {num_classes}) for a model with "
        f"{num_classes} classes: IPMLoss saw out-of-range labels during the "
        "last interval, so its class statistics are NaN. Check the "
        "dataset's labels and the prototypes' num_classes."
    )


def _raise_if_out_of_range(low, high, num_classes):
    low, high = int(np.asarray(low)), int(np.asarray(high))
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Labels must be integers in [0, {num_classes}) for a model with "
            f"{num_classes} classes. Received labels with min={low}, "
            f"max={high}. Check the dataset's labels and the prototypes' "
            "num_classes."
        )


def _is_jax_tracer(x) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def check_label_range(labels, num_classes: int):
    """Checks that integer `labels` lie in `[0, num_classes)`.

    Eagerly (any backend) a violation raises `ValueError` at once. In a
    TensorFlow graph (`tf.function`) an assertion op fails the step with the
    same message. XLA drops assertion ops (`jit_compile=True`, which Keras'
    `"auto"` picks on a GPU), and inside `jax.jit` a host callback would
    stall every step, so in every compiled graph the check is also returned
    as a traced boolean: callers make the loss and the class statistics NaN
    with it, and `ReassignCallback` raises the error at its next update.

    Returns:
        `(labels, invalid)`: `invalid` is `None` when the check ran eagerly,
        else a scalar bool tensor that is true when some label is out of
        range.
    """
    low, high = ops.min(labels), ops.max(labels)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            message = (
                f"Labels must be integers in [0, {num_classes}) for a model "
                f"with {num_classes} classes"
            )
            checks = [
                tf.debugging.assert_greater_equal(low, 0, message=message),
                tf.debugging.assert_less(high, num_classes, message=message),
            ]
            with tf.control_dependencies(checks):
                labels = tf.identity(labels)
            return labels, (low < 0) | (high >= num_classes)
    elif backend == "jax" and _is_jax_tracer(labels):
        return labels, (low < 0) | (high >= num_classes)
    _raise_if_out_of_range(
        ops.convert_to_numpy(low), ops.convert_to_numpy(high), num_classes
    )
    return labels, None


def parse_labels(y_true, num_classes: int, validate: bool = True):
    """Splits labels into the sparse or the dense form.

    Sparse labels have shape `(B,)` or `(B, 1)`; dense labels (one-hot, or
    soft targets such as mixup) have shape `(B, c)`.

    Returns:
        `(labels, weights, invalid)`: int32 `labels` `(B,)` and `weights`
        `None` for sparse input; `labels` `None` and float32 `weights`
        `(B, c)` for dense input. `invalid` as in `check_label_range`.
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
