"""`PrototypeClassifier`: the front door, a keras-hub-style Task."""

from __future__ import annotations

import copy

import keras
import numpy as np

from keras_dlpa.api_export import register
from keras_dlpa.methods import get_method
from keras_dlpa.models.projection import project_features
from keras_dlpa.prototype_layer import PrototypeLayer


@register
class PrototypeClassifier(keras.Model):
    """An image classifier on fixed hyperspherical prototypes (a Task).

    Puts the head of a classification method on a feature backbone, in the
    way of `keras_hub.models.ImageClassifier`: images -> `backbone` ->
    (optional) projection to `dim` -> head. For the prototype methods the
    head is a `PrototypeLayer` (fixed unit prototypes, the dynamic
    label-to-prototype assignment, cosine logits in label order); for
    `"softmax"` and `"psc_star"` a `Dense(c)` layer named `"logits"`.

    `compile()` has working defaults, and `compute_loss` gathers the class
    statistics of each training batch explicitly (the features of this
    step's `PrototypeLayer` call and the batch's labels), so DL2PA is

    ```python
    classifier.fit(x, y, callbacks=[keras_dlpa.ReassignCallback()])
    ```

    Methods (`keras_dlpa.methods`): `"dl2pa"` (estimated prototypes, the
    assignment re-solved by `ReassignCallback`), `"static"` (frozen),
    `"etf"` (simplex ETF, needs `dim >= num_classes - 1`), `"softmax"`,
    and the paper's Table 8 ablations `"psc_star"` and `"ours_star"` (pass
    the unit class weights of a trained softmax classifier as `prototypes`,
    `keras_dlpa.softmax_prototypes(run)`).

    Args:
        backbone: a functional `keras.Model`, images `(B, H, W, C)` ->
            features `(B, d_b)` (e.g. `keras_dlpa.models.backbone_from_preset`).
            Its layers become the classifier's layers.
        num_classes: the number of classes `c`.
        dim: the prototype dimension `d`. `None` (default) uses the
            backbone's features; another size adds `Dense(d, no bias)` +
            BatchNorm (`keras_dlpa.models.project_features`).
        method: one of `keras_dlpa.methods.METHODS`; default `"dl2pa"`.
        prototypes: `(c, d)` prototypes of a prototype method; default the
            method's own (`Method.prototypes`, estimated and cached on disk).
        initial_assignment: the `PrototypeLayer`'s initial assignment,
            `"identity"` (default), `"random"` or a permutation of `range(c)`.
        weight_decay: coupled L2 (PyTorch-style SGD weight decay) of the
            projection and of a softmax head.
        seed: seed of the estimated prototypes and of a random assignment.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Input shape: `(B, H, W, C)` images as the backbone takes them.
    Output shape: `(B, c)` logits in label order (cosines for the
    prototype methods).

    Example:

    ```python
    backbone = keras_dlpa.models.backbone_from_preset("resnet32_lt_cifar100")
    classifier = keras_dlpa.PrototypeClassifier(
        backbone, num_classes=100, dim=50
    )
    classifier.compile()
    classifier.fit(images, labels, epochs=200,
                   callbacks=[keras_dlpa.ReassignCallback()])
    ```

    Reference:
        Saadabadi et al., "Hyperspherical Classification with Dynamic
        Label-to-Prototype Assignment", CVPR 2024.
    """

    def __init__(
        self,
        backbone: keras.Model,
        num_classes: int,
        dim: int | None = None,
        method: str = "dl2pa",
        prototypes=None,
        initial_assignment="identity",
        weight_decay: float = 0.0,
        seed: int = 0,
        **kwargs,
    ):
        spec = get_method(method)
        if not isinstance(backbone, keras.Model) or len(backbone.outputs) != 1:
            raise ValueError(
                "Argument `backbone` must be a functional keras.Model with "
                "one output, images -> features (B, d). Received: "
                f"backbone={backbone!r}"
            )
        features = backbone.outputs[0]
        if dim is not None and dim != features.shape[-1]:
            features = project_features(features, dim, weight_decay)
        feature_dim = int(features.shape[-1])
        if prototypes is None:
            prototypes = spec.prototypes(num_classes, feature_dim, seed)
        outputs = spec.head(
            features,
            num_classes,
            prototypes=prototypes,
            weight_decay=weight_decay,
            initial_assignment=initial_assignment,
            seed=seed,
        )
        kwargs.setdefault("name", f"{method}_classifier")
        super().__init__(backbone.input, outputs, **kwargs)
        # Not tracked as a layer: its layers are this model's layers.
        object.__setattr__(self, "_backbone", backbone)
        head = self.get_layer("prototypes") if spec.uses_prototypes else None
        object.__setattr__(self, "_prototype_layer", head)
        self.num_classes = int(num_classes)
        self.dim = dim
        self.method = spec.name
        self.initial_assignment = (
            initial_assignment
            if isinstance(initial_assignment, str)
            else np.asarray(initial_assignment).tolist()
        )
        self.weight_decay = float(weight_decay)
        self.seed = seed

    @property
    def backbone(self) -> keras.Model:
        """The feature backbone, images -> `(B, d_b)` (shares weights)."""
        return self._backbone

    @property
    def prototype_layer(self) -> PrototypeLayer | None:
        """The `PrototypeLayer` head, or `None` for a softmax head."""
        return self._prototype_layer

    @property
    def updates_class_statistics(self) -> bool:
        """`compute_loss` gathers the class statistics (see
        `ReassignCallback`)."""
        return self.prototype_layer is not None

    def compile(
        self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs
    ):
        """`keras.Model.compile` with defaults for this method.

        Args:
            optimizer: `"auto"` is SGD with momentum 0.9 at learning rate
                0.1 (the paper's CIFAR setting, before its schedule).
            loss: `"auto"` is `IPMLoss()` for the prototype methods and
                sparse cross-entropy from logits for the softmax ones.
            metrics: `"auto"` is `accuracy` and `top5` (top-`min(5, c)`).
            **kwargs: other `keras.Model.compile` arguments.
        """
        spec = get_method(self.method)
        if optimizer == "auto":
            optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
        if loss == "auto":
            loss = spec.loss()
        if metrics == "auto":
            metrics = spec.metrics(self.num_classes)
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )

    def compile_from_config(self, config):
        # `.keras` loading: the saved compile arguments, no defaults.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )
        if training and self.prototype_layer is not None and y is not None:
            self.prototype_layer.update_statistics(y, y_pred)
        return loss

    def get_config(self):
        prototypes = None
        if self.prototype_layer is not None:
            prototypes = self.prototype_layer.get_config()["prototypes"]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "dim": self.dim,
            "method": self.method,
            "prototypes": prototypes,
            "initial_assignment": self.initial_assignment,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # Keras' deserialisation consumes the dict it is given.
        config["backbone"] = keras.saving.deserialize_keras_object(
            copy.deepcopy(config["backbone"])
        )
        if config.get("prototypes") is not None:
            config["prototypes"] = np.asarray(config["prototypes"], "float32")
        return cls(**config)
