"""`PrototypeLayer`: fixed hyperspherical prototypes, dynamic assignment."""

from __future__ import annotations

import weakref

import keras
import numpy as np
from keras import ops

from keras_dlpa.api_export import register
from keras_dlpa.labels import parse_labels


class _TrainingFeatures:
    """The features of a layer's training-mode calls, keyed by the logits
    tensor each call returned. An entry lives as long as its logits, so a
    forward pass whose output never reaches `update_statistics` (a probe,
    a second view of the batch) can never be counted for another one."""

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
    if array.ndim != 2:
        raise ValueError(
            "Argument `prototypes` must be a 2-D array of shape "
            f"(num_classes, dim). Received: shape={array.shape}"
        )
    num_classes, dim = array.shape
    if num_classes < 2 or dim < 1:
        raise ValueError(
            "Argument `prototypes` needs at least 2 rows (classes) and 1 "
            f"column (dim). Received: shape={array.shape}"
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
    """Checks that `assignment` is a permutation of `range(num_classes)`.

    Returns it as an int32 numpy array of shape `(num_classes,)`.
    """
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
    if isinstance(initial_assignment, str):
        if initial_assignment == "identity":
            return np.arange(num_classes, dtype="int32")
        if initial_assignment == "random":
            rng = np.random.default_rng(seed)
            return rng.permutation(num_classes).astype("int32")
        raise ValueError(
            "Argument `initial_assignment` must be 'identity', 'random' or a "
            f"permutation array. Received: {initial_assignment!r}"
        )
    return validate_assignment(initial_assignment, num_classes)


@register
class PrototypeLayer(keras.layers.Layer):
    """Cosine classifier against fixed prototypes with a dynamic assignment.

    Holds `c` fixed unit prototypes `W` (shape `(c, d)`, rows are prototypes;
    the paper's `W` is its transpose) and the label-to-prototype assignment
    `A` (label `j` uses prototype `A[j]`), both non-trainable. The layer
    L2-normalises its input `z` and returns cosine logits **in label order**,
    `logits[:, j] = cos(z, W[A[j]])`, so `argmax` is the predicted label and
    Keras' accuracy metrics work unchanged.

    It also carries the state that `ReassignCallback` needs, as non-trainable
    variables (saved with the model, so interrupted training resumes
    exactly): the class representatives `Q` (`representatives`, `(c, d)`),
    the total weight each class has been observed with (`observed`, `(c,)`),
    and the sums of normalised features and label weights gathered since the
    last reassignment (`feature_sums`, `(c, d)`; `feature_counts`, `(c,)`).
    The interval sums are sync-on-read SUM variables, exact under
    `tf.distribute` strategies. Memory is O(c * d); the matching adds a
    transient O(c^2) cost matrix. The train step fills the interval sums
    through `update_statistics` (`PrototypeClassifier.compute_loss`, or
    `IPMLoss` in a plain Keras model).

    Args:
        prototypes: array-like `(c, d)` of prototypes; rows are L2-normalised.
            Use `keras_dlpa.estimate_prototypes` to make them.
        initial_assignment: `"identity"` (default), `"random"` (a permutation
            drawn with `seed`), or an integer permutation of `range(c)`.
        seed: seed for `initial_assignment="random"`.
        track_statistics: when `True` (default), training-mode calls keep
            their normalised features for `update_statistics`.
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
                "dimensions, e.g. with keras.layers.Dense("
                f"{self.dim}), or estimate prototypes with "
                f"dim={feature_dim}."
            )
        c, d = self.num_classes, self.dim
        self.prototypes = self.add_weight(
            shape=(c, d),
            initializer=keras.initializers.Constant(self._prototypes_value),
            trainable=False,
            name="prototypes",
        )
        self.assignment = self.add_weight(
            shape=(c,),
            initializer=keras.initializers.Constant(self._assignment_value),
            dtype="int32",
            trainable=False,
            name="assignment",
        )
        self.representatives = self.add_weight(
            shape=(c, d),
            initializer="zeros",
            trainable=False,
            name="representatives",
        )
        self.observed = self.add_weight(
            shape=(c,), initializer="zeros", trainable=False, name="observed"
        )
        # Sync-on-read SUM: each replica adds its own samples; reading in a
        # cross-replica context (callbacks) returns the exact total.
        self.feature_sums = keras.Variable(
            np.zeros((c, d), "float32"),
            trainable=False,
            aggregation="sum",
            synchronization="on_read",
            name="feature_sums",
        )
        self.feature_counts = keras.Variable(
            np.zeros((c,), "float32"),
            trainable=False,
            aggregation="sum",
            synchronization="on_read",
            name="feature_counts",
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

        The explicit statistics step of a train step (`PrototypeClassifier`
        calls it in `compute_loss`; `IPMLoss` when its `statistics_layer`
        is this layer). Only the features of the training-mode call of this
        layer that returned `y_pred` itself are added: `y_pred` from any
        other call (inference, a probe, another layer) adds nothing. The
        labels are not checked here (the loss raises for labels outside
        `[0, c)`); such a batch makes the sums and counts NaN, which
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
        # One traced flag, no assertion or host sync: a bad batch poisons
        # the sums (on an in-range class) and the counts with NaN.
        invalid = (ops.min(labels) < 0) | (ops.max(labels) >= self.num_classes)
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

        Give either sparse `labels` (summed with `segment_sum`, O(B * d)) or
        dense `weights` (one-hot or soft labels such as mixup targets,
        summed with a matmul, O(B * c * d)).

        Args:
            features: `(B, d)` L2-normalised features.
            labels: `(B,)` int labels in `[0, c)`.
            weights: `(B, c)` float class weights per sample.
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
        config = super().get_config()
        config.update(
            {
                "prototypes": self._prototypes_value.tolist(),
                "initial_assignment": self.initial_assignment,
                "seed": self.seed,
                "track_statistics": self.track_statistics,
            }
        )
        return config


def find_prototype_layer(model) -> PrototypeLayer:
    """Returns the one `PrototypeLayer` in `model`, searching nested models."""
    found = []
    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, PrototypeLayer):
            found.append(layer)
        stack.extend(getattr(layer, "layers", []) or [])
    unique = list({id(layer): layer for layer in found}.values())
    if len(unique) != 1:
        raise ValueError(
            f"Expected exactly one keras_dlpa.PrototypeLayer in model "
            f"'{model.name}', found {len(unique)}. End the model with "
            "keras_dlpa.PrototypeLayer(prototypes), or pass the layer as "
            "ReassignCallback(layer=...)."
        )
    return unique[0]
