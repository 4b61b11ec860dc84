"""`ReassignCallback`: re-solves the label-to-prototype assignment (Eq. 9)."""

from __future__ import annotations

import sys

import keras
import numpy as np
from keras import ops

from keras_dlpa.checks import check_choice
from keras_dlpa.checks import check_int
from keras_dlpa.checks import check_number
from keras_dlpa.class_statistics import merge_statistics
from keras_dlpa.class_statistics import normalize_rows
from keras_dlpa.divergence_callback import TrainingDiverged
from keras_dlpa.divergence_callback import divergence_message
from keras_dlpa.ipm_loss import IPMLoss
from keras_dlpa.labels import bad_labels_error
from keras_dlpa.matching import SparseWarmStart
from keras_dlpa.matching import matching_cost
from keras_dlpa.matching import solve_assignment
from keras_dlpa.prototype_layer import PrototypeLayer
from keras_dlpa.prototype_layer import find_prototype_layer


class ReassignCallback(keras.callbacks.Callback):
    """Re-solves the label-to-prototype assignment during `fit`.

    At each update it folds the features gathered since the last update
    into the class representatives `Q` (`merge_statistics`), solves paper
    Eq. 9, `A* = argmin_A sum_j -q_j . w_A(j)` with `q_j` L2-normalised, as
    a linear assignment (`keras_dlpa.solve_assignment`), and writes `A*`
    into the `PrototypeLayer`. Ties keep the current assignment.

    Updates run at every epoch end (the paper's `tau' = 1`), or
    `updates_per_epoch` times per epoch at evenly spaced batches; more than
    one adds a batch hook, which makes Keras fetch every step's logs (a
    CIFAR ResNet-32 step on an H100: 1.1-1.2x slower). The epoch `logs` get
    `assignment_changed` (fraction of classes whose prototype changed
    during the epoch) and `assignment_cost` (matching cost / `c`, the
    negative mean cosine between representatives and their prototypes).

    All state lives in the model's variables; place this callback
    **before** `ModelCheckpoint`/`BackupAndRestore` so saved epochs include
    the new assignment. The model needs one `PrototypeLayer` and either is
    a `PrototypeClassifier` or is compiled with `IPMLoss` (connected to the
    layer when training begins, see `IPMLoss`); otherwise training stops
    at its start with a message that says what to add.

    Args:
        layer: the `PrototypeLayer` to update; found in the model if `None`.
        updates_per_epoch: reassignments per epoch (`tau'`); default 1.
        momentum: per-sample momentum `alpha` of `Q` (`merge_statistics`).
        warmup_epochs: epochs (from 0) that gather statistics but keep the
            assignment.
        freeze_after: epoch from which the assignment is frozen (`None`:
            never).
        method: `"auto"`, `"dense"` or `"sparse"` (`solve_assignment`).
        verbose: 0 silent, 1 one line per epoch.

    Example:

    ```python
    model.fit(train_ds, epochs=200, callbacks=[keras_dlpa.ReassignCallback()])
    ```
    """

    def __init__(
        self,
        layer: PrototypeLayer | None = None,
        updates_per_epoch: int = 1,
        momentum: float = 0.9,
        warmup_epochs: int = 0,
        freeze_after: int | None = None,
        method: str = "auto",
        verbose: int = 0,
    ):
        super().__init__()
        check_int("updates_per_epoch", updates_per_epoch)
        check_number("momentum", momentum, 0.0, 1.0, closed=True)
        check_int("warmup_epochs", warmup_epochs, minimum=0)
        check_int("freeze_after", freeze_after, minimum=0, allow_none=True)
        check_choice("method", method, ("auto", "dense", "sparse"))
        self.layer = layer
        self.updates_per_epoch = int(updates_per_epoch)
        if self.updates_per_epoch > 1:
            # Keras syncs on every step once any callback has a batch hook.
            self.on_train_batch_end = self._update_at_points
        self.momentum = float(momentum)
        self.warmup_epochs = int(warmup_epochs)
        self.freeze_after = freeze_after
        self.method = method
        self.verbose = int(verbose)

    def on_train_begin(self, logs=None):
        model = self.model
        self._layer = self.layer or find_prototype_layer(model)
        if not getattr(model, "updates_class_statistics", False):
            self._connect_loss(model)
        if not self._layer.track_statistics:
            raise ValueError(
                f"PrototypeLayer '{self._layer.name}' was created with "
                "`track_statistics=False`, so no class statistics reach "
                "ReassignCallback, which needs `track_statistics=True` (the "
                "default). Create the layer with track_statistics=True, or "
                "train without ReassignCallback (a frozen assignment)."
            )
        self._check_output_classes(model)
        steps = self.params.get("steps") if self.params else None
        if self.updates_per_epoch > 1 and not steps:
            raise ValueError(
                "Argument `updates_per_epoch` > 1 needs the number of steps "
                "per epoch to place the mid-epoch updates, but fit() does "
                f"not know it. Received: updates_per_epoch="
                f"{self.updates_per_epoch}, steps per epoch={steps!r}. Pass "
                "`steps_per_epoch` to fit(), use data of known length "
                "(arrays, a tf.data.Dataset of known cardinality, a "
                "PyDataset with __len__), or use updates_per_epoch=1."
            )
        self._steps = steps
        self._warm_start = SparseWarmStart()  # speed only, not results

    def _connect_loss(self, model) -> None:
        """Points a plain Keras model's `IPMLoss` at the layer."""
        losses = keras.tree.flatten(model.loss)
        losses = [x for x in losses if isinstance(x, IPMLoss)]
        if not losses:
            raise ValueError(
                "ReassignCallback needs class statistics, which "
                "keras_dlpa.IPMLoss gathers in the train step of a plain "
                "Keras model. Compile the model with "
                "loss=keras_dlpa.IPMLoss(), or use "
                f"keras_dlpa.PrototypeClassifier. Received: loss={model.loss!r}"
            )
        changed = False
        for loss in losses:
            changed |= loss.statistics_layer is not self._layer
            loss.statistics_layer = self._layer
        if changed and getattr(model, "train_function", None) is not None:
            # A train step traced before the connection has no statistics.
            model.make_train_function(force=True)

    def _check_output_classes(self, model) -> None:
        outputs = getattr(model, "outputs", None)
        if not outputs or len(outputs) != 1:
            return  # Subclassed or multi-output: update_statistics checks.
        width = outputs[0].shape[-1]
        if width is not None and width != self._layer.num_classes:
            raise ValueError(
                f"Model '{model.name}' is trained with IPMLoss on an output "
                f"of {width} classes (shape {tuple(outputs[0].shape)}), but "
                f"its PrototypeLayer '{self._layer.name}' has "
                f"{self._layer.num_classes} classes. IPMLoss must receive "
                "the PrototypeLayer's cosine logits: end the model with the "
                "PrototypeLayer."
            )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._current_assignment()
        k, steps = self.updates_per_epoch, self._steps
        points = {round(i * steps / k) - 1 for i in range(1, k)}
        self._points = sorted(p for p in points if 0 <= p < steps - 1)

    def _update_at_points(self, batch, logs=None):
        if self._points and batch >= self._points[0]:
            self._points = [p for p in self._points if p > batch]
            self.update(self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        cost = self.update(epoch)
        changed = float(
            np.mean(self._current_assignment() != self._epoch_start)
        )
        if logs is not None:
            logs["assignment_changed"] = changed
            logs["assignment_cost"] = cost
        if self.verbose:
            sys.stdout.write(
                f"Epoch {epoch + 1}: assignment changed for "
                f"{changed:.1%} of classes, cost {cost:.4f}\n"
            )

    def _current_assignment(self) -> np.ndarray:
        return ops.convert_to_numpy(self._layer.assignment).astype("int64")

    def update(self, epoch: int) -> float:
        """Folds the gathered statistics into `Q` and re-solves Eq. 9.

        Returns:
            The matching cost per class after the update.
        """
        _ = self.model  # On JAX, syncs the in-flight training state first.
        layer = self._layer
        counts = ops.convert_to_numpy(layer.feature_counts)
        sums = ops.convert_to_numpy(layer.feature_sums)
        if np.isnan(counts).any():
            raise bad_labels_error(layer.num_classes)
        if np.isnan(sums).any():
            raise TrainingDiverged(
                divergence_message(
                    self.model,
                    epoch,
                    "the features are not finite, so the class statistics "
                    "are NaN",
                )
            )
        if not np.any(counts > 0):
            raise RuntimeError(
                "ReassignCallback found no class statistics from the last "
                "interval. The train step must pass the output of "
                f"PrototypeLayer '{layer.name}' with its labels to the "
                "layer's update_statistics (PrototypeClassifier does; a "
                "plain Keras model compiled with keras_dlpa.IPMLoss does "
                "through the loss). A custom train_step must call it."
            )
        representatives, observed = merge_statistics(
            ops.convert_to_numpy(layer.representatives),
            ops.convert_to_numpy(layer.observed),
            sums,
            counts,
            self.momentum,
        )
        layer.representatives.assign(representatives)
        layer.observed.assign(observed)
        layer.feature_sums.assign(np.zeros_like(sums))
        layer.feature_counts.assign(np.zeros_like(counts))

        prototypes = ops.convert_to_numpy(layer.prototypes)
        current = self._current_assignment()
        active = epoch >= self.warmup_epochs and (
            self.freeze_after is None or epoch < self.freeze_after
        )
        q = normalize_rows(representatives)
        if active:
            current, _ = solve_assignment(
                q,
                prototypes,
                current=current,
                method=self.method,
                warm_start=self._warm_start,
            )
            layer.set_assignment(current)
        return matching_cost(q, prototypes, current) / layer.num_classes
