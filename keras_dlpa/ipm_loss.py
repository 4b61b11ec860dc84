"""Input-to-prototype mapping loss (paper Eq. 6)."""

from __future__ import annotations

import keras
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.checks import check_number
from keras_dlpa.labels import parse_labels


def _replica_sum(value):
    """`value` summed over the replicas of a tf.distribute step."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def batch_class_scale(weights):
    """Per-batch class scale `s_c^2 = gamma / n_c` (Yang et al., 2022).

    `n_c` is the (soft) count of class `c` in the global batch (summed over
    `tf.distribute` replicas) and `gamma = B / #classes present`; absent
    classes get 0.

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


@register
class IPMLoss(keras.losses.Loss):
    """Input-to-prototype mapping loss of DL2PA (paper Eq. 6).

    `1/2 (cos(z, w_A(y)) - 1)^2` from the label-ordered cosine logits of a
    `PrototypeLayer`, for sparse integer labels or dense/soft labels
    (one-hot, mixup: `sum_j y_j 1/2 (s_j - 1)^2`). Sparse labels outside
    `[0, c)` raise; where a compiled graph cannot raise (TensorFlow
    `jit_compile=True`, `jax.jit`) the step's loss and class statistics are
    NaN and `ReassignCallback` raises at its next update.

    The loss is a pure function of `(y_true, y_pred)`. For a plain Keras
    model, `ReassignCallback` sets `statistics_layer` when training begins
    and the loss hands each training batch's labels to that layer
    (`PrototypeLayer.update_statistics`); `PrototypeClassifier` gathers the
    statistics in its `compute_loss` instead.

    Args:
        class_scale: weight each sample by `batch_class_scale` (`gamma /
            n_c`, the dot-regression loss of Yang et al. 2022 that the
            reference code uses for long-tailed data); default `False`.
        scale: constant factor on the loss (default 1.0). The reference
            code's balanced recipes minimise the batch SUM of
            `(1 - cos)^2`, i.e. `scale = 2 * B`; with SGD, `scale = s` at
            `lr`, coupled weight decay `wd` equals `scale = 1` at `lr * s`,
            `wd / s`. At `scale = 1` and a softmax-sized learning rate
            training is slow (`benchmarks/results/budget_cpu.json`).
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
        self.scale = check_number("scale", scale)
        # Set by `ReassignCallback` for plain Keras models; not serialised.
        self.statistics_layer = None

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Before Keras converts `y_pred`: the layer finds the features of
        # the call that produced this very tensor.
        if self.statistics_layer is not None:
            self.statistics_layer.update_statistics(y_true, y_pred)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        loss = ipm_loss(y_true, y_pred, self.class_scale, self.validate_labels)
        return loss if self.scale == 1.0 else loss * self.scale

    def get_config(self):
        return {
            **super().get_config(),
            "class_scale": self.class_scale,
            "validate_labels": self.validate_labels,
            "scale": self.scale,
        }
