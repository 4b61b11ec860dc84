"""`PrototypeLayer`: fixed hyperspherical prototypes, dynamic assignment."""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.labels import out_of_range
from keras_dlpa.labels import parse_labels


class _TrainingFeatures:
    """Features of training-mode calls keyed by (and living as long as) the
    logits each returned, so an unused forward pass is never counted."""

    def __init__(self):
        self._by_logits = {}

    def record(self, logits, features) -> None:
        key = id(logits)
        self._by_logits[key] = (weakref.ref(logits), features)
        weakref.finalize(logits, self._by_logits.pop, key, None)

    def take(self, logits):
        entry = self._by_logits.pop(id(logits), None)
        if entry is None or entry[0]() is not logits:
            return None
        return entry[1]


def _as_prototypes(prototypes) -> np.ndarray:
    array = np.asarray(prototypes, dtype="float64")
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(
            "Argument `prototypes` must be a 2-D array of shape "
            "(num_classes, dim) with at least 2 rows (classes) and 1 column. "
            f"Received: shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("Argument `prototypes` contains NaN or inf values.")
    norms = np.linalg.norm(array, axis=1)
    if np.any(norms == 0):
        raise ValueError(
            "Argument `prototypes` has all-zero rows at indices "
            f"{np.flatnonzero(norms == 0).tolist()}; every prototype must "
            "be a non-zero vector."
        )
    return (array / norms[:, None]).astype("float32")


def validate_assignment(assignment, num_classes: int) -> np.ndarray:
    """`assignment` as int32 `(c,)`, checked to permute `range(c)`."""
    array = np.asarray(assignment)
    if (
        array.shape != (num_classes,)
        or not np.issubdtype(array.dtype, np.integer)
        or not np.array_equal(np.sort(array), np.arange(num_classes))
    ):
        raise ValueError(
            "An assignment must be an integer permutation of "
            f"range({num_classes}) (label j -> prototype index). Received: "
            f"shape={array.shape}, dtype={array.dtype}"
        )
    return array.astype("int32")


def _initial_assignment(initial_assignment, num_classes: int, seed):
    if not isinstance(initial_assignment, str):
        return validate_assignment(initial_assignment, num_classes)
    if initial_assignment == "identity":
        return np.arange(num_classes, dtype="int32")
    if initial_assignment == "random":
        rng = np.random.default_rng(seed)
        return rng.permutation(num_classes).astype("int32")
    raise ValueError(
        "Argument `initial_assignment` must be 'identity', 'random' or a "
        f"permutation array. Received: {initial_assignment!r}"
    )


@register
class PrototypeLayer(keras.layers.Layer):
    """Cosine classifier against fixed prototypes with a dynamic assignment.

    Holds `c` fixed unit prototypes `W` `(c, d)` (rows; the paper's `W` is
    its transpose) and the label-to-prototype assignment `A` (label `j`
    uses prototype `A[j]`), both non-trainable. It L2-normalises its input
    `z` and returns cosine logits **in label order**,
    `logits[:, j] = cos(z, W[A[j]])`, so `argmax` is the predicted label and
    Keras' accuracy metrics work unchanged.

    It also holds, as saved non-trainable variables (so resumed training is
    exact), the state `ReassignCallback` needs: the class representatives
    `representatives` `(c, d)`, the total label weight seen per class
    `observed` `(c,)`, and the sums since the last reassignment,
    `feature_sums` `(c, d)` and `feature_counts` `(c,)` (sync-on-read SUM
    variables, exact under `tf.distribute`). The train step fills them
    through `update_statistics` (`PrototypeClassifier.compute_loss`, or
    `IPMLoss` in a plain Keras model). Memory is O(c * d).

    Args:
        prototypes: array-like `(c, d)`; rows are L2-normalised. See
            `keras_dlpa.estimate_prototypes`.
        initial_assignment: `"identity"` (default), `"random"` (drawn with
            `seed`), or an integer permutation of `range(c)`.
        seed: seed for `initial_assignment="random"`.
        track_statistics: whether training-mode calls keep their normalised
            features for `update_statistics` (default `True`).
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: features `z` of shape `(B, d)`.
        training: Python bool; statistics are gathered only when `True`.

    Input shape: `(B, d)`. Output shape: `(B, c)` cosine logits in label order.

    Example:

    ```python
    prototypes = keras_dlpa.estimate_prototypes(num_classes=10, dim=4)
    model = keras.Sequential([
        keras.Input((32,)),
        keras.layers.Dense(4),
        keras_dlpa.PrototypeLayer(prototypes),
    ])
    model.compile("sgd", loss=keras_dlpa.IPMLoss(), metrics=["accuracy"])
    ```

    Reference:
        Saadabadi et al., "Hyperspherical Classification with Dynamic
        Label-to-Prototype Assignment", CVPR 2024 (Eq. 1, 6, 9).
    """

    def __init__(
        self,
        prototypes,
        initial_assignment="identity",
        seed: int | None = 0,
        track_statistics: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._prototypes_value = _as_prototypes(prototypes)
        self.num_classes, self.dim = self._prototypes_value.shape
        self._assignment_value = _initial_assignment(
            initial_assignment, self.num_classes, seed
        )
        self.initial_assignment = (
            initial_assignment
            if isinstance(initial_assignment, str)
            else self._assignment_value.tolist()
        )
        self.seed = seed
        self.track_statistics = bool(track_statistics)
        # Plain Python state outside Keras' tracking (never saved).
        object.__setattr__(self, "_training_features", _TrainingFeatures())

    def build(self, input_shape):
        feature_dim = input_shape[-1]
        if feature_dim != self.dim:
            raise ValueError(
                f"PrototypeLayer '{self.name}' holds prototypes of dimension "
                f"d={self.dim} ({self.num_classes} classes), but its input "
                f"has feature size {feature_dim} (input shape "
                f"{tuple(input_shape)}). Project the features to {self.dim} "
                f"dimensions, e.g. with keras.layers.Dense({self.dim}), or "
                f"estimate prototypes with dim={feature_dim}."
            )
        c, d = self.num_classes, self.dim
        constant = keras.initializers.Constant
        self.prototypes = self.add_weight(
            shape=(c, d),
            initializer=constant(self._prototypes_value),
            trainable=False,
            name="prototypes",
        )
        self.assignment = self.add_weight(
            shape=(c,),
            initializer=constant(self._assignment_value),
            dtype="int32",
            trainable=False,
            name="assignment",
        )
        for name, shape in (("representatives", (c, d)), ("observed", (c,))):
            weight = self.add_weight(
                shape=shape, initializer="zeros", trainable=False, name=name
            )
            setattr(self, name, weight)
        # Each replica adds its own samples; a cross-replica read (the
        # callbacks) returns the exact total.
        summed = dict(
            trainable=False, aggregation="sum", synchronization="on_read"
        )
        self.feature_sums = keras.Variable(
            np.zeros((c, d), "float32"), name="feature_sums", **summed
        )
        self.feature_counts = keras.Variable(
            np.zeros((c,), "float32"), name="feature_counts", **summed
        )

    def call(self, inputs, training=None):
        features = ops.normalize(inputs, axis=-1)
        prototypes = ops.cast(self.prototypes, features.dtype)
        label_prototypes = ops.take(prototypes, self.assignment, axis=0)
        logits = ops.matmul(features, ops.transpose(label_prototypes))
        if training and self.track_statistics:
            self._training_features.record(logits, features)
        return logits

    def update_statistics(self, y_true, y_pred) -> bool:
        """Adds the training batch behind `y_pred` to the interval sums.

        Only the features of this layer's training-mode call that returned
        `y_pred` itself are added; any other `y_pred` adds nothing. Labels
        outside `[0, c)` make the sums and counts NaN (no host sync), which
        `ReassignCallback` reports as bad labels.

        Args:
            y_true: sparse labels `(B,)`/`(B, 1)` or class weights `(B, c)`.
            y_pred: `(B, c)` logits returned by this layer's call.

        Returns:
            Whether the batch was added.
        """
        width = y_pred.shape[-1] if len(y_pred.shape) else None
        if width is not None and width != self.num_classes:
            raise ValueError(
                f"PrototypeLayer '{self.name}' has {self.num_classes} "
                f"classes, but the loss received logits of shape "
                f"{tuple(y_pred.shape)}. IPMLoss must receive the "
                "PrototypeLayer's cosine logits: end the model with it."
            )
        features = self._training_features.take(y_pred)
        if features is None:
            return False
        labels, weights, _ = parse_labels(
            y_true, self.num_classes, validate=False
        )
        if labels is None:
            self.accumulate_statistics(features, weights=weights)
            return True
        # A traced flag, no assertion or host sync: a bad batch is poisoned
        # on an in-range class, so the NaN reaches the sums even when every
        # label is invalid. NaN counts mark bad labels; NaN sums with
        # finite counts mark NaN features, i.e. divergence
        # (`ReassignCallback` and `DivergenceCallback` tell them apart).
        invalid = out_of_range(labels, self.num_classes)
        features = ops.where(invalid, float("nan"), features)
        labels = ops.clip(labels, 0, self.num_classes - 1)
        self.accumulate_statistics(features, labels=labels)
        flag = ops.where(invalid, float("nan"), 0.0)
        self.feature_counts.assign_add(
            ops.broadcast_to(flag, (self.num_classes,))
        )
        return True

    def accumulate_statistics(self, features, labels=None, weights=None):
        """Adds a batch to the interval sums.

        Args:
            features: `(B, d)` L2-normalised features.
            labels: `(B,)` int labels in `[0, c)` (a `segment_sum`).
            weights: `(B, c)` float class weights, e.g. mixup targets (a
                matmul); give exactly one of `labels` and `weights`.
        """
        if (labels is None) == (weights is None):
            raise ValueError(
                "accumulate_statistics needs exactly one of `labels` and "
                "`weights`."
            )
        features = ops.stop_gradient(ops.cast(features, "float32"))
        if labels is not None:
            sums = ops.segment_sum(features, labels, self.num_classes)
            counts = ops.segment_sum(
                ops.ones_like(features[:, 0]), labels, self.num_classes
            )
        else:
            weights = ops.stop_gradient(ops.cast(weights, "float32"))
            sums = ops.matmul(ops.transpose(weights), features)
            counts = ops.sum(weights, axis=0)
        self.feature_sums.assign_add(sums)
        self.feature_counts.assign_add(counts)

    def set_assignment(self, assignment) -> None:
        """Sets the assignment to a validated permutation of `range(c)`."""
        self.assignment.assign(
            validate_assignment(assignment, self.num_classes)
        )

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "prototypes": self._prototypes_value.tolist(),
            "initial_assignment": self.initial_assignment,
            "seed": self.seed,
            "track_statistics": self.track_statistics,
        }


def find_prototype_layer(model) -> PrototypeLayer:
    """Returns the one `PrototypeLayer` in `model`, searching nested models."""
    found, stack = {}, [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, PrototypeLayer):
            found[id(layer)] = layer
        stack.extend(getattr(layer, "layers", []) or [])
    if len(found) != 1:
        raise ValueError(
            f"Expected exactly one keras_dlpa.PrototypeLayer in model "
            f"'{model.name}', found {len(found)}. End the model with "
            "keras_dlpa.PrototypeLayer(prototypes), or pass the layer as "
            "ReassignCallback(layer=...)."
        )
    return next(iter(found.values()))
