"""Input-to-prototype mapping loss (paper Eq. 6)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.prototype_layer import pop_pending_features


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


def _replica_sum(value):
    """`value` summed over the replicas of a `tf.distribute` step (in a
    replica context with several replicas); else `value`."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def batch_class_scale(weights):
    """Per-batch class scale `s_c^2 = gamma / n_c` (Yang et al., 2022).

    `n_c` is the (soft) count of class `c` in the batch and `gamma = B /
    (number of classes present)`. Classes absent from the batch get 0.
    Under `tf.distribute` with several replicas, `B` and `n_c` are those of
    the global batch (summed over replicas), so the loss of every sample
    is the one-device value; on JAX (`DataParallel`) the loss already sees
    the global batch.

    Args:
        weights: `(B, c)` class weights.

    Returns:
        `(c,)` float32 squared scales.
    """
    weights = ops.cast(weights, "float32")
    counts = _replica_sum(ops.sum(weights, axis=0))
    present = ops.cast(counts > 0, "float32")
    batch_size = _replica_sum(ops.cast(ops.shape(weights)[0], "float32"))
    gamma = batch_size / ops.maximum(ops.sum(present), 1.0)
    return present * gamma / ops.maximum(counts, keras.backend.epsilon())


def _ipm(labels, weights, invalid, y_pred, class_scale):
    if weights is not None:
        if class_scale:
            weights = weights * batch_class_scale(weights)[None, :]
        return ops.sum(weights * 0.5 * ops.square(y_pred - 1.0), axis=-1)
    num_classes = y_pred.shape[-1]
    safe = ops.clip(labels, 0, num_classes - 1)
    cosine = ops.take_along_axis(y_pred, safe[:, None], axis=1)[:, 0]
    loss = 0.5 * ops.square(cosine - 1.0)
    if class_scale:
        scale = batch_class_scale(ops.one_hot(safe, num_classes))
        loss = loss * ops.take(scale, safe)
    if invalid is not None:
        loss = ops.where(invalid, float("nan"), loss)
    return loss


def ipm_loss(y_true, y_pred, class_scale: bool = False, validate=True):
    """Per-sample IPM loss `sum_j y_j * 1/2 (s_j - 1)^2` (paper Eq. 6).

    Args:
        y_true: sparse labels `(B,)`/`(B, 1)` or dense weights `(B, c)`.
        y_pred: cosine logits in label order `(B, c)` (a `PrototypeLayer`
            output), so `s_j = cos(z, w_A(j))`.
        class_scale: multiply each class term by `gamma / n_c` from the
            batch (the long-tailed variant of the reference code).
        validate: check that sparse labels lie in `[0, c)`.

    Returns:
        `(B,)` float32 losses.
    """
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    parsed = parse_labels(y_true, y_pred.shape[-1], validate=validate)
    return _ipm(*parsed, y_pred, class_scale)


def _stale(features, y_pred) -> bool:
    """Whether pending features belong to a batch of another size."""
    a, b = features.shape[0], y_pred.shape[0]
    return a is not None and b is not None and int(a) != int(b)


