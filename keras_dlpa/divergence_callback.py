"""`DivergenceCallback`: stop at once when training diverges."""

from __future__ import annotations

import math

import keras
import numpy as np


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite."""


def first_non_finite_weight(model) -> str | None:
    """The path of the first weight of `model` with a NaN/inf, or None."""
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable.value)
        if np.issubdtype(value.dtype, np.floating) and not np.all(
            np.isfinite(value)
        ):
            return variable.path
    return None


def divergence_message(model, epoch: int, what: str) -> str:
    """The error message of `TrainingDiverged`, with the current rate."""
    try:
        rate = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
        rate = f"{float(rate):.6g}"
    except (AttributeError, TypeError, ValueError):
        rate = "unknown"
    return (
        f"Training diverged in epoch {epoch + 1}: {what} (learning rate "
        f"{rate}). Lower the learning rate (--lr) or the loss scale; the "
        "last finite checkpoint is kept and no model was saved for this "
        "epoch."
    )


def _raise_if_bad_labels(model) -> None:
    """Out-of-range labels in a compiled step make the loss NaN too; their
    NaN class counts (`IPMLoss`) name the real cause."""
    from keras_dlpa.labels import bad_labels_error
    from keras_dlpa.prototype_layer import find_prototype_layer

    try:
        layer = find_prototype_layer(model)
    except ValueError:  # a softmax model: no class statistics
        return
    counts = keras.ops.convert_to_numpy(layer.feature_counts)
    if np.isnan(counts).any():
        raise bad_labels_error(layer.num_classes)


class DivergenceCallback(keras.callbacks.Callback):
    """Raises `TrainingDiverged` at the end of an epoch whose loss or
    weights are not finite.

    Put it before checkpointing callbacks and `ReassignCallback`, so no NaN
    model or checkpoint is written.

    Example:

    ```python
    model.fit(ds, epochs=10, callbacks=[keras_dlpa.DivergenceCallback()])
    ```
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            what = f"the loss is {loss}"
        elif (path := first_non_finite_weight(self.model)) is not None:
            what = f"the weight {path} is not finite"
        else:
            return
        _raise_if_bad_labels(self.model)
        raise TrainingDiverged(divergence_message(self.model, epoch, what))