@register
class IPMLoss(keras.losses.Loss):
    """Input-to-prototype mapping loss of DL2PA (paper Eq. 6).

    `1/2 (cos(z, w_A(y)) - 1)^2`, computed from the label-ordered cosine
    logits of a `PrototypeLayer`. Sparse integer labels and dense or soft
    labels (one-hot, mixup targets: `sum_j y_j 1/2 (s_j - 1)^2`) are both
    accepted. Sparse labels outside `[0, c)` raise an error instead of
    producing a silent wrong gather; where a compiled graph cannot raise
    (TensorFlow with `jit_compile=True`, `jax.jit`) the loss of the step and
    the class statistics are NaN, and `ReassignCallback` raises the error at
    its next update (see `check_label_range`).

    In the train step this loss also hands the batch's normalised features
    and label weights to the `PrototypeLayer` that produced `y_pred`, which
    accumulates the class statistics `ReassignCallback` needs. The
    statistics live in the layer's variables, not in the loss.

    Args:
        class_scale: if `True`, weight each sample by `s_c^2 = gamma / n_c`
            with `n_c` its class count in the batch and `gamma = B /
            #classes in the batch` (the dot-regression loss of Yang et al.
            2022 that the reference code uses for long-tailed data).
            Defaults to `False` (plain Eq. 6).
        scale: a constant factor on every sample's loss (default 1.0). The
            reference code's balanced recipes minimise the batch SUM of
            `(1 - cos)^2`, which is `scale = 2 * B` times this loss's
            batch mean: with SGD, `scale = s` at learning rate `lr` and
            coupled weight decay `wd` is the same update as `scale = 1` at
            `lr * s` and `wd / s`. The IPM gradient is bounded and
            `1/|z|`-scaled, so at `scale = 1` and a softmax-sized learning
            rate training is slow (`benchmarks/results/budget_cpu.json`).
        validate_labels: check the range of sparse labels in every step.
        reduction: Keras reduction; default mean over the batch.
        name: loss name.

    Example:

    ```python
    loss = keras_dlpa.IPMLoss()
    loss(np.array([0, 1]), np.array([[1.0, 0.0], [0.5, 0.5]]))  # 0.0625
    ```

    Reference:
        Saadabadi et al., CVPR 2024, Eq. 6-7; Yang et al., "Inducing Neural
        Collapse in Imbalanced Learning", NeurIPS 2022 (class scale).
    """

    def __init__(
        self,
        class_scale: bool = False,
        validate_labels: bool = True,
        scale: float = 1.0,
        reduction="sum_over_batch_size",
        name="ipm_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_scale = bool(class_scale)
        self.validate_labels = bool(validate_labels)
        scale = float(scale)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(
                "Argument `scale` must be a finite number > 0 (a factor on "
                f"the loss). Received: scale={scale!r}"
            )
        self.scale = scale

    def call(self, y_true, y_pred):
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        num_classes = y_pred.shape[-1]
        labels, weights, invalid = parse_labels(
            y_true, num_classes, validate=self.validate_labels
        )
        pending = pop_pending_features()
        if pending is not None and _stale(pending[1], y_pred):
            # Left by a training-mode call outside a train step (e.g.
            # `model(x, training=True)`) for another batch: not ours.
            pending = None
        if pending is not None:
            layer, features = pending
            if layer.num_classes != num_classes:
                raise ValueError(
                    "IPMLoss must receive the cosine logits of the "
                    f"PrototypeLayer '{layer.name}', one per class "
                    f"({layer.num_classes} classes). Received: `y_pred` "
                    f"with {num_classes} classes (shape "
                    f"{tuple(y_pred.shape)}). Compute the loss on the "
                    "PrototypeLayer's output, with no layer after it."
                )
            stats_labels = labels
            if invalid is not None:
                # Poison the whole batch, on an in-range class so that the
                # NaN reaches the sums even when every label is invalid.
                features = ops.where(invalid, float("nan"), features)
                stats_labels = ops.clip(labels, 0, num_classes - 1)
            layer.accumulate_statistics(
                features, labels=stats_labels, weights=weights
            )
            if invalid is not None:
                # NaN counts mark bad labels; NaN sums with finite counts
                # mark NaN features, i.e. divergence (`ReassignCallback`,
                # `DivergenceCallback` tell the two apart).
                flag = ops.where(invalid, float("nan"), 0.0)
                layer.feature_counts.assign_add(
                    ops.broadcast_to(flag, (layer.num_classes,))
                )
        loss = _ipm(labels, weights, invalid, y_pred, self.class_scale)
        return loss if self.scale == 1.0 else loss * self.scale

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "class_scale": self.class_scale,
                "validate_labels": self.validate_labels,
                "scale": self.scale,
            }
        )
        return config
